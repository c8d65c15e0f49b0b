"""The `calendar` MCP server: events and focus blocks in a local calendar, and the free time between them.

Events live in SQLite at `<state_dir>/calendar.db`, times stored in UTC and shown in the machine's local
time with its UTC offset. A time given without an offset means local time. Free time is computed from
the stored events within working hours (`SWITCHBOARD_WORKDAY_START` / `SWITCHBOARD_WORKDAY_END`,
09:00 to 17:00 by default). No tool of the contract takes a file, so `.ics` files are read and written
by the module functions `import_ics` and `export_ics`. The `task` server reads the same database for
its daily briefing. Run over stdio with `python -m services.toolhost.servers.calendar`; logs go to
stderr.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Literal

import icalendar
from dateutil.parser import isoparser
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    Trash,
    UndoAction,
    closest_choice,
    existing_file,
    report_expected_failures,
    serve,
    sha256_of,
    sqlite_transaction,
    tool,
    write_atomically,
)
from services.toolhost.settings import ToolHostSettings

log = logging.getLogger("services.toolhost.servers.calendar")  # not "__main__" under `python -m`

SERVER_NAME = "calendar"
DB_NAME = "calendar.db"
DEFAULT_CALENDAR = "default"
MAX_EVENTS = 500
# Blocks start on a five-minute mark: "14:05" reads better than "14:03:27" when today is clipped to now.
SLOT_GRANULARITY = timedelta(minutes=5)
NOON = time(12, 0)
EVENING_END = time(22, 0)

DATE_FORMATS = (
    "Use ISO 8601: 2024-05-03 for a day, 2024-05-03T14:30 for a local time, or 2024-05-03T14:30:00+02:00 "
    "(or ...T12:30:00Z) with a UTC offset; the words today, tomorrow and yesterday also work."
)

EventKind = Literal["event", "time_block"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    calendar TEXT NOT NULL,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    start_utc TEXT NOT NULL,
    end_utc TEXT NOT NULL,
    all_day INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'event',
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_start ON events (start_utc);
"""

_ISO = isoparser()
_RELATIVE_DAYS = {"today": 0, "tomorrow": 1, "yesterday": -1}
_CLOCK = re.compile(r"^(\d{1,2})(?::(\d{2}))?\s*([ap]\.?m\.?)?$", re.IGNORECASE)


# Dates and times, shared with the task server.


@dataclass(frozen=True)
class When:
    """A parsed date or date-time: `moment` is timezone-aware; `date_only` when no time of day was given."""

    moment: datetime
    date_only: bool

    @property
    def day(self) -> date:
        """The local calendar day of the moment."""
        return self.moment.astimezone().date()

    @property
    def until(self) -> datetime:
        """As the end of a range: a date means up to the end of that day (the next local midnight)."""
        # Not moment + 24 hours: a day when the clocks change is 23 or 25 hours long.
        return local_midnight(self.day + timedelta(days=1)) if self.date_only else self.moment


def parse_when(raw: str, what: str, parameter: str | None = None) -> When:
    """Read an ISO 8601 date or date-time (or today/tomorrow/yesterday); a tool error says what is accepted.

    A date-time without an offset is local time; a date alone is local midnight of that day. `what`
    names the value in the message; `parameter`, the argument that carried it (`what` unless given).
    """
    text = raw.strip()
    if text.lower() in _RELATIVE_DAYS:
        return When(local_midnight(date.today() + timedelta(days=_RELATIVE_DAYS[text.lower()])), True)
    # Year or year-month alone parse as the 1st of it, which would silently pick a day nobody asked for.
    if re.fullmatch(r"\d{4}(-?\d{2})?", text):
        raise ToolError(
            f"{what}: {raw!r} is not a full date. {DATE_FORMATS}",
            correction=Correction(f"{raw!r} is not a full date", parameter=parameter or what),
        )
    try:
        day: date | None = _ISO.parse_isodate(text)
    except ValueError:
        day = None
    try:
        moment = _ISO.isoparse(text) if day is None else None
    except ValueError as exc:
        raise ToolError(
            f"{what}: {raw!r} is not a date or time I can read. {DATE_FORMATS}",
            correction=Correction(f"{raw!r} is not an ISO 8601 date or time", parameter=parameter or what),
        ) from exc
    try:
        if day is not None:
            return When(local_midnight(day), True)
        assert moment is not None
        return When(moment if moment.tzinfo is not None else moment.astimezone(), False)
    except (ValueError, OverflowError) as exc:  # local time at the very edge of year 1 or 9999
        raise ToolError(
            f"{what}: {raw!r} is too close to the first or last day a date can have; give a date between "
            "the years 2 and 9998.",
            correction=Correction(f"{raw!r} is out of range", parameter=parameter or what),
        ) from exc


