"""The tool host itself: real MCP server processes over stdio, approvals, the audit log and undo."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from services.toolhost.app import ApprovedCallWorker, ToolHost
from services.toolhost.audit import AuditLog
from services.toolhost.mcp_pool import McpServer
from services.toolhost.sandbox import Sandbox
from services.toolhost.server import ToolHostServicer
from services.toolhost.servers.kit import Trash
from services.toolhost.settings import ToolHostSettings
from switchboard import keys
from switchboard.approvals import UNDO, consume, grant
from switchboard.envelope import Envelope
from switchboard.streams import StreamWorker, emit, publish
from switchboard.v1 import switchboard_pb2 as pb

KEY = "test-approval-key"  # a person's approvals, granted by the gateway
POLICY_KEY = "test-policy-key"  # the policy's, granted by the planner for reads
GRANT_KEYS = {pb.GRANT_KIND_PERSON: KEY, pb.GRANT_KIND_POLICY: POLICY_KEY}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = (tmp_path / "root").resolve()
    folder.mkdir()
    (folder / "report.txt").write_text("quarterly numbers\n")
    return folder


@pytest.fixture
async def host(tmp_path: Path, root: Path, redis: aioredis.Redis) -> AsyncIterator[ToolHost]:
    settings = ToolHostSettings(allowed_roots=str(root), state_dir=tmp_path / "state")
    env = {"SWITCHBOARD_ALLOWED_ROOTS": str(root), "SWITCHBOARD_STATE_DIR": str(settings.state_dir)}
    server = McpServer("filesystem", "services.toolhost.servers.filesystem", env)
    stop = asyncio.Event()
    supervisor = asyncio.create_task(server.supervise(stop))
    running = ToolHost(
        redis,
        [server],
        GRANT_KEYS,
        30.0,
        AuditLog(settings.audit_path),
        Sandbox(settings.roots()),
        Trash(settings.trash_dir),
    )
    await running.wait_ready(timeout=60)
    yield running
    stop.set()
    await supervisor


def approval(
    tool: str, args: str, step: int = 1, kind: pb.GrantKind = pb.GRANT_KIND_PERSON, ttl: float = 60
) -> pb.Approval:
    return grant(
        GRANT_KEYS[kind],
        run_id="run1",
        step=step,
        tool=tool,
        arguments_json=args,
        idempotency_key=f"run1:{step}:gateway",
        kind=kind,
        ttl_seconds=ttl,
    )


async def approved_call(host: ToolHost, tool: str, arguments: dict, step: int = 1) -> pb.StepResult:
    args = json.dumps(arguments)
    return await host.call(tool, args, "run1", step, approval(tool, args, step), "session1")


async def test_catalogue_carries_the_servers_flags(host: ToolHost) -> None:
    tools = {tool.name: tool for tool in host.catalogue()}
    assert not tools["filesystem.list_dir"].confirmation_required
    assert tools["filesystem.delete_file"].confirmation_required and tools["filesystem.delete_file"].destructive
    assert tools["filesystem.move_file"].undo_supported


async def test_a_change_without_approval_is_refused_and_logged(host: ToolHost, root: Path) -> None:
    target = root / "report.txt"
    result = await host.call("filesystem.delete_file", json.dumps({"path": str(target)}), "run1", 1, pb.Approval())
    assert result.status == pb.STEP_STATUS_FAILED and result.failure == pb.FAILURE_MODE_APPROVAL_REFUSED
    assert "no approval" in result.error
    assert target.exists()
    [row] = host.audit.rows()
    assert (row["tool"], row["outcome"], row["confirmation"]) == ("filesystem.delete_file", "failed", "refused_missing")


def forge(approval: pb.Approval, **changes: object) -> pb.Approval:
    """`approval` with fields changed after it was signed."""
    copy = pb.Approval()
    copy.CopyFrom(approval)
    for name, value in changes.items():
        setattr(copy, name, value)
    return copy


async def test_an_approval_runs_its_call_once_and_every_other_use_is_refused_and_audited(
    host: ToolHost, root: Path
) -> None:
    target = root / "report.txt"
    args = json.dumps({"path": str(target), "content": "v2\n"})
    given = approval("filesystem.write_file", args)
    first = await host.call("filesystem.write_file", args, "run1", 1, given, "session1")
    assert first.status == pb.STEP_STATUS_SUCCEEDED, first.error
    target.write_text("changed by the person afterwards\n")

    replayed = await host.call("filesystem.write_file", args, "run1", 1, given, "session1")
    forged = await host.call(
        "filesystem.write_file", args, "run1", 1, forge(approval("filesystem.write_file", args), nonce="0" * 32)
    )
    other_args = json.dumps({"path": str(target), "content": "evil\n"})
    for_another = await host.call(
        "filesystem.write_file", other_args, "run1", 1, approval("filesystem.write_file", args)
    )
    expired = await host.call("filesystem.write_file", args, "run1", 1, approval("filesystem.write_file", args, ttl=-1))
    by_policy = await host.call(
        "filesystem.write_file", args, "run1", 1, approval("filesystem.write_file", args, kind=pb.GRANT_KIND_POLICY)
    )
    # Signed with the policy's key (all the planner holds) but passed off as a person's approval.
    other_key = grant(
        POLICY_KEY,
        run_id="run1",
        step=1,
        tool="filesystem.write_file",
        arguments_json=args,
        idempotency_key="k",
        kind=pb.GRANT_KIND_PERSON,
        ttl_seconds=60,
    )
    signed_elsewhere = await host.call("filesystem.write_file", args, "run1", 1, other_key)

    refused = [replayed, forged, for_another, expired, by_policy, signed_elsewhere]
    assert all(r.status == pb.STEP_STATUS_FAILED and r.failure == pb.FAILURE_MODE_APPROVAL_REFUSED for r in refused)
    assert target.read_text() == "changed by the person afterwards\n"  # the tool ran exactly once
    rows = host.audit.rows()
    assert [r["confirmation"] for r in rows] == [
        "confirmed",
        "refused_replayed",
        "refused_forged",
        "refused_mismatched",
        "refused_expired",
        "refused_insufficient",
        "refused_forged",
    ]
    assert all(r["outcome"] == "failed" and r["error"].startswith("not run:") for r in rows[1:])


async def test_a_read_needs_an_approval_too_and_the_policy_may_give_it(host: ToolHost, root: Path) -> None:
    args = json.dumps({"path": str(root)})
    unapproved = await host.call("filesystem.list_dir", args, "run1", 1, pb.Approval())
    assert unapproved.failure == pb.FAILURE_MODE_APPROVAL_REFUSED
    listed = await host.call(
        "filesystem.list_dir", args, "run1", 1, approval("filesystem.list_dir", args, kind=pb.GRANT_KIND_POLICY)
    )
    assert listed.status == pb.STEP_STATUS_SUCCEEDED, listed.error
    refused, read = host.audit.rows()
    assert (refused["outcome"], read["outcome"], read["confirmation"]) == ("failed", "succeeded", "not_required")


async def test_unknown_tool_and_missing_parameter_say_how_to_fix_the_call(host: ToolHost) -> None:
    unknown = await host.call("filesystem.list_dirs_and_files", "{}", "run1", 1, pb.Approval())
    assert "no tool named" in unknown.error and "filesystem.list_dir" in unknown.error
    aliased = await host.call("filesystem.ls", "{}", "run1", 1, pb.Approval())  # an alias resolves to list_dir
    assert aliased.tool == "filesystem.list_dir" and "missing path" in aliased.error
    missing = await host.call("filesystem.list_dir", "{}", "run1", 1, pb.Approval())
    assert "missing path" in missing.error


async def test_delete_then_undo_restores_the_file_and_the_log_shows_both(host: ToolHost, root: Path) -> None:
    target = root / "report.txt"
    deleted = await approved_call(host, "filesystem.delete_file", {"path": str(target)})
    assert deleted.status == pb.STEP_STATUS_SUCCEEDED, deleted.error
    assert not target.exists()

    actions = await host.undo("run1", 1, approval(UNDO, "", 1), "session1")
    assert target.read_text() == "quarterly numbers\n"
    assert "restored" in actions[0]

    call, undo = host.audit.rows()
    assert (call["kind"], call["outcome"], call["confirmation"]) == ("call", "succeeded", "confirmed")
    assert json.loads(call["files_read"])[0]["path"] == str(target)
    assert (undo["kind"], undo["outcome"], undo["undoes"]) == ("undo", "succeeded", call["id"])
    with pytest.raises(Exception, match="already undone"):
        await host.undo("run1", 1, approval(UNDO, "", 1), "session1")


async def test_undo_of_move_copy_and_overwrite(host: ToolHost, root: Path) -> None:
    source, moved = root / "report.txt", root / "archive" / "report.txt"
    await approved_call(host, "filesystem.move_file", {"source": str(source), "destination": str(moved)}, step=1)
    copy = root / "copy.txt"
    await approved_call(host, "filesystem.copy_file", {"source": str(moved), "destination": str(copy)}, step=2)
    await approved_call(host, "filesystem.write_file", {"path": str(moved), "content": "rewritten\n"}, step=3)
    assert moved.read_text() == "rewritten\n" and copy.exists() and not source.exists()

    for step in (3, 2, 1):
        await host.undo("run1", step, approval(UNDO, "", step), "session1")
    assert source.read_text() == "quarterly numbers\n"
    assert not copy.exists() and not moved.exists()
    written = json.loads(host.audit.rows()[2]["files_written"])
    assert written[0]["path"] == str(moved)


async def test_undo_needs_the_gateways_approval_once(host: ToolHost, root: Path) -> None:
    await approved_call(host, "filesystem.delete_file", {"path": str(root / "report.txt")})
    with pytest.raises(Exception, match="approval"):
        await host.undo("run1", 1, forge(approval(UNDO, "", 1), step=2), "session1")
    assert not (root / "report.txt").exists()
    refused = host.audit.rows()[-1]
    assert (refused["kind"], refused["confirmation"]) == ("undo", "refused_forged")


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
    listed = await approved_call(host, "filesystem.list_dir", {"path": str(root)})
    assert listed.status == pb.STEP_STATUS_SUCCEEDED, listed.error


def approved_write(args: str) -> pb.ToolCall:
    """A person's approved write of step 1, as the stream carries it."""
    return pb.ToolCall(
        run_id="run1",
        step=1,
        tool="filesystem.write_file",
        arguments_json=args,
        approval=approval("filesystem.write_file", args),
        session_id="session1",
    )


