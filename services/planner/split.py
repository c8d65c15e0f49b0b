"""Splitting a compound request into ordered steps by rule, without a model.

The planner asks a small model for a plan and checks it against this splitter; when the model returns
fewer steps than the splitter finds, the splitter's steps are used. A wrong split therefore costs a run
an extra, wrong step, so every rule here prefers to leave text together when it is unsure: explicit
boundaries (sentence ends, semicolons, list lines, "then", "after that", ...) always split, while a bare
"and" or comma splits only when an imperative verb clearly starts a new clause after it.

Pure logic: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from enum import Enum

__all__ = ["Segment", "split_request"]


@dataclass(frozen=True)
class Segment:
    """One step of a request.

    `text` is the step's own words as written: trimmed, without a leading connective ("then", "and",
    "after that", ...) or trailing punctuation. `for_each` says the step applies to every item an earlier
    step found ("each of those", "all of them"). `refers_back` says it uses something from earlier ("it",
    "that PDF", "the result", "the files found").
    """

    text: str
    for_each: bool
    refers_back: bool


# --- Vocabulary -------------------------------------------------------------------------------------

# Imperative verbs that can start a step. Base forms only: an inflected form ("added", "deleting") never
# starts a step, which keeps gerunds and past participles inside the clause they belong to.
BUILTIN_VERBS: frozenset[str] = frozenset(
    """
    add analyse analyze append archive arrange assign attach block book build calculate cancel capture
    categorise categorize change check clean clear close collect combine compare compile complete compose
    compress compute convert copy count create crop cut decline decrypt dedupe deduplicate delete detect diff
    display download draft duplicate edit email empty encrypt erase estimate export extract fetch file fill
    filter find finish fix flag forward gather generate get give grab group highlight identify import index
    insert install invite kill label launch list load locate lock log look make mark merge message monitor move
    normalise normalize note notify ocr open order organise organize paste pause pick pin plot post prepare
    preview print prioritise prioritize propose publish pull put query quit read reboot record refresh reindex
    remind remove rename reorder replace reply report reschedule reserve resize restart restore resume review
    rewrite rotate run save scan schedule search select send set share show shred sign sort split start stop
    store suggest sum summarise summarize sync tag take tell text tidy total transcribe transfer translate trash
    turn uninstall unlock unzip update upload verify view watch wipe write zip
    """.split()
)

# Verbs of more than one word. They are read as verbs wherever they start a clause.
BUILTIN_VERB_PHRASES: frozenset[str] = frozenset(
    {
        "back up",
        "clean up",
        "fill in",
        "fill out",
        "find out",
        "free up",
        "go through",
        "jot down",
        "look for",
        "look up",
        "pick out",
        "print out",
        "set up",
        "shut down",
        "sort out",
        "switch off",
        "switch on",
        "tidy up",
        "turn off",
        "turn on",
        "write down",
        "write out",
    }
)

# Built-in verbs that are just as often nouns or adjectives ("a list of", "the search results", "the
# copy", "open orders") or that look the same in the past tense ("read", "set", "put"). After "and" or
# a comma one of these starts a step only when an object visibly follows it.
NOUN_LIKE_VERBS: frozenset[str] = frozenset(
    """
    archive block book build capture change check clean clear close combine complete copy count cut diff display
    download draft duplicate email empty estimate export extract file fill filter finish fix flag forward group
    import index invite label list load lock log look mark message monitor note ocr open order paste pin plot
    post preview print put query read record reply report reserve review run scan schedule search select set
    share show sign sort split start stop store sum sync tag text total transfer trash turn update upload view
    watch zip
    """.split()
)

# Noun-like verbs that take "for" directly ("scan for secrets", "look for outliers").
SEARCH_VERBS: frozenset[str] = frozenset({"check", "filter", "look", "monitor", "query", "scan", "search", "watch"})

# Words that may sit between a connective and its verb without changing the step ("and please delete").
FILLER_WORDS: frozenset[str] = frozenset({"please", "kindly", "just", "now", "simply", "also", "then"})

DETERMINERS: frozenset[str] = frozenset(
    """
    the a an this that these those my your our their his her its all each every some any both another
    either no several which what whichever whatever
    """.split()
)
OBJECT_PRONOUNS: frozenset[str] = frozenset(
    """
    it them me us him you everything anything something nothing everyone one ones how where who whether
    if why when
    """.split()
)
NUMBER_WORDS: frozenset[str] = frozenset("two three four five six seven eight nine ten twenty fifty hundred".split())
DIRECTIONAL_PREPOSITIONS: frozenset[str] = frozenset({"to", "into", "as"})
PREPOSITIONS: frozenset[str] = frozenset(
    """
    of for from in into on onto to with about at by as under over inside within like than after before
    between through via per without
    """.split()
)

# Openers of a subordinate clause. A comma that closes one ("If it's large, compress it") joins the
# condition to its action instead of starting a new step.
SUBORDINATORS: frozenset[str] = frozenset(
    {"if", "when", "whenever", "unless", "once", "after", "before", "while", "until", "till", "since", "because"}
)

# "since then", "until then", "back then": "then" as a time, not a sequence.
NON_SEQUENCE_BEFORE_THEN: frozenset[str] = frozenset({"since", "by", "until", "till", "from", "back", "only", "even"})

TIME_WORDS: frozenset[str] = frozenset(
    """
    morning afternoon evening night day week month year weekend weekday hour minute time today tonight
    moment quarter monday tuesday wednesday thursday friday saturday sunday
    """.split()
)

# Things a step produces, so "the <one of these>" usually means an earlier step's output.
RESULT_NOUNS: frozenset[str] = frozenset(
    """
    result results output outputs outcome outcomes finding findings match matches hit hits answer
    transcript transcription summary same above latter former previous original rest remaining ones list
    """.split()
)

# Kinds of things a step works on. "the file" with nothing naming it points at one found before.
ARTIFACT_NOUNS: frozenset[str] = frozenset(
    """
    file files folder folders directory document documents doc docs pdf pdfs text rows records record
    table tables image images photo photos picture pictures recording recordings audio report reports
    email emails draft drafts message messages note notes data entries entry items fields values
    duplicates changes minutes passages contents content page pages spreadsheet sheet csv
    """.split()
)

# Participles that mark a noun as something an earlier step produced ("the files found", "the kept
# records"). Deliberately limited to verbs of finding and picking: "files created last week" is a
# filter, not a reference.
RETRIEVAL_PARTICIPLES: frozenset[str] = frozenset(
    """
    found listed extracted returned selected kept matched matching flagged identified located collected
    gathered fetched retrieved detected resulting above
    """.split()
)
BACK_POINTING_ADVERBS: frozenset[str] = frozenset({"earlier", "above", "before", "previously"})

# Objects of "this" that point at the present, not at an earlier result ("this morning", "this computer").
DEICTIC_NOUNS: frozenset[str] = TIME_WORDS | frozenset({"computer", "machine", "laptop", "device", "pc", "mac"})

# Words that open a clause with its own subject, so a "that" before them is a conjunction ("check that
# the file exists"), not a pointer.
CLAUSE_OPENERS: frozenset[str] = frozenset(
    """
    the a an it its i you we they he she there this these those my your our their his her is are was were
    has have had will would can could should may might must does did do
    """.split()
)

BE_VERBS: frozenset[str] = frozenset({"is", "are", "was", "were", "be", "isn't", "aren't", "wasn't", "weren't"})
# Adjectives that often follow "the" and say nothing about whether the thing was mentioned before.
UNINFORMATIVE_MODIFIERS: frozenset[str] = frozenset(
    {"first", "last", "next", "most", "new", "other", "whole", "full", "main", "latest", "current", "plain"}
)
NAMING_WORDS: frozenset[str] = frozenset({"named", "called", "titled"})
IDENTIFYING_PREPOSITIONS: frozenset[str] = frozenset({"in", "on", "of", "from", "under", "at", "inside", "within"})

# A piece that starts like one of these states a fact or a limit rather than asking for an action; it is
# kept with the step it qualifies instead of becoming a step of its own.
NEGATION_OPENERS: tuple[tuple[str, ...], ...] = (
    ("don't",),
    ("dont",),
    ("do", "not"),
    ("never",),
    ("no", "need"),
    ("without",),
)
STATEMENT_OPENERS: tuple[tuple[str, ...], ...] = (
    ("it's",),
    ("it", "is"),
    ("it", "was"),
    ("they're",),
    ("they", "are"),
    ("that's",),
    ("that", "is"),
    ("this", "is"),
    ("there's",),
    ("there", "is"),
    ("there", "are"),
    ("because",),
    ("so", "that"),
)
INTRODUCTION_OPENERS: tuple[tuple[str, ...], ...] = (("here's",), ("here", "is"), ("here", "are"))

# "and tell me ...", "and make sure ...": these report or qualify the step before; they split only
# after an explicit sequence word such as "then".
NON_STEP_AFTER_AND: tuple[tuple[str, ...], ...] = (
    ("tell", "me"),
    ("tell", "us"),
    ("let", "me"),
    ("let", "us"),
    ("make", "sure"),
    ("make", "certain"),
    # "merge a.pdf and b.pdf and save the result over a.pdf": where the output goes is part of the
    # step that makes it, not a step of its own (there is no result to save until that step ran).
    *(
        (verb, *what)
        for verb in ("save", "write", "store", "put")
        for what in (
            ("the", "result"),
            ("the", "results"),
            ("the", "output"),
            *((pronoun, where) for pronoun in ("it", "them") for where in ("as", "to", "over", "into", "in", "under")),
        )
    ),
)

# Connectives that mark a new step. One splits when a comma, "and" or ";" comes before it, a comma
# follows it, or a verb follows it; the weak ones below need both something before and something after.
SEQUENCE_CONNECTIVES: tuple[tuple[str, ...], ...] = (
    ("and", "then"),
    ("then",),
    ("after", "that"),
    ("after", "this"),
    ("after", "which"),
    ("afterwards",),
    ("afterward",),
    ("subsequently",),
    ("once", "done"),
    ("when", "done"),
    ("once", "finished"),
    ("when", "finished"),
    ("once", "that's", "done"),
    ("when", "that's", "done"),
    ("once", "that", "is", "done"),
    ("when", "that", "is", "done"),
    ("once", "it's", "done"),
    ("when", "it's", "done"),
    ("once", "you're", "done"),
    ("when", "you're", "done"),
    ("once", "that's", "finished"),
    ("when", "that's", "finished"),
    ("finally",),
    ("lastly",),
    ("also",),
    ("next",),
)
# Words that open a step as a connective only before a comma or a verb ("First, list ..." but "First
# Street"); they are removed from a step's start, never split on.
ORDINAL_CONNECTIVES: tuple[tuple[str, ...], ...] = (
    ("first", "of", "all"),
    ("first",),
    ("firstly",),
    ("second",),
    ("secondly",),
    ("third",),
    ("thirdly",),
    ("to", "start"),
    ("to", "begin"),
    ("next",),
)
# Sequence words that are also ordinary words inside a clause ("I also want", "next week").
WEAK_SEQUENCE_CONNECTIVES: frozenset[tuple[str, ...]] = frozenset({("also",), ("next",), ("finally",), ("lastly",)})

# Abbreviations whose dot is not a full stop. Most never end a sentence; these may, when a capital follows.
ABBREVIATIONS_MAYBE_ENDING: frozenset[str] = frozenset({"etc.", "a.m.", "p.m."})
ABBREVIATION_PATTERN = re.compile(
    r"(?i:e\.g\.|i\.e\.|a\.m\.|p\.m\.|etc\.|vs\.|cf\.|approx\.|incl\.|esp\.|mrs\.|mr\.|ms\.|dr\.|no\.(?=\s*\d))"
)
WORD_PATTERN = re.compile(r"\w+(?:['’-]\w+)*")
# A run of text that is a path, file name, address or number: it is one token and never split inside.
LITERAL_PATTERN = re.compile(r"[/\\~@]|://|\w\.\w|\)\.\w|^\.\w|\d[,:]\d")
LIST_MARKER_PUNCTUATION: frozenset[str] = frozenset({"-", "*", "•", "–", "·"})
SENTENCE_END_PUNCTUATION: frozenset[str] = frozenset({".", "!", "?", "…"})
TRAILING_PUNCTUATION: frozenset[str] = frozenset({".", ",", ";", ":", "!", "?", "…"})
CLOSING_TO_OPENING_BRACKET: dict[str, str] = {")": "(", "]": "[", "}": "{"}
QUOTE_PAIRS: dict[str, str] = {'"': '"', "“": "”", "‘": "’", "`": "`", "'": "'"}


# --- Tokens -----------------------------------------------------------------------------------------


class TokenKind(Enum):
    """What a token is; literals and quotes are opaque, so no rule ever looks inside them."""

    WORD = "word"
    LITERAL = "literal"
    QUOTE = "quote"
    ABBREVIATION = "abbreviation"
    PUNCT = "punct"


@dataclass(frozen=True)
class Token:
    """A piece of the request with its character offsets, so steps can be cut from the original text."""

    kind: TokenKind
    start: int
    end: int
    text: str
    # Line breaks between this token and the one before: lists and paragraphs are read from them.
    newlines_before: int = 0

    @property
    def lower(self) -> str:
        """The text in lower case with curly apostrophes made straight, for matching word lists."""
        return self.text.lower().replace("’", "'")

    @property
    def is_word(self) -> bool:
        return self.kind is TokenKind.WORD


def find_quote_spans(text: str) -> dict[int, int]:
    """Start offset to end offset (exclusive, closing mark included) of every quoted passage.

    A straight single quote opens a passage only at the start of a word and closes one only at the end of
    a word, so apostrophes ("what's", "files'") are never taken for quotes. A mark with no partner on the
    same line quotes nothing.
    """
    spans: dict[int, int] = {}
    position = 0
    while position < len(text):
        mark = text[position]
        closing = QUOTE_PAIRS.get(mark)
        if closing is None or (mark == "'" and not _opens_single_quote(text, position)):
            position += 1
            continue
        end = _find_closing_quote(text, position, closing)
        if end is None:
            position += 1
            continue
        spans[position] = end
        position = end
    return spans


def _opens_single_quote(text: str, position: int) -> bool:
    before_ok = position == 0 or text[position - 1].isspace() or text[position - 1] in "([{:="
    after_ok = position + 1 < len(text) and not text[position + 1].isspace()
    return before_ok and after_ok


def _find_closing_quote(text: str, opening: int, closing: str) -> int | None:
    for position in range(opening + 1, len(text)):
        character = text[position]
        if character == "\n":
            return None
        if character != closing or position == opening + 1:
            continue
        if closing in "'’":
            # An apostrophe inside a word ("Bob's") is not the end of the quote.
            followed_by_letter = position + 1 < len(text) and text[position + 1].isalnum()
            if text[position - 1].isspace() or followed_by_letter:
                continue
        return position + 1
    return None


def tokenize(text: str) -> list[Token]:
    """Words, literals (paths, file names, addresses, numbers), quoted passages and punctuation."""
    quote_spans = find_quote_spans(text)
    tokens: list[Token] = []
    newlines = 0

    def emit(kind: TokenKind, start: int, end: int) -> int:
        nonlocal newlines
        tokens.append(Token(kind, start, end, text[start:end], newlines))
        newlines = 0
        return end

    position = 0
    while position < len(text):
        character = text[position]
        if position in quote_spans:
            position = emit(TokenKind.QUOTE, position, quote_spans[position])
            continue
        if character.isspace():
            newlines += character == "\n"
            position += 1
            continue
        at_word_start = position == 0 or not (text[position - 1].isalnum() or text[position - 1] == ".")
        abbreviation = ABBREVIATION_PATTERN.match(text, position) if at_word_start else None
        if abbreviation:
            position = emit(TokenKind.ABBREVIATION, position, abbreviation.end())
            continue
        literal_end = _literal_end(text, position, quote_spans)
        if literal_end is not None:
            position = emit(TokenKind.LITERAL, position, literal_end)
            continue
        word = WORD_PATTERN.match(text, position)
        position = emit(TokenKind.WORD, position, word.end()) if word else emit(TokenKind.PUNCT, position, position + 1)
    return tokens


def _literal_end(text: str, start: int, quote_spans: dict[int, int]) -> int | None:
    """End of the path-like run starting at `start`, or None when the run is ordinary text."""
    end = start
    while end < len(text) and not text[end].isspace() and end not in quote_spans:
        end += 1
    # Sentence punctuation after a path belongs to the sentence; a closing bracket belongs to the path
    # only when the path opened it ("IMG_2231 (1).jpg").
    while end > start:
        last = text[end - 1]
        core = text[start : end - 1]
        if last in ".,;:!?…'\"" or (
            last in CLOSING_TO_OPENING_BRACKET and CLOSING_TO_OPENING_BRACKET[last] not in core
        ):
            end -= 1
            continue
        break
    run = text[start:end]
    if not run or not LITERAL_PATTERN.search(run):
        return None
    return end


# --- Vocabulary matching ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Vocabulary:
    """Which words start a step: the built-in verbs plus the caller's tool verbs."""

    single_verbs: frozenset[str]
    verb_phrases: tuple[tuple[str, ...], ...]
    noun_like_verbs: frozenset[str]

    @classmethod
    def including(cls, extra_verbs: Iterable[str]) -> Vocabulary:
        """The built-in vocabulary extended with `extra_verbs` (e.g. "delete", "look_up", "back up")."""
        singles = set(BUILTIN_VERBS)
        phrases = {tuple(phrase.split()) for phrase in BUILTIN_VERB_PHRASES}
        noun_like = set(NOUN_LIKE_VERBS)
        for verb in extra_verbs:
            words = tuple(verb.lower().replace("_", " ").replace("-", " ").split())
            if not words:
                continue
            if len(words) > 1:
                phrases.add(words)
            elif words[0] not in singles:
                # A tool's verb is unknown to us, so it could as well be a noun: ask for a visible object.
                singles.add(words[0])
                noun_like.add(words[0])
        ordered_phrases = tuple(sorted(phrases, key=len, reverse=True))
        return cls(frozenset(singles), ordered_phrases, frozenset(noun_like))

    def verb_at(self, tokens: Sequence[Token], index: int, end: int) -> tuple[str, int] | None:
        """The verb (lower case) starting at `index`, within tokens[:end], and the index after it."""
        for phrase in self.verb_phrases:
            if index + len(phrase) <= end and _words_match(tokens, index, phrase):
                return " ".join(phrase), index + len(phrase)
        if index < end and tokens[index].is_word and tokens[index].lower in self.single_verbs:
            return tokens[index].lower, index + 1
        return None

    def contains_verb(self, tokens: Sequence[Token], start: int, end: int) -> bool:
        """Whether any of tokens[start:end] is a verb of this vocabulary."""
        return any(self.verb_at(tokens, index, end) is not None for index in range(start, end))


