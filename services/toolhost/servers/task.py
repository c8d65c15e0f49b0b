"""The `task` MCP server: a local to-do list with priorities and due dates, and a daily briefing.

Tasks live in SQLite at `<state_dir>/tasks.db`. A due date alone (2024-05-03) means "by the end of that
day"; a due time (2024-05-03T17:00) means that moment, local time unless it carries an offset. The
briefing combines the day's tasks, the overdue ones and the day's events of the `calendar` server's
database, when there is one. Run over stdio with `python -m services.toolhost.servers.task`; logs go to
stderr.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from services.toolhost.servers.calendar import (
    CalendarStore,
    Event,
    StoredEvent,
    calendar_db,
    local_iso,
    local_midnight,
    parse_when,
)
from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    closest_choice,
    serve,
    sqlite_transaction,
    tool,
)
from services.toolhost.settings import ToolHostSettings

log = logging.getLogger("services.toolhost.servers.task")  # not "__main__" under `python -m`

SERVER_NAME = "task"
DB_NAME = "tasks.db"
MAX_TASKS = 500
# Task ids are SQLite row ids: a larger number names no task and cannot even be looked up.
MAX_TASK_ID = 2**63 - 1

Source = Literal["meeting", "email", "manual", "clipboard"]
Status = Literal["pending", "completed"]
SOURCES: tuple[Source, ...] = ("meeting", "email", "manual", "clipboard")
# What a model or a person is likely to write for a status, mapped to the two the list keeps.
STATUS_WORDS: dict[str, Status] = {
    "pending": "pending",
    "open": "pending",
    "todo": "pending",
    "to do": "pending",
    "completed": "completed",
    "complete": "completed",
    "done": "completed",
}
UPDATABLE = ("title", "description", "source", "priority", "due_date", "status")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS tasks (
    task_id INTEGER PRIMARY KEY AUTOINCREMENT,
    title TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    source TEXT NOT NULL DEFAULT 'manual',
    priority INTEGER NOT NULL DEFAULT 3 CHECK (priority BETWEEN 1 AND 5),
    due TEXT,
    deadline_utc TEXT,
    status TEXT NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed')),
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    completed_at TEXT
);
CREATE INDEX IF NOT EXISTS tasks_by_deadline ON tasks (status, deadline_utc);
"""
# Best first: urgent before someday, then the nearest deadline, undated last.
_ORDER = " ORDER BY status = 'completed', priority, deadline_utc IS NULL, deadline_utc, task_id"


class Task(BaseModel):
    """One task."""

    task_id: int
    title: str
    description: str
    source: str = Field(description="Where the task came from: meeting, email, manual or clipboard.")
    priority: int = Field(description="1 = urgent ... 5 = someday.")
    due_date: str | None = Field(description="A date (due by the end of that day) or a local date-time; null if none.")
    status: Status
    overdue: bool = Field(description="True when the task is pending and its due date or time has passed.")
    created_at: str
    updated_at: str
    completed_at: str | None


class CreatedTask(BaseModel):
    task_id: int
    task: Task


class TaskList(BaseModel):
    tasks: list[Task]
    total: int = Field(description="How many tasks matched, before the limit.")
    truncated: bool = Field(description="True when more tasks matched than were returned.")


class UpdateResult(BaseModel):
    success: bool
    task: Task
    changed: list[str] = Field(description="The fields whose value changed.")
    previous: dict[str, Any] = Field(description="The changed fields' values before this update.")


class OverdueTasks(BaseModel):
    now: str = Field(description="The moment compared against, local time.")
    tasks: list[Task]
    count: int


class Briefing(BaseModel):
    date: str
    briefing: str = Field(description="A plain-text summary of the day built from the lists below.")
    events: list[Event] = Field(description="The day's calendar events.")
    tasks: list[Task] = Field(description="Pending tasks due that day.")
    overdue: list[Task] = Field(description="Pending tasks whose due date is before that day.")
    undated_pending: int = Field(description="How many pending tasks have no due date.")


def _now_utc() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class TaskStore:
    """The tasks table in one SQLite file, created with its schema on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction: committed when the block ends, rolled back on error."""
        with sqlite_transaction(self.path, _SCHEMA) as conn:
            yield conn

    def select(self, where: str = "1", args: tuple[Any, ...] = ()) -> list[Task]:
        now = _now_utc()
        with self.connect() as conn:
            rows = conn.execute(f"SELECT * FROM tasks WHERE {where}{_ORDER}", args).fetchall()
        return [_row_to_task(row, now) for row in rows]

    def get(self, task_id: int) -> Task | None:
        found = self.select("task_id = ?", (task_id,))
        return found[0] if found else None