async def test_a_replayed_message_on_the_stream_is_refused_and_audited(
    host: ToolHost, root: Path, redis: aioredis.Redis
) -> None:
    target = root / "report.txt"
    args = json.dumps({"path": str(target), "content": "v2\n"})
    key = "run1:1:gateway"
    call = approved_write(args)
    worker = ApprovedCallWorker(redis, host)
    stream = StreamWorker(
        redis,
        stream=keys.APPROVED,
        group=keys.GROUP_TOOLHOST,
        consumer="test",
        handler=worker.on_approved,
        on_duplicate=worker.on_duplicate,
    )
    message = emit(keys.APPROVED, "run1", 1, key, call.SerializeToString())
    await publish(redis, [message])
    await stream.run(burst=True)
    target.write_text("changed by the person afterwards\n")

    # The same message again, and the same approval in a message of its own.
    await publish(redis, [message, emit(keys.APPROVED, "run1", 1, "copied:1:gateway", call.SerializeToString())])
    await stream.run(burst=True)

    assert target.read_text() == "changed by the person afterwards\n"  # the tool ran exactly once
    rows = host.audit.rows()
    assert [r["confirmation"] for r in rows] == ["confirmed", "refused_replayed", "refused_replayed"]
    results = [pb.StepResult.FromString(Envelope.from_fields(f).body) for _, f in await redis.xrange(keys.RESULTS)]
    assert [r.status for r in results] == [pb.STEP_STATUS_SUCCEEDED, pb.STEP_STATUS_FAILED]
    assert results[1].failure == pb.FAILURE_MODE_APPROVAL_REFUSED


