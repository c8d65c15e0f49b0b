"""Nobody gets past the person: the running stack tried as another process on the same machine would."""

from __future__ import annotations

import json
import stat
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import grpc
import pytest
import redis

from services.toolhost.audit import AuditLog
from switchboard import keys
from switchboard.auth import blocking_channel
from switchboard.envelope import Envelope
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc
from tests.stack.harness import Stack

pytestmark = pytest.mark.stack

# One method of each internal service, with a request it would act on.
INTERNAL_CALLS = {
    "planner": (pb_grpc.PlannerStub, "Plan", pb.PlanRequest(text="List the files")),
    "filter": (pb_grpc.FilterStub, "Rank", pb.RankRequest(text="List the files")),
    "router": (pb_grpc.RouterStub, "Route", pb.RouteRequest(text="List the files")),
    "toolhost": (pb_grpc.ToolHostStub, "ListTools", pb.ListToolsRequest()),
}


def unauthenticated(call: Callable[[], object]) -> bool:
    """Whether `call` is refused for its credential."""
    try:
        call()
    except grpc.RpcError as exc:
        return exc.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
    return False


def test_the_secrets_are_private_files_in_the_state_directory(stack: Stack) -> None:
    for name in ("token", "internal.key", "approval.key"):
        assert stat.S_IMODE((stack.state_dir / name).stat().st_mode) == 0o600, name
    logs = "".join(path.read_text(errors="replace") for path in stack.logs.glob("*.log"))
    for name in ("token", "internal.key", "approval.key"):
        assert (stack.state_dir / name).read_text().strip() not in logs


def test_each_internal_service_refuses_a_caller_without_the_internal_key(stack: Stack) -> None:
    internal = (stack.state_dir / "internal.key").read_text().strip()
    for service, (stub_class, method, request) in INTERNAL_CALLS.items():
        addr = stack.env[f"SWITCHBOARD_{service.upper()}_ADDR"]
        # No credential, a wrong one, and the person's API token, which is not the services' key.
        for channel in (
            grpc.insecure_channel(addr),
            blocking_channel(addr, "wrong"),
            blocking_channel(addr, stack.token),
        ):
            call = getattr(stub_class(channel), method)
            assert unauthenticated(lambda call=call, request=request: call(request, timeout=30)), service
            channel.close()
    with blocking_channel(stack.env["SWITCHBOARD_TOOLHOST_ADDR"], internal) as channel:
        assert len(pb_grpc.ToolHostStub(channel).ListTools(pb.ListToolsRequest(), timeout=30).tools) > 10


def test_the_public_grpc_api_refuses_a_caller_without_the_token_and_a_write_never_runs(
    stack: Stack, workspace: Path
) -> None:
    target = workspace / "never-written.txt"
    addr = stack.env["SWITCHBOARD_GATEWAY_ADDR"]
    with grpc.insecure_channel(addr) as bare:
        gateway = pb_grpc.GatewayStub(bare)
        submit = pb.SubmitRequest(text=f"Write 'owned' to {target}")
        assert unauthenticated(lambda: gateway.Submit(submit, timeout=30))
        assert unauthenticated(lambda: gateway.Confirm(pb.ConfirmRequest(run_id="x", step=1, approve=True), timeout=30))
    with blocking_channel(addr, stack.token) as channel:
        assert pb_grpc.GatewayStub(channel).ListTools(pb.ListToolsRequest(), timeout=30).tools
    assert not target.exists()


def test_redis_refuses_a_client_without_the_password(stack: Stack) -> None:
    url = urlsplit(stack.redis_url)
    without = redis.Redis(host=url.hostname, port=url.port, socket_timeout=5)
    with pytest.raises(redis.AuthenticationError):
        without.xadd(keys.APPROVED, {"body": b"x"})
    with pytest.raises(redis.AuthenticationError):
        without.set("x", "y")
    without.close()


def test_a_copied_approval_on_the_stream_is_refused_and_audited_and_the_write_ran_once(
    stack: Stack, workspace: Path
) -> None:
    target = workspace / "once.txt"
    # A consumer group of the test's own that reads nothing keeps the stream's entries from being
    # trimmed once the tool host has acknowledged them, so the approved call can still be copied.
    client = redis.Redis.from_url(stack.redis_url)
    client.xgroup_create(keys.APPROVED, "test-observer", id="$", mkstream=True)
    asked = stack.sb("ask", "--json", "--wait", f"Copy {workspace / 'alpha.txt'} to {target}")
    run = json.loads(asked.stdout)
    step = next(s for s in run["steps"] if s["status"] == "awaiting_confirmation")
    done = stack.sb("confirm", "--json", "--wait", run["run_id"], str(step["number"]))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "answered", done.stdout
    assert target.read_text() == (workspace / "alpha.txt").read_text()
    target.write_text("changed since\n")

    # Someone with the Redis password copies the approved call and appends it again, as it was and
    # under a message key of its own.
    approved = [
        fields for _, fields in client.xrange(keys.APPROVED) if Envelope.from_fields(fields).run_id == run["run_id"]
    ]
    [fields] = approved
    copy = Envelope.from_fields(fields)
    client.xadd(keys.APPROVED, fields)
    client.xadd(keys.APPROVED, Envelope(copy.run_id, copy.step, "copied", copy.traceparent, copy.body).to_fields())
    client.xgroup_destroy(keys.APPROVED, "test-observer")
    client.close()

    audit = AuditLog(stack.state_dir / "audit.db")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        rows = [r for r in audit.rows() if r["run_id"] == run["run_id"] and r["kind"] == "call"]
        if len(rows) >= 3:
            break
        time.sleep(0.2)
    assert [r["confirmation"] for r in rows] == ["confirmed", "refused_replayed", "refused_replayed"]

    # The same approval over the tool host's gRPC API, with the services' own key: refused too.
    call = pb.ToolCall.FromString(copy.body)
    request = pb.CallToolRequest(
        tool=call.tool,
        arguments_json=call.arguments_json,
        run_id=call.run_id,
        step=call.step,
        approval=call.approval,
        session_id=call.session_id,
    )
    internal = (stack.state_dir / "internal.key").read_text().strip()
    with blocking_channel(stack.env["SWITCHBOARD_TOOLHOST_ADDR"], internal) as channel:
        over_grpc = pb_grpc.ToolHostStub(channel).CallTool(request, timeout=60)
    assert over_grpc.failure == pb.FAILURE_MODE_APPROVAL_REFUSED and "already used" in over_grpc.error
    rows = [r for r in audit.rows() if r["run_id"] == run["run_id"] and r["kind"] == "call"]
    assert [r["confirmation"] for r in rows][-1] == "refused_replayed"
    assert target.read_text() == "changed since\n"  # the tool ran exactly once
