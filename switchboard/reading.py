"""One reading of a request: its typed parts, found once and carried with the step.

The planner reads each step's words when it makes the step, at the moment the person asked, and the
reading travels with the step (`Step.reading_json`); the router fills arguments from it instead of
parsing the words again. What it holds: paths and file names (with the well-known folders a person
names in words, "my Downloads folder", resolved under their home), quoted text, e-mail addresses, ids,
dates and times (read relative to when the person asked), and the leading verb.

The moment matters: "tomorrow" in a step the router handles a second after midnight must still be the
day after the one the person typed it on.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, time
from typing import Any

from switchboard.dates import When, find_dates
from switchboard.extract import (
    Identifier,
    PathMention,
    extract_emails,
    extract_identifiers,
    extract_path_mentions,
    extract_quoted,
)

# Folders every desktop home has, by the name people call them. `~` is resolved by the tool host.
WELL_KNOWN_FOLDERS = {
    "desktop": "~/Desktop",
    "documents": "~/Documents",
    "downloads": "~/Downloads",
    "pictures": "~/Pictures",
    "photos": "~/Pictures",
    "music": "~/Music",
    "videos": "~/Videos",
    "movies": "~/Videos",
    "public": "~/Public",
    "templates": "~/Templates",
    "home": "~",
}
_FOLDER_NAMES = "|".join(name for name in WELL_KNOWN_FOLDERS if name != "home")
_FOLDER_WORD = r"(?:folder|directory|dir)\b"
# Three ways a well-known folder is named: with a capital, as a proper name ("to Downloads"); with
# "folder" after it ("the music folder"); or as a place that is mine ("on my desktop"). "Home" needs
# "folder" or "directory" after it ("my home folder"); "home" alone is too common a word.
_FOLDER_FORMS = (
    re.compile(rf"(?<![\w/.~-])(?:{_FOLDER_NAMES.title()})(?:\s+{_FOLDER_WORD})?(?![\w/.-])"),
    re.compile(rf"(?<![\w/.~-])(?:{_FOLDER_NAMES}|home)\s+{_FOLDER_WORD}", re.IGNORECASE),
    re.compile(
        rf"\b(?:in|to|into|from|on|onto|under|inside|within|across|through)\s+(my\s+(?:{_FOLDER_NAMES}))(?![\w/.-])",
        re.IGNORECASE,
    ),
)
_DESTINATION_CUE = re.compile(
    r"\b(?:to|into|onto|over|as)\s+(?:(?:the|my|a|new)\s+)?$",
    re.IGNORECASE,
)
_LEAD_IN = re.compile(
    r"^(?:(?:please|now|then|also|and|just|ok(?:ay)?|so|finally|next|go ahead and|can you|could you|would you|"
    r"i want you to|i'd like you to|i need you to)[\s,]+)+",
    re.IGNORECASE,
)


def folder_mentions(text: str, taken: list[tuple[int, int]] | None = None) -> list[PathMention]:
    """The well-known folders the words name, as home-relative paths, outside the spans in `taken`."""
    found: dict[int, PathMention] = {}
    blocked = list(taken or [])
    for form in _FOLDER_FORMS:
        for match in form.finditer(text):
            group = 1 if match.re.groups else 0  # the third form names the place in its group
            start, end = match.start(group), match.end(group)
            if any(start < e and s < end for s, e in blocked):
                continue
            words = match.group(group).lower().split()
            name = next((w for w in words if w in WELL_KNOWN_FOLDERS), "")
            if not name:
                continue
            before = text[max(0, start - 40) : start]
            marked = _DESTINATION_CUE.search(before) is not None
            found[start] = PathMention(WELL_KNOWN_FOLDERS[name], start, end, False, marked)
            blocked.append((start, end))
    return [found[start] for start in sorted(found)]


def leading_verb(text: str) -> str:
    """The request's first word after politeness and connectives, lower case."""
    rest = _LEAD_IN.sub("", text.strip())
    match = re.match(r"[A-Za-z]+", rest)
    return match.group(0).lower() if match else ""


@dataclass
class Reading:
    """The typed parse of one step's words. Build it with `Reading.of`; send it with `to_json`."""

    text: str
    now: datetime
    paths: list[PathMention] = field(default_factory=list)
    quotes: list[str] = field(default_factory=list)
    emails: list[str] = field(default_factory=list)
    identifiers: list[Identifier] = field(default_factory=list)
    dates: list[When] = field(default_factory=list)
    verb: str = ""

    @classmethod
    def of(cls, text: str, now: datetime | None = None) -> Reading:
        moment = (now or datetime.now()).replace(microsecond=0)
        written = extract_path_mentions(text)
        spans = [(m.start, m.end) for m in written]
        quoted = [(m.start(), m.end()) for m in _QUOTED.finditer(text)]
        paths = sorted([*written, *folder_mentions(text, spans + quoted)], key=lambda m: m.start)
        blank = blank_spans(text, [*[(m.start, m.end) for m in paths], *quoted])
        return cls(
            text=text,
            now=moment,
            paths=paths,
            quotes=extract_quoted(text),
            emails=extract_emails(text),
            identifiers=extract_identifiers(text),
            dates=find_dates(text, moment, blank),
            verb=leading_verb(text),
        )

    def to_json(self) -> str:
        raw = asdict(self)
        raw["now"] = self.now.isoformat()
        return json.dumps(raw, default=_encode)

    @classmethod
    def from_json(cls, raw: str) -> Reading:
        """A reading sent with a step; a `ValueError` when it is not one."""
        try:
            data = json.loads(raw)
            return cls(
                text=data["text"],
                now=datetime.fromisoformat(data["now"]),
                paths=[PathMention(**m) for m in data["paths"]],
                quotes=list(data["quotes"]),
                emails=list(data["emails"]),
                identifiers=[Identifier(**i) for i in data["identifiers"]],
                dates=[_decode_when(w) for w in data["dates"]],
                verb=data.get("verb", ""),
            )
        except (KeyError, TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a reading: {exc}") from exc


def read_step(text: str, reading_json: str = "", now: datetime | None = None) -> Reading:
    """The reading a step carries when it is one of `text`, else a fresh one (a step sent without)."""
    if reading_json:
        try:
            reading = Reading.from_json(reading_json)
        except ValueError:
            reading = None
        if reading is not None and reading.text == text:
            return reading
    return Reading.of(text, now)


_QUOTED = re.compile(r"""["“][^"”]{2,2000}?["”]|(?<!\w)['‘][^\n]{2,2000}?['’](?!\w)""")


def blank_spans(text: str, spans: list[tuple[int, int]]) -> str:
    """`text` with the character ranges `spans` replaced by spaces: every other word keeps its offset,
    and nothing inside a blanked range can be read as a word."""
    chars = list(text)
    for start, end in spans:
        chars[start:end] = " " * (end - start)
    return "".join(chars)


def _encode(value: Any) -> Any:
    if isinstance(value, date | time):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _decode_when(raw: dict[str, Any]) -> When:
    def day(key: str) -> date | None:
        return date.fromisoformat(raw[key]) if raw.get(key) else None

    def moment(key: str) -> time | None:
        return time.fromisoformat(raw[key]) if raw.get(key) else None

    parsed = day("day")
    if parsed is None:
        raise ValueError("a date without its day")
    return When(raw["text"], raw["start"], raw["end"], parsed, moment("at"), day("until"), moment("until_at"))
