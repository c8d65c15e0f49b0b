"""The tool host's audit log: an append-only SQLite table, one row per call, decision and undo.

A row is written before a call runs (outcome `started`) and completed once after it; triggers in the
database refuse deletes and any other change, so the log cannot be rewritten by the tool host's own
code either. Each row keeps the arguments, the confirmation the call carried, the outcome and
duration, and the SHA-256 of the files the call read and wrote. The `audit` MCP server reads it.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from services.toolhost.sandbox import Sandbox
from services.toolhost.servers.kit import sha256_of
from switchboard.errors import InvalidRequest

SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL CHECK (kind IN ('call', 'decision', 'undo')),
    run_id TEXT NOT NULL DEFAULT '',
    step INTEGER NOT NULL DEFAULT 0,
    session_id TEXT NOT NULL DEFAULT '',
    tool TEXT NOT NULL,
    arguments_json TEXT NOT NULL DEFAULT '{}',
    confirmation TEXT NOT NULL,
    started_at TEXT NOT NULL,
    finished_at TEXT,
    outcome TEXT NOT NULL DEFAULT 'started',
    error TEXT NOT NULL DEFAULT '',
    duration_ms REAL,
    files_read TEXT NOT NULL DEFAULT '[]',
    files_written TEXT NOT NULL DEFAULT '[]',
    undo_json TEXT NOT NULL DEFAULT '[]',
    undoes INTEGER REFERENCES audit_log(id)
);
CREATE INDEX IF NOT EXISTS audit_log_run ON audit_log (run_id, step);
CREATE INDEX IF NOT EXISTS audit_log_session ON audit_log (session_id);
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_complete_once BEFORE UPDATE ON audit_log
WHEN OLD.outcome != 'started' OR NEW.kind IS NOT OLD.kind OR NEW.run_id IS NOT OLD.run_id
  OR NEW.step IS NOT OLD.step OR NEW.session_id IS NOT OLD.session_id OR NEW.tool IS NOT OLD.tool
  OR NEW.arguments_json IS NOT OLD.arguments_json OR NEW.confirmation IS NOT OLD.confirmation
  OR NEW.started_at IS NOT OLD.started_at OR NEW.undoes IS NOT OLD.undoes
BEGIN SELECT RAISE(ABORT, 'an audit row is completed once and never rewritten'); END;
"""

# What a call's confirmation column says.
NOT_REQUIRED = "not_required"
CONFIRMED = "confirmed"
REJECTED = "rejected"


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class FileHash:
    path: str
    sha256: str


@dataclass(frozen=True)
class UndoableCall:
    """A completed call that recorded how to undo it."""

    row_id: int
    tool: str
    undo: list[dict[str, Any]]
    undone: bool