async def test_a_call_cut_off_by_the_tool_host_dying_is_resumed_and_runs_once(
    host: ToolHost, root: Path, redis: aioredis.Redis
) -> None:
    """What a tool host killed during a change leaves behind (the message claimed, the approval used,
    the audit row begun, and the server that finished the change, recorded under the call's key) is
    taken up by the next one: the outcome comes from the server's journal, the audit row is completed."""
    target = root / "ledger.txt"
    args = json.dumps({"path": str(target), "content": "v1\n"})
    key = "run1:1:gateway"
    call = approved_write(args)
    # The first attempt, up to the moment its process was killed.
    await redis.hset(keys.calls_key("run1"), f"claim:{key}", b"1")
    assert await consume(redis, call.approval, key) is None
    host.audit.begin(kind="call", tool=call.tool, arguments_json=args, confirmation="confirmed", run_id="run1", step=1)
    await host.servers["filesystem"].call("write_file", json.loads(args), 30.0, key=key)
    target.write_text("changed by the person since\n")

    worker = ApprovedCallWorker(redis, host)
    stream = StreamWorker(
        redis, stream=keys.APPROVED, group=keys.GROUP_TOOLHOST, consumer="next", handler=worker.on_approved
    )
    await publish(redis, [emit(keys.APPROVED, "run1", 1, key, call.SerializeToString())])
    await stream.run(burst=True)

    assert target.read_text() == "changed by the person since\n"  # not written a second time
    rows = host.audit.rows()
    assert [(r["tool"], r["outcome"], r["confirmation"]) for r in rows] == [
        ("filesystem.write_file", "succeeded", "confirmed")
    ]
    results = [pb.StepResult.FromString(Envelope.from_fields(f).body) for _, f in await redis.xrange(keys.RESULTS)]
    assert [r.status for r in results] == [pb.STEP_STATUS_SUCCEEDED]
    assert json.loads(results[0].content_json)["path"] == str(target)