def _row_to_task(row: sqlite3.Row, now_utc: str) -> Task:
    deadline = row["deadline_utc"]
    return Task(
        task_id=row["task_id"],
        title=row["title"],
        description=row["description"],
        source=row["source"],
        priority=row["priority"],
        due_date=row["due"],
        status=row["status"],
        overdue=row["status"] == "pending" and deadline is not None and deadline < now_utc,
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        completed_at=row["completed_at"],
    )


def _due(raw: str) -> tuple[str, str]:
    """The due value to show and the UTC deadline after which the task is overdue."""
    when = parse_when(raw, "due_date")
    # Due on a day means due by its end, i.e. the next local midnight.
    deadline = when.until.astimezone(UTC).isoformat(timespec="seconds")
    return (when.day.isoformat() if when.date_only else local_iso(when.moment)), deadline


def _due_day(task: Task) -> date | None:
    """The local day a task is due on."""
    if task.due_date is None:
        return None
    return parse_when(task.due_date, "due_date").day


def _priority(value: Any) -> int:
    number: float | None = None
    if isinstance(value, int | float) and not isinstance(value, bool):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            number = None
    if number is None or not number.is_integer() or not 1 <= number <= 5:
        raise ToolError(
            f"priority {value!r} is not valid. Use a whole number from 1 (urgent) to 5 (someday).",
            correction=Correction(f"priority {value!r} is not valid", parameter="priority"),
        )
    return int(number)


def _status(value: Any) -> Status:
    status = STATUS_WORDS.get(str(value).strip().lower())
    if status is None:
        close = closest_choice(str(value), list(STATUS_WORDS))
        raise ToolError(
            f"status {value!r} is not valid. Use pending or completed.",
            correction=Correction(
                f"status {value!r} is not valid",
                parameter="status",
                suggested_value=None if close is None else STATUS_WORDS[close],
            ),
        )
    return status


def _known_fields(updates: dict[str, Any]) -> dict[str, Any] | None:
    """`updates` with each field that cannot change renamed to the closest one that can; None if one has none."""
    renamed: dict[str, Any] = {}
    for field, value in updates.items():
        known = field if field in UPDATABLE else closest_choice(field, UPDATABLE)
        if known is None:
            return None
        renamed[known] = value
    return renamed