def _words_match(tokens: Sequence[Token], index: int, words: Sequence[str]) -> bool:
    if index + len(words) > len(tokens):
        return False
    return all(
        tokens[index + offset].is_word and tokens[index + offset].lower == word for offset, word in enumerate(words)
    )


def _match_any(tokens: Sequence[Token], index: int, phrases: Iterable[tuple[str, ...]]) -> tuple[str, ...] | None:
    """The longest of `phrases` that starts at `index`."""
    found: tuple[str, ...] | None = None
    for phrase in phrases:
        if _words_match(tokens, index, phrase) and (found is None or len(phrase) > len(found)):
            found = phrase
    return found


def _is_punct(tokens: Sequence[Token], index: int, marks: str | frozenset[str]) -> bool:
    return index < len(tokens) and tokens[index].kind is TokenKind.PUNCT and tokens[index].text in marks


def _skip_fillers(tokens: Sequence[Token], index: int, end: int) -> int:
    while index < end and tokens[index].is_word and tokens[index].lower in FILLER_WORDS:
        index += 1
    return index


def _looks_like_object(token: Token, verb: str) -> bool:
    """Whether `token`, right after a noun-like verb, reads as that verb's object or particle."""
    if token.kind in (TokenKind.LITERAL, TokenKind.QUOTE):
        return True
    if not token.is_word:
        return False
    word = token.lower
    # A bare particle is no evidence ("the date and total out of that text"); verbs that take one are
    # listed as phrases ("back up", "fill out").
    if word in DETERMINERS or word in OBJECT_PRONOUNS or word in DIRECTIONAL_PREPOSITIONS:
        return True
    if word == "for":
        return verb in SEARCH_VERBS
    # Numbers ("task 8", "two copies") and names ("email Priya") are objects; a plain lower-case word may
    # be a noun that continues a list ("files and folders").
    return word[0].isdigit() or word in NUMBER_WORDS or token.text[0].isupper()


