"""Deterministic extraction of argument values from a person's words.

A small model copies example paths and invents values; the words a person typed do not lie. What can be
read straight from the request (paths and file names, addresses, dates, quoted text, identifiers,
stated numbers, file types) is taken from it, and the model only fills the rest.

Every extractor here is deliberately narrow: a value it returns is one the words state plainly. When the
words are ambiguous an extractor returns nothing, and the router asks the model or the person instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# An absolute or home-relative path, or one in quotes. Trailing sentence punctuation is not part of it.
_QUOTED = re.compile(r"""["'`]((?:~|/)[^"'`]*)["'`]""")
_BARE = re.compile(r"""(?<![\w/~])((?:~(?=/|\s|$)|/)[^\s"'`,;]*)""")
_TRAILING = ".,;:!?)]}"

PLACEHOLDER_MARKERS = ("/path/to", "example", "<", ">", "...", "your_", "placeholder")

# Extensions a bare file name must end with to count as one: without the list, "e.g.", "v1.2" and
# domain names would all look like files.
FILE_EXTENSIONS = frozenset(
    """pdf doc docx odt rtf txt md markdown csv tsv xls xlsx ods ppt pptx odp json yaml yml toml ini cfg conf
    xml html htm log py js ts sh sql db sqlite png jpg jpeg gif bmp svg webp tif tiff heic mp3 m4a wav flac
    ogg mp4 mov mkv avi webm zip tar gz tgz 7z rar enc ics eml vcf epub""".split()
)
_EXT = r"(?:" + "|".join(sorted(FILE_EXTENSIONS, key=len, reverse=True)) + r")"
# A name like `notes.md`, `chapter-01.pdf` or `drafts/q3.docx`: no leading `/` or `~` (those are paths).
_FILE_NAME = re.compile(rf"(?<![\w/~.@-])((?:[\w-]+/)*[\w][\w.-]*\.{_EXT})(?![\w/@-])", re.IGNORECASE)
_QUOTED_FILE_NAME = re.compile(
    rf"""["“]([^"”/~\n]{{1,120}}\.{_EXT})["”]|(?<!\w)['‘]([^'’/~\n]{{1,120}}\.{_EXT})['’](?!\w)""", re.IGNORECASE
)
# Words a space-separated continuation of a path may not be: they start the rest of the sentence.
_SENTENCE_WORDS = frozenset(
    "to into in on onto as at from with and or for by of over the a an is it its then please".split()
)
# "to", "into", ... right before a path mark it as where something goes; a few filler words may sit between.
_DESTINATION_CUE = re.compile(
    r"\b(?:to|into|over|as|onto)\s+(?:(?:the|a|an|my|new|one|single|file|folder|directory|called|named)\s+){0,3}$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class PathMention:
    """A path or file name as written in a request, at `start:end` of it (quotes included).

    `bare` is true for a file name without a folder (`notes.md`), which still needs one; `to_destination`
    is true when the words put it after "to", "into", "over", "as" or "onto" ("copy that to ~/Desktop").
    """

    value: str
    start: int
    end: int
    bare: bool
    to_destination: bool


def _extend_over_spaces(text: str, end: int, path: str) -> tuple[str, int]:
    """`path` grown over the words after it when they finish a file name that has spaces in it.

    Unquoted names such as `~/Desktop/Screenshot 2026-03-02.png` or `~/Desktop/untitled (3).txt` are
    cut at the first space by the path pattern; up to two following words are joined on when the last
    of them ends with a file extension and none of them reads as the next part of the sentence.
    """
    last = path.rstrip("/").rsplit("/", 1)[-1]
    if path.endswith("/") or "." in last.lstrip("."):
        return path, end
    words = list(re.finditer(r"\S+", text[end:]))[:2]
    for count in (1, 2):
        if len(words) < count:
            break
        chosen = words[:count]
        if any(w.group(0).lower() in _SENTENCE_WORDS or "/" in w.group(0) for w in chosen):
            break
        tail = chosen[-1].group(0).rstrip(_TRAILING)
        if re.search(rf"\.{_EXT}$", tail, re.IGNORECASE):
            stop = end + chosen[-1].start() + len(tail)
            return text[end - len(path) : stop], stop
    return path, end


def _path_spans(text: str) -> list[tuple[int, int, str]]:
    """(start, end, path) of every path in `text`, in order."""
    found: list[tuple[int, int, str]] = []
    taken: list[range] = []
    for match in _QUOTED.finditer(text):
        found.append((match.start(), match.end(), match.group(1)))
        taken.append(range(match.start(), match.end()))
    for match in _BARE.finditer(text):
        if any(match.start() in span for span in taken):
            continue
        path = match.group(1).rstrip(_TRAILING) or match.group(1)
        if path in ("/", "~") or len(path) > 1:
            path, end = _extend_over_spaces(text, match.start(1) + len(path), path)
            found.append((match.start(), end, path))
    return sorted(found)


def extract_paths(text: str) -> list[str]:
    """Paths in the order they appear: quoted ones whole, bare ones up to whitespace.

    An unquoted path whose last part has no extension may continue over a space or two when that
    completes a file name (`~/Desktop/untitled (3).txt`).
    """
    return [path for _, _, path in _path_spans(text)]


def extract_file_names(text: str) -> list[str]:
    """File names written without a folder (`notes.md`, `"Q3 plan.docx"`), in order.

    Names inside a path or an e-mail address are not counted; a quoted name keeps its spaces.
    """
    return [mention.value for mention in extract_path_mentions(text) if mention.bare]


def extract_path_mentions(text: str) -> list[PathMention]:
    """Every path and bare file name in `text`, in order, each marked if it is written as a destination."""
    spans = [(start, end, path, False) for start, end, path in _path_spans(text)]
    blocked = [range(start, end) for start, end, _, _ in spans]
    blocked += [range(m.start(), m.end()) for m in _EMAIL.finditer(text)]
    blocked += [range(m.start(), m.end()) for m in _URL.finditer(text)]
    for match in _QUOTED_FILE_NAME.finditer(text):
        name = match.group(1) or match.group(2)
        # A quoted sentence that happens to end in "report.pdf" is not a file name.
        if name.count(" ") <= 4 and not any(match.start() in span for span in blocked):
            spans.append((match.start(), match.end(), name, True))
            blocked.append(range(match.start(), match.end()))
    # Other quoted text is content (a title, a message): a name inside it is not one to act on.
    blocked += [range(m.start(), m.end()) for m in _QUOTED_TEXT.finditer(text)]
    for match in _FILE_NAME.finditer(text):
        if not any(match.start() in span for span in blocked):
            spans.append((match.start(), match.end(), match.group(1), True))
    mentions = []
    for start, end, value, bare in sorted(spans):
        marked = _DESTINATION_CUE.search(text[max(0, start - 60) : start]) is not None
        mentions.append(PathMention(value, start, end, bare, marked))
    return mentions


def looks_like_placeholder(value: object) -> bool:
    """True for values a model copies from examples instead of taking from the request."""
    if not isinstance(value, str):
        return False
    lowered = value.strip().lower()
    return not lowered or any(marker in lowered for marker in PLACEHOLDER_MARKERS)


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_URL = re.compile(r"\bhttps?://\S+", re.IGNORECASE)
# Double or typographic quotes pair freely; a single quote only opens before and closes after a
# non-letter, so the apostrophes of "don't" and "I'll" neither open nor close a quotation.
_QUOTED_TEXT = re.compile(r"""["“]([^"”]{2,2000}?)["”]|(?<!\w)['‘]([^\n]{2,2000}?)['’](?!\w)""")
_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?\b")
_RELATIVE_DAY = re.compile(r"\b(today|tomorrow|yesterday)\b", re.IGNORECASE)
_TYPES = r"(pdf|docx?|xlsx?|csv|txt|md|png|jpe?g|mp3|wav|json|py|log|zip)"
_FILE_TYPE = (
    re.compile(r"\*\.(\w{1,5})\b"),
    re.compile(rf"\b(?:all|any|every)\s+(?:the\s+|my\s+|new\s+)?{_TYPES}s?\b", re.IGNORECASE),
    re.compile(rf"\b{_TYPES}(?:s\b|\s+(?:files?|documents?)\b)", re.IGNORECASE),
    re.compile(rf"(?<![\w/~*.])\.{_TYPES}\b", re.IGNORECASE),
    re.compile(rf"\b(?:the|a|an)\s+{_TYPES}\s+(?:with|named|called|whose)\b", re.IGNORECASE),
)


def extract_emails(text: str) -> list[str]:
    """E-mail addresses, in order."""
    return _EMAIL.findall(text)


def extract_cc_emails(text: str) -> list[str]:
    """The addresses the words put in copy ("cc lee@x", "copy in my manager lee@x"), in order."""
    found = []
    for match in _EMAIL.finditer(text):
        before = text[max(0, match.start() - 40) : match.start()].lower()
        if re.search(r"\b(?:b?cc|copy(?:ing)?(?:\s+in)?)\b(?:\s+\w+){0,3}\s*:?\s*$", before):
            found.append(match.group(0))
    return found


def extract_quoted(text: str) -> list[str]:
    """Text in quotes that is not a path (titles, subjects, search phrases), in order."""
    found = [m.group(1) if m.group(1) is not None else m.group(2) for m in _QUOTED_TEXT.finditer(text)]
    return [q.strip() for q in found if q.strip() and not q.startswith(("/", "~"))]


def extract_dates(text: str) -> list[str]:
    """ISO dates (with an optional time) and today/tomorrow/yesterday, in order of appearance."""
    found = [(m.start(), m.group(0)) for m in _ISO_DATE.finditer(text)]
    found += [(m.start(), m.group(1).lower()) for m in _RELATIVE_DAY.finditer(text)]
    return [value for _, value in sorted(found)]


_TIME_RANGE = re.compile(
    r"\b(?:from\s+)?([01]?\d|2[0-3])[:.]([0-5]\d)\s*(?:to|until|till|-|–)\s*([01]?\d|2[0-3])[:.]([0-5]\d)\b"
)


def extract_time_span(text: str) -> tuple[str, str] | None:
    """Start and end as ISO datetimes when the words give one date and a time range.

    "on 2026-03-20, 12:30 to 13:30" → ("2026-03-20T12:30", "2026-03-20T13:30"). With no date, two dates or
    no range, nothing: the caller keeps to plain dates.
    """
    days = [m.group(0) for m in _ISO_DATE.finditer(text)]
    span = _TIME_RANGE.search(text)
    if len(days) != 1 or len(days[0]) != 10 or span is None:
        return None
    start_h, start_m, end_h, end_m = (int(g) for g in span.groups())
    return f"{days[0]}T{start_h:02d}:{start_m:02d}", f"{days[0]}T{end_h:02d}:{end_m:02d}"


def extract_file_pattern(text: str) -> str | None:
    """A glob for the file type a request names ("all PDFs", "*.csv", "pdf files" → "*.pdf")."""
    patterns = extract_file_patterns(text)
    return patterns[0] if patterns else None


def extract_file_patterns(text: str) -> list[str]:
    """Globs for every file type the request names, in order ("the .jpg and .png files" → both)."""
    found: dict[int, str] = {}
    blanked = _blank_paths(text)
    for index, pattern in enumerate(_FILE_TYPE):
        # A written glob counts even inside a path ("/srv/*.csv"); type words inside a path do not.
        for match in pattern.finditer(text if index == 0 else blanked):
            found.setdefault(match.start(1), f"*.{match.group(1).lower()}")
    return list(dict.fromkeys(found[start] for start in sorted(found)))


# "named X", "called X", "with X in its name", "whose name contains X": the part of a name searched for.
_NAME_PART = (
    re.compile(r"""\b(?:named|called)\s+(?:["“'‘]([^"”'’]+)["”'’]|([\w*?.-]+))""", re.IGNORECASE),
    re.compile(
        r"""\bwith\s+(?:["“'‘]([^"”'’]+)["”'’]|([\w*?.-]+))\s+in\s+(?:its|their|the)\s+(?:file\s*)?names?\b""",
        re.IGNORECASE,
    ),
    re.compile(r"""\bnames?\s+contain(?:s|ing)?\s+(?:["“'‘]([^"”'’]+)["”'’]|([\w*?.-]+))""", re.IGNORECASE),
)


def extract_name_pattern(text: str) -> str | None:
    """A glob for a name the request searches for, with the file type if it gives one.

    "folders named node_modules" → "*node_modules*"; "the PDF with tax in its name" → "*tax*.pdf".
    A name that is already a glob is kept as written.
    """
    blanked = _blank_paths(text)
    for pattern in _NAME_PART:
        match = pattern.search(blanked)
        if match is None:
            continue
        part = (match.group(1) or match.group(2)).strip().rstrip(_TRAILING)
        if not part:
            continue
        if any(ch in part for ch in "*?"):
            return part
        glob = f"*{part}*"
        file_type = extract_file_pattern(text)
        if file_type is not None and "." not in part:
            glob += file_type[1:]
        return glob
    return None


_NEGATION = re.compile(
    r"\b(?:not|no|never|without|don'?t|do\s+not|doesn'?t|isn'?t)\b(?:\W+\w+){0,2}\W*$", re.IGNORECASE
)

_RECURSIVE = re.compile(
    r"\b(?:recursive(?:ly)?|sub-?folders?|sub-?director(?:y|ies)|nested|all\s+the\s+way\s+down"
    r"|everything\s+(?:under|below|beneath|within))\b",
    re.IGNORECASE,
)


def mentions_recursion(text: str) -> bool:
    """True when the words ask to go into subfolders ("recursively", "subfolders included", "everything under")."""
    blanked = _blank_paths(text)
    for match in _RECURSIVE.finditer(blanked):
        if _NEGATION.search(blanked[max(0, match.start() - 40) : match.start()]) is None:
            return True
    return False


def mentions_word(text: str, word: str) -> bool:
    """True when `word` (or a plain inflection of it: signed, recursively, diarization) is used un-negated."""
    stem = word[:-1] if word.endswith("e") else word
    pattern = re.compile(rf"\b(?:{re.escape(word)}|{re.escape(stem)})(?:s|d|ed|ing|ly|ation)?\b", re.IGNORECASE)
    blanked = _blank_paths(text)
    for match in pattern.finditer(blanked):
        if _NEGATION.search(blanked[max(0, match.start() - 40) : match.start()]) is None:
            return True
    return False


@dataclass(frozen=True)
class Identifier:
    """An id written in a request: the value to pass, and the word or prefix it came with.

    `kind` is lower case: "d" for `d-311`, "sess" for `sess-441`, "task" for "task 999999", "" for `#42`.
    """

    value: str
    kind: str

    @property
    def number(self) -> int | None:
        """The id as a whole number, when it is one (`42`, `t-17` → 17), for parameters typed integer."""
        tail = self.value.rsplit("-", 1)[-1] if re.fullmatch(r"[A-Za-z]+-\d+", self.value) else self.value
        return int(tail) if tail.isdigit() else None


# `d-311`, `th-000000`, `sess-2026-03-10`, `t-1a2b3c`: a short prefix, a hyphen, and something starting
# with a digit (so "e-mail" and "follow-up" are not ids).
_PREFIXED_ID = re.compile(r"(?<![\w./@-])([A-Za-z]{1,8})-(\d[\w-]*)(?![\w/@])")
_HASH_ID = re.compile(r"(?<![\w&])#(\d+)\b")
_NAMED_ID = re.compile(
    r"\b(task|draft|thread|session|ticket|issue|event|message|job|watcher|id)\s*(?:#|no\.?\s*|number\s+|id\s*)?"
    # The id: a number, or a hyphenated word with a digit in it ("no-such-session-000"), never a date.
    r"[:=]?\s*((?!\d{4}-\d{2}-\d{2})(?=[\w-]*\d)[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*)\b(?![-:./]\d)",
    re.IGNORECASE,
)


def extract_identifiers(text: str) -> list[Identifier]:
    """Ids such as `d-311`, `th-000000`, `sess-441`, `#42`, "task 999999" or "draft 17", in order.

    Paths, file names, e-mail addresses and links are skipped, so `backup-2026-02-14.log` is not an id.
    """
    blanked = _blank_paths(text, with_file_names=True)
    found: dict[int, Identifier] = {}
    for match in _PREFIXED_ID.finditer(blanked):
        value = match.group(0).rstrip("-")
        found[match.start()] = Identifier(value, match.group(1).lower())
    for match in _HASH_ID.finditer(blanked):
        found[match.start()] = Identifier(match.group(1), "")
    for match in _NAMED_ID.finditer(blanked):
        if not any(match.start(2) <= start < match.end() for start in found):
            found[match.start(2)] = Identifier(match.group(2), match.group(1).lower())
    return [found[start] for start in sorted(found)]


def expand_name_range(first: str, last: str) -> list[str]:
    """The file names a range spans: "chapter-01.pdf" through "chapter-04.pdf" → all four, padding kept.

    Both names must differ only in one number; otherwise (or for an implausibly long range) nothing.
    """
    shape = re.compile(r"^(.*?)(\d+)(\D*)$")
    a, b = shape.match(first), shape.match(last)
    if a is None or b is None or a.group(1) != b.group(1) or a.group(3) != b.group(3):
        return []
    low, high = int(a.group(2)), int(b.group(2))
    if not low < high <= low + 100:
        return []
    width = len(a.group(2)) if a.group(2).startswith("0") else 0
    return [f"{a.group(1)}{n:0{width}d}{a.group(3)}" for n in range(low, high + 1)]


_OPEN_APP = re.compile(
    r"\b(?:open|launch|start|run|fire\s+up|bring\s+up)\s+(?:up\s+)?(?:the\s+|my\s+)?(?:app\s+|application\s+|program\s+)?"
    r"([A-Za-z][\w.+-]*)",
    re.IGNORECASE,
)
_WITH_APP = re.compile(r"\b(?:in|with|using)\s+([A-Z][\w.+-]*)")
_NOT_APPS = frozenset(
    "a an the my it this that these those them file files folder document documents me up with in on for to and".split()
)


def extract_app_name(text: str, *, allow_open_verb: bool = True) -> str | None:
    """The program the words name: "open the calculator" → "calculator", "… in Inkscape" → "Inkscape".

    With `allow_open_verb` off only the "in/with/using <Name>" form counts (when the thing opened is a file).
    """
    blanked = _blank_paths(text, with_file_names=True)
    if allow_open_verb:
        match = _OPEN_APP.search(blanked)
        if match is not None and match.group(1).lower() not in _NOT_APPS:
            return match.group(1).rstrip(".")
    match = _WITH_APP.search(blanked)
    if match is not None and match.group(1).lower() not in _NOT_APPS:
        return match.group(1).rstrip(".")
    return None


_TOOL_NAME = re.compile(r"\b([a-z][a-z0-9]*\.[a-z][a-z0-9]*_[a-z0-9_]+)\b")


def extract_tool_names(text: str) -> list[str]:
    """Names written like Switchboard's tools (`filesystem.delete_file`), in order."""
    return _TOOL_NAME.findall(_blank_paths(text))


_CREATE_FOLDER = re.compile(
    r"\bcreate\b(?:\W+\w+){0,3}?\W+(?:folders?|director(?:y|ies)|dirs?|parents?)\b"
    r"|\bif\s+(?:it|that|the\s+folder|the\s+directory)\s+(?:is\s*n[o']?t|does\s*n[o']?t|does\s+not)\s+(?:there|exist)",
    re.IGNORECASE,
)


def mentions_folder_creation(text: str) -> bool:
    """True when the words ask for missing folders to be made ("create that folder if it isn't there")."""
    return _CREATE_FOLDER.search(_blank_paths(text)) is not None


# Options a person names in other words than a tool's enum does.
CHOICE_SYNONYMS: dict[str, tuple[str, ...]] = {
    "dir": ("folder", "directory", "directories"),
    "directory": ("folder",),
    "ssn": ("social security",),
    "credit_card": ("card number",),
    "phone": ("telephone",),
}


def extract_choices(text: str, options: list[str]) -> list[str]:
    """The `options` (a tool's enum) the words name, in the options' order.

    An option counts as a whole word, in the singular or plural, with `_` read as a space, or by a synonym
    in `CHOICE_SYNONYMS`. Quoted text is not searched (it is content, not a choice), and a lower-case
    option written capitalised mid-sentence is taken for a name ("a Word file" does not choose "word").
    """
    blanked = _QUOTED_TEXT.sub(lambda m: " " * len(m.group(0)), _blank_paths(text))
    chosen = []
    for option in options:
        forms = [option, option.replace("_", " "), *CHOICE_SYNONYMS.get(option.lower(), ())]
        words = "|".join(re.escape(form) for form in dict.fromkeys(forms))
        for match in re.finditer(rf"\b(?:{words})(?:s|es)?\b", blanked, re.IGNORECASE):
            written = match.group(0)
            sentence_start = re.search(r"(?:^|[.!?]\s+)$", blanked[: match.start()]) is not None
            if option.islower() and written[0].isupper() and written[1:].islower() and not sentence_start:
                continue
            chosen.append(option)
            break
    return chosen


def _number_text(text: str) -> str:
    """`text` with everything that holds digits but is not a stated amount blanked out."""
    blanked = _blank_paths(text, with_file_names=True)
    for pattern in (_ISO_DATE, _PREFIXED_ID, _HASH_ID, re.compile(r"\b\d{1,2}:\d{2}\b")):
        blanked = pattern.sub(lambda m: " " * len(m.group(0)), blanked)
    return blanked


_COUNT_BEFORE = re.compile(
    r"\b(?:top|first|last|latest|at\s+most|up\s+to|no\s+more\s+than|max(?:imum)?(?:\s+of)?|limit(?:ed)?(?:\s+to|\s+of)?"
    r"|only|show(?:\s+me)?|give\s+me|return|list)\s+(\d{1,4})\b(?!\s*(?:-|minutes?|hours?|days?|%|st|nd|rd|th)\b)",
    re.IGNORECASE,
)
_COUNT_AFTER = re.compile(
    r"\b(\d{1,4})\s+(?:results?|matches|items?|entries|passages?|hits|rows|records|files|messages|mails|e-?mails"
    r"|drafts|tasks|events|documents|docs|chunks|lines|processes|things)\b",
    re.IGNORECASE,
)


def extract_count(text: str) -> int | None:
    """How many results the words ask for ("top 5", "at most 20", "show 3", "10 results")."""
    blanked = _number_text(text)
    for pattern in (_COUNT_BEFORE, _COUNT_AFTER):
        match = pattern.search(blanked)
        if match is not None:
            return int(match.group(1))
    return None


_UNIT_WORDS = {
    "minutes": r"min(?:ute)?s?",
    "hours": r"h(?:ou)?rs?|hours?",
    "days": r"days?",
    "seconds": r"sec(?:ond)?s?",
}
_UNIT_SIZE = {"seconds": 1 / 60, "minutes": 1, "hours": 60, "days": 24 * 60}


def extract_duration(text: str, unit: str) -> int | None:
    """A length the words state, in `unit` ("minutes", "hours", "days" or "seconds").

    "90-minute gap" → 90, "a 2-hour workshop" → 120 minutes, "an hour" → 60 minutes, "half an hour" → 30.
    Only whole results are returned; "1.5 days" in hours would be 36, in days nothing.
    """
    blanked = _number_text(text)
    for name, words in _UNIT_WORDS.items():
        amount: float | None = None
        match = re.search(rf"\b(\d{{1,4}}(?:\.\d+)?)\s*-?\s*(?:{words})\b", blanked, re.IGNORECASE)
        if match is not None:
            amount = float(match.group(1))
        elif name in ("hours", "days", "minutes"):
            single = "hour" if name == "hours" else name.rstrip("s")
            if re.search(rf"\bhalf\s+an?\s+{single}\b", blanked, re.IGNORECASE):
                amount = 0.5
            elif re.search(rf"\b(?:an?|one)\s+{single}\b", blanked, re.IGNORECASE):
                amount = 1.0
        if amount is None:
            continue
        value = amount * _UNIT_SIZE[name] / _UNIT_SIZE[unit]
        return int(value) if value >= 1 and value == int(value) else None
    return None


def extract_page_numbers(text: str) -> list[int]:
    """Pages the words name: "page 4" → [4], "pages 2 to 3" → [2, 3], "pages 1, 3 and 5" → [1, 3, 5]."""
    blanked = _number_text(text)
    span = re.search(r"\bpages?\s+(\d{1,4})\s*(?:to|through|-|–)\s*(\d{1,4})\b", blanked, re.IGNORECASE)
    if span is not None:
        first, last = int(span.group(1)), int(span.group(2))
        return list(range(first, last + 1)) if 0 < first <= last and last - first < 200 else []
    listed = re.search(r"\bpages?\s+(\d{1,4}(?:\s*(?:,|and|&)\s*\d{1,4})*)\b", blanked, re.IGNORECASE)
    if listed is None:
        return []
    return [int(n) for n in re.findall(r"\d+", listed.group(1)) if int(n) > 0]


def extract_number_after(text: str, word: str) -> int | None:
    """A whole number written right after `word` ("priority 2", "volume 40", "level 3")."""
    match = re.search(rf"\b{re.escape(word)}\s*(?:of|to|at|=|:)?\s*(\d{{1,4}})\b", _number_text(text), re.IGNORECASE)
    return int(match.group(1)) if match is not None else None


# Words that name no particular sheet, table, calendar or folder ("the same folder", "my whole calendar").
_NOT_NAMES = frozenset(
    "a an the my your our this that these those same whole entire new own other current main first last next "
    "previous one every each any all its their".split()
)


def extract_named(text: str, noun: str) -> str | None:
    """The name the words give a `noun` ("sheet March", "a table called customers", "my personal calendar").

    Looks for "<noun> named/called X", "<noun> X" with X quoted or capitalised, and "my/the X <noun>".
    """
    blanked = _blank_paths(text)
    value = r"""(?:["“'‘]([^"”'’]+)["”'’]|([\w-]+))"""
    named = re.search(rf"\b{noun}s?\s+(?:named|called|titled)\s+{value}", blanked, re.IGNORECASE)
    if named is not None:
        return named.group(1) or named.group(2)
    # Right after the noun only a quoted or capitalised name counts: "sheet March", not "table of".
    following = re.search(rf"\b{noun}\s+{value}", blanked, re.IGNORECASE)
    if following is not None:
        candidate = following.group(1) or following.group(2)
        plain_word = following.group(1) is None and not candidate[0].isupper() and not candidate[0].isdigit()
        if not plain_word and candidate.lower() not in _NOT_NAMES:
            return candidate
    before = re.search(rf"\b(?:my|the|your|our)\s+{value}\s+{noun}\b", blanked, re.IGNORECASE)
    if before is not None:
        candidate = before.group(1) or before.group(2)
        if candidate.lower() not in _NOT_NAMES:
            return candidate
    return None


_FORMAT_WORDS = {
    "pdf": "pdf",
    "word": "docx",
    "docx": "docx",
    "markdown": "md",
    "md": "md",
    "html": "html",
    "web page": "html",
    "text": "txt",
    "plain text": "txt",
    "txt": "txt",
    "csv": "csv",
    "excel": "xlsx",
    "xlsx": "xlsx",
    "json": "json",
}


def extract_target_format(text: str) -> str | None:
    """The file format the words convert to ("to PDF", "as a Word document" → "docx"), as an extension."""
    words = "|".join(re.escape(w) for w in sorted(_FORMAT_WORDS, key=len, reverse=True))
    match = re.search(rf"\b(?:to|as|into)\s+(?:an?\s+|the\s+)?({words})\b(?!\.)", _blank_paths(text), re.IGNORECASE)
    return _FORMAT_WORDS[match.group(1).lower()] if match is not None else None


def _blank_paths(text: str, *, with_file_names: bool = False) -> str:
    """`text` with paths, e-mail addresses and links (and, if asked, file names) replaced by blanks.

    Blanks keep every other word at its offset, and a blank is no word character, so nothing inside a
    path can be read as an id, a number or a name.
    """
    spans = [(start, end) for start, end, _ in _path_spans(text)]
    spans += [(m.start(), m.end()) for m in _EMAIL.finditer(text)]
    spans += [(m.start(), m.end()) for m in _URL.finditer(text)]
    if with_file_names:
        spans += [(m.start(), m.end()) for m in _FILE_NAME.finditer(text)]
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def retrieval_text(text: str, *, keep_file_types: bool = True, folder_word: str = "") -> str:
    """The request as the filter should compare it: paths and addresses replaced by what they are.

    A concrete path says little about which tool is wanted (the same folder can be listed, searched or
    deleted) and, left in, makes requests look alike because they share it. Its file type can matter
    ("a pdf" points at document tools), so with `keep_file_types` a path becomes its extension; without,
    it is dropped. A path without an extension becomes `folder_word` (a folder, most likely).
    """
    out = text
    for path in sorted(set(extract_paths(text)), key=len, reverse=True):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        suffix = name.rsplit(".", 1)[1].lower() if "." in name.strip(".") else ""
        out = out.replace(path, (suffix if keep_file_types else "") or folder_word)
    out = _EMAIL.sub("someone", out)
    return " ".join(out.split())
