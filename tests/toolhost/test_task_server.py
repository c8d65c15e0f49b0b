"""The task MCP server, called through the SDK's in-memory client on a real SQLite task list."""

from __future__ import annotations

import sqlite3
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from mcp import Client

from services.toolhost.servers import META_DESTRUCTIVE
from services.toolhost.servers import calendar as calendar_server
from services.toolhost.servers.task import build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, connected, ok, refused, stdio_parameters


def today() -> date:
    return datetime.now().astimezone().date()


def on_today(minutes: int) -> bool:
    return (datetime.now().astimezone() + timedelta(minutes=minutes)).date() == today()


def local_minutes_from_now(minutes: int) -> str:
    return (datetime.now().astimezone() + timedelta(minutes=minutes)).isoformat(timespec="seconds")


async def create(settings: ToolHostSettings, title: str, **fields: Any) -> int:
    created = await ok(build_server, settings, "create_task", title=title, **fields)
    assert created["task"]["task_id"] == created["task_id"]
    task_id = created["task_id"]
    assert isinstance(task_id, int)
    return task_id


async def titles(settings: ToolHostSettings, tool: str, **arguments: Any) -> list[str]:
    result = await ok(build_server, settings, tool, **arguments)
    return [t["title"] for t in result["tasks"]]


# tools/list


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "task")
    async with connected(build_server, settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name, tool in tools.items():
        assert tool.meta is not None and tool.meta[META_DESTRUCTIVE] is False, name
        assert tool.annotations is not None
        assert tool.annotations.read_only_hint is (name in {"list_tasks", "get_overdue", "daily_briefing"}), name
    assert tools["create_task"].input_schema["properties"]["priority"]["default"] == 3
    assert tools["list_tasks"].input_schema["properties"]["limit"]["default"] == 50


# create_task


async def test_create_task_with_defaults_and_with_every_field(settings: ToolHostSettings) -> None:
    plain = await ok(build_server, settings, "create_task", title="  Water the plants ")
    task = plain["task"]
    assert plain["task_id"] == 1 and task["title"] == "Water the plants"
    assert (task["priority"], task["source"], task["status"], task["due_date"]) == (3, "manual", "pending", None)
    assert task["overdue"] is False and task["completed_at"] is None and task["created_at"].endswith("+00:00")
    full = await ok(
        build_server,
        settings,
        "create_task",
        title="Send the invoice",
        description="ACME, March",
        source="email",
        priority=1,
        due_date="2030-05-06",
    )
    assert full["task_id"] == 2
    assert full["task"] == {
        **full["task"],
        "description": "ACME, March",
        "source": "email",
        "priority": 1,
        "due_date": "2030-05-06",
    }
    timed = await ok(build_server, settings, "create_task", title="Call", due_date="2030-05-06T16:00:00+00:00")
    assert datetime.fromisoformat(timed["task"]["due_date"]) == datetime.fromisoformat("2030-05-06T16:00:00+00:00")


async def test_create_task_refusals(settings: ToolHostSettings) -> None:
    assert "ISO 8601" in await refused(build_server, settings, "create_task", title="x", due_date="next week")
    assert "priority" in await refused(build_server, settings, "create_task", title="x", priority=6)
    assert "priority" in await refused(build_server, settings, "create_task", title="x", priority=0)
    assert "source" in await refused(build_server, settings, "create_task", title="x", source="phone")
    assert "title is empty" in await refused(build_server, settings, "create_task", title="  ")
    assert (await ok(build_server, settings, "list_tasks"))["tasks"] == []


# list_tasks and get_overdue


async def a_task_list(settings: ToolHostSettings) -> dict[str, int]:
    yesterday = (today() - timedelta(days=1)).isoformat()
    return {
        "late report": await create(settings, "Late report", priority=2, due_date=yesterday),
        "due today": await create(settings, "Due today", priority=1, due_date="today"),
        "missed call": await create(settings, "Missed call", priority=4, due_date=local_minutes_from_now(-60)),
        "later call": await create(settings, "Later call", priority=4, due_date=local_minutes_from_now(60)),
        "someday": await create(settings, "Someday", priority=5),
        "done late": await create(settings, "Done late", priority=1, due_date=yesterday),
    }


async def test_list_tasks_sorts_and_filters(settings: ToolHostSettings) -> None:
    ids = await a_task_list(settings)
    await ok(build_server, settings, "update_task", task_id=ids["done late"], updates={"status": "completed"})
    everything = await titles(settings, "list_tasks")
    assert everything == ["Due today", "Late report", "Missed call", "Later call", "Someday", "Done late"]
    assert await titles(settings, "list_tasks", status="completed") == ["Done late"]
    assert "Done late" not in await titles(settings, "list_tasks", status="pending")
    assert await titles(settings, "list_tasks", status="overdue") == ["Late report", "Missed call"]
    assert await titles(settings, "list_tasks", priority=4) == ["Missed call", "Later call"]
    limited = await ok(build_server, settings, "list_tasks", limit=2)
    assert [t["title"] for t in limited["tasks"]] == ["Due today", "Late report"]
    assert limited["total"] == 6 and limited["truncated"] is True
    assert "status" in await refused(build_server, settings, "list_tasks", status="late")


async def test_get_overdue_compares_with_now(settings: ToolHostSettings) -> None:
    ids = await a_task_list(settings)
    await ok(build_server, settings, "update_task", task_id=ids["done late"], updates={"status": "done"})
    overdue = await ok(build_server, settings, "get_overdue")
    assert [t["title"] for t in overdue["tasks"]] == ["Late report", "Missed call"]
    assert overdue["count"] == 2 and all(t["overdue"] for t in overdue["tasks"])
    now = datetime.fromisoformat(overdue["now"])
    assert abs(now - datetime.now().astimezone()) < timedelta(minutes=1)
    # A date alone is due by the end of that day, so a task due today is not late yet.
    listing = await ok(build_server, settings, "list_tasks")
    flags = {t["title"]: t["overdue"] for t in listing["tasks"]}
    assert flags == {
        "Due today": False,
        "Late report": True,
        "Missed call": True,
        "Later call": False,
        "Someday": False,
        "Done late": False,
    }


# update_task


async def test_update_task_changes_fields(settings: ToolHostSettings) -> None:
    task_id = await create(settings, "Draft slides", priority=3, due_date="2030-05-06")
    result = await ok(
        build_server,
        settings,
        "update_task",
        task_id=task_id,
        updates={"priority": 1, "due_date": "2030-05-08", "title": "Finish slides", "description": "10 slides"},
    )
    assert result["success"] is True
    assert sorted(result["changed"]) == ["description", "due_date", "priority", "title"]
    assert result["previous"] == {"priority": 3, "due_date": "2030-05-06", "title": "Draft slides", "description": ""}
    task = result["task"]
    assert (task["priority"], task["due_date"], task["title"]) == (1, "2030-05-08", "Finish slides")
    done = await ok(build_server, settings, "update_task", task_id=task_id, updates={"status": "Done"})
    assert done["task"]["status"] == "completed" and done["task"]["completed_at"] is not None
    assert done["changed"] == ["status"]
    again = await ok(build_server, settings, "update_task", task_id=task_id, updates={"status": "completed"})
    assert again["changed"] == [] and again["task"]["completed_at"] == done["task"]["completed_at"]
    reopened = await ok(
        build_server, settings, "update_task", task_id=task_id, updates={"status": "pending", "due_date": None}
    )
    assert reopened["task"]["completed_at"] is None and reopened["task"]["due_date"] is None
    assert await titles(settings, "get_overdue") == []


async def test_update_task_refusals(settings: ToolHostSettings) -> None:
    task_id = await create(settings, "Something")
    text = await refused(build_server, settings, "update_task", task_id=99, updates={"status": "completed"})
    assert "no task with id 99" in text and "task.list_tasks" in text
    text = await refused(build_server, settings, "update_task", task_id=task_id, updates={"colour": "red"})
    assert "colour" in text and "title, description, source, priority, due_date, status" in text
    assert "updates is empty" in await refused(build_server, settings, "update_task", task_id=task_id, updates={})
    for updates, expected in [
        ({"priority": 9}, "1 (urgent) to 5"),
        ({"priority": "high"}, "1 (urgent) to 5"),
        ({"priority": 2.5}, "1 (urgent) to 5"),
        ({"status": "started"}, "pending or completed"),
        ({"due_date": "soon"}, "ISO 8601"),
        ({"due_date": 5}, "null to clear"),
        ({"source": "fax"}, "meeting, email, manual, clipboard"),
        ({"title": ""}, "non-empty"),
    ]:
        text = await refused(build_server, settings, "update_task", task_id=task_id, updates=updates)
        assert expected in text, (updates, text)
    unchanged = await ok(build_server, settings, "list_tasks")
    assert unchanged["tasks"][0]["priority"] == 3 and unchanged["tasks"][0]["updated_at"]
    accepted = await ok(build_server, settings, "update_task", task_id=task_id, updates={"priority": "2"})
    assert accepted["task"]["priority"] == 2


# daily_briefing


async def test_daily_briefing_without_a_calendar_or_tasks(settings: ToolHostSettings) -> None:
    briefing = await ok(build_server, settings, "daily_briefing")
    assert briefing["date"] == today().isoformat()
    assert briefing["events"] == [] and briefing["tasks"] == [] and briefing["overdue"] == []
    text = briefing["briefing"]
    assert "no calendar yet" in text and "no tasks due" in text and "Overdue: nothing" in text
    assert not (settings.state_dir / "calendar.db").exists()


async def test_daily_briefing_combines_tasks_and_calendar_events(settings: ToolHostSettings) -> None:
    ids = await a_task_list(settings)
    day = today().isoformat()
    tomorrow = (today() + timedelta(days=1)).isoformat()
    for title, start, end in [
        ("Standup", f"{day}T09:00", f"{day}T09:15"),
        ("Flight", f"{day}T22:00", f"{tomorrow}T01:00"),
        ("Tomorrow's meeting", f"{tomorrow}T10:00", f"{tomorrow}T11:00"),
    ]:
        await ok(calendar_server.build_server, settings, "create_event", title=title, start=start, end=end)
    briefing = await ok(build_server, settings, "daily_briefing")
    assert [e["title"] for e in briefing["events"]] == ["Standup", "Flight"]
    # The calls are due an hour before and after now: today, unless the test runs close to midnight.
    missed_today, later_today = on_today(-60), on_today(60)
    assert [t["title"] for t in briefing["tasks"]] == ["Due today"] + ["Missed call"] * missed_today + [
        "Later call"
    ] * later_today
    assert [t["title"] for t in briefing["overdue"]] == ["Done late", "Late report"] + ["Missed call"] * (
        not missed_today
    )
    assert briefing["undated_pending"] == 1
    text = briefing["briefing"]
    for expected in ("09:00-09:15 Standup", f"22:00-{tomorrow} 01:00 Flight", "[P1] Due today", "[P2] Late report"):
        assert expected in text, text
    assert "Tomorrow's meeting" not in text and "Someday" not in text
    assert "Also pending without a due date: 1 task." in text
    await ok(build_server, settings, "update_task", task_id=ids["done late"], updates={"status": "completed"})
    ahead = await ok(build_server, settings, "daily_briefing", date="tomorrow")
    assert ahead["date"] == tomorrow
    assert [e["title"] for e in ahead["events"]] == ["Flight", "Tomorrow's meeting"]
    assert [t["title"] for t in ahead["tasks"]] == ["Later call"] * (not later_today)
    # Seen from tomorrow, everything due today and still pending is overdue.
    assert [t["title"] for t in ahead["overdue"]] == ["Due today", "Late report", "Missed call"] + [
        "Later call"
    ] * later_today


async def test_daily_briefing_rejects_a_bad_date(settings: ToolHostSettings) -> None:
    text = await refused(build_server, settings, "daily_briefing", date="monday")
    assert "date" in text and "ISO 8601" in text


async def test_the_task_list_is_sqlite_in_wal_mode(settings: ToolHostSettings) -> None:
    await create(settings, "x", due_date="2030-05-06")
    conn = sqlite3.connect(settings.state_dir / "tasks.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        due, deadline = conn.execute("SELECT due, deadline_utc FROM tasks").fetchone()
    finally:
        conn.close()
    assert due == "2030-05-06"
    assert datetime.fromisoformat(deadline) == datetime(2030, 5, 7).astimezone()


async def test_server_runs_over_stdio(settings: ToolHostSettings, root: Path) -> None:
    """`python -m services.toolhost.servers.task`, launched the way the tool host launches it."""
    params = stdio_parameters("task", settings)
    async with Client(params) as client:
        assert client.server_info is not None and client.server_info.name == "task"
        created = await client.call_tool("create_task", {"title": "From stdio"})
        listed = await client.call_tool("list_tasks", {})
    assert not created.is_error and not listed.is_error and listed.structured_content is not None
    assert [t["title"] for t in listed.structured_content["tasks"]] == ["From stdio"]
