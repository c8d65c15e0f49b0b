"""The gateway, the edge: the API behind the token, the run's record served, the person's decisions
turned into approvals, against a real redis-server."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from services.gateway.app import Gateway
from services.gateway.server import GatewayServicer
from switchboard import auth, keys, runs
from switchboard.approvals import refusal
from switchboard.auth import BearerAuth
from switchboard.envelope import Envelope
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

KEY = "approval-key"
TOKEN = "the-api-token"
CATALOGUE = [
    pb.ToolInfo(name="filesystem.list_dir", server="filesystem", confirmation_required=False),
    pb.ToolInfo(name="filesystem.delete_file", server="filesystem", confirmation_required=True, destructive=True),
]


class StaticCatalogue:
    """Stands in for the tool host's catalogue and previews (every call asks for a click here)."""

    async def list_tools(self) -> list[pb.ToolInfo]:
        return list(CATALOGUE)

    async def preview(self, tool: str, arguments_json: str) -> pb.Preview:
        return pb.Preview(text=f"Run {tool}", tier=pb.CONFIRM_TIER_CONFIRM)


@pytest.fixture
async def served(redis: aioredis.Redis, tmp_path: Path):  # noqa: ANN201
    gateway = Gateway(redis, StaticCatalogue(), KEY)  # type: ignore[arg-type]
    server = grpc.aio.server(interceptors=[BearerAuth([TOKEN], "present the API token")])
    pb_grpc.add_GatewayServicer_to_server(GatewayServicer(gateway), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = auth.channel(f"127.0.0.1:{port}", TOKEN)
    yield gateway, pb_grpc.GatewayStub(channel), port
    await channel.close()
    await server.stop(None)


# A request for every public method, each of which would do something with a valid token.
EVERY_METHOD = {
    "Submit": pb.SubmitRequest(text="Delete /tmp/x"),
    "GetRun": pb.GetRunRequest(run_id="r"),
    "WatchRun": pb.WatchRunRequest(run_id="r"),
    "Confirm": pb.ConfirmRequest(run_id="r", step=1, approve=True),
    "Undo": pb.UndoRequest(run_id="r", step=1),
    "ListTools": pb.ListToolsRequest(),
    "ListRuns": pb.ListRunsRequest(),
    "Fill": pb.FillRequest(run_id="r", step=1, values_json="{}"),
    "ListGrants": pb.ListGrantsRequest(),
    "RevokeGrant": pb.RevokeGrantRequest(grant_id="g"),
    "Audit": pb.AuditRequest(),
}


async def test_every_public_method_refuses_a_caller_without_the_token(served, redis: aioredis.Redis) -> None:  # noqa: ANN001
    *_, port = served
    assert set(EVERY_METHOD) == set(pb.DESCRIPTOR.services_by_name["Gateway"].methods_by_name)
    for credential in (None, "wrong-token", TOKEN + "x"):
        channel = (
            auth.channel(f"127.0.0.1:{port}", credential)
            if credential
            else grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        )
        stub = pb_grpc.GatewayStub(channel)
        for method, request in EVERY_METHOD.items():
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                call = getattr(stub, method)(request)
                if method == "WatchRun":
                    [event async for event in call]
                else:
                    await call
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED, method
            assert TOKEN not in (refused.value.details() or "")
        await channel.close()
    assert await redis.xlen(keys.TURNS) == 0  # nothing got through


def named(call: pb.ToolCall) -> dict:
    """The call an approval must name."""
    return {"run_id": call.run_id, "step": call.step, "tool": call.tool, "arguments_json": call.arguments_json}


async def waiting_step(gateway: Gateway, text: str, tool: str, arguments: dict) -> pb.Run:
    """A run whose first step the planner routed and held for the person, as it writes it."""
    run = await gateway.submit(text)
    call = pb.ToolCall(run_id=run.run_id, step=1, tool=tool, arguments_json=json.dumps(arguments), intent=text)

    def hold(record: pb.Run) -> None:
        runs.apply_routed(record, call, "filesystem", 1.0, [keys.HOP_RANK, keys.HOP_ROUTE])
        runs.apply_proposal(record, call, [], pb.STEP_STATUS_AWAITING_CONFIRMATION, True)

    await gateway.store.update(run.run_id, hold)
    return await gateway.get_run(run.run_id)


async def test_submit_publishes_a_turn_and_records_the_run(served, redis: aioredis.Redis) -> None:  # noqa: ANN001
    _, stub, _ = served
    reply = await stub.Submit(pb.SubmitRequest(text="List the files in /tmp"))
    turns = await redis.xrange(keys.TURNS)
    assert pb.Turn.FromString(Envelope.from_fields(turns[0][1]).body).text == "List the files in /tmp"
    run = await stub.GetRun(pb.GetRunRequest(run_id=reply.run_id))
    assert run.status == pb.RUN_STATUS_PLANNING


async def test_bad_requests_map_to_grpc_codes(served) -> None:  # noqa: ANN001
    _, stub, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as empty:
        await stub.Submit(pb.SubmitRequest(text="  "))
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.GetRun(pb.GetRunRequest(run_id="nope"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_orchestrators_state_is_never_served(served) -> None:  # noqa: ANN001
    gateway, stub, _ = served
    run = await gateway.submit("List the files in /tmp")
    await gateway.store.update(run.run_id, lambda r: setattr(r, "orchestration_json", '{"plan": []}'))
    assert not (await stub.GetRun(pb.GetRunRequest(run_id=run.run_id))).orchestration_json
    assert not (await gateway.list_runs())[0].orchestration_json


async def test_a_change_runs_once_the_person_confirms_it_with_the_persons_approval(
    served, redis: aioredis.Redis
) -> None:  # noqa: ANN001
    gateway, stub, _ = served
    run = await waiting_step(gateway, "Delete /tmp/a.txt", "filesystem.delete_file", {"path": "/tmp/a.txt"})
    assert run.status == pb.RUN_STATUS_AWAITING_CONFIRMATION
    assert await redis.xlen(keys.APPROVED) == 0  # nothing runs before the person says so

    await stub.Confirm(pb.ConfirmRequest(run_id=run.run_id, step=1, approve=True))
    [(_, fields)] = await redis.xrange(keys.APPROVED)
    call = pb.ToolCall.FromString(Envelope.from_fields(fields).body)
    assert call.tool == "filesystem.delete_file"
    assert refusal({pb.GRANT_KIND_PERSON: KEY}, call.approval, **named(call), tier=pb.CONFIRM_TIER_CONFIRM) is None
    assert call.approval.kind == pb.GRANT_KIND_PERSON
    assert (await gateway.get_run(run.run_id)).steps[0].status == pb.STEP_STATUS_APPROVED

    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stub.Confirm(pb.ConfirmRequest(run_id=run.run_id, step=1, approve=True))
    assert twice.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert await redis.xlen(keys.APPROVED) == 1


async def test_rejection_settles_the_step_without_running_it(served, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gateway, stub, _ = served
    run = await waiting_step(gateway, "Delete /tmp/a.txt", "filesystem.delete_file", {"path": "/tmp/a.txt"})
    await stub.Confirm(pb.ConfirmRequest(run_id=run.run_id, step=1, approve=False, reason="keep it"))
    assert await redis.xlen(keys.APPROVED) == 0
    [(_, fields)] = await redis.xrange(keys.RESULTS)
    result = pb.StepResult.FromString(Envelope.from_fields(fields).body)
    assert result.status == pb.STEP_STATUS_REJECTED and result.error == "keep it"
    [(_, audited)] = await redis.xrange(keys.DECISIONS)  # for the tool host's audit log
    assert pb.StepResult.FromString(Envelope.from_fields(audited).body) == result


async def test_only_a_waiting_step_can_be_confirmed(served) -> None:  # noqa: ANN001
    gateway, stub, _ = served
    run = await gateway.submit("List the files in /tmp")
    with pytest.raises(grpc.aio.AioRpcError) as unknown:
        await stub.Confirm(pb.ConfirmRequest(run_id=run.run_id, step=1, approve=True))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


async def test_watch_replays_events_until_finished(served) -> None:  # noqa: ANN001
    gateway, stub, _ = served
    run = await gateway.submit("List the files in /tmp")
    await gateway.store.update(
        run.run_id,
        lambda r: runs.apply_finished(r, pb.RUN_STATUS_ANSWERED, "done"),
        lambda _r, _x: [runs.Event(pb.EVENT_KIND_FINISHED, message="done")],
    )
    kinds = [event.kind async for event in stub.WatchRun(pb.WatchRunRequest(run_id=run.run_id))]
    assert kinds == [pb.EVENT_KIND_SUBMITTED, pb.EVENT_KIND_FINISHED]
    assert (await gateway.get_run(run.run_id)).answer == "done"