# ---- what the tool host's metrics say of a call ----


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def calls(tool: str, outcome: str) -> float:
    return sample("switchboard_tool_calls_total", tool=tool, outcome=outcome)


def caught(mode: str) -> float:
    return sample("switchboard_failure_modes_total", stage="toolhost", mode=mode)


async def test_every_tool_has_its_call_series_from_the_start(host: ToolHost) -> None:
    for outcome in ("succeeded", "failed", "refused", "interrupted"):
        labels = {"tool": "filesystem.list_dir", "outcome": outcome}
        assert REGISTRY.get_sample_value("switchboard_tool_calls_total", labels) is not None


async def test_a_call_is_counted_by_tool_and_outcome_and_timed(host: ToolHost, root: Path) -> None:
    before = (
        calls("filesystem.read_file", "succeeded"),
        sample("switchboard_tool_call_duration_seconds_count", tool="filesystem.read_file"),
    )
    result = await approved_call(host, "filesystem.read_file", {"path": str(root / "report.txt")})
    assert result.status == pb.STEP_STATUS_SUCCEEDED
    assert calls("filesystem.read_file", "succeeded") == before[0] + 1
    assert sample("switchboard_tool_call_duration_seconds_count", tool="filesystem.read_file") == before[1] + 1
    refused = calls("filesystem.delete_file", "refused"), caught("approval_refused")
    await host.call("filesystem.delete_file", json.dumps({"path": str(root / "report.txt")}), "run1", 1, pb.Approval())
    assert (calls("filesystem.delete_file", "refused"), caught("approval_refused")) == (refused[0] + 1, refused[1] + 1)


async def test_a_wrong_tool_name_is_counted_resolved_or_not(host: ToolHost, root: Path) -> None:
    resolved, unresolved = caught("unknown_tool_resolved"), caught("unknown_tool_unresolved")
    unknown = calls("unknown", "failed")
    result = await approved_call(host, "read_file", {"path": str(root / "report.txt")})  # no server prefix
    assert result.status == pb.STEP_STATUS_SUCCEEDED and result.tool == "filesystem.read_file"
    assert caught("unknown_tool_resolved") == resolved + 1
    failed = await approved_call(host, "filesystem.teleport_file", {"path": "x"})
    assert failed.status == pb.STEP_STATUS_FAILED
    assert caught("unknown_tool_unresolved") == unresolved + 1
    assert calls("unknown", "failed") == unknown + 1  # a made-up name makes no series of its own


async def test_arguments_no_json_object_or_missing_a_required_one_are_counted(host: ToolHost) -> None:
    malformed, invalid = caught("malformed_call"), caught("invalid_argument")
    args = '{"path": '
    cut = await host.call("filesystem.read_file", args, "run1", 1, approval("filesystem.read_file", args), "s")
    assert cut.status == pb.STEP_STATUS_FAILED and caught("malformed_call") == malformed + 1
    missing = await approved_call(host, "filesystem.read_file", {}, step=2)
    assert "missing path" in missing.error and caught("invalid_argument") == invalid + 1


async def test_a_call_over_grpc_is_the_tool_hosts_work(host: ToolHost, root: Path) -> None:
    work = sample("switchboard_stage_work_seconds_count", stage="toolhost")
    args = json.dumps({"path": str(root / "report.txt")})
    request = pb.CallToolRequest(
        tool="filesystem.read_file",
        arguments_json=args,
        run_id="run1",
        step=1,
        approval=approval("filesystem.read_file", args),
    )
    result = await ToolHostServicer(host).CallTool(request, None)  # type: ignore[arg-type]
    assert result.status == pb.STEP_STATUS_SUCCEEDED
    assert sample("switchboard_stage_work_seconds_count", stage="toolhost") == work + 1
    preview = pb.PreviewRequest(tool="filesystem.read_file", arguments_json=args)
    await ToolHostServicer(host).PreviewCall(preview, None)  # type: ignore[arg-type]
    assert sample("switchboard_stage_work_seconds_count", stage="toolhost") == work + 2
