"""Each change a tool server carries out, recorded under the key the tool host gave the call, so that a
call the tool host sends again is answered from the record instead of changing anything twice.

Why in the server: a tool host killed during a changing call leaves its MCP server process behind,
which finishes the call it was running (its stdin closes; the call's thread runs to its end) and
records the outcome here before it exits. The restarted tool host sends the same call with the same
key and gets that outcome back: the tool ran once, and the run carries on.

What this cannot do: if the server process itself is killed in the middle of a change, the record says
only that the call started. Whether its effect happened is then unknown, so the call is not repeated;
it fails with `Interrupted`, saying so (no exactly-once without an effect and its record in one
transaction, which files do not offer).

One SQLite file (`<state dir>/toolhost/calls.db`) serves every server process; rows are kept a month.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from switchboard.streams import process_alive

SCHEMA = """
CREATE TABLE IF NOT EXISTS calls (
    key TEXT PRIMARY KEY,
    tool TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started_unix REAL NOT NULL,
    outcome TEXT
);
CREATE INDEX IF NOT EXISTS calls_started ON calls (started_unix);
"""

KEPT_SECONDS = 30 * 24 * 3600
# How often a call waits to see whether another process still running the same call has finished.
POLL_SECONDS = 0.1


class Interrupted(Exception):
    """The call started earlier in a server process that stopped before it finished."""


@dataclass(frozen=True)
class Earlier:
    """What the journal knows of a call started before: its recorded outcome, or the process running it."""

    outcome: Any | None
    pid: int


class CallJournal:
    """Calls by key: started (with the pid of the process carrying it out), then their outcome."""

    def __init__(self, path: Path, wait_seconds: float = 60.0) -> None:
        self.path = path
        # How long a call waits for another live process that is still running the same call.
        self.wait_seconds = wait_seconds
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.execute("DELETE FROM calls WHERE started_unix < ?", (time.time() - KEPT_SECONDS,))

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # FULL: an outcome recorded is on disk before the result leaves the process.
            conn.execute("PRAGMA synchronous=FULL")
            conn.executescript(SCHEMA)
            with conn:
                yield conn
        finally:
            conn.close()

    def begin(self, key: str, tool: str) -> Earlier | None:
        """Record that this process starts `key`; or, if some process started it before, what is known."""
        with self._connect() as conn:
            inserted = conn.execute(
                "INSERT OR IGNORE INTO calls (key, tool, pid, started_unix) VALUES (?, ?, ?, ?)",
                (key, tool, os.getpid(), time.time()),
            ).rowcount
            if inserted:
                return None
            pid, outcome = conn.execute("SELECT pid, outcome FROM calls WHERE key = ?", (key,)).fetchone()
        return Earlier(None if outcome is None else json.loads(outcome), int(pid))

    def finish(self, key: str, outcome: Any) -> None:
        """Record the outcome of call `key` (JSON-able)."""
        with self._connect() as conn:
            conn.execute("UPDATE calls SET outcome = ? WHERE key = ?", (json.dumps(outcome), key))

    def once(
        self,
        key: str,
        tool: str,
        action: Callable[[], Any],
        record: Callable[[Any], Any],
        record_error: Callable[[Exception], Any],
    ) -> Replayed | Any:
        """`action()`'s result, its outcome recorded (`record` of the result, or `record_error` of what it
        raised, which is raised again); or, if call `key` ran before, `Replayed` with the recorded outcome.

        A call another live process is still running is waited for, `wait_seconds` at most."""
        earlier = self.begin(key, tool)
        deadline = time.monotonic() + self.wait_seconds
        while earlier is not None and earlier.outcome is None and _running(earlier.pid):
            if time.monotonic() > deadline:
                raise Interrupted(f"{tool} is still running in process {earlier.pid} after {self.wait_seconds:.0f}s")
            time.sleep(POLL_SECONDS)
            earlier = self.begin(key, tool)
        if earlier is not None:
            if earlier.outcome is None:
                raise Interrupted(
                    f"{tool} was started earlier and its server stopped before it finished, so whether it "
                    "changed anything is unknown; it was not run again. Check its effect, then ask again."
                )
            return Replayed(earlier.outcome)
        try:
            result = action()
        except Exception as exc:
            self.finish(key, record_error(exc))
            raise
        self.finish(key, record(result))
        return result


@dataclass(frozen=True)
class Replayed:
    """The outcome a call recorded when it ran before (JSON, as `once`'s `record` made it)."""

    outcome: Any


def _running(pid: int) -> bool:
    """Whether another process, `pid`, is still carrying a call out (this process is asking about it,
    so it is not)."""
    return pid != os.getpid() and process_alive(pid)
