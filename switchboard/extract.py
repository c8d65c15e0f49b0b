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
