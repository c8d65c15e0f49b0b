"""A tool server's journal of the changes it carried out: the same call sent again under the same key
is answered from the record, never run twice; a call cut off midway is not repeated."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from mcp import Client

from services.toolhost.servers import META_CALL_KEY, META_INTERRUPTED, filesystem
from services.toolhost.servers.journal import CallJournal, Interrupted, Replayed
from services.toolhost.servers.kit import keep_journal
from services.toolhost.settings import ToolHostSettings


def _never(*_: object) -> object:
    raise AssertionError("the call ran a second time")


def _as_is(value: object) -> object:
    return value


def _error(exc: Exception) -> object:
    return {"error": str(exc)}


def test_a_call_runs_once_and_is_answered_from_the_record_after(tmp_path: Path) -> None:
    journal = CallJournal(tmp_path / "calls.db")
    assert journal.once("k1", "t", lambda: {"n": 1}, _as_is, _error) == {"n": 1}
    again = journal.once("k1", "t", _never, _as_is, _error)
    assert again == Replayed({"n": 1})
    # Another process (a server started afresh) reads the same record.
    assert CallJournal(tmp_path / "calls.db").once("k1", "t", _never, _as_is, _error) == Replayed({"n": 1})
    assert journal.once("k2", "t", lambda: {"n": 2}, _as_is, _error) == {"n": 2}


def test_a_failure_is_recorded_and_raised_again(tmp_path: Path) -> None:
    journal = CallJournal(tmp_path / "calls.db")

    def fail() -> object:
        raise ValueError("no such folder")

    with pytest.raises(ValueError, match="no such folder"):
        journal.once("k", "t", fail, _as_is, _error)
    assert journal.once("k", "t", _never, _as_is, _error) == Replayed({"error": "no such folder"})


def test_a_call_whose_process_died_midway_is_not_repeated(tmp_path: Path) -> None:
    journal = CallJournal(tmp_path / "calls.db")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with journal._connect() as conn:
        conn.execute("INSERT INTO calls (key, tool, pid, started_unix) VALUES ('k', 't', ?, 0)", (gone.pid,))
    with pytest.raises(Interrupted, match="not run again"):
        journal.once("k", "t", _never, _as_is, _error)


def test_a_call_another_live_process_is_running_is_waited_for(tmp_path: Path) -> None:
    journal = CallJournal(tmp_path / "calls.db", wait_seconds=30)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with journal._connect() as conn:
            conn.execute("INSERT INTO calls (key, tool, pid, started_unix) VALUES ('k', 't', ?, 0)", (other.pid,))
        finishing = threading.Timer(0.3, journal.finish, args=("k", {"n": 7}))
        finishing.start()
        started = time.monotonic()
        assert journal.once("k", "t", _never, _as_is, _error) == Replayed({"n": 7})
        assert time.monotonic() - started >= 0.25
    finally:
        other.kill()
        other.wait()


async def test_a_server_answers_a_change_sent_again_from_its_journal(
    settings: ToolHostSettings, root: Path, tmp_path: Path
) -> None:
    server = filesystem.build_server(settings)
    keep_journal(server, CallJournal(tmp_path / "calls.db"))
    target = root / "note.txt"
    arguments = {"path": str(target), "content": "first"}
    async with Client(server) as client:
        first = await client.call_tool("write_file", arguments, meta={META_CALL_KEY: "run-1:1"})
        assert not first.is_error, first
        target.write_text("changed by the person since")
        again = await client.call_tool("write_file", arguments, meta={META_CALL_KEY: "run-1:1"})
        assert not again.is_error
        assert again.structured_content == first.structured_content
        assert target.read_text() == "changed by the person since"  # not written a second time
        # Without a key (a call from a test or another client) or under another key, it runs.
        fresh = await client.call_tool("write_file", arguments, meta={META_CALL_KEY: "run-1:2"})
        assert not fresh.is_error and target.read_text() == "first"


async def test_a_server_refuses_to_repeat_a_change_cut_off_midway(
    settings: ToolHostSettings, root: Path, tmp_path: Path
) -> None:
    server = filesystem.build_server(settings)
    journal = CallJournal(tmp_path / "calls.db")
    keep_journal(server, journal)
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    with journal._connect() as conn:
        conn.execute("INSERT INTO calls (key, tool, pid, started_unix) VALUES ('run-2:1', 'w', ?, 0)", (gone.pid,))
    target = root / "other.txt"
    async with Client(server) as client:
        reply = await client.call_tool(
            "write_file", {"path": str(target), "content": "x"}, meta={META_CALL_KEY: "run-2:1"}
        )
    assert reply.is_error and (reply.meta or {}).get(META_INTERRUPTED) is True
    assert "whether it changed anything is unknown" in reply.content[0].text  # type: ignore[union-attr]
    assert not target.exists()