class AuditLog:
    """The audit database. One connection is kept open and used under a lock (every write is its own
    transaction, committed before the method returns), so it is safe across tasks and threads and a
    call does not pay for opening the database twice."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=10, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._lock = threading.RLock()
        self._batched = False
        with self._connect() as db:
            db.executescript(SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._batched:  # inside `together`: its transaction commits
                yield self._db
                return
            with self._db:
                yield self._db

    @contextmanager
    def together(self) -> Iterator[None]:
        """The writes inside it as one transaction: one commit, one sync to disk."""
        with self._lock, self._db:
            self._batched = True
            try:
                yield
            finally:
                self._batched = False

    def close(self) -> None:
        self._db.close()

    def begin(
        self,
        *,
        kind: str,
        tool: str,
        arguments_json: str,
        confirmation: str,
        run_id: str = "",
        step: int = 0,
        session_id: str = "",
        undoes: int | None = None,
    ) -> int:
        """Write the row a call starts with; returns its id for `finish`."""
        with self._connect() as db:
            cursor = db.execute(
                "INSERT INTO audit_log (kind, run_id, step, session_id, tool, arguments_json, confirmation,"
                " started_at, undoes) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (kind, run_id, step, session_id, tool, arguments_json, confirmation, now_iso(), undoes),
            )
            return int(cursor.lastrowid or 0)

    def started_call(self, run_id: str, step: int) -> int | None:
        """The row of a call of this step that was begun and never finished (its process stopped
        during it), if there is one: the row a resumed call completes."""
        with self._connect() as db:
            row = db.execute(
                "SELECT id FROM audit_log WHERE kind = 'call' AND run_id = ? AND step = ? AND outcome = 'started'"
                " ORDER BY id DESC LIMIT 1",
                (run_id, step),
            ).fetchone()
        return None if row is None else int(row[0])

    def finish(
        self,
        row_id: int,
        *,
        outcome: str,
        duration_ms: float,
        error: str = "",
        files_read: list[FileHash] | None = None,
        files_written: list[FileHash] | None = None,
        undo: list[dict[str, Any]] | None = None,
    ) -> None:
        """Complete a started row, once."""
        with self._connect() as db:
            db.execute(
                "UPDATE audit_log SET finished_at = ?, outcome = ?, error = ?, duration_ms = ?, files_read = ?,"
                " files_written = ?, undo_json = ? WHERE id = ?",
                (
                    now_iso(),
                    outcome,
                    error,
                    round(duration_ms, 3),
                    json.dumps([vars(f) for f in files_read or []]),
                    json.dumps([vars(f) for f in files_written or []]),
                    json.dumps(undo or []),
                    row_id,
                ),
            )

    def record_decision(
        self, *, run_id: str, step: int, session_id: str, tool: str, arguments_json: str, reason: str
    ) -> None:
        """A person rejected a call: it never ran, but the log says it was asked for and refused."""
        row = self.begin(
            kind="decision",
            tool=tool,
            arguments_json=arguments_json,
            confirmation=REJECTED,
            run_id=run_id,
            step=step,
            session_id=session_id,
        )
        self.finish(row, outcome=REJECTED, duration_ms=0.0, error=reason)

    def undoable(self, run_id: str, step: int) -> UndoableCall | None:
        """The successful call of this step, with its undo actions and whether it was undone already."""
        with self._connect() as db:
            row = db.execute(
                "SELECT id, tool, undo_json FROM audit_log WHERE kind = 'call' AND run_id = ? AND step = ?"
                " AND outcome = 'succeeded' ORDER BY id DESC LIMIT 1",
                (run_id, step),
            ).fetchone()
            if row is None:
                return None
            undone = db.execute(
                "SELECT 1 FROM audit_log WHERE kind = 'undo' AND undoes = ? AND outcome = 'succeeded'", (row[0],)
            ).fetchone()
        return UndoableCall(row_id=row[0], tool=row[1], undo=json.loads(row[2]), undone=undone is not None)

    def recent(self, *, session_id: str = "", run_id: str = "", limit: int = 50) -> list[dict[str, Any]]:
        """The newest rows first, of one session or run when given; at most `limit`."""
        where, values = [], []
        if session_id:
            where.append("session_id = ?")
            values.append(session_id)
        if run_id:
            where.append("run_id = ?")
            values.append(run_id)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        with self._connect() as db:
            cursor = db.cursor()
            cursor.row_factory = sqlite3.Row
            query = f"SELECT * FROM audit_log {clause} ORDER BY id DESC LIMIT ?"  # noqa: S608 - fixed clauses
            return [dict(r) for r in cursor.execute(query, (*values, max(1, min(limit, 1000))))]

    def rows(self) -> list[dict[str, Any]]:
        """Every row, oldest first (for tests and the audit server)."""
        with self._connect() as db:
            cursor = db.cursor()
            cursor.row_factory = sqlite3.Row
            return [dict(r) for r in cursor.execute("SELECT * FROM audit_log ORDER BY id")]


# Files up to this size together are hashed on the caller's thread; more is worth a worker thread.
HASH_INLINE_BYTES = 4 * 1024 * 1024


async def hash_files_async(raw_paths: list[str], sandbox: Sandbox) -> dict[str, str]:
    """`hash_files`, off the event loop only when the files are big enough to be worth the hop (two
    thread switches cost more than hashing a few small files on a busy machine)."""
    total = 0
    for raw in raw_paths:
        try:
            path = sandbox.resolve(raw)
            total += path.stat().st_size if path.is_file() else 0
        except (InvalidRequest, OSError):
            continue
    if total <= HASH_INLINE_BYTES:
        return hash_files(raw_paths, sandbox)
    return await asyncio.to_thread(hash_files, raw_paths, sandbox)


def hash_files(raw_paths: list[str], sandbox: Sandbox) -> dict[str, str]:
    """SHA-256 of each named regular file inside the sandbox (others are skipped), by resolved path."""
    hashes: dict[str, str] = {}
    for raw in raw_paths:
        try:
            path = sandbox.resolve(raw)
        except InvalidRequest:
            continue  # outside the roots: the call itself was or will be refused
        if path.is_file() and str(path) not in hashes:
            hashes[str(path)] = sha256_of(path)
    return hashes
