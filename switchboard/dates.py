"""Dates and times as a person writes them, read relative to the moment they asked.

Finding and reading are kept apart. Finding is a small grammar of how English writes a day ("3 December
2026", "Jan 17", "next Friday", "tomorrow", "in two weeks", an ISO date) and a time of day ("2pm",
"6:30 PM", "09:30", "noon"); only what matches it is a date, so "the May budget" or "on the 5th floor"
never become one. Reading a day phrase is `dateparser`'s job, with the turn's own `now` as its base;
times of day are read here. A value is then written in the format the tool's parameter takes: a day
(`2026-12-03`) or a local date-time (`2026-12-03T14:00:00`). Nothing is ever filled in: a day without
a time stays a day, and words without a date give no date.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import lru_cache

_MONTH = (
    r"(?:jan(?:uary)?|feb(?:ruary)?|mar(?:ch)?|apr(?:il)?|may|june?|july?|aug(?:ust)?|sep(?:t(?:ember)?)?"
    r"|oct(?:ober)?|nov(?:ember)?|dec(?:ember)?)\.?"
)
_WEEKDAY = r"(?:mon|tues?|wed(?:nes)?|thu(?:rs?)?|fri|sat(?:ur)?|sun)(?:day)?"
_ORDINAL = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_NUMBER_WORDS = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12,
}  # fmt: skip
_AMOUNT = r"(?:\d{1,3}|" + "|".join(_NUMBER_WORDS) + r")"

# Day phrases, longest forms first. A bare month name is only a day with a number beside it ("May 3",
# "3 May"), so "the May budget" is not one.
_DAY_FORMS = [
    r"\d{4}-\d{2}-\d{2}",
    rf"{_ORDINAL}\s+(?:of\s+)?{_MONTH}(?:,?\s+\d{{4}})?",
    rf"{_MONTH}\s+{_ORDINAL}(?:,?\s+\d{{4}})?(?![:\d])",
    rf"(?:(?:this|next|last|coming)\s+)?{_WEEKDAY}",
    r"(?:the\s+)?day\s+after\s+tomorrow|today|tonight|tomorrow|yesterday",
    rf"in\s+{_AMOUNT}\s+(?:days?|weeks?|months?)",
    rf"{_AMOUNT}\s+(?:days?|weeks?|months?)\s+(?:from\s+(?:now|today)|ago)",
    r"(?:this|next|last)\s+(?:week|month)",
]
_DAY = re.compile(r"(?<![\w-])(?:" + "|".join(_DAY_FORMS) + r")(?![\w-])", re.IGNORECASE)
_TIME = re.compile(
    r"(?<![\w:.-])(?:(?P<h>[01]?\d|2[0-3])(?::(?P<m>[0-5]\d))?\s*(?P<ap>[ap]\.?m\.?)(?!\w)"
    r"|(?P<h24>[01]?\d|2[0-3]):(?P<m24>[0-5]\d)(?::[0-5]\d)?(?![\d:])|(?P<word>noon|midday|midnight))",
    re.IGNORECASE,
)
# "from 2pm to 3pm", "2pm-3pm", "6:30 PM until 8 PM", "09:30 till 10:15".
_RANGE_JOIN = re.compile(r"^\s*(?:to|until|till|through|thru|-|–|and)\s*$", re.IGNORECASE)
# Up to this many characters of filler may sit between a day and its time ("on 3 Dec, at 2pm").
_DAY_TIME_GAP = re.compile(r"^[\s,]*(?:at|from|between|@)?\s*$", re.IGNORECASE)
# Between a time and the day after it: "2pm on Friday", "9am, 3 March".
_TIME_DAY_GAP = re.compile(r"^[\s,]*(?:on|of)?\s*$", re.IGNORECASE)
_WEEK_OR_MONTH = re.compile(r"^(this|next|last)\s+(week|month)$", re.IGNORECASE)


@dataclass(frozen=True)
class When:
    """A day or a moment the words name, at `start:end` of the text.

    `day` is always set; `at` is the time of day when the words give one. `until` is the last day of a
    stretch ("this week" → Sunday) or, with `until_at`, the end of a time range on the same day.
    """

    text: str
    start: int
    end: int
    day: date
    at: time | None = None
    until: date | None = None
    until_at: time | None = None

    def as_day(self) -> str:
        return self.day.isoformat()

    def as_moment(self) -> str:
        """A local date-time when a time was given, else the day alone (no time is made up)."""
        return datetime.combine(self.day, self.at).isoformat() if self.at else self.as_day()

    def end_day(self) -> str | None:
        return self.until.isoformat() if self.until else None

    def end_moment(self) -> str | None:
        if self.until_at is not None:
            return datetime.combine(self.until or self.day, self.until_at).isoformat()
        return self.end_day()


def find_dates(text: str, now: datetime, blanked: str | None = None) -> list[When]:
    """Every day or moment `text` names, in order, read relative to `now`.

    `blanked` is `text` with the parts that are not the person's own phrasing (paths, quoted titles,
    addresses) replaced by spaces at the same offsets; dates are only looked for outside them.
    """
    search = blanked if blanked is not None and len(blanked) == len(text) else text
    days = [(m.start(), m.end(), m.group(0)) for m in _DAY.finditer(search)]
    times = [(m.start(), m.end(), _read_time(m)) for m in _TIME.finditer(search)]
    times = [(s, e, t) for s, e, t in times if t is not None and not any(ds <= s < de for ds, de, _ in days)]
    found: list[When] = []
    used_times: set[int] = set()
    for start, end, phrase in days:
        day, last = _read_day(phrase, now)
        if day is None:
            continue
        at = until_at = None
        stop = end
        following = next(((s, e, t) for s, e, t in times if s >= end and s not in used_times), None)
        if following is not None and _DAY_TIME_GAP.match(search[end : following[0]]):
            at, stop = following[2], following[1]
            used_times.add(following[0])
            closing = next(((s, e, t) for s, e, t in times if s >= stop), None)
            if closing is not None and _RANGE_JOIN.match(search[stop : closing[0]]):
                until_at, stop = closing[2], closing[1]
                used_times.add(closing[0])
        found.append(When(text[start:stop], start, stop, day, at, last, until_at))
    # A time with no day beside it ("at 3pm") is today's, said the way people say it.
    for index, (start, end, at) in enumerate(times):
        if start in used_times:
            continue
        if any(w.start <= start < w.end for w in found):
            continue
        used_times.add(start)
        until_at, stop = None, end
        if index + 1 < len(times) and _RANGE_JOIN.match(search[end : times[index + 1][0]]):
            until_at, stop = times[index + 1][2], times[index + 1][1]
            used_times.add(times[index + 1][0])
        before = [w for w in found if w.end <= start]
        # "on 3 Dec, 2pm to 3pm" was taken above; "from 2pm to 3pm on 3 Dec" puts the day after.
        after = [w for w in found if w.start >= stop and _TIME_DAY_GAP.match(search[stop : w.start])]
        if after and after[0].at is None:
            day_when = after[0]
            found.remove(day_when)
            found.append(When(text[start : day_when.end], start, day_when.end, day_when.day, at, None, until_at))
        elif not before:
            found.append(When(text[start:stop], start, stop, now.date(), at, None, until_at))
    return sorted(found, key=lambda w: w.start)


def _read_time(match: re.Match[str]) -> time | None:
    if match.group("word"):
        return time(0, 0) if match.group("word").lower() == "midnight" else time(12, 0)
    if match.group("ap"):
        hour, minute = int(match.group("h")), int(match.group("m") or 0)
        if not 1 <= hour <= 12:
            return None
        pm = match.group("ap").lower().startswith("p")
        return time(hour % 12 + (12 if pm else 0), minute)
    return time(int(match.group("h24")), int(match.group("m24")))


def _read_day(phrase: str, now: datetime) -> tuple[date | None, date | None]:
    """The day a phrase names (and the last day, for a week or a month), relative to `now`."""
    words = " ".join(phrase.lower().split())
    stretch = _WEEK_OR_MONTH.match(words)
    if stretch is not None:
        shift = {"this": 0, "next": 1, "last": -1}[stretch.group(1)]
        today = now.date()
        if stretch.group(2) == "week":
            monday = today - timedelta(days=today.weekday()) + timedelta(weeks=shift)
            return monday, monday + timedelta(days=6)
        first = _add_months(today.replace(day=1), shift)
        return first, _add_months(first, 1) - timedelta(days=1)
    if words == "tonight":
        return now.date(), None
    words = re.sub(r"^(?:the\s+)?day after tomorrow$", "in 2 days", words)
    words = re.sub(r"^coming\s+", "next ", words)
    for word, number in _NUMBER_WORDS.items():
        words = re.sub(rf"\b{word}\b(?=\s+(?:days?|weeks?|months?)\b)", str(number), words)
    weekday = re.fullmatch(rf"(this|next|last)?\s*({_WEEKDAY})", words)
    if weekday is not None:
        return _weekday(weekday.group(1) or "", weekday.group(2), now.date()), None
    parsed = _parse(words, now.replace(microsecond=0).isoformat())
    return (parsed.date() if parsed else None), None


def _weekday(which: str, name: str, today: date) -> date:
    """A weekday: "Friday" and "this Friday" are the first Friday from today (today itself if it is one); "next
    Friday" the first after today; "last Friday" the last before today."""
    target = next(i for i, day in enumerate(("mo", "tu", "we", "th", "fr", "sa", "su")) if name.startswith(day))
    ahead = (target - today.weekday()) % 7
    if which == "last":
        return today - timedelta(days=(today.weekday() - target) % 7 or 7)
    if which == "next":
        return today + timedelta(days=ahead or 7)
    return today + timedelta(days=ahead)


def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    return day.replace(year=index // 12, month=index % 12 + 1)


@lru_cache(maxsize=512)
def _parse(words: str, now_iso: str) -> datetime | None:
    import dateparser  # a second to load its language data; only on the first date read

    settings = {
        "RELATIVE_BASE": datetime.fromisoformat(now_iso),
        "PREFER_DATES_FROM": "current_period",
        "RETURN_AS_TIMEZONE_AWARE": False,
        "PREFER_DAY_OF_MONTH": "first",
    }
    return dateparser.parse(words, languages=["en"], settings=settings)  # type: ignore[arg-type]
