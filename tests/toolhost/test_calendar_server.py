"""The calendar MCP server, called through the SDK's in-memory client on a real SQLite calendar."""

from __future__ import annotations

import functools
import os
import sqlite3
import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from datetime import time as clock
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import icalendar
import pytest
from mcp import Client
from mcp.server.mcpserver.exceptions import ToolError

from services.toolhost.servers import META_DESTRUCTIVE
from services.toolhost.servers.calendar import (
    CalendarSettings,
    build_server,
    export_ics,
    free_slots,
    import_ics,
    parse_when,
)
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, connected, ok, refused, stdio_parameters

DAY = "2030-05-06"  # a Monday, safely in the future


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute).astimezone()


def at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@pytest.fixture
def berlin() -> Iterator[None]:
    """The process runs in Europe/Berlin, whose clocks jump forward on 2030-03-31."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "Europe/Berlin"
    time.tzset()
    yield
    if before is None:
        del os.environ["TZ"]
    else:
        os.environ["TZ"] = before
    time.tzset()


async def add(settings: ToolHostSettings, title: str, start: str, end: str, **extra: str) -> dict[str, Any]:
    return await ok(build_server, settings, "create_event", title=title, start=start, end=end, **extra)


async def a_busy_day(settings: ToolHostSettings) -> None:
    await add(settings, "Standup", f"{DAY}T09:00", f"{DAY}T09:30")
    await add(settings, "Lunch", f"{DAY}T12:00", f"{DAY}T13:00", calendar="personal")
    await add(settings, "Review", f"{DAY}T16:45", f"{DAY}T17:30", description="Quarterly numbers")


# tools/list


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "calendar")
    async with connected(build_server, settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name, tool in tools.items():
        assert tool.meta is not None and tool.meta[META_DESTRUCTIVE] is False, name
        assert tool.annotations is not None and tool.annotations.destructive_hint is False, name
        assert tool.annotations.read_only_hint is (name in {"list_events", "find_free_slots"}), name
    assert tools["find_free_slots"].input_schema["properties"]["min_duration_minutes"]["default"] == 30


# dates


def test_parse_when_accepts_iso_8601_and_relative_days() -> None:
    assert parse_when("2030-05-06", "x").date_only and parse_when("2030-05-06", "x").moment == local(2030, 5, 6)
    assert parse_when("20300506", "x").day == date(2030, 5, 6)
    naive = parse_when("2030-05-06T14:30", "x")
    assert not naive.date_only and naive.moment == local(2030, 5, 6, 14, 30)
    assert parse_when("2030-05-06T12:30:00Z", "x").moment == at("2030-05-06T12:30:00+00:00")
    assert parse_when("2030-05-06 14:30+02:00", "x").moment == at("2030-05-06T12:30:00+00:00")
    assert parse_when(" Tomorrow ", "x").day == date.today() + timedelta(days=1)
    for bad in ("next friday", "2030-05", "2030", "06/05/2030", "2030-02-30", ""):
        with pytest.raises(ToolError, match="ISO 8601"):
            parse_when(bad, "start")


def test_free_slots_merges_overlapping_busy_time() -> None:
    busy = [
        (local(2030, 5, 6, 10), local(2030, 5, 6, 11)),
        (local(2030, 5, 6, 10, 30), local(2030, 5, 6, 12)),
        (local(2030, 5, 6, 8), local(2030, 5, 6, 9, 15)),
    ]
    slots = free_slots(busy, local(2030, 5, 6, 9), local(2030, 5, 6, 17), timedelta(minutes=30))
    assert slots == [(local(2030, 5, 6, 9, 15), local(2030, 5, 6, 10)), (local(2030, 5, 6, 12), local(2030, 5, 6, 17))]
    assert free_slots(busy, local(2030, 5, 6, 9), local(2030, 5, 6, 17), timedelta(minutes=50)) == [slots[1]]


# create_event and list_events


async def test_create_event_and_list_events(settings: ToolHostSettings) -> None:
    created = await add(settings, "Dentist", f"{DAY}T14:00", f"{DAY}T15:00", description="Bring the card")
    event = created["event"]
    assert created["event_id"] == event["event_id"] and created["conflicts"] == []
    assert at(event["start"]) == local(2030, 5, 6, 14) and at(event["end"]) == local(2030, 5, 6, 15)
    assert event["calendar"] == "default" and event["kind"] == "event" and event["all_day"] is False
    await a_busy_day(settings)
    listing = await ok(build_server, settings, "list_events", start_date=DAY, end_date=DAY)
    assert [e["title"] for e in listing["events"]] == ["Standup", "Lunch", "Dentist", "Review"]
    assert listing["truncated"] is False and at(listing["end"]) == local(2030, 5, 7)
    assert listing["events"][3]["description"] == "Quarterly numbers"
    personal = await ok(build_server, settings, "list_events", start_date=DAY, end_date=DAY, calendar="Personal")
    assert [e["title"] for e in personal["events"]] == ["Lunch"]
    afternoon = await ok(build_server, settings, "list_events", start_date=f"{DAY}T13:00", end_date=f"{DAY}T16:50")
    assert [e["title"] for e in afternoon["events"]] == ["Dentist", "Review"]
    empty = await ok(build_server, settings, "list_events", start_date="2030-05-07", end_date="2030-05-08")
    assert empty["events"] == [] and empty["note"] == "No events in this range."


async def test_list_events_errors(settings: ToolHostSettings) -> None:
    await a_busy_day(settings)
    text = await refused(build_server, settings, "list_events", start_date=DAY, end_date=DAY, calendar="work")
    assert "no calendar named 'work'" in text and "default, personal" in text
    text = await refused(build_server, settings, "list_events", start_date="2030-05-07", end_date=DAY)
    assert "before start_date" in text
    text = await refused(build_server, settings, "list_events", start_date="next monday", end_date=DAY)
    assert "start_date" in text and "ISO 8601" in text


async def test_an_event_given_with_an_offset_is_stored_as_that_moment(settings: ToolHostSettings) -> None:
    created = await add(settings, "Call NYC", "2030-05-06T14:00:00-04:00", "2030-05-06T18:30:00Z")
    event = created["event"]
    assert at(event["start"]) == at("2030-05-06T18:00:00+00:00") and at(event["end"]) == at("2030-05-06T18:30:00Z")
    assert at(event["start"]).utcoffset() == local(2030, 5, 6).utcoffset()  # shown in local time


async def test_all_day_events_cover_whole_days(settings: ToolHostSettings) -> None:
    one = await add(settings, "Holiday", "2030-05-07", "2030-05-07")
    event = one["event"]
    assert event["all_day"] is True
    assert at(event["start"]) == local(2030, 5, 7) and at(event["end"]) == local(2030, 5, 8)
    await add(settings, "Conference", "2030-05-08", "2030-05-09")
    on_8th = await ok(build_server, settings, "list_events", start_date="2030-05-08", end_date="2030-05-08")
    assert [e["title"] for e in on_8th["events"]] == ["Conference"]
    on_10th = await ok(build_server, settings, "list_events", start_date="2030-05-10", end_date="2030-05-10")
    assert on_10th["events"] == []


async def test_create_event_reports_conflicts(settings: ToolHostSettings) -> None:
    await a_busy_day(settings)
    created = await add(settings, "Overlap", f"{DAY}T12:30", f"{DAY}T17:00")
    assert [c["title"] for c in created["conflicts"]] == ["Lunch", "Review"]
    touching = await add(settings, "Right after", f"{DAY}T09:30", f"{DAY}T10:00")
    assert touching["conflicts"] == []


async def test_create_event_refuses_bad_times(settings: ToolHostSettings) -> None:
    cases = [
        ({"start": f"{DAY}T10:00", "end": f"{DAY}T09:00"}, "not after start"),
        ({"start": f"{DAY}T10:00", "end": f"{DAY}T10:00"}, "not after start"),
        ({"start": DAY, "end": f"{DAY}T10:00"}, "both as dates"),
        ({"start": "tomorrow at 3", "end": f"{DAY}T10:00"}, "ISO 8601"),
        ({"start": "2030-05", "end": "2030-06"}, "not a full date"),
        ({"start": "2030-02-29T10:00", "end": "2030-02-29T11:00"}, "ISO 8601"),
    ]
    for times, expected in cases:
        text = await refused(build_server, settings, "create_event", title="x", **times)
        assert expected in text, (times, text)
    assert "title is empty" in await refused(
        build_server, settings, "create_event", title=" ", start=f"{DAY}T09:00", end=f"{DAY}T10:00"
    )
    listing = await ok(build_server, settings, "list_events", start_date="2030-01-01", end_date="2030-12-31")
    assert listing["events"] == []


async def test_daylight_saving_day(settings: ToolHostSettings, berlin: None) -> None:
    created = await add(settings, "Clocks change", "2030-03-31", "2030-03-31")
    event = created["event"]
    assert event["start"] == "2030-03-31T00:00:00+01:00" and event["end"] == "2030-04-01T00:00:00+02:00"
    created = await add(settings, "Early", "2030-03-31T01:30", "2030-03-31T03:30")
    event = created["event"]
    assert at(event["end"]) - at(event["start"]) == timedelta(hours=1)  # 02:00-03:00 does not exist that night


# find_free_slots


async def test_find_free_slots_between_events(settings: ToolHostSettings) -> None:
    await a_busy_day(settings)
    # An overnight event from the day before blocks the early morning; an all-day event blocks nothing.
    await add(settings, "Night shift", "2030-05-05T22:00", f"{DAY}T09:15")
    await add(settings, "Mum's birthday", DAY, DAY)
    free = await ok(build_server, settings, "find_free_slots", date=DAY)
    assert free["working_hours"] == "09:00-17:00" and free["min_duration_minutes"] == 30
    assert [(at(s["start"]), at(s["end"]), s["duration_minutes"]) for s in free["slots"]] == [
        (local(2030, 5, 6, 9, 30), local(2030, 5, 6, 12), 150),
        (local(2030, 5, 6, 13), local(2030, 5, 6, 16, 45), 225),
    ]
    assert [e["title"] for e in free["busy"]] == ["Night shift", "Standup", "Lunch", "Review"]
    assert [e["title"] for e in free["all_day"]] == ["Mum's birthday"]
    long = await ok(build_server, settings, "find_free_slots", date=DAY, min_duration_minutes=200)
    assert [s["duration_minutes"] for s in long["slots"]] == [225]
    none = await ok(build_server, settings, "find_free_slots", date=DAY, min_duration_minutes=300)
    assert none["slots"] == [] and "No free gap of 300 minutes" in none["note"]
    empty_day = await ok(build_server, settings, "find_free_slots", date="2030-05-07T15:00")
    assert [s["duration_minutes"] for s in empty_day["slots"]] == [480]


async def test_find_free_slots_uses_the_configured_working_hours(settings: ToolHostSettings) -> None:
    await a_busy_day(settings)
    hours = CalendarSettings(workday_start=clock(8), workday_end=clock(18))
    build = functools.partial(build_server, hours=hours)
    free = await ok(build, settings, "find_free_slots", date=DAY, min_duration_minutes=30)
    assert free["working_hours"] == "08:00-18:00"
    assert [(at(s["start"]).hour, at(s["end"]).hour) for s in free["slots"]] == [(8, 9), (9, 12), (13, 16), (17, 18)]
    with pytest.raises(ValueError, match="WORKDAY_END"):
        CalendarSettings(workday_start=clock(17), workday_end=clock(9))


async def test_find_free_slots_never_offers_past_time(settings: ToolHostSettings) -> None:
    today = await ok(build_server, settings, "find_free_slots", date="today", min_duration_minutes=5)
    now = datetime.now().astimezone()
    assert all(at(s["start"]) >= now - timedelta(minutes=1) for s in today["slots"])
    past = await ok(build_server, settings, "find_free_slots", date="2020-01-06")
    assert past["slots"] == [] and "over" in past["note"]
    text = await refused(build_server, settings, "find_free_slots", date=DAY, min_duration_minutes=0)
    assert "min_duration_minutes" in text


# create_time_block


async def test_create_time_block_takes_the_first_free_gap(settings: ToolHostSettings) -> None:
    await a_busy_day(settings)
    await add(settings, "Conference week", "2030-05-05", "2030-05-09")
    block = await ok(build_server, settings, "create_time_block", title="Write report", date=DAY, duration_minutes=90)
    assert at(block["scheduled_at"]) == local(2030, 5, 6, 9, 30) and at(block["end"]) == local(2030, 5, 6, 11)
    assert block["event"]["kind"] == "time_block" and block["event_id"] == block["event"]["event_id"]
    afternoon = await ok(
        build_server,
        settings,
        "create_time_block",
        title="Deep work",
        date=DAY,
        duration_minutes=120,
        preferred_time="afternoon",
    )
    assert at(afternoon["scheduled_at"]) == local(2030, 5, 6, 13)
    evening = await ok(
        build_server,
        settings,
        "create_time_block",
        title="Read",
        date=DAY,
        duration_minutes=30,
        preferred_time="Evening",
    )
    assert at(evening["scheduled_at"]) == local(2030, 5, 6, 17, 30)
    free = await ok(build_server, settings, "find_free_slots", date=DAY, min_duration_minutes=5)
    assert [(at(s["start"]), at(s["end"])) for s in free["slots"]] == [
        (local(2030, 5, 6, 11), local(2030, 5, 6, 12)),
        (local(2030, 5, 6, 15), local(2030, 5, 6, 16, 45)),
    ]


async def test_create_time_block_at_an_exact_time(settings: ToolHostSettings) -> None:
    await a_busy_day(settings)
    block = await ok(
        build_server, settings, "create_time_block", title="Calls", date=DAY, duration_minutes=60, preferred_time="2pm"
    )
    assert at(block["scheduled_at"]) == local(2030, 5, 6, 14)
    text = await refused(
        build_server, settings, "create_time_block", title="x", date=DAY, duration_minutes=60, preferred_time="11:30"
    )
    assert "not free" in text and "Lunch" in text and "calendar.find_free_slots" in text
    from_date = await ok(
        build_server, settings, "create_time_block", title="Early", date=f"{DAY}T07:00", duration_minutes=60
    )
    assert at(from_date["scheduled_at"]) == local(2030, 5, 6, 7)


async def test_create_time_block_refusals(settings: ToolHostSettings) -> None:
    await a_busy_day(settings)
    text = await refused(
        build_server, settings, "create_time_block", title="x", date=DAY, duration_minutes=200, preferred_time="morning"
    )
    assert "No free gap of 200 minutes in the morning (09:00-12:00)" in text
    text = await refused(
        build_server, settings, "create_time_block", title="x", date=DAY, duration_minutes=30, preferred_time="whenever"
    )
    assert "morning, afternoon or evening" in text
    text = await refused(
        build_server,
        settings,
        "create_time_block",
        title="x",
        date="2020-01-06",
        duration_minutes=30,
        preferred_time="9",
    )
    assert "already passed" in text
    text = await refused(build_server, settings, "create_time_block", title="x", date="2020-01-06", duration_minutes=30)
    assert "No free gap" in text
    text = await refused(build_server, settings, "create_time_block", title="x", date="someday", duration_minutes=30)
    assert "ISO 8601" in text


# storage


async def test_the_calendar_is_sqlite_in_wal_mode(settings: ToolHostSettings) -> None:
    await add(settings, "x", f"{DAY}T09:00", f"{DAY}T10:00")
    db = settings.state_dir / "calendar.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("SELECT start_utc FROM events").fetchone()[0].endswith("+00:00")
    conn.close()


# .ics import and export


def write_ics(path: Path) -> None:
    document = icalendar.Calendar()
    document.add("prodid", "-//test//EN")
    document.add("version", "2.0")
    document.add("x-wr-calname", "Work")
    berlin_meeting = icalendar.Event()
    berlin_meeting.add("uid", "meeting@test")
    berlin_meeting.add("summary", "Planning")
    berlin_meeting.add("description", "Roadmap")
    berlin_meeting.add("dtstart", datetime(2030, 5, 6, 10, 0, tzinfo=ZoneInfo("Europe/Berlin")))
    berlin_meeting.add("duration", timedelta(hours=1))
    document.add_component(berlin_meeting)
    offsite = icalendar.Event()
    offsite.add("uid", "offsite@test")
    offsite.add("summary", "Offsite")
    offsite.add("dtstart", date(2030, 5, 7))
    offsite.add("dtend", date(2030, 5, 9))
    document.add_component(offsite)
    weekly = icalendar.Event()
    weekly.add("uid", "weekly@test")
    weekly.add("summary", "Weekly sync")
    weekly.add("dtstart", datetime(2030, 5, 6, 15, 0))
    weekly.add("dtend", datetime(2030, 5, 6, 15, 30))
    weekly.add("rrule", {"freq": "weekly"})
    document.add_component(weekly)
    broken = icalendar.Event()
    broken.add("uid", "broken@test")
    broken.add("summary", "No start")
    document.add_component(broken)
    path.write_bytes(document.to_ical())


async def test_import_ics(settings: ToolHostSettings, root: Path) -> None:
    write_ics(root / "work.ics")
    report = import_ics(settings, str(root / "work.ics"))
    assert (report.calendar, report.imported, report.updated) == ("Work", 3, 0)
    assert any("Weekly sync" in w and "repeats" in w for w in report.warnings)
    assert any("No start" in w for w in report.warnings)
    listing = await ok(build_server, settings, "list_events", start_date=DAY, end_date="2030-05-08", calendar="work")
    events = {e["title"]: e for e in listing["events"]}
    assert set(events) == {"Planning", "Offsite", "Weekly sync"}
    assert at(events["Planning"]["start"]) == at("2030-05-06T08:00:00Z") and events["Planning"]["event_id"] == (
        "meeting@test"
    )
    assert events["Offsite"]["all_day"] is True and at(events["Offsite"]["end"]) == local(2030, 5, 9)
    assert at(events["Weekly sync"]["start"]) == local(2030, 5, 6, 15)  # floating time is local time
    again = import_ics(settings, str(root / "work.ics"), calendar="Office")
    assert (again.calendar, again.imported, again.updated) == ("Office", 0, 3)


def test_import_ics_refusals(settings: ToolHostSettings, root: Path, tmp_path: Path) -> None:
    (root / "junk.ics").write_text("not a calendar")
    with pytest.raises(ToolError, match="not a valid iCalendar"):
        import_ics(settings, str(root / "junk.ics"))
    with pytest.raises(ToolError, match="does not exist"):
        import_ics(settings, str(root / "missing.ics"))
    write_ics(tmp_path / "outside.ics")
    with pytest.raises(ToolError, match="outside the allowed folders"):
        import_ics(settings, str(tmp_path / "outside.ics"))


async def test_export_ics_round_trips_and_can_be_undone(settings: ToolHostSettings, root: Path) -> None:
    await a_busy_day(settings)
    await add(settings, "Holiday", "2030-05-07", "2030-05-07")
    target = root / "out" / "calendar.ics"
    report = export_ics(settings, str(target))
    assert report.events == 4 and target.is_file()
    assert report.undo[0].kind == "remove_created" and report.undo[0].path == str(target)
    exported = icalendar.Calendar.from_ical(target.read_bytes())
    titles = {str(e["SUMMARY"]): e for e in exported.walk("VEVENT")}
    assert set(titles) == {"Standup", "Lunch", "Review", "Holiday"}
    assert titles["Holiday"].start == date(2030, 5, 7) and titles["Holiday"].end == date(2030, 5, 8)
    assert titles["Standup"].start == local(2030, 5, 6, 9)
    before = target.read_bytes()
    only_personal = export_ics(settings, str(target), start_date=DAY, end_date=DAY, calendar="personal")
    assert only_personal.events == 1
    undo = only_personal.undo[0]
    assert undo.kind == "restore_trash" and undo.replace is True
    manifest_folder = settings.trash_dir / undo.trash_id
    assert (manifest_folder / "calendar.ics").read_bytes() == before
    # The exported file imports back into a fresh calendar with the same events.
    fresh = ToolHostSettings(allowed_roots=str(root), state_dir=settings.state_dir.parent / "fresh")
    assert import_ics(fresh, str(root / "out" / "calendar.ics")).imported == 1
    with pytest.raises(ToolError, match="outside the allowed folders"):
        export_ics(settings, str(root.parent / "escape.ics"))
    assert not (root.parent / "escape.ics").exists()


async def test_server_runs_over_stdio(settings: ToolHostSettings, root: Path) -> None:
    """`python -m services.toolhost.servers.calendar`, launched the way the tool host launches it."""
    params = stdio_parameters("calendar", settings, {"SWITCHBOARD_WORKDAY_START": "10:00"})
    async with Client(params) as client:
        assert client.server_info is not None and client.server_info.name == "calendar"
        result = await client.call_tool("find_free_slots", {"date": DAY})
    assert not result.is_error and result.structured_content is not None
    assert result.structured_content["working_hours"] == "10:00-17:00"