def starts_step(tokens: Sequence[Token], index: int, end: int, vocabulary: Vocabulary) -> bool:
    """Whether an imperative verb starts a clause at `index` (after optional fillers such as "please")."""
    index = _skip_fillers(tokens, index, end)
    match = vocabulary.verb_at(tokens, index, end)
    if match is None:
        return False
    verb, after = match
    if after >= end:
        # A verb ending the sentence ("... and summarise") is a step unless it could be a noun.
        return verb not in vocabulary.noun_like_verbs
    following = tokens[after]
    # "delete, move or rename them": verbs sharing one object are one step.
    if _is_punct(tokens, after, ",") or (following.is_word and following.lower in ("and", "or", "nor")):
        return False
    if " " in verb or verb not in vocabulary.noun_like_verbs:
        return True
    return _looks_like_object(following, verb)


# --- Splitting --------------------------------------------------------------------------------------


class PieceRole(Enum):
    """Whether a piece of text is a step or a remark that belongs to a neighbouring step."""

    STEP = "step"
    QUALIFIES_PREVIOUS = "qualifies_previous"
    INTRODUCES_NEXT = "introduces_next"


@dataclass(frozen=True)
class Piece:
    """A run of tokens [start, end) that is a step or belongs to a neighbouring step."""

    start: int
    end: int
    role: PieceRole = PieceRole.STEP