def local_midnight(day: date) -> datetime:
    """The start of `day` in local time (timezone-aware, so DST days come out right)."""
    return datetime.combine(day, time()).astimezone()


def local_iso(moment: datetime) -> str:
    """A moment as ISO 8601 in local time with its UTC offset."""
    return moment.astimezone().isoformat(timespec="seconds")


def _utc(moment: datetime) -> str:
    # One fixed format in UTC, so the stored strings sort and compare like the moments they hold.
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def _from_utc(stored: str) -> datetime:
    return datetime.fromisoformat(stored)


# Storage


class Event(BaseModel):
    """One calendar entry."""

    event_id: str
    title: str
    start: str = Field(description="Local time, ISO 8601 with UTC offset.")
    end: str = Field(description="Local time, ISO 8601 with UTC offset; the event ends at this moment.")
    all_day: bool = Field(description="True for whole-day events; start and end are then local midnights.")
    calendar: str
    description: str
    kind: EventKind = Field(description="time_block for focus blocks made by create_time_block, else event.")


@dataclass(frozen=True)
class StoredEvent:
    """An event as the database holds it, with real datetimes for computing."""

    event_id: str
    calendar: str
    title: str
    description: str
    start: datetime
    end: datetime
    all_day: bool
    kind: EventKind

    def to_model(self) -> Event:
        return Event(
            event_id=self.event_id,
            title=self.title,
            start=local_iso(self.start),
            end=local_iso(self.end),
            all_day=self.all_day,
            calendar=self.calendar,
            description=self.description,
            kind=self.kind,
        )


class CalendarStore:
    """The events table in one SQLite file, created with its schema on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction: committed when the block ends, rolled back on error."""
        with sqlite_transaction(self.path, _SCHEMA) as conn:
            yield conn

    def between(self, start: datetime, end: datetime, calendar: str | None = None) -> list[StoredEvent]:
        """Events that overlap [start, end), by start time; an instant counts if it lies inside."""
        query = "SELECT * FROM events WHERE start_utc < ? AND (end_utc > ? OR start_utc >= ?)"
        args: list[str] = [_utc(end), _utc(start), _utc(start)]
        if calendar is not None:
            query += " AND calendar = ? COLLATE NOCASE"
            args.append(calendar)
        with self.connect() as conn:
            rows = conn.execute(query + " ORDER BY start_utc, end_utc, title", args).fetchall()
        return [_row_to_event(row) for row in rows]

    def calendars(self) -> list[str]:
        with self.connect() as conn:
            return [row[0] for row in conn.execute("SELECT DISTINCT calendar FROM events ORDER BY calendar")]

    def add(self, event: StoredEvent) -> bool:
        """Insert, or replace the event with the same id; True when it was new."""
        with self.connect() as conn:
            existed = conn.execute("SELECT 1 FROM events WHERE event_id = ?", (event.event_id,)).fetchone()
            conn.execute(
                "INSERT OR REPLACE INTO events (event_id, calendar, title, description, start_utc, end_utc, "
                "all_day, kind, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.event_id,
                    event.calendar,
                    event.title,
                    event.description,
                    _utc(event.start),
                    _utc(event.end),
                    int(event.all_day),
                    event.kind,
                    datetime.now(UTC).isoformat(timespec="seconds"),
                ),
            )
        return existed is None