def _within_updates(exc: ToolError, updates: dict[str, Any], field: str) -> ToolError:
    """A field's error as an error of the `updates` argument: a value suggested for the field becomes
    the whole of `updates` with that field set to it, which a retry can pass as it is."""
    fixed = exc.correction.suggested_value if exc.correction is not None else None
    problem = exc.correction.problem if exc.correction is not None else str(exc)
    suggested = None if fixed is None else {**updates, field: fixed}
    return ToolError(str(exc), correction=Correction(problem, parameter="updates", suggested_value=suggested))


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The task server, storing tasks in `<state_dir>/tasks.db` and reading the calendar's database."""
    store = TaskStore(settings.state_dir / DB_NAME)
    calendar_path = calendar_db(settings)
    server = MCPServer(
        SERVER_NAME,
        instructions="A local to-do list: tasks with priority 1 (urgent) to 5 (someday) and optional due dates.",
    )

    @tool(
        server,
        Effects.changes(
            destructive=False, undoable=False, idempotent=False, preview="Add the task “{title}”[, due {due_date}]"
        ),
    )
    def create_task(
        title: Annotated[str, Field(description="What has to be done, short, e.g. 'Send the invoice to ACME'.")],
        description: Annotated[str | None, Field(description="More detail about the task.")] = None,
        source: Annotated[
            Source | None, Field(description="Where the task came from: meeting, email, manual or clipboard.")
        ] = None,
        priority: Annotated[int, Field(ge=1, le=5, description="1 = urgent, 3 = normal, 5 = someday.")] = 3,
        due_date: Annotated[
            str | None,
            Field(description="When it is due, ISO 8601: 2024-05-03 (by end of day) or 2024-05-03T17:00, or 'today'."),
        ] = None,
    ) -> CreatedTask:
        """Add a new task (a to-do) to the task list, with an optional priority and due date.

        To change an existing task (mark it done, move its date) use task.update_task. For an
        appointment at a fixed time use calendar.create_event instead.
        """
        if not title.strip():
            raise ToolError(
                "title is empty. Say what has to be done, e.g. 'Send the invoice'.",
                correction=Correction("title is empty", parameter="title"),
            )
        due, deadline = _due(due_date) if due_date else (None, None)
        now = _now_utc()
        with store.connect() as conn:
            cursor = conn.execute(
                "INSERT INTO tasks (title, description, source, priority, due, deadline_utc, created_at, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (title.strip(), description or "", source or "manual", priority, due, deadline, now, now),
            )
            task_id = cursor.lastrowid
        assert task_id is not None
        task = store.get(task_id)
        assert task is not None
        log.info("created task %d %r", task_id, task.title)
        return CreatedTask(task_id=task_id, task=task)

    @tool(server, Effects.reads())
    def list_tasks(
        status: Annotated[
            Literal["pending", "completed", "overdue"] | None,
            Field(description="Only pending, completed or overdue tasks. Omit for all tasks."),
        ] = None,
        priority: Annotated[
            int | None, Field(ge=1, le=5, description="Only tasks of this priority, 1 (urgent) to 5 (someday).")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_TASKS, description="Most tasks to return.")] = 50,
    ) -> TaskList:
        """List tasks with their ids, most urgent and soonest due first, optionally filtered.

        Use the ids with task.update_task. For only late tasks task.get_overdue also works; for a
        summary of one day with its calendar events use task.daily_briefing.
        """
        clauses: list[str] = []
        args: list[Any] = []
        if status == "overdue":
            clauses.append("status = 'pending' AND deadline_utc < ?")
            args.append(_now_utc())
        elif status is not None:
            clauses.append("status = ?")
            args.append(status)
        if priority is not None:
            clauses.append("priority = ?")
            args.append(priority)
        found = store.select(" AND ".join(clauses) or "1", tuple(args))
        return TaskList(tasks=found[:limit], total=len(found), truncated=len(found) > limit)

    @tool(
        server,
        Effects.changes(destructive=False, undoable=False, idempotent=True, preview="Change task {task_id}: {updates}"),
    )
    def update_task(
        task_id: Annotated[int, Field(ge=1, le=MAX_TASK_ID, description="The task's id, as shown by task.list_tasks.")],
        updates: Annotated[
            dict[str, Any],
            Field(
                description=(
                    "Only the fields to change: title, description, source, priority (1-5), due_date "
                    '(ISO 8601, or null to clear) and status (pending or completed), e.g. {"status": "completed"}.'
                )
            ),
        ],
    ) -> UpdateResult:
        """Change fields of an existing task: mark it completed, reschedule it, reprioritise or rename it.

        Find the id with task.list_tasks first. To add a new task use task.create_task.
        """
        current = store.get(task_id)
        if current is None:
            raise ToolError(
                f"There is no task with id {task_id}. Find task ids with task.list_tasks "
                "(or task.get_overdue for late tasks).",
                correction=Correction(f"no task with id {task_id}", parameter="task_id"),
            )
        unknown = sorted(set(updates) - set(UPDATABLE))
        if unknown:
            raise ToolError(
                f"Cannot update {', '.join(unknown)}. Fields that can change: {', '.join(UPDATABLE)}.",
                correction=Correction(
                    f"{', '.join(unknown)} cannot be updated",
                    parameter="updates",
                    suggested_value=_known_fields(updates),
                ),
            )
        if not updates:
            raise ToolError(
                f"updates is empty. Give the fields to change, from: {', '.join(UPDATABLE)}.",
                correction=Correction("updates is empty", parameter="updates"),
            )
        columns: dict[str, Any] = {}
        new_values: dict[str, Any] = {}
        for field, value in updates.items():
            try:
                if field in ("title", "description"):
                    if not isinstance(value, str) or (field == "title" and not value.strip()):
                        raise ToolError(
                            f"{field} must be {'non-empty ' if field == 'title' else ''}text.",
                            correction=Correction(f"{field} is not text", parameter=field),
                        )
                    columns[field] = new_values[field] = value.strip() if field == "title" else value
                elif field == "source":
                    if value not in SOURCES:
                        raise ToolError(
                            f"source {value!r} is not valid. Use one of: {', '.join(SOURCES)}.",
                            correction=Correction(
                                f"source {value!r} is not valid",
                                parameter="source",
                                suggested_value=closest_choice(str(value), SOURCES),
                            ),
                        )
                    columns["source"] = new_values["source"] = value
                elif field == "priority":
                    columns["priority"] = new_values["priority"] = _priority(value)
                elif field == "due_date":
                    if value is None or (isinstance(value, str) and not value.strip()):
                        columns["due"] = columns["deadline_utc"] = new_values["due_date"] = None
                    elif isinstance(value, str):
                        columns["due"], columns["deadline_utc"] = _due(value)
                        new_values["due_date"] = columns["due"]
                    else:
                        raise ToolError(
                            f"due_date {value!r} must be text, e.g. 2024-05-03, or null to clear it.",
                            correction=Correction(f"due_date {value!r} is not text", parameter="due_date"),
                        )
                else:
                    status = _status(value)
                    columns["status"] = new_values["status"] = status
                    if status != current.status:
                        columns["completed_at"] = _now_utc() if status == "completed" else None
            except ToolError as exc:
                raise _within_updates(exc, updates, field) from exc
        before = current.model_dump()
        changed = [name for name, value in new_values.items() if before[name] != value]
        if changed:
            columns["updated_at"] = _now_utc()
            assignments = ", ".join(f"{column} = ?" for column in columns)
            with store.connect() as conn:
                conn.execute(f"UPDATE tasks SET {assignments} WHERE task_id = ?", (*columns.values(), task_id))
            log.info("updated task %d: %s", task_id, ", ".join(changed))
        task = store.get(task_id)
        assert task is not None
        return UpdateResult(success=True, task=task, changed=changed, previous={name: before[name] for name in changed})

    @tool(server, Effects.reads())
    def get_overdue() -> OverdueTasks:
        """List every pending task whose due date or due time has already passed, most urgent first.

        A task due on a date becomes overdue after that day ends. For all tasks use task.list_tasks;
        for today's plan with calendar events use task.daily_briefing.
        """
        now = _now_utc()
        found = store.select("status = 'pending' AND deadline_utc < ?", (now,))
        return OverdueTasks(now=local_iso(datetime.fromisoformat(now)), tasks=found, count=len(found))

    @tool(server, Effects.reads())
    def daily_briefing(
        date: Annotated[
            str | None,
            Field(description="The day to brief on, ISO 8601 like 2024-05-03, or 'tomorrow'. Omit for today."),
        ] = None,
    ) -> Briefing:
        """Summarise one day: its calendar events, the tasks due that day and the tasks already overdue.

        Built only from the stored tasks and calendar. For just the late tasks use task.get_overdue;
        for events over several days use calendar.list_events.
        """
        day = parse_when(date, "date").day if date else datetime.now().astimezone().date()
        start, end = local_midnight(day), local_midnight(day + timedelta(days=1))
        pending = store.select("status = 'pending'")
        due_today = [t for t in pending if _due_day(t) == day]
        # Overdue at the start of the day; tasks due later on the day itself are listed as due instead.
        due_ids = {t.task_id for t in due_today}
        overdue = [
            t
            for t in store.select(
                "status = 'pending' AND deadline_utc <= ?", (start.astimezone(UTC).isoformat(timespec="seconds"),)
            )
            if t.task_id not in due_ids  # one due at midnight sharp belongs to the day
        ]
        undated = sum(1 for t in pending if t.due_date is None)
        events = CalendarStore(calendar_path).between(start, end) if calendar_path.exists() else None
        text = _briefing_text(day, events, due_today, overdue, undated)
        return Briefing(
            date=day.isoformat(),
            briefing=text,
            events=[e.to_model() for e in events or []],
            tasks=due_today,
            overdue=overdue,
            undated_pending=undated,
        )

    return server