def split_request(text: str, verbs: Iterable[str] = ()) -> list[Segment]:
    """Split a request into its steps, in order.

    `verbs` adds imperative verbs (for example taken from tool names: "delete", "transcribe") to the
    built-in set. A request that is one step gives one segment; empty text gives [].
    """
    vocabulary = Vocabulary.including(verbs)
    tokens = tokenize(text)
    pieces: list[Piece] = []
    for chunk in _chunks(text, tokens, vocabulary):
        for sentence_start, sentence_end in _sentences(text, tokens, chunk.start, chunk.end):
            for clause_start, clause_end in _clauses(tokens, sentence_start, sentence_end, vocabulary):
                pieces.append(Piece(clause_start, clause_end, _role(tokens, clause_start, clause_end)))
        if chunk.role is PieceRole.INTRODUCES_NEXT and pieces:
            last = pieces[-1]
            pieces[-1] = Piece(last.start, last.end, PieceRole.INTRODUCES_NEXT)
    segments: list[Segment] = []
    earlier_words: set[str] = set()
    for spans in _attach_qualifiers(pieces):
        segment = _make_segment(text, tokens, spans, vocabulary, earlier_words)
        if segment is not None:
            segments.append(segment)
            for start, end in spans:
                earlier_words.update(_singular(token.lower) for token in tokens[start:end] if token.is_word)
    return segments


