"""Deterministic extraction of argument values from a person's words.

A small model copies example paths and invents values; the words a person typed do not lie. What can be
read straight from the request (paths, for now) is taken from it, and the model only fills the rest.
"""

from __future__ import annotations

import re

# An absolute or home-relative path, or one in quotes. Trailing sentence punctuation is not part of it.
_QUOTED = re.compile(r"""["'`]((?:~|/)[^"'`]*)["'`]""")
_BARE = re.compile(r"""(?<![\w/~])((?:~(?=/|\s|$)|/)[^\s"'`,;]*)""")
_TRAILING = ".,;:!?)]}"

PLACEHOLDER_MARKERS = ("/path/to", "example", "<", ">", "...", "your_", "placeholder")


def extract_paths(text: str) -> list[str]:
    """Paths in the order they appear: quoted ones whole, bare ones up to whitespace."""
    found: list[tuple[int, str]] = []
    taken: list[range] = []
    for match in _QUOTED.finditer(text):
        found.append((match.start(), match.group(1)))
        taken.append(range(match.start(), match.end()))
    for match in _BARE.finditer(text):
        if any(match.start() in span for span in taken):
            continue
        path = match.group(1).rstrip(_TRAILING) or match.group(1)
        if path in ("/", "~") or len(path) > 1:
            found.append((match.start(), path))
    return [path for _, path in sorted(found)]


def looks_like_placeholder(value: object) -> bool:
    """True for values a model copies from examples instead of taking from the request."""
    if not isinstance(value, str):
        return False
    lowered = value.strip().lower()
    return not lowered or any(marker in lowered for marker in PLACEHOLDER_MARKERS)


_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_QUOTED_TEXT = re.compile(r"""["“']([^"”']{2,200})["”']""")
_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:[T ]\d{1,2}:\d{2}(?::\d{2})?)?\b")
_RELATIVE_DAY = re.compile(r"\b(today|tomorrow|yesterday)\b", re.IGNORECASE)
_TYPES = r"(pdf|docx?|xlsx?|csv|txt|md|png|jpe?g|mp3|wav|json|py|log|zip)"
_FILE_TYPE = (
    re.compile(r"\*\.(\w{1,5})\b"),
    re.compile(rf"\b(?:all|any|every)\s+(?:the\s+|my\s+)?{_TYPES}s?\b", re.IGNORECASE),
    re.compile(rf"\b{_TYPES}(?:s\b|\s+(?:files?|documents?)\b)", re.IGNORECASE),
)


def extract_emails(text: str) -> list[str]:
    """E-mail addresses, in order."""
    return _EMAIL.findall(text)


def extract_quoted(text: str) -> list[str]:
    """Text in quotes that is not a path (titles, subjects, search phrases), in order."""
    return [q for q in _QUOTED_TEXT.findall(text) if not q.startswith(("/", "~"))]


def extract_dates(text: str) -> list[str]:
    """ISO dates (with an optional time) and today/tomorrow/yesterday, in order of appearance."""
    found = [(m.start(), m.group(0)) for m in _ISO_DATE.finditer(text)]
    found += [(m.start(), m.group(1).lower()) for m in _RELATIVE_DAY.finditer(text)]
    return [value for _, value in sorted(found)]


def extract_file_pattern(text: str) -> str | None:
    """A glob for the file type a request names ("all PDFs", "*.csv", "pdf files" → "*.pdf")."""
    for pattern in _FILE_TYPE:
        match = pattern.search(text)
        if match is not None:
            return f"*.{match.group(1).lower()}"
    return None


def retrieval_text(text: str, *, keep_file_types: bool = True) -> str:
    """The request as the filter should compare it: paths and addresses replaced by what they are.

    A concrete path says little about which tool is wanted (the same folder can be listed, searched or
    deleted) and, left in, makes requests look alike because they share it. Its file type can matter
    ("a pdf" points at document tools), so with `keep_file_types` a path becomes its extension; without,
    it is dropped (dense embeddings otherwise match on the shared "txt"/"file" words alone).
    """
    out = text
    for path in sorted(set(extract_paths(text)), key=len, reverse=True):
        name = path.rstrip("/").rsplit("/", 1)[-1]
        suffix = name.rsplit(".", 1)[1].lower() if "." in name.strip(".") else ""
        out = out.replace(path, suffix if keep_file_types else "")
    out = _EMAIL.sub("someone", out)
    return " ".join(out.split())
