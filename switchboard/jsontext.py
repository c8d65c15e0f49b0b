"""JSON text from outside, parsed within limits: no deeper than allowed (a parser's recursion is the
cost of depth), and nothing in it that a later stage cannot carry (half of a surrogate pair, which no
protobuf string and no UTF-8 encoder takes).

`json_depth_exceeds` and `parse_limited_json` are plain functions, for every edge that takes JSON: the
gateway's HTTP bodies and the JSON inside its gRPC messages, and the tool host's call arguments.
"""

from __future__ import annotations

import json
import re
from typing import Any

from switchboard.errors import MalformedMessage

__all__ = ["DEFAULT_MAX_JSON_DEPTH", "InvalidJson", "JsonTooDeep", "json_depth_exceeds", "parse_limited_json"]

# How deep arrays and objects may nest in JSON from outside, unless an edge says otherwise.
DEFAULT_MAX_JSON_DEPTH = 32

# What can change the nesting depth of a JSON text: a whole string (whose brackets do not count), a
# quote that opens a string never closed, and a bracket. The scan skips everything else. The
# quantifiers are possessive so that an unclosed string costs one pass, not a backtracking search.
_NESTING_TOKENS = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"|"|[\[\]{}]', re.DOTALL)


# A surrogate in a JSON text, escaped (a pair of them is one character and fine) or as a raw code point.
_SURROGATE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}|[\ud800-\udfff]")
# A surrogate left alone in a decoded string: JSON makes a pair one character, so any left is alone.
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


class InvalidJson(MalformedMessage):
    """A text that should be JSON does not parse."""


class JsonTooDeep(MalformedMessage):
    """A JSON text nests arrays and objects deeper than allowed."""


def _decode_json_bytes(raw: bytes) -> str:
    """The text of JSON bytes, decoded as `json.loads` decodes them (UTF-8, -16 or -32 by its first bytes)."""
    return raw.decode(json.detect_encoding(raw), "surrogatepass")


def json_depth_exceeds(text: bytes | str, limit: int) -> bool:
    """Whether `text` nests arrays and objects more than `limit` deep (`[]` is depth 1, `[{}]` depth 2).

    The scan is a loop, not a recursion, and stops at the first bracket past the limit, so a body of
    a million `[` costs little. For a text that is not JSON the answer may be wrong either way, but
    never so that a parser would go deeper than `limit` before finding the error: parse the text too
    (as `parse_limited_json` does) to know it is valid.
    """
    if isinstance(text, bytes):
        try:
            text = _decode_json_bytes(text)
        except UnicodeDecodeError:
            return False  # the parser fails on the same decoding before it nests anything
    depth = 0
    for token in _NESTING_TOKENS.finditer(text):
        mark = text[token.start()]
        if mark in "[{":
            depth += 1
            if depth > limit:
                return True
        elif mark in "]}":
            depth -= 1
        elif token.end() - token.start() == 1:
            return False  # a string that never closes: the parser stops there
    return False


def parse_limited_json(raw: bytes | str, max_depth: int) -> Any:
    """The value of the JSON text `raw`, refused before parsing if it nests deeper than `max_depth`.

    Raises `JsonTooDeep` or `InvalidJson`; their messages say what is wrong without naming the input.
    """
    try:
        text = _decode_json_bytes(raw) if isinstance(raw, bytes) else raw
    except UnicodeDecodeError as exc:
        raise InvalidJson(f"it is not UTF-8 text ({exc.reason} at byte {exc.start})") from exc
    too_deep = f"arrays and objects nest more than {max_depth} levels deep"
    if json_depth_exceeds(text, max_depth):
        raise JsonTooDeep(too_deep)
    try:
        value = json.loads(text)
    except RecursionError as exc:  # only with a limit set near the interpreter's own
        raise JsonTooDeep(too_deep) from exc
    except ValueError as exc:  # not JSON, or a number too long to convert
        raise InvalidJson(str(exc)) from exc
    if _SURROGATE.search(text) and _holds_a_lone_surrogate(value):
        raise InvalidJson(
            "a string in it holds half of a UTF-16 surrogate pair (an escape such as \\udcff), which is no "
            "character and cannot be passed on as text"
        )
    return value


def _holds_a_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        return _LONE_SURROGATE.search(value) is not None
    if isinstance(value, dict):
        return any(_holds_a_lone_surrogate(k) or _holds_a_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_holds_a_lone_surrogate(item) for item in value)
    return False