def _chunks(text: str, tokens: Sequence[Token], vocabulary: Vocabulary) -> list[Piece]:
    """Split at line breaks that separate list items, paragraphs, finished sentences or new commands.

    Other line breaks are wrapping inside a sentence and are ignored. List markers ("1.", "2)", "-", "•")
    are left out of the chunks. A line ending with ":" just before a list introduces that list.
    """
    if not tokens:
        return []
    line_starts = [index for index, token in enumerate(tokens) if index == 0 or token.newlines_before]
    lines = [
        piece
        for start, end in zip(line_starts, [*line_starts[1:], len(tokens)], strict=True)
        for piece in _split_inline_numbering(text, tokens, start, end)
    ]

    chunks: list[Piece] = []
    current_start: int | None = None
    current_end = 0
    for start, end in lines:
        content_start = _after_list_marker(text, tokens, start, end)
        if content_start == end:
            continue
        is_list_item = content_start != start
        if current_start is None:
            current_start, current_end = content_start, end
            continue
        after_blank_line = tokens[start].newlines_before > 1
        ends_previous = _is_punct(tokens, current_end - 1, SENTENCE_END_PUNCTUATION | {";", ":"})
        # A line ending in "and" or a comma runs on; the clause rules decide whether to split there.
        runs_on = _is_punct(tokens, current_end - 1, ",") or _word_at(tokens, current_end - 1) in ("and", "then")
        starts_command = not runs_on and starts_step(tokens, content_start, end, vocabulary)
        if is_list_item or after_blank_line or ends_previous or starts_command:
            introduces = is_list_item and _is_punct(tokens, current_end - 1, ":")
            chunks.append(
                Piece(current_start, current_end, PieceRole.INTRODUCES_NEXT if introduces else PieceRole.STEP)
            )
            current_start = content_start
        current_end = end
    if current_start is not None:
        chunks.append(Piece(current_start, current_end))
    return [chunk for chunk in chunks if chunk.start < chunk.end]


def _split_inline_numbering(text: str, tokens: Sequence[Token], start: int, end: int) -> list[tuple[int, int]]:
    """Break a line numbered "1)" or "1." at each next number in sequence ("1) find x 2) delete it").

    Only the exact next number with the same mark counts, so "at 3) ..." or "version 2." inside an
    ordinary sentence is left alone.
    """
    marker_end = _after_list_marker(text, tokens, start, end)
    if marker_end == start or not tokens[start].text.isdigit():
        return [(start, end)]
    mark = tokens[start + 1].text
    expected = int(tokens[start].text) + 1
    pieces: list[tuple[int, int]] = []
    piece_start = start
    for index in range(marker_end, end - 1):
        token = tokens[index]
        is_next_marker = (
            token.is_word
            and token.text == str(expected)
            and _is_punct(tokens, index + 1, mark)
            and tokens[index + 1].start == token.end
            and token.start > 0
            and text[token.start - 1].isspace()
            and _after_list_marker(text, tokens, index, end) == index + 2
        )
        if is_next_marker:
            pieces.append((piece_start, index))
            piece_start = index
            expected += 1
    pieces.append((piece_start, end))
    return pieces


def _after_list_marker(text: str, tokens: Sequence[Token], start: int, end: int) -> int:
    """Index of a line's first token after a list marker such as "1.", "2)", "a)", "-" or "•"."""
    if start >= end:
        return start
    first = tokens[start]
    marker_end: int | None = None
    if first.kind is TokenKind.PUNCT and first.text in LIST_MARKER_PUNCTUATION:
        marker_end = start + 1
    elif (
        first.is_word
        and ((first.text.isdigit() and len(first.text) <= 2) or (len(first.text) == 1 and first.text.isalpha()))
        and start + 1 < end
        and _is_punct(tokens, start + 1, ".)" if first.text.isdigit() else ")")
        and tokens[start + 1].start == first.end
    ):
        marker_end = start + 2
    if marker_end is None:
        return start
    if marker_end >= end:
        return end
    # A marker is followed by a space; "-5 degrees" or "1.5" is content.
    if not text[tokens[marker_end - 1].end].isspace():
        return start
    return marker_end


