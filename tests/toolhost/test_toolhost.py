"""The tool host itself: real MCP server processes over stdio, approvals, the audit log and undo."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from services.toolhost.app import UNDO, ToolHost
from services.toolhost.audit import AuditLog
from services.toolhost.mcp_pool import McpServer
from services.toolhost.sandbox import Sandbox
from services.toolhost.servers.kit import Trash
from services.toolhost.settings import ToolHostSettings
from switchboard.secrets import sign_call
from switchboard.v1 import switchboard_pb2 as pb

KEY = "test-approval-key"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = (tmp_path / "root").resolve()
    folder.mkdir()
    (folder / "report.txt").write_text("quarterly numbers\n")
    return folder


@pytest.fixture
async def host(tmp_path: Path, root: Path) -> AsyncIterator[ToolHost]:
    settings = ToolHostSettings(allowed_roots=str(root), state_dir=tmp_path / "state")
    env = {"SWITCHBOARD_ALLOWED_ROOTS": str(root), "SWITCHBOARD_STATE_DIR": str(settings.state_dir)}
    server = McpServer("filesystem", "services.toolhost.servers.filesystem", env)
    stop = asyncio.Event()
    supervisor = asyncio.create_task(server.supervise(stop))
    running = ToolHost(
        [server], KEY, 30.0, AuditLog(settings.audit_path), Sandbox(settings.roots()), Trash(settings.trash_dir)
    )
    await running.wait_ready(timeout=60)
    yield running
    stop.set()
    await supervisor


async def approved_call(host: ToolHost, tool: str, arguments: dict, step: int = 1) -> pb.StepResult:
    args = json.dumps(arguments)
    return await host.call(tool, args, "run1", step, sign_call(KEY, "run1", step, tool, args), "session1")


async def test_catalogue_carries_the_servers_flags(host: ToolHost) -> None:
    tools = {tool.name: tool for tool in host.catalogue()}
    assert not tools["filesystem.list_dir"].confirmation_required
    assert tools["filesystem.delete_file"].confirmation_required and tools["filesystem.delete_file"].destructive
    assert tools["filesystem.move_file"].undo_supported


async def test_a_change_without_approval_is_refused_and_logged(host: ToolHost, root: Path) -> None:
    target = root / "report.txt"
    result = await host.call("filesystem.delete_file", json.dumps({"path": str(target)}), "run1", 1, "forged")
    assert result.status == pb.STEP_STATUS_FAILED and "confirmation" in result.error
    assert target.exists()
    [row] = host.audit.rows()
    assert (row["tool"], row["outcome"], row["confirmation"]) == ("filesystem.delete_file", "failed", "missing")


async def test_unknown_tool_and_missing_parameter_say_how_to_fix_the_call(host: ToolHost) -> None:
    unknown = await host.call("filesystem.list_dirs_and_files", "{}", "run1", 1, "")
    assert "no tool named" in unknown.error and "filesystem.list_dir" in unknown.error
    aliased = await host.call("filesystem.ls", "{}", "run1", 1, "")  # an alias resolves to list_dir
    assert aliased.tool == "filesystem.list_dir" and "missing path" in aliased.error
    missing = await host.call("filesystem.list_dir", "{}", "run1", 1, "")
    assert "missing path" in missing.error


async def test_delete_then_undo_restores_the_file_and_the_log_shows_both(host: ToolHost, root: Path) -> None:
    target = root / "report.txt"
    deleted = await approved_call(host, "filesystem.delete_file", {"path": str(target)})
    assert deleted.status == pb.STEP_STATUS_SUCCEEDED, deleted.error
    assert not target.exists()

    actions = await host.undo("run1", 1, sign_call(KEY, "run1", 1, UNDO, ""), "session1")
    assert target.read_text() == "quarterly numbers\n"
    assert "restored" in actions[0]

    call, undo = host.audit.rows()
    assert (call["kind"], call["outcome"], call["confirmation"]) == ("call", "succeeded", "confirmed")
    assert json.loads(call["files_read"])[0]["path"] == str(target)
    assert (undo["kind"], undo["outcome"], undo["undoes"]) == ("undo", "succeeded", call["id"])
    with pytest.raises(Exception, match="already undone"):
        await host.undo("run1", 1, sign_call(KEY, "run1", 1, UNDO, ""), "session1")


async def test_undo_of_move_copy_and_overwrite(host: ToolHost, root: Path) -> None:
    source, moved = root / "report.txt", root / "archive" / "report.txt"
    await approved_call(host, "filesystem.move_file", {"source": str(source), "destination": str(moved)}, step=1)
    copy = root / "copy.txt"
    await approved_call(host, "filesystem.copy_file", {"source": str(moved), "destination": str(copy)}, step=2)
    await approved_call(host, "filesystem.write_file", {"path": str(moved), "content": "rewritten\n"}, step=3)
    assert moved.read_text() == "rewritten\n" and copy.exists() and not source.exists()

    for step in (3, 2, 1):
        await host.undo("run1", step, sign_call(KEY, "run1", step, UNDO, ""), "session1")
    assert source.read_text() == "quarterly numbers\n"
    assert not copy.exists() and not moved.exists()
    written = json.loads(host.audit.rows()[2]["files_written"])
    assert written[0]["path"] == str(moved)


async def test_undo_needs_the_gateways_signature(host: ToolHost, root: Path) -> None:
    await approved_call(host, "filesystem.delete_file", {"path": str(root / "report.txt")})
    with pytest.raises(Exception, match="approval"):
        await host.undo("run1", 1, "forged", "session1")
    assert not (root / "report.txt").exists()


def test_the_audit_log_cannot_be_rewritten(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.db")
    row = log.begin(kind="call", tool="filesystem.list_dir", arguments_json="{}", confirmation="not_required")
    log.finish(row, outcome="succeeded", duration_ms=1.0)
    with pytest.raises(sqlite3.IntegrityError, match="completed once"):
        log.finish(row, outcome="failed", duration_ms=2.0)
    db = sqlite3.connect(tmp_path / "audit.db")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        db.execute("DELETE FROM audit_log")
    with pytest.raises(sqlite3.IntegrityError):
        db.execute("UPDATE audit_log SET tool = 'x'")
    db.close()
    assert log.rows()[0]["outcome"] == "succeeded"


async def test_a_crashed_server_is_restarted(host: ToolHost, root: Path) -> None:
    import psutil

    [child] = [
        p
        for p in psutil.Process().children(recursive=True)
        if "services.toolhost.servers.filesystem" in " ".join(p.cmdline())
    ]
    child.kill()
    server = host.servers["filesystem"]
    async with asyncio.timeout(60):
        while server.restarts == 0 or not server.ready.is_set():
            await asyncio.sleep(0.05)
    listed = await host.call("filesystem.list_dir", json.dumps({"path": str(root)}), "run1", 1, "")
    assert listed.status == pb.STEP_STATUS_SUCCEEDED, listed.error
