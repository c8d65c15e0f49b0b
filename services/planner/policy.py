"""Whether a request should be refused, needs a question back, or can be planned.

Pure and deterministic: the same words always get the same answer, and the answer comes before any
model is asked anything. A small model cannot be trusted to notice that "/etc/shadow" is off limits or
that "fix it" names nothing, so these checks are plain rules over the request's words.

Refusals come first: a request that names a forbidden path, wipes everything, runs destructive SQL,
indexes the whole disk, sends credentials away or tampers with the audit trail is refused even if it is
also vague. Then a request is sent back with a question when it has no content at all, or when it
points at something earlier ("convert the document") that nothing earlier can supply. Everything else
proceeds; changes to a person's own things still wait for their confirmation later, which is the
gateway's business, not this module's.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum

from switchboard.extract import extract_dates, extract_emails, extract_paths
from switchboard.paths import PathPolicy, PathVerdict

__all__ = ["Assessment", "Verdict", "assess"]


class Verdict(StrEnum):
    """What happens to a request before it is planned."""

    PROCEED = "proceed"
    REFUSE = "refuse"
    CLARIFY = "clarify"


@dataclass(frozen=True)
class Assessment:
    """A verdict and, unless it is PROCEED, the sentence to show the person.

    For REFUSE the reason says plainly why, naming the path or the rule; for CLARIFY it asks for
    exactly what is missing.
    """

    verdict: Verdict
    reason: str = ""


PROCEED = Assessment(Verdict.PROCEED)


def assess(text: str, paths: PathPolicy, has_context: bool) -> Assessment:
    """Decide whether `text` is refused, needs clarifying, or may be planned.

    `has_context` is True when earlier turns or steps exist that "it" or "that file" could point to;
    without them such a reference is a question to ask, not a guess to make.
    """
    request = _Request.read(text)
    for rule in _REFUSAL_RULES:
        reason = rule(request, paths)
        if reason:
            return Assessment(Verdict.REFUSE, reason)
    question = _missing_content(request, has_context)
    if question:
        return Assessment(Verdict.CLARIFY, question)
    return PROCEED


# ---- reading a request ----

# Text in quotes (a title, a search phrase, an SQL statement). An apostrophe inside a word ("don't")
# neither opens nor closes a quote, so contractions do not swallow half a sentence.
_QUOTED = re.compile(r"""(?<!\w)(["'`\u201c\u2018])(.+?)(?:["'`\u201d\u2019])(?!\w)""")
# A URL is not a path: "https://example.com/x" must not be judged as "//example.com/x".
_URL = re.compile(r"\b[a-z][a-z0-9+.-]*://\S+", re.IGNORECASE)
_FILE_URL = re.compile(r"\bfile://(?=/)", re.IGNORECASE)
# `extract_paths` knows POSIX paths only; a Windows drive path typed by a person is judged too.
_WINDOWS_PATH = re.compile(r"(?<![\w/])[A-Za-z]:[\\/][^\s\"'`,;]*")
# Sentence punctuation ends a clause only when a space or the end follows, so "~/a.txt" stays whole.
_CLAUSE_END = r"[.;!?](?=\s|$)|\n"


@dataclass(frozen=True)
class _Request:
    """A request in the forms the rules need, computed once."""

    text: str  # as typed, with file:// URLs turned into plain paths
    words: str  # lower-cased, quoted passages blanked, whitespace collapsed: what keyword rules read
    shown: str  # `words` before lower-casing, to quote back in a reason with the person's own spelling
    paths: tuple[str, ...]
    quoted: tuple[str, ...]

    @classmethod
    def read(cls, text: str) -> _Request:
        plain = _FILE_URL.sub("", text)
        without_urls = _URL.sub(" ", plain)
        quoted = tuple(match.group(2) for match in _QUOTED.finditer(without_urls))
        # Quoted passages are what a person wants written or searched for, not what they ask to be done:
        # "search my notes for 'delete everything'" is harmless, so keyword rules do not see them, and a
        # "/" inside "search for 'rm -rf /'" is not a path. A quoted path is still a path.
        blanked = _QUOTED.sub(lambda m: m.group(0) if _is_pathlike(m.group(2)) else ' "…" ', without_urls)
        windows = [match.group(0).rstrip(".,;:!?)") for match in _WINDOWS_PATH.finditer(blanked)]
        shown = " ".join(blanked.split())
        return cls(
            text=plain,
            words=shown.lower(),
            shown=shown,
            paths=(*extract_paths(blanked), *windows),
            quoted=quoted,
        )


def _is_pathlike(text: str) -> bool:
    return text.startswith(("/", "~"))


# ---- refusals ----


def _forbidden_path(request: _Request, paths: PathPolicy) -> str:
    """The first path that is a secret, a system location, or outside the roots."""
    for raw in request.paths:
        if _is_placeholder(raw):
            continue
        if paths.classify(raw) is not PathVerdict.INSIDE:
            return paths.explain(raw)
    return ""


_DELETE_VERB = re.compile(
    r"\b(?:delete|deleting|erase|erasing|wipe|wiping|remove|removing|clear|clearing|empty|emptying|purge|purging"
    r"|nuke|destroy|shred|format|formatting|trash|get\s+rid\s+of|clean\s+out|rm)\b"
)
# Words that may stand between a delete verb and its target without narrowing it: "wipe the contents of
# my disk" aims at the disk, while "delete the duplicates in ~/Pictures" aims at some files only.
_DIRECT_OBJECT_FILLER = (
    r"(?:the|my|your|our|this|contents?|of|out|off|completely|entirely|permanently|just|please|now|-\w+)"
)
# "the disk cache", "the computer's history": something on the place, not the place.
_NOT_THE_PLACE_ITSELF = (
    r"(?!['\u2019]s\b|\s+(?:cache|caches|space|usage|image|name|info|details|history|cpu|memory|load"
    r"|performance|resources|health|status|logs?)\b)"
)
# What a wholesale deletion aims at once the filler is skipped.
_WHOLESALE = re.compile(
    rf"^(?P<object>(?:\s+{_DIRECT_OBJECT_FILLER})*\s+(?P<target>"
    r"everything|all\s+(?:of\s+)?(?:(?:my|the|your)\s+)?(?:files|data|documents|folders|stuff|contents?)\b"
    r"|every\s+(?:single\s+)?(?:file|folder|document)\b|\*(?![\w.])"
    r"|(?:(?:whole|entire|complete)\s+(?:[\w-]+\s+)?(?:folder|directory|dir|home|disk|drive|hard\s+drive"
    r"|hard\s+disk|ssd|computer|laptop|machine|system|partition|file\s*system|account)"
    r"|home\s+(?:folder|directory|dir)|hard\s+drive|hard\s+disk|ssd|disk|drive|computer|laptop|machine)\b"
    rf"{_NOT_THE_PLACE_ITSELF}))"
)
# A wholesale word followed by one of these selects some things rather than wiping all of them
# ("everything older than 30 days", "all files except the PDFs").
_NARROWED = re.compile(
    r"\b(?:except|but\s+not|other\s+than|older|newer|larger|bigger|smaller|that|which|named|called|matching"
    r"|ending|starting|before|after|modified|created|duplicates?|unless)\b"
)
# Between a delete verb and a folder path, only these words leave the folder itself as the target.
_PATH_OBJECT_FILLER = frozenset(
    {"the", "my", "your", "all", "of", "everything", "contents", "content", "in", "inside", "under", "from",
     "files", "file", "folder", "directory", "whole", "entire", "home", "out", "completely", "entirely",
     "permanently", "just", "please", "now"}
)  # fmt: skip


def _clause_after(words: str, start: int) -> str:
    # A verb's object lies within a few words; the cap keeps a pasted wall of text from costing seconds.
    window = words[start : start + 200]
    end = re.search(_CLAUSE_END, window)
    return window[: end.start()] if end else window


def _mass_deletion(request: _Request, paths: PathPolicy) -> str:
    """Deleting or wiping everything, a whole folder, home, disk or drive, or home or a root itself."""
    for verb in _DELETE_VERB.finditer(request.words):
        rest = _clause_after(request.words, verb.end())
        match = _WHOLESALE.match(rest)
        if match and not _NARROWED.search(rest[match.end() :]):
            target = "everything" if match.group("target") == "*" else match.group("object").strip()
            if match.group("target").startswith(("every", "all")):
                # "everything" alone hides where; the rest of the clause says it ("in my home folder").
                target = f"{target}{rest[match.end() :]}".strip()
            target = _as_typed(request, verb.end() + rest.find(target), len(target))
            return f"Wiping {target} is refused: Switchboard deletes only things you name, never everything at once."
    protected = {str(paths.expand(str(folder))) for folder in (*paths.roots, paths.home)}
    for raw in request.paths:
        wildcard = raw.endswith("/*")
        folder = raw[:-2] if wildcard else raw
        if not (wildcard or str(paths.expand(folder)) in protected):
            continue
        if _is_deletion_target(request.words, raw.lower()):
            if wildcard:
                return f"Deleting everything in {folder} is refused: Switchboard deletes only things you name."
            return (
                f"Deleting {raw} is refused: it is your home folder or one of the allowed folders itself; "
                "name the files to remove instead."
            )
    return ""


def _as_typed(request: _Request, start: int, length: int) -> str:
    """The span of `words` at `start` in the person's own spelling (when lower-casing kept the length)."""
    if len(request.shown) != len(request.words):
        return request.words[start : start + length]
    return request.shown[start : start + length]


def _is_deletion_target(words: str, raw: str) -> bool:
    """Whether `raw` (lower-cased) follows a delete verb with only filler words in between."""
    for verb in _DELETE_VERB.finditer(words):
        rest = _clause_after(words, verb.end())
        at = rest.find(raw)
        if at >= 0 and all(word in _PATH_OBJECT_FILLER or word.startswith("-") for word in rest[:at].split()):
            return True
    return False


_DESTRUCTIVE_SQL = (
    re.compile(r"\bdrop\s+(?:table|database|schema)\b(?:\s+if\s+exists)?\s*[\w.\"`\[\]]*", re.IGNORECASE),
    re.compile(r"\bdrop\s+(?:the\s+)?[\w-]+\s+(?:table|database)\b", re.IGNORECASE),
    re.compile(r"\btruncate\s+table\s+[\w.\"`\[\]]+", re.IGNORECASE),
    # Upper case marks SQL; "truncate the text to 200 characters" is an ordinary request.
    re.compile(r"\bTRUNCATE\s+[\w.\"`\[\]]+"),
)
# DELETE FROM as SQL: the table name is followed by the end of the statement or of the sentence's SQL
# part, so "delete from my calendar the meeting" (plain English) is not mistaken for it.
_DELETE_FROM = re.compile(r"\bdelete\s+from\s+[\w.\"`\[\]]+(?P<rest>[^;'\"`]*)", re.IGNORECASE)


def _destructive_sql(request: _Request, paths: PathPolicy) -> str:
    """DROP TABLE/DATABASE, TRUNCATE, or DELETE FROM without WHERE, quoted or not."""
    for pattern in _DESTRUCTIVE_SQL:
        match = pattern.search(request.text)
        if match:
            return f"Running '{match.group(0).strip()}' is refused: it destroys data that cannot be brought back."
    for match in _DELETE_FROM.finditer(request.text):
        rest = match.group("rest")
        if re.search(r"\bwhere\b", rest, re.IGNORECASE):
            continue
        # Plain English continues with more words ("delete from my inbox the spam"); SQL stops, or names
        # the database it runs on.
        if rest.strip() and not re.match(r"\s*(?:on|in|of)\s+\S*[/~.]|\s*[,)]|\s*$", rest):
            continue
        statement = match.group(0)[: len(match.group(0)) - len(rest)]
        return (
            f"Running '{statement.strip()}' without a WHERE clause is refused: it would delete every row of the table."
        )
    return ""


_WATCH_VERB = (
    r"(?:index|indexing|re-?index|scan|scanning|watch|watching|monitor|monitoring|crawl|crawling|catalog(?:ue)?)"
)
_WHOLE_DISK = re.compile(
    rf"\b{_WATCH_VERB}\b[^.;!?\n]{{0,40}}?(?:"
    r"\b(?:the|my|this)\s+(?:whole|entire|complete|full)\s+(?:disk|drive|hard\s+drive|hard\s+disk|ssd|computer"
    rf"|laptop|machine|system|file\s*system)\b{_NOT_THE_PLACE_ITSELF}"
    r"|\b(?:all|every|each)\s+(?:the\s+)?(?:files?|folders?|things?)\s+on\s+(?:my|the|this)\s+(?:disk|drive|computer"
    r"|laptop|machine|system|hard\s+drive)\b"
    r"|\beverything\s+on\s+(?:my|the|this)\s+(?:disk|drive|computer|laptop|machine|system|hard\s+drive)\b"
    r"|\b(?:the\s+)?(?:whole|entire)\s+(?:file\s*system|disk|drive)\b)"
)


def _whole_disk(request: _Request, paths: PathPolicy) -> str:
    """Indexing, scanning or watching the whole disk (a "/" path is already refused as a system path)."""
    if _WHOLE_DISK.search(request.words):
        folders = ", ".join(str(root) for root in paths.roots)
        return (
            f"Indexing, scanning or watching the whole disk is refused: name a folder inside the allowed ones "
            f"({folders})."
        )
    return ""


_SEND_VERB = (
    r"(?:send|sending|e-?mail|emailing|mail|forward|forwarding|upload|uploading|paste|pasting|post|posting"
    r"|share|sharing|publish|leak|transmit|tweet)"
)
_SECRET_NOUN = (
    r"(?:passwords?|passwds?|passphrases?|credentials?|secrets?|private\s+keys?|ssh\s+keys?|api\s+keys?"
    r"|access\s+keys?|secret\s+keys?|tokens?|auth\s+tokens?|recovery\s+codes?|seed\s+phrases?|2fa\s+codes?"
    r"|pins?\s+codes?|logins?\s+details)"
    # "the password reset e-mail" is about a password, not one.
    r"(?!\s+(?:reset|change|policy|policies|manager|expiry|hint|requirements|rules|strength|santa))"
)
# Words between a send verb and a secret noun that make the secret the subject of what is sent, not its
# content: "email me a summary of the tokens found", "send me the files that contain passwords".
_NOT_THE_SECRET_ITSELF = (
    r"(?:for|about|whether|if|contains?|containing|mention|mentioning|that|which|where|summary|report|overview"
    r"|count|number|statistics|stats)"
)
# "email my passwords to …" (the secret is the thing sent) and "collect every password and email them"
# (a pronoun carries it). "scan for leaked API keys and email me the report" sends a report, not keys.
_SEND_SECRET = re.compile(rf"\b{_SEND_VERB}\b(?:(?!\b{_NOT_THE_SECRET_ITSELF}\b)[^.;!?\n]){{0,40}}?\b{_SECRET_NOUN}\b")
_SECRET_THEN_SEND = re.compile(
    rf"\b{_SECRET_NOUN}\b[^.;!?\n]{{0,60}}?\b{_SEND_VERB}\s+(?:(?:me|us|him|her)\s+)?(?:them|it|those|these|all)\b"
)


def _sends_credentials(request: _Request, paths: PathPolicy) -> str:
    """Sending passwords, credentials, private keys or tokens anywhere."""
    match = _SEND_SECRET.search(request.words) or _SECRET_THEN_SEND.search(request.words)
    if match:
        found = re.search(_SECRET_NOUN, match.group(0))
        what = found.group(0) if found else "credentials"
        return f"Sending {what} anywhere is refused: Switchboard never e-mails, uploads, pastes or forwards secrets."
    return ""


_TAMPER_VERB = (
    r"(?:erase|erasing|delete|deleting|clear|clearing|wipe|wiping|purge|purging|remove|removing|rewrite|rewriting"
    r"|edit|editing|modify|modifying|alter|altering|change|changing|tamper|tampering|truncate|scrub|doctor"
    r"|falsify|forge|fake|backdate|overwrite|overwriting|reset|disable|disabling|turn\s+off|switch\s+off|stop"
    r"|hide|hiding|conceal)"
)
_AUDIT_RECORD = (
    r"(?:audit(?!\s+(?:report|pdf|summary|export|totals))(?:\s+(?:log|logs|trail|trails|record|records|entries"
    r"|entry|history|database|db|data))?|auditing|tool[- ]call\s+(?:log|history)"
    r"|(?:log|history|record)\s+of\s+(?:what|the\s+tool|tool)|activity\s+log)"
)
# The audit record must be the object of the verb: "remove the duplicates, then export the audit report"
# joins two requests, so a connective between verb and record breaks the link.
_SAME_ACTION = r"(?:(?!\b(?:and|then|so|but|before|after|while|when|also|plus)\b)[^,.;!?\n]){0,50}?"
_AUDIT_TAMPERING = (
    re.compile(rf"\b{_TAMPER_VERB}\b{_SAME_ACTION}\b{_AUDIT_RECORD}\b"),
    re.compile(rf"\b{_AUDIT_RECORD}\b[^.;!?\n]{{0,30}}?\b{_TAMPER_VERB}\s+(?:it|them|those|that)\b"),
    re.compile(
        r"\b(?:hide|hiding|conceal|cover\s+up|covering\s+up)\b[^.;!?\n]{0,30}?\b(?:what\s+(?:happened|i\s+did"
        r"|you\s+did|was\s+done|ran)|the\s+(?:deletions?|changes?|calls?)|my\s+tracks)"
    ),
    re.compile(r"\bcover\s+(?:my|our|your)\s+tracks\b"),
    re.compile(r"\b(?:make\s+it\s+look\s+like|pretend)\b[^.;!?\n]{0,60}?\bnever\s+happened\b"),
    re.compile(r"\bso\s+(?:that\s+)?(?:no\s*one|nobody)\s+(?:knows|can\s+tell|finds\s+out|will\s+know|sees)\b"),
    re.compile(
        r"\b(?:without|don'?t|do\s+not|stop)\s+(?:it\s+)?(?:logging|auditing|being\s+(?:logged|recorded|audited)"
        r"|leaving\s+(?:a\s+)?(?:trace|record)|showing\s+up\s+in\s+the\s+(?:audit|log))"
    ),
)


def _audit_tampering(request: _Request, paths: PathPolicy) -> str:
    """Erasing, rewriting or hiding entries of the audit trail, or hiding what happened."""
    for pattern in _AUDIT_TAMPERING:
        if pattern.search(request.words):
            return (
                "Changing, erasing or hiding the audit trail is refused: it is the record of what Switchboard "
                "really did, and it is only ever added to."
            )
    return ""


_REFUSAL_RULES: tuple[Callable[[_Request, PathPolicy], str], ...] = (
    _forbidden_path,
    _destructive_sql,
    _mass_deletion,
    _whole_disk,
    _sends_credentials,
    _audit_tampering,
)


# ---- clarification ----

# Words that carry no content of their own: courtesy, helpers, pronouns and do-anything verbs. A request
# made only of these ("do the thing", "fix it", "go", "help") says nothing that could be planned.
_EMPTY_WORDS = frozenset(
    {"please", "pls", "plz", "kindly", "just", "now", "then", "again", "quickly", "can", "could", "would",
     "will", "you", "u", "i", "me", "my", "we", "us", "for", "the", "a", "an", "some", "thing", "things",
     "stuff", "something", "anything", "do", "does", "did", "help", "hi", "hello", "hey", "thanks", "thank",
     "want", "need", "to", "with", "this", "that", "it", "them", "those", "these", "same", "one", "ok", "okay",
     "yes", "yeah", "sure", "go", "ahead", "continue", "proceed", "fix", "handle", "sort", "out", "deal",
     "make", "work", "get", "run", "start", "finish", "try", "redo", "up", "on", "what", "whatever", "let",
     "lets", "let's", "right", "away", "like", "said", "asked", "is", "be", "how", "about"}
)  # fmt: skip
# Words that, standing alone, continue the conversation ("go", "fix it"): fine with context, empty without.
_CONTINUATIONS = frozenset(
    {"it", "this", "that", "them", "those", "these", "same", "go", "ahead", "continue", "proceed", "yes",
     "yeah", "ok", "okay", "sure", "again", "redo", "fix", "finish"}
)  # fmt: skip

# Nouns that, after "the", "that", "this" or "its", point back at something named before, and the question
# to ask when nothing was. Things that exist only once (the clipboard, the calendar, the index) are not
# here: "open the calendar" is complete on its own.
_FILE_QUESTION = "Which {noun}? Give its path."
_POINTER_QUESTIONS: dict[str, str] = {
    **dict.fromkeys(
        ("document", "doc", "file", "pdf", "image", "picture", "photo", "screenshot", "scan", "recording",
         "audio", "video", "spreadsheet", "sheet", "workbook", "archive", "backup", "contract", "letter",
         "report", "form", "presentation", "invoice", "receipt", "attachment", "folder", "directory",
         "database", "csv", "excel", "docx", "zip"),
        _FILE_QUESTION,
    ),
    **dict.fromkeys(("task", "to-do", "todo", "reminder"), "Which {noun}? Give its id or title."),
    **dict.fromkeys(
        ("data", "table", "rows", "records", "dataset"),
        "Which {noun}? Give the path of the file or database it is in.",
    ),
    "transcript": "Which transcript? Give the recording's path or paste the text.",
    **dict.fromkeys(
        ("email", "e-mail", "mail", "message", "thread", "conversation"),
        "Which {noun}? Give the thread id, or the sender and the subject.",
    ),
    "draft": "Which draft? Give its id.",
    **dict.fromkeys(("event", "meeting", "appointment"), "Which {noun}? Give its date and title."),
    **dict.fromkeys(
        ("note", "notes", "text", "summary", "list", "answer", "minutes", "content", "contents"),
        "Which {noun}? Paste the text or give the path of the file it is in.",
    ),
    **dict.fromkeys(("session", "watcher", "run"), "Which {noun}? Give its id."),
    **dict.fromkeys(
        ("results", "result", "findings", "matches", "changes", "items", "entries", "duplicates", "fields",
         "values", "files", "documents", "ones", "output"),
        "Which {noun}? Say what they are, or give the path of the file or folder they are in.",
    ),
}  # fmt: skip
_MODIFIERS = r"(?:(?:same|above|previous|last|earlier|other|new|old|attached|first|second|latest|whole|entire)\s+)?"
_NOUNS = "|".join(sorted((re.escape(noun) for noun in _POINTER_QUESTIONS), key=len, reverse=True))
_POINTED_NOUN = re.compile(rf"\b(?:the|that|this|its|said)\s+{_MODIFIERS}(?P<noun>{_NOUNS})\b(?P<after>.{{0,20}})")
# "those invoices", "these customers": a plural demonstrative points back whatever the noun.
_POINTED_SET = re.compile(r"\b(?:those|these)\s+(?P<noun>[a-z][\w-]*s)\b(?P<after>.{0,20})")
# A noun phrase followed by one of these is described in place ("the file called x", "the email from
# Ana", "the task that is overdue"), not pointed back to.
_DESCRIBED = re.compile(
    r"^\s*(?:about|called|named|titled|with|containing|mentioning|that|which|where|whose|from|in|on|under|at"
    r"|for\s+(?!me\b|us\b)|due|dated|sent|received|i\s|you\s|we\s)"
)
# Pronouns that stand for something said before. "this"/"that" count only when nothing follows that
# could be their noun ("copy that", "OCR this", "put that on my clipboard"); "this computer" is deictic
# and "saying that the deck…" is a conjunction.
_PRONOUN = re.compile(
    r"\b(?P<word>it|them|they|those|these|its)\b"
    r"|\b(?P<demo>this|that)\b(?=\s*(?:$|[.,;:!?]|\s(?:to|into|in|on|onto|as|for|with|from|and|or|then|again"
    r"|too|please|now|up|out|over|back|here|there|off|away|also|instead|right|first|later|so|one)\b))"
)
# Something the request introduces itself, that a later "it" can refer to ("take a screenshot and OCR
# it", "capture my screen so I can read it").
_INTRODUCED = re.compile(r"\b(?:a|an|my|our|your|some|new|another)\s+[a-z][\w-]*")
_SOURCE_PREPOSITION = re.compile(r"\b(?:of|from|about|on|in)\s*$")
_VERB_QUESTIONS: dict[str, str] = {
    "ocr": "Which image or scan? Give its path.",
    "transcribe": "Which recording? Give its path.",
    "copy": "What should I copy? Quote the text or give the file's path.",
    "paste": "What should I paste? Quote the text.",
    "send": "What should I send? Give the draft's id or the message and its recipient.",
    "forward": "What should I forward? Give the e-mail's thread id and the recipient.",
    "open": "What should I open? Name the app or give the file's path.",
    "encrypt": "Which file? Give its path.",
    "decrypt": "Which file? Give its path.",
    "delete": "What should I delete? Give the file's path or the item's id.",
    "fix": "What should I fix? Name the file, task or item and say what is wrong with it.",
}
_EMPTY_QUESTION = "What would you like done? Say the action and the file, task or item it is for."
_PRONOUN_QUESTION = "What does '{word}' refer to? Give the file's path, the text itself, or the item's id."

# Concrete things a request can carry besides paths, quotes, addresses and dates.
_IDENTIFIER = re.compile(r"\b[a-z]+(?:-[a-z]+)*-\d[\w-]*\b|#\d+\b|\b[a-z]+(?:-[a-z0-9]+)*-\d+\b", re.IGNORECASE)
_NUMBER = re.compile(r"\b\d+(?:[.,:]\d+)*\b")
_NAMED_FILE = re.compile(
    r"\b[\w-]+\.(?:pdf|docx?|xlsx?|csv|tsv|txt|md|png|jpe?g|gif|svg|heic|webp|mp3|mp4|m4a|wav|ogg|flac|mov|mkv"
    r"|json|ya?ml|toml|ini|xml|html?|py|log|zip|tar|gz|pptx?|odt|ods|rtf|epub|db|sqlite|enc|eml|ics|vcf)\b",
    re.IGNORECASE,
)
_DAY_OR_MONTH = re.compile(
    r"\b(?:monday|tuesday|wednesday|thursday|friday|saturday|sunday|january|february|march|april|june|july"
    r"|august|september|october|november|december|tonight|tomorrow|yesterday|today)\b",
    re.IGNORECASE,
)
# Capitalised words that are formats or abbreviations, not names of apps, people or files.
_NOT_NAMES = frozenset(
    {"I", "PDF", "PDFs", "CSV", "DOCX", "DOC", "XLSX", "OCR", "SQL", "API", "CPU", "OS", "PNG", "JPG", "JPEG",
     "TXT", "MD", "JSON", "HTML", "URL", "ID", "Word", "Excel", "Markdown"}
)  # fmt: skip
_CAPITALISED = re.compile(r"(?<![.!?]\s)(?<!^)\b[A-Z][\w-]+")
_WORD = re.compile(r"[a-z0-9][a-z0-9'_-]*")


def _missing_content(request: _Request, has_context: bool) -> str:
    """The question to ask when the request names nothing to act on; "" when it is complete enough."""
    tokens = _WORD.findall(request.words)
    concrete = _is_concrete(request)
    placeholder = next((raw for raw in request.paths if _is_placeholder(raw)), None)
    if placeholder is not None:
        return f"'{placeholder}' is an example, not a real path: which file or folder do you mean? Give its path."
    if not concrete and all(token in _EMPTY_WORDS for token in tokens):
        if has_context and any(token in _CONTINUATIONS for token in tokens):
            return ""
        return _question_for_verb(tokens) if any(token in _VERB_QUESTIONS for token in tokens) else _EMPTY_QUESTION
    if has_context or concrete:
        return ""
    return _pointer_question(request.words, tokens)


def _pointer_question(words: str, tokens: list[str]) -> str:
    """The question for the first back-reference the request has no antecedent for, or ""."""
    candidates: list[tuple[int, int, str]] = []
    for match in _POINTED_NOUN.finditer(words):
        if not _DESCRIBED.match(match.group("after")):
            noun = match.group("noun")
            candidates.append((match.start(), 0, _POINTER_QUESTIONS[noun].format(noun=noun)))
    for match in _POINTED_SET.finditer(words):
        if not _DESCRIBED.match(match.group("after")):
            noun = match.group("noun")
            template = _POINTER_QUESTIONS.get(noun, "Which {noun}? Say which ones, or give their path or ids.")
            candidates.append((match.start(), 0, template.format(noun=noun)))
    for match in _PRONOUN.finditer(words):
        before = words[: match.start()]
        # A pronoun can mean something the request introduced itself ("take a screenshot and OCR it"),
        # except right after "of"/"from"/"about", where it names the source of the new thing ("write a
        # summary of it") and that source is still unknown.
        if _INTRODUCED.search(before) and not _SOURCE_PREPOSITION.search(before):
            continue
        word = match.group("word") or match.group("demo")
        # At the same place a noun question ("Which invoices?") says more than a pronoun one.
        candidates.append((match.start(), 1, _question_for_verb(tokens) or _PRONOUN_QUESTION.format(word=word)))
    return min(candidates)[2] if candidates else ""


def _question_for_verb(tokens: list[str]) -> str:
    for token in tokens:
        if token in _VERB_QUESTIONS:
            return _VERB_QUESTIONS[token]
    return ""


def _is_concrete(request: _Request) -> bool:
    """Whether the request itself names something: a path, quoted text, an address, an id, a number,
    a date, a file name, or a named app or person."""
    text = request.text
    if any(not _is_placeholder(raw) for raw in request.paths) or request.quoted:
        return True
    if extract_emails(text) or extract_dates(text) or _DAY_OR_MONTH.search(text):
        return True
    if _IDENTIFIER.search(text) or _NUMBER.search(text) or _NAMED_FILE.search(text):
        return True
    return any(word not in _NOT_NAMES and not word.isupper() for word in _CAPITALISED.findall(text.strip()))


def _is_placeholder(raw: str) -> bool:
    """A path copied from an example rather than a real one ("/path/to/file", "~/<folder>")."""
    lowered = raw.lower()
    return "/path/to" in lowered or "<" in lowered or ">" in lowered or "..." in lowered or "\u2026" in lowered