def _sentences(text: str, tokens: Sequence[Token], start: int, end: int) -> list[tuple[int, int]]:
    """Split tokens[start:end] after sentence-ending punctuation followed by a space or the end."""
    sentences: list[tuple[int, int]] = []
    sentence_start = start
    for index in range(start, end):
        if _ends_sentence(text, tokens, index, end):
            sentences.append((sentence_start, index + 1))
            sentence_start = index + 1
    if sentence_start < end:
        sentences.append((sentence_start, end))
    return sentences


def _ends_sentence(text: str, tokens: Sequence[Token], index: int, end: int) -> bool:
    token = tokens[index]
    followed_by_space = token.end == len(text) or text[token.end].isspace()
    following = tokens[index + 1] if index + 1 < end else None
    next_is_capitalised = following is not None and following.text[:1].isupper()
    if token.kind is TokenKind.PUNCT and token.text in SENTENCE_END_PUNCTUATION:
        if not followed_by_space:
            return False
        if following is not None and _is_punct(tokens, index + 1, SENTENCE_END_PUNCTUATION):
            return False
        # "J. Smith": an initial, not the end of a sentence.
        previous = tokens[index - 1] if index > 0 else None
        if previous is not None and previous.is_word and len(previous.text) == 1 and previous.text.isupper():
            return not next_is_capitalised
        return True
    if token.kind is TokenKind.ABBREVIATION:
        if token.lower in ABBREVIATIONS_MAYBE_ENDING:
            return followed_by_space and (following is None or next_is_capitalised)
        return False
    if token.kind is TokenKind.QUOTE:
        # 'March: started running again.' Encrypt it. -> the quote closed the sentence.
        inner = token.text[:-1].rstrip()
        return inner[-1:] in SENTENCE_END_PUNCTUATION and followed_by_space and next_is_capitalised
    return False


def _clauses(tokens: Sequence[Token], start: int, end: int, vocabulary: Vocabulary) -> list[tuple[int, int]]:
    """Split one sentence at connectives, semicolons, and "and"/commas that start a new imperative."""
    clauses: list[tuple[int, int]] = []
    clause_start = start
    index = start + 1
    while index < end:
        resume = _split_point(tokens, clause_start, index, end, vocabulary)
        if resume is None:
            index += 1
            continue
        clauses.append((clause_start, index))
        clause_start = index
        index = max(resume, index + 1)
    clauses.append((clause_start, end))
    return clauses


def _split_point(
    tokens: Sequence[Token], clause_start: int, index: int, end: int, vocabulary: Vocabulary
) -> int | None:
    """If a new step starts at `index`, the index where its words begin; otherwise None."""
    cursor = index
    lead_mark = ""
    if _is_punct(tokens, cursor, ",;"):
        lead_mark = tokens[cursor].text
        cursor += 1
    joined_by_and = _words_match(tokens, cursor, ("and",))
    if joined_by_and:
        cursor += 1
    led = bool(lead_mark) or joined_by_and

    connective = _match_any(tokens, cursor, SEQUENCE_CONNECTIVES)
    if connective is not None:
        after = cursor + len(connective)
        comma_after = _is_punct(tokens, after, ",")
        words_from = after + 1 if comma_after else after
        verb_after = starts_step(tokens, words_from, end, vocabulary)
        if connective in WEAK_SEQUENCE_CONNECTIVES:
            # "I also want", "next week": only a clause-opening "also"/"next" followed by a verb or comma.
            return words_from if led and (comma_after or verb_after) else None
        if connective == ("then",) and not _then_is_sequence(tokens, clause_start, index, led):
            return None
        # "convert it to PDF, and then to HTML": the same verb again, with nothing of its own to stand on.
        if _word_at(tokens, words_from) in PREPOSITIONS:
            return None
        if led or comma_after or verb_after:
            return words_from
        return None

    if not led:
        return None
    if lead_mark == ";":
        return cursor if starts_step(tokens, cursor, end, vocabulary) else None
    if not starts_step(tokens, cursor, end, vocabulary):
        return None
    if not _left_clause_allows_split(tokens, clause_start, index, vocabulary):
        return None
    verb_index = _skip_fillers(tokens, cursor, end)
    if _match_any(tokens, verb_index, NON_STEP_AFTER_AND) is not None:
        return None
    return cursor


def _then_is_sequence(tokens: Sequence[Token], clause_start: int, index: int, led: bool) -> bool:
    """Whether a "then" at `index` orders steps, rather than closing an "if" or naming a time."""
    content_start = _strip_leading_connectives(tokens, clause_start, index)
    if content_start < index and tokens[content_start].is_word and tokens[content_start].lower in ("if", "unless"):
        return False
    if led:
        return True
    previous = tokens[index - 1]
    return not (previous.is_word and previous.lower in NON_SEQUENCE_BEFORE_THEN)