def _row_to_event(row: sqlite3.Row) -> StoredEvent:
    return StoredEvent(
        event_id=row["event_id"],
        calendar=row["calendar"],
        title=row["title"],
        description=row["description"],
        start=_from_utc(row["start_utc"]),
        end=_from_utc(row["end_utc"]),
        all_day=bool(row["all_day"]),
        kind=row["kind"],
    )


def calendar_db(settings: ToolHostSettings) -> Path:
    """Where the calendar's events are stored."""
    return settings.state_dir / DB_NAME


class CalendarSettings(BaseSettings):
    """Working hours, which bound the free time find_free_slots and create_time_block look in."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore", frozen=True)

    workday_start: time = Field(time(9, 0), description="When the working day starts (local time, HH:MM).")
    workday_end: time = Field(time(17, 0), description="When the working day ends (local time, HH:MM).")

    @model_validator(mode="after")
    def _ordered(self) -> CalendarSettings:
        if self.workday_end <= self.workday_start:
            raise ValueError("SWITCHBOARD_WORKDAY_END must be later than SWITCHBOARD_WORKDAY_START")
        return self


# Free time


def free_slots(
    busy: list[tuple[datetime, datetime]], window_start: datetime, window_end: datetime, minimum: timedelta
) -> list[tuple[datetime, datetime]]:
    """The gaps of at least `minimum` inside [window_start, window_end) that no busy interval covers."""
    slots: list[tuple[datetime, datetime]] = []
    cursor = window_start
    for busy_start, busy_end in sorted(busy):
        if busy_end <= cursor:
            continue
        if busy_start >= window_end:
            break
        if busy_start - cursor >= minimum:
            slots.append((cursor, busy_start))
        cursor = max(cursor, busy_end)
    if window_end - cursor >= minimum:
        slots.append((cursor, window_end))
    return slots


def _round_up(moment: datetime, step: timedelta) -> datetime:
    base = moment.replace(minute=0, second=0, microsecond=0)
    steps = -(-(moment - base) // step)  # ceiling division
    return base + steps * step


class TimeSlot(BaseModel):
    """A stretch of free time."""

    start: str = Field(description="Local time, ISO 8601 with UTC offset.")
    end: str
    duration_minutes: int


def _slot(start: datetime, end: datetime) -> TimeSlot:
    return TimeSlot(
        start=local_iso(start), end=local_iso(end), duration_minutes=int((end - start).total_seconds() // 60)
    )


# Results


class EventList(BaseModel):
    start: str = Field(description="Start of the range searched (local time).")
    end: str = Field(description="End of the range searched, exclusive (local time).")
    calendar: str | None = Field(description="The calendar listed; null means all calendars.")
    events: list[Event]
    truncated: bool = Field(description="True when more events matched than were returned.")
    note: str | None = None


class CreatedEvent(BaseModel):
    event_id: str
    event: Event
    conflicts: list[Event] = Field(description="Existing events that overlap the new one.")


class FreeSlots(BaseModel):
    date: str
    working_hours: str = Field(description='The hours searched, like "09:00-17:00" (local time).')
    min_duration_minutes: int
    slots: list[TimeSlot]
    busy: list[Event] = Field(description="The events that take up time during the working hours.")
    all_day: list[Event] = Field(description="All-day events of the day; like markers, they do not block time.")
    note: str | None = None


class CreatedTimeBlock(BaseModel):
    event_id: str
    scheduled_at: str = Field(description="Start of the block, local time ISO 8601.")
    end: str
    event: Event


class ImportReport(BaseModel):
    """What `import_ics` did."""

    path: str
    calendar: str
    imported: int = Field(description="New events added.")
    updated: int = Field(description="Events replaced because an event with the same UID was already stored.")
    warnings: list[str]


class ExportReport(BaseModel):
    """What `export_ics` wrote."""

    path: str
    events: int
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


# The server


def build_server(settings: ToolHostSettings, hours: CalendarSettings | None = None) -> MCPServer:
    """The calendar server, storing events in `<state_dir>/calendar.db`."""
    store = CalendarStore(calendar_db(settings))
    workday = hours if hours is not None else CalendarSettings()
    working_hours = _hours_label(workday.workday_start, workday.workday_end)
    server = MCPServer(
        SERVER_NAME,
        instructions=(
            "A local calendar: list events, add events and focus blocks, find free time. Times are local "
            f"unless they carry a UTC offset. Working hours: {working_hours}."
        ),
    )

    @tool(server, Effects.reads())
    def list_events(
        start_date: Annotated[
            str, Field(description="First day or moment to include, ISO 8601, e.g. 2024-05-03 or 2024-05-03T08:00.")
        ],
        end_date: Annotated[
            str,
            Field(description="Last day to include (a date counts whole), or an exclusive end time, ISO 8601."),
        ],
        calendar: Annotated[
            str | None, Field(description="Only this calendar, by name. Omit to list every calendar.")
        ] = None,
    ) -> EventList:
        """List the calendar's events between two dates, earliest first, with their times and ids.

        For one day, give the same date twice. To see when someone is free, use calendar.find_free_slots
        instead; for tasks and deadlines use task.list_tasks.
        """
        start = parse_when(start_date, "start_date")
        end = parse_when(end_date, "end_date")
        end_moment = end.until
        if end_moment <= start.moment:
            raise ToolError(
                f"end_date {end_date!r} is before start_date {start_date!r}. Give the earlier date as start_date.",
                correction=Correction("end_date is before start_date", parameter="end_date"),
            )
        known = store.calendars()
        if calendar is not None and known and calendar.casefold() not in {c.casefold() for c in known}:
            raise ToolError(
                f"There is no calendar named {calendar!r}. Calendars: {', '.join(known)}. Omit calendar to list all.",
                correction=Correction(
                    f"no calendar named {calendar!r}",
                    parameter="calendar",
                    suggested_value=closest_choice(calendar, known),
                ),
            )
        found = store.between(start.moment, end_moment, calendar)
        note = None
        if len(found) > MAX_EVENTS:
            note = f"Only the first {MAX_EVENTS} events are shown; ask for a shorter range."
        elif not found:
            note = "No events in this range."
        return EventList(
            start=local_iso(start.moment),
            end=local_iso(end_moment),
            calendar=calendar,
            events=[e.to_model() for e in found[:MAX_EVENTS]],
            truncated=len(found) > MAX_EVENTS,
            note=note,
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=False,
            idempotent=False,
            preview="Add “{title}” to the calendar[ {calendar}], {start} to {end}",
        ),
    )
    def create_event(
        title: Annotated[str, Field(description="What the event is, e.g. 'Dentist' or 'Team meeting'.")],
        start: Annotated[
            str,
            Field(description="When it starts, ISO 8601: 2024-05-03T14:00 (local time), or 2024-05-03 for all day."),
        ],
        end: Annotated[
            str,
            Field(description="When it ends, ISO 8601, after start. For an all-day event, the last day: 2024-05-03."),
        ],
        description: Annotated[str | None, Field(description="Notes, place or agenda of the event.")] = None,
        calendar: Annotated[
            str | None, Field(description=f"Calendar to put it in; omit for '{DEFAULT_CALENDAR}'.")
        ] = None,
    ) -> CreatedEvent:
        """Add an event with a fixed start and end time to the calendar (appointments, meetings, trips).

        Overlapping events are allowed and reported. To reserve focus time wherever the day is free,
        use calendar.create_time_block; for a to-do with a deadline use task.create_task.
        """
        if not title.strip():
            raise ToolError(
                "title is empty. Give the event a short name, e.g. 'Dentist'.",
                correction=Correction("title is empty", parameter="title"),
            )
        first = parse_when(start, "start")
        last = parse_when(end, "end")
        if first.date_only != last.date_only:
            raise ToolError(
                "Give start and end both as dates (an all-day event, e.g. 2024-05-03) or both as date-times "
                f"(e.g. 2024-05-03T14:00); got start {start!r} and end {end!r}.",
                correction=Correction("start and end are not both dates or both date-times", parameter="end"),
            )
        # An all-day event's end date is its last day, so it runs until the midnight after it.
        end_moment = last.until
        if end_moment <= first.moment:
            raise ToolError(
                f"end {end!r} is not after start {start!r}. The event must end after it starts.",
                correction=Correction("end is not after start", parameter="end"),
            )
        event = StoredEvent(
            event_id=str(uuid.uuid4()),
            calendar=(calendar or "").strip() or DEFAULT_CALENDAR,
            title=title.strip(),
            description=description or "",
            start=first.moment,
            end=end_moment,
            all_day=first.date_only,
            kind="event",
        )
        conflicts = store.between(event.start, event.end)
        store.add(event)
        log.info("created event %s %r", event.event_id, event.title)
        return CreatedEvent(
            event_id=event.event_id, event=event.to_model(), conflicts=[c.to_model() for c in conflicts]
        )

    @tool(server, Effects.reads())
    def find_free_slots(
        date: Annotated[str, Field(description="The day to look at, ISO 8601, e.g. 2024-05-03, or 'today'.")],
        min_duration_minutes: Annotated[
            int, Field(ge=1, le=24 * 60, description="Shortest gap worth returning, in minutes.")
        ] = 30,
    ) -> FreeSlots:
        """Find the free gaps in one day's working hours, given the events already on the calendar.

        Only looks; it books nothing. To book focus time in a free gap, use calendar.create_time_block;
        to see the events themselves, use calendar.list_events.
        """
        day = parse_when(date, "date").day
        window_start = _at(day, workday.workday_start)
        window_end = _at(day, workday.workday_end)
        that_day = store.between(window_start, window_end)
        busy = [e for e in that_day if _blocks_time(e)]
        note = None
        now = datetime.now().astimezone()
        if window_start < now:
            window_start = min(_round_up(now, SLOT_GRANULARITY), window_end)
            note = (
                "The working day is over; try a later date."
                if window_start >= window_end
                else "Time already past is not offered."
            )
        gaps = free_slots(
            [(e.start, e.end) for e in busy], window_start, window_end, timedelta(minutes=min_duration_minutes)
        )
        if not gaps and note is None:
            note = f"No free gap of {min_duration_minutes} minutes or more; try a shorter duration or another day."
        return FreeSlots(
            date=day.isoformat(),
            working_hours=working_hours,
            min_duration_minutes=min_duration_minutes,
            slots=[_slot(s, e) for s, e in gaps],
            busy=[e.to_model() for e in busy],
            all_day=[e.to_model() for e in that_day if e.all_day],
            note=note,
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=False,
            idempotent=False,
            preview="Block {duration_minutes} minutes on {date} for “{title}”",
        ),
    )
    def create_time_block(
        title: Annotated[str, Field(description="What the block is for, e.g. 'Write report'.")],
        date: Annotated[str, Field(description="The day, ISO 8601, e.g. 2024-05-03, or 'today' / 'tomorrow'.")],
        duration_minutes: Annotated[int, Field(ge=5, le=16 * 60, description="Length of the block in minutes.")],
        preferred_time: Annotated[
            str | None,
            Field(description="morning, afternoon or evening, or a start time like 14:00. Omit for any free time."),
        ] = None,
    ) -> CreatedTimeBlock:
        """Book a focus block of a given length into the first free gap of a day, so the time stays free.

        Picks the earliest gap that fits (in the preferred part of the day). For an event with a
        fixed time use calendar.create_event; to just look at free time use calendar.find_free_slots.
        """
        if not title.strip():
            raise ToolError(
                "title is empty. Say what the block is for, e.g. 'Write report'.",
                correction=Correction("title is empty", parameter="title"),
            )
        when = parse_when(date, "date")
        day = when.day
        length = timedelta(minutes=duration_minutes)
        exact: datetime | None = None if when.date_only else when.moment
        window_start, window_end, label = (
            _at(day, workday.workday_start),
            _at(day, workday.workday_end),
            "working hours",
        )
        if preferred_time is not None and preferred_time.strip():
            choice = preferred_time.strip().lower()
            parts = {
                "morning": (workday.workday_start, NOON),
                "afternoon": (max(NOON, workday.workday_start), workday.workday_end),
                "evening": (workday.workday_end, max(EVENING_END, workday.workday_end)),
            }
            if choice in parts:
                exact = None
                window_start, window_end = _at(day, parts[choice][0]), _at(day, parts[choice][1])
                label = f"the {choice} ({_hours_label(*parts[choice])})"
            else:
                exact = _at(day, _clock_time(preferred_time))
        now = datetime.now().astimezone()
        if exact is not None:
            if exact < now:
                raise ToolError(
                    f"{local_iso(exact)} has already passed. Choose a later time or another day.",
                    correction=Correction(f"{local_iso(exact)} has already passed", parameter="preferred_time"),
                )
            clashes = [e for e in store.between(exact, exact + length) if _blocks_time(e)]
            if clashes:
                names = "; ".join(f"{e.title} ({local_iso(e.start)} to {local_iso(e.end)})" for e in clashes)
                raise ToolError(
                    f"{local_iso(exact)} is not free for {duration_minutes} minutes: {names}. Omit the time to take "
                    "the first free gap, or use calendar.find_free_slots to see free times.",
                    correction=Correction(f"{local_iso(exact)} is not free", parameter="preferred_time"),
                )
            start_at = exact
        else:
            window_start = max(window_start, min(_round_up(now, SLOT_GRANULARITY), window_end))
            busy = [(e.start, e.end) for e in store.between(window_start, window_end) if _blocks_time(e)]
            gaps = free_slots(busy, window_start, window_end, length) if window_start < window_end else []
            if not gaps:
                raise ToolError(
                    f"No free gap of {duration_minutes} minutes in {label} on {day.isoformat()}. Try another "
                    "part of the day, a shorter block or another date; calendar.find_free_slots shows free times."
                )
            start_at = gaps[0][0]
        block = StoredEvent(
            event_id=str(uuid.uuid4()),
            calendar=DEFAULT_CALENDAR,
            title=title.strip(),
            description="Focus time block",
            start=start_at,
            end=start_at + length,
            all_day=False,
            kind="time_block",
        )
        store.add(block)
        log.info("created time block %s %r at %s", block.event_id, block.title, block.start)
        model = block.to_model()
        return CreatedTimeBlock(event_id=block.event_id, scheduled_at=model.start, end=model.end, event=model)

    return server


def _blocks_time(event: StoredEvent) -> bool:
    # All-day entries (birthdays, holidays, "office closed") are markers, as most calendars treat them;
    # an instant takes no time.
    return not event.all_day and event.end > event.start


def _at(day: date, clock: time) -> datetime:
    return datetime.combine(day, clock).astimezone()


def _hours_label(start: time, end: time) -> str:
    return f"{start:%H:%M}-{end:%H:%M}"


def _clock_time(raw: str) -> time:
    """A time of day from "14:00", "9", "2pm" or "9:30 am"; a tool error otherwise."""
    match = _CLOCK.match(raw.strip())
    hour = int(match.group(1)) if match else -1
    minute = int(match.group(2) or 0) if match else -1
    if match and match.group(3):
        if not 1 <= hour <= 12:
            hour = -1
        else:
            hour = hour % 12 + (12 if match.group(3).lower().startswith("p") else 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise ToolError(
            f"preferred_time {raw!r} is not understood. Use morning, afternoon or evening, or a time like 14:00.",
            correction=Correction(
                f"preferred_time {raw!r} is not understood",
                parameter="preferred_time",
                suggested_value=closest_choice(raw, ("morning", "afternoon", "evening")),
            ),
        )
    return time(hour, minute)


# .ics files


@report_expected_failures
def import_ics(settings: ToolHostSettings, path: str, calendar: str | None = None) -> ImportReport:
    """Add the events of an iCalendar (.ics) file inside the allowed folders to the calendar.

    Events keep their UID as event id, so importing the same file again updates them instead of
    doubling them. The calendar name is `calendar`, else the file's X-WR-CALNAME, else the file name.
    A recurring event is stored once, at its first occurrence, and a warning says so.
    """
    source = existing_file(settings.sandbox().resolve(path), path)
    try:
        parsed = icalendar.Calendar.from_ical(source.read_bytes())
    except ValueError as exc:
        raise ToolError(f"{source} is not a valid iCalendar (.ics) file: {exc}") from exc
    name = (calendar or str(parsed.get("X-WR-CALNAME") or "") or source.stem).strip()
    store = CalendarStore(calendar_db(settings))
    imported = updated = 0
    warnings: list[str] = []
    for component in parsed.walk("VEVENT"):
        if not isinstance(component, icalendar.Event):
            continue  # the parser makes every VEVENT an Event; this narrows the type
        title = str(component.get("SUMMARY") or "").strip() or "(no title)"
        try:
            first, last = component.start, component.end
        except icalendar.IncompleteComponent:
            warnings.append(f"Skipped {title!r}: it has no start (DTSTART).")
            continue
        all_day = not isinstance(first, datetime)
        start = _ics_moment(first)
        end = _ics_moment(last)
        if end < start:
            warnings.append(f"Skipped {title!r}: it ends before it starts.")
            continue
        if component.get("RRULE") is not None:
            warnings.append(f"{title!r} repeats; only its first occurrence ({local_iso(start)}) was imported.")
        event = StoredEvent(
            event_id=str(component.get("UID") or uuid.uuid4()),
            calendar=name,
            title=title,
            description=str(component.get("DESCRIPTION") or ""),
            start=start,
            end=end,
            all_day=all_day,
            kind="event",
        )
        if store.add(event):
            imported += 1
        else:
            updated += 1
    log.info("imported %d events (%d updated) from %s", imported, updated, source)
    return ImportReport(path=str(source), calendar=name, imported=imported, updated=updated, warnings=warnings)


@report_expected_failures
def export_ics(
    settings: ToolHostSettings,
    path: str,
    start_date: str | None = None,
    end_date: str | None = None,
    calendar: str | None = None,
) -> ExportReport:
    """Write the calendar's events (optionally a date range or one calendar) to an .ics file.

    A file already at `path` is kept in the trash first, and the returned undo restores it.
    """
    target = settings.sandbox().resolve(path)
    if target.is_dir():
        raise ToolError(f"{target} is a folder. Give a file path inside it, e.g. {target / 'calendar.ics'}.")
    start = parse_when(start_date, "start_date").moment if start_date else datetime(1, 1, 2, tzinfo=UTC)
    if end_date:
        last = parse_when(end_date, "end_date")
        end = last.until
    else:
        end = datetime(9999, 12, 30, tzinfo=UTC)
    events = CalendarStore(calendar_db(settings)).between(start, end, calendar)
    document = icalendar.Calendar()
    document.add("prodid", "-//Switchboard//calendar//EN")
    document.add("version", "2.0")
    if calendar:
        document.add("x-wr-calname", calendar)
    for stored in events:
        entry = icalendar.Event()
        entry.add("uid", stored.event_id)
        entry.add("summary", stored.title)
        entry.add("dtstamp", datetime.now(UTC))
        if stored.all_day:
            entry.add("dtstart", stored.start.astimezone().date())
            entry.add("dtend", stored.end.astimezone().date())
        else:
            entry.add("dtstart", stored.start.astimezone(UTC))
            entry.add("dtend", stored.end.astimezone(UTC))
        if stored.description:
            entry.add("description", stored.description)
        if stored.calendar:
            entry.add("categories", [stored.calendar])
        document.add_component(entry)
    undo: UndoAction | None = None
    if target.exists():
        kept = Trash(settings.trash_dir).keep(target, move=False, reason="overwritten by calendar export_ics")
        undo = UndoAction(kind="restore_trash", path=str(target), trash_id=kept.trash_id, replace=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(target, document.to_ical())
    if undo is None:
        undo = UndoAction(kind="remove_created", path=str(target), sha256=sha256_of(target))
    log.info("exported %d events to %s", len(events), target)
    return ExportReport(path=str(target), events=len(events), undo=[undo])


def _ics_moment(value: date | datetime) -> datetime:
    """An iCalendar DATE (local midnight) or DATE-TIME (floating means local) as an aware datetime."""
    if not isinstance(value, datetime):
        return local_midnight(value)
    return value if value.tzinfo is not None else value.astimezone()


def main() -> None:
    """Serve the calendar tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