def _briefing_text(
    day: date, events: list[StoredEvent] | None, due: list[Task], overdue: list[Task], undated: int
) -> str:
    """The briefing as a few plain lines, one per kind of item, naming each item."""
    lines = [f"Briefing for {day:%A} {day.isoformat()}."]
    if events is None:
        lines.append("Calendar: no calendar yet (calendar.create_event adds events).")
    elif not events:
        lines.append("Calendar: no events.")
    else:
        lines.append(
            f"Calendar: {_count(len(events), 'event')}: " + "; ".join(_event_line(e, day) for e in events) + "."
        )
    if due:
        lines.append(f"Due: {_count(len(due), 'task')}: " + "; ".join(_task_line(t, mark_late=True) for t in due) + ".")
    else:
        lines.append("Due: no tasks due this day.")
    if overdue:
        lines.append(
            f"Overdue: {_count(len(overdue), 'task')}: "
            + "; ".join(f"{_task_line(t, mark_late=False)}, due {t.due_date}" for t in overdue)
            + "."
        )
    else:
        lines.append("Overdue: nothing.")
    if undated:
        lines.append(f"Also pending without a due date: {_count(undated, 'task')}.")
    return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _event_line(event: StoredEvent, day: date) -> str:
    if event.all_day:
        return f"all day {event.title}"
    start, end = event.start.astimezone(), event.end.astimezone()
    # Show the date only for an end or start that is not on the briefing's day.
    start_text = f"{start:%H:%M}" if start.date() == day else f"{start:%Y-%m-%d %H:%M}"
    end_text = f"{end:%H:%M}" if end.date() == day else f"{end:%Y-%m-%d %H:%M}"
    return f"{start_text}-{end_text} {event.title}"


def _task_line(task: Task, *, mark_late: bool) -> str:
    at = ""
    if task.due_date is not None and "T" in task.due_date:
        at = f" at {datetime.fromisoformat(task.due_date).astimezone():%H:%M}"
    late = " (time has passed)" if mark_late and task.overdue else ""
    return f"[P{task.priority}] {task.title}{at}{late} (#{task.task_id})"


def main() -> None:
    """Serve the task tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