def _left_clause_allows_split(tokens: Sequence[Token], clause_start: int, index: int, vocabulary: Vocabulary) -> bool:
    """Whether the clause before a plain "and"/comma is a complete step of its own."""
    content_start = _strip_leading_connectives(tokens, clause_start, index)
    words = [token for token in tokens[content_start:index] if token.is_word]
    if not words:
        return False
    # "Hey, find ...", "flight to Oslo at 7, add it": no action on the left, so nothing to split off.
    if not vocabulary.contains_verb(tokens, content_start, index):
        return False
    # "find and delete duplicates", "copy and paste it": verbs sharing one object stay one step. A
    # noun-like verb closing a longer clause is a noun ("open the file, read it").
    last = tokens[index - 1]
    if last.is_word and last.lower in vocabulary.single_verbs:
        only_word = _skip_fillers(tokens, content_start, index) == index - 1
        if last.lower not in vocabulary.noun_like_verbs or only_word:
            return False
    first_word = words[0].lower
    if _match_any(tokens, content_start, NEGATION_OPENERS) is not None:
        return False
    if first_word in SUBORDINATORS:
        # "If it's big, delete it": the first comma closes the condition. Later commas may split.
        return any(_is_punct(tokens, position, ",") for position in range(content_start, index))
    return True


def _strip_leading_connectives(tokens: Sequence[Token], start: int, end: int) -> int:
    """Index of the first token after leading punctuation, "and", and sequence words such as "then"."""
    index = start
    while index < end:
        if _is_punct(tokens, index, ",;:") or _words_match(tokens, index, ("and",)):
            index += 1
            continue
        connective = _match_any(tokens, index, SEQUENCE_CONNECTIVES)
        if connective is not None and connective != ("next",):
            index += len(connective)
            continue
        # "Next, ..." and "First delete ..." are connectives; "Next Monday" and "First Street" are not.
        ordinal = _match_any(tokens, index, ORDINAL_CONNECTIVES)
        if ordinal is not None:
            after = index + len(ordinal)
            if _is_punct(tokens, after, ",") or _next_word_is_verb_like(tokens, after, end):
                index = after
                continue
        break
    return index


def _next_word_is_verb_like(tokens: Sequence[Token], index: int, end: int) -> bool:
    """Whether a built-in verb comes next: enough to tell "First delete ..." from "First Street"."""
    index = _skip_fillers(tokens, index, end)
    return index < end and tokens[index].is_word and tokens[index].lower in BUILTIN_VERBS | {"do", "go"}


def _role(tokens: Sequence[Token], start: int, end: int) -> PieceRole:
    """Whether a piece is a step, or a remark that belongs to the step before or after it."""
    content_start = _strip_leading_connectives(tokens, start, end)
    if _match_any(tokens, content_start, INTRODUCTION_OPENERS) is not None:
        return PieceRole.INTRODUCES_NEXT
    if _match_any(tokens, content_start, STATEMENT_OPENERS) is not None:
        return PieceRole.QUALIFIES_PREVIOUS
    if _match_any(tokens, content_start, NEGATION_OPENERS) is not None:
        return PieceRole.QUALIFIES_PREVIOUS
    if not any(token.kind is not TokenKind.PUNCT for token in tokens[content_start:end]):
        return PieceRole.QUALIFIES_PREVIOUS
    return PieceRole.STEP


def _attach_qualifiers(pieces: Sequence[Piece]) -> list[list[tuple[int, int]]]:
    """Group remarks with their steps: each group is one step's token ranges, in order.

    A remark joins the step before it; one with no step before it (or an introduction) joins the step
    after it; one with no step at all becomes a step.
    """
    groups: list[list[tuple[int, int]]] = []
    waiting: list[tuple[int, int]] = []
    for piece in pieces:
        span = (piece.start, piece.end)
        if piece.role is PieceRole.QUALIFIES_PREVIOUS and groups and not waiting:
            groups[-1].append(span)
        elif piece.role is PieceRole.STEP:
            groups.append([*waiting, span])
            waiting = []
        else:
            waiting.append(span)
    if waiting:
        if groups:
            groups[-1].extend(waiting)
        else:
            groups.append(waiting)
    return groups


# --- Segments ---------------------------------------------------------------------------------------


def _make_segment(
    text: str,
    tokens: Sequence[Token],
    spans: Sequence[tuple[int, int]],
    vocabulary: Vocabulary,
    earlier_words: AbstractSet[str],
) -> Segment | None:
    """The segment for a step made of `spans`, or None when nothing but connectives and punctuation."""
    trimmed = [(start, end) for start, end in spans if start < end]
    while trimmed:
        start, end = trimmed[0]
        start = _strip_leading_connectives(tokens, start, end)
        if start < end:
            trimmed[0] = (start, end)
            break
        trimmed.pop(0)
    while trimmed:
        start, end = trimmed[-1]
        while end > start and _is_punct(tokens, end - 1, TRAILING_PUNCTUATION):
            end -= 1
        if start < end:
            trimmed[-1] = (start, end)
            break
        trimmed.pop()
    content = [token for start, end in trimmed for token in tokens[start:end]]
    if not any(token.kind is not TokenKind.PUNCT for token in content):
        return None
    # List markers between ranges are not part of the words, so the ranges are joined, not spanned.
    words = " ".join(text[tokens[start].start : tokens[end - 1].end] for start, end in trimmed)
    return Segment(
        text=re.sub(r"\s*\n\s*", " ", words).strip(),
        for_each=applies_to_each(content),
        refers_back=refers_back(content, earlier_words) or _is_bare_verb(content, vocabulary),
    )


def _is_bare_verb(tokens: Sequence[Token], vocabulary: Vocabulary) -> bool:
    """A step that is only a verb ("... and summarise") acts on what came before it."""
    words = [token for token in tokens if token.kind is not TokenKind.PUNCT and token.lower not in FILLER_WORDS]
    match = vocabulary.verb_at(words, 0, len(words))
    return match is not None and match[1] == len(words)


def _word_at(tokens: Sequence[Token], index: int) -> str:
    """The lower-case word at `index`, or "" for punctuation, literals and positions past the end."""
    if 0 <= index < len(tokens) and tokens[index].is_word:
        return tokens[index].lower
    return ""


def applies_to_each(tokens: Sequence[Token]) -> bool:
    """Whether the words ask for the step to be done for every item ("each", "every one", "all of them")."""
    for index, token in enumerate(tokens):
        if not token.is_word:
            continue
        word = token.lower
        following = _word_at(tokens, index + 1)
        if word in ("each", "every") and following not in TIME_WORDS and following != "other":
            return True
        if word == "all" and (
            following in ("those", "these", "them")
            or (following == "of" and _word_at(tokens, index + 2) in ("them", "those", "these"))
        ):
            return True
        if word == "one" and following == "by" and _word_at(tokens, index + 2) == "one":
            return True
        if word == "one" and following == "at" and _word_at(tokens, index + 3) == "time":
            return True
        if word in ("individually", "separately"):
            return True
    return False


def refers_back(tokens: Sequence[Token], earlier_words: AbstractSet[str] = frozenset()) -> bool:
    """Whether the words point at something from earlier: a pronoun, "that PDF", "the result", "the files
    found", or "the <noun>" naming something an earlier step mentioned.
    """
    for index, token in enumerate(tokens):
        if not token.is_word:
            continue
        word = token.lower
        following = _word_at(tokens, index + 1)
        if word in ("it", "its", "it's", "itself", "them", "they", "they're", "their", "themselves", "those", "these"):
            return True
        if word == "this" and following not in DEICTIC_NOUNS and following != "is":
            return True
        if word == "that" and _that_points_back(tokens, index):
            return True
        if word == "there" and _there_points_back(tokens, index):
            return True
        if word == "the" and _definite_points_back(tokens, index, earlier_words):
            return True
        if word in RETRIEVAL_PARTICIPLES and _participle_points_back(tokens, index):
            return True
    return False


def _that_points_back(tokens: Sequence[Token], index: int) -> bool:
    """Tell "that PDF" / "save that" from "the calls that ran" / "check that the file exists"."""
    following_token = tokens[index + 1] if index + 1 < len(tokens) else None
    if following_token is None or following_token.kind is TokenKind.PUNCT:
        return True
    following = _word_at(tokens, index + 1)
    if following in PREPOSITIONS or following in ("and", "or", "then", "too", "again", "first", "now", "please"):
        return True
    if following in TIME_WORDS:
        return True
    if following in CLAUSE_OPENERS or not following_token.is_word:
        return False
    previous = _word_at(tokens, index - 1)
    if index == 0 or previous in PREPOSITIONS or previous in BUILTIN_VERBS or previous in ("me", "us", "all"):
        return True
    # After a noun "that" opens a relative clause ("the tool calls that ran").
    return False


def _there_points_back(tokens: Sequence[Token], index: int) -> bool:
    """Tell "lands there" / "put it in there" from "are there any" / "there is"."""
    previous = _word_at(tokens, index - 1)
    if previous in BE_VERBS:
        return False
    following_token = tokens[index + 1] if index + 1 < len(tokens) else None
    if following_token is None or following_token.kind is TokenKind.PUNCT:
        return True
    following = _word_at(tokens, index + 1)
    return following in PREPOSITIONS or following in ("and", "or", "then", "too", "yet", "already", "first")


def _definite_points_back(tokens: Sequence[Token], index: int, earlier_words: AbstractSet[str]) -> bool:
    """Whether "the ..." at `index` names an earlier result rather than introducing something new."""
    head_index = index + 1
    head = _word_at(tokens, head_index)
    if not head:
        return False
    if head in RETRIEVAL_PARTICIPLES or head in RESULT_NOUNS:
        return True
    if _is_identified(tokens, head_index + 1):
        return False
    # "the file", "the action items": a generic or already-mentioned thing with nothing naming it.
    for offset in (0, 1):
        noun = _word_at(tokens, head_index + offset)
        if not noun:
            break
        mentioned_before = len(noun) > 3 and _singular(noun) in earlier_words and noun not in UNINFORMATIVE_MODIFIERS
        if noun in ARTIFACT_NOUNS or mentioned_before:
            return not _is_identified(tokens, head_index + offset + 1)
    return False


def _is_identified(tokens: Sequence[Token], index: int) -> bool:
    """Whether a path, a quoted name, or "named ..." right after a noun says which one is meant."""
    if index >= len(tokens):
        return False
    token = tokens[index]
    if token.kind in (TokenKind.LITERAL, TokenKind.QUOTE):
        return True
    if token.is_word and token.lower in NAMING_WORDS:
        return True
    if token.is_word and token.lower in IDENTIFYING_PREPOSITIONS and index + 1 < len(tokens):
        return tokens[index + 1].kind in (TokenKind.LITERAL, TokenKind.QUOTE)
    return False


def _participle_points_back(tokens: Sequence[Token], index: int) -> bool:
    """Whether "found"/"kept"/... marks an earlier step's output ("the files you found", "the duplicates
    found"), as opposed to a search filter ("files found in ~/Docs").
    """
    previous = _word_at(tokens, index - 1)
    following_token = tokens[index + 1] if index + 1 < len(tokens) else None
    if previous in ("the", "i", "you", "we", "just", "were", "was"):
        return True
    if following_token is None or following_token.kind is TokenKind.PUNCT:
        return bool(previous)
    return _word_at(tokens, index + 1) in BACK_POINTING_ADVERBS


def _singular(word: str) -> str:
    return word[:-1] if word.endswith("s") and len(word) > 3 else word
