"""The gateway's policy and run records, through its gRPC adapter, against a real redis-server."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest
import redis.asyncio as aioredis

from services.gateway import core
from services.gateway.app import Gateway
from services.gateway.server import GatewayServicer
from switchboard import auth, keys, runs
from switchboard.approvals import refusal
from switchboard.auth import BearerAuth
from switchboard.envelope import Envelope
from switchboard.paths import PathPolicy
from switchboard.streams import emit
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

KEY = "approval-key"
TOKEN = "the-api-token"
CATALOGUE = [
    pb.ToolInfo(name="filesystem.list_dir", server="filesystem", confirmation_required=False),
    pb.ToolInfo(name="filesystem.delete_file", server="filesystem", confirmation_required=True, destructive=True),
]


class StaticCatalogue:
    """Stands in for the tool host's catalogue; the gateway only reads it."""

    async def list_tools(self) -> list[pb.ToolInfo]:
        return list(CATALOGUE)


def test_policy() -> None:
    assert core.decide(CATALOGUE[0]) is core.Policy.RUN_NOW
    assert core.decide(CATALOGUE[1]) is core.Policy.ASK_PERSON
    assert core.decide(None) is core.Policy.ASK_PERSON


@pytest.fixture
async def served(redis: aioredis.Redis, tmp_path: Path):  # noqa: ANN201
    # The calls below name paths under /tmp; the allowed root is /tmp itself.
    gateway = Gateway(redis, StaticCatalogue(), KEY, PathPolicy((Path("/tmp"),), tmp_path))  # type: ignore[arg-type]
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


def proposal(run_id: str, tool: str, arguments: dict, step: int = 1) -> Envelope:
    call = pb.ToolCall(
        run_id=run_id,
        step=step,
        tool=tool,
        arguments_json=json.dumps(arguments),
        outcome=pb.ROUTE_OUTCOME_ROUTED,
        hops=[keys.HOP_RANK, keys.HOP_ROUTE],
    )
    return emit(keys.PROPOSED, run_id, step, f"{run_id}:{step}:planner", call.SerializeToString()).envelope


async def record_result(gateway: Gateway, envelope: Envelope) -> None:
    """A result coming back, as the planner writes it into the run's record."""
    result = pb.StepResult.FromString(envelope.body)
    await gateway.store.update(result.run_id, lambda run: runs.apply_result(run, result, [keys.RESULTS]))


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


async def test_read_only_call_is_approved_and_signed(served) -> None:  # noqa: ANN001
    gateway, _, _ = served
    run = await gateway.submit("List the files in /tmp")
    [out] = await gateway.on_proposal(proposal(run.run_id, "filesystem.list_dir", {"path": "/tmp"}))
    assert out.stream == keys.APPROVED
    call = pb.ToolCall.FromString(out.envelope.body)
    assert refusal(KEY, call.approval, **named(call), changes=False) is None
    assert call.approval.kind == pb.GRANT_KIND_POLICY  # the policy let a read through, not a person
    record = (await gateway.get_run(run.run_id)).steps[0]
    assert record.status == pb.STEP_STATUS_APPROVED
    assert list(record.hops) == [keys.HOP_RANK, keys.HOP_ROUTE, keys.PROPOSED]


async def test_a_call_naming_a_path_outside_the_roots_is_refused_before_anyone_is_asked(served) -> None:  # noqa: ANN001
    gateway, _, _ = served
    run = await gateway.submit("Show me /etc/shadow")
    [out] = await gateway.on_proposal(proposal(run.run_id, "filesystem.read_file", {"path": "/etc/shadow"}))
    assert out.stream == keys.RESULTS
    result = pb.StepResult.FromString(out.envelope.body)
    assert result.status == pb.STEP_STATUS_REJECTED and "/etc/shadow" in result.error
    assert (await gateway.get_run(run.run_id)).steps[0].status == pb.STEP_STATUS_REJECTED


async def test_an_identical_read_reuses_the_earlier_result_unless_something_changed_in_between(served) -> None:  # noqa: ANN001
    gateway, _, _ = served
    run = await gateway.submit("List /tmp, then show me what /tmp holds")
    listing = [{"name": "a.txt"}]
    await gateway.on_proposal(proposal(run.run_id, "filesystem.list_dir", {"path": "/tmp"}))
    await record_result(gateway, settled(run.run_id, 1, "filesystem.list_dir", {"path": "/tmp"}, listing))
    [again] = await gateway.on_proposal(proposal(run.run_id, "filesystem.list_dir", {"path": "/tmp"}, step=2))
    result = pb.StepResult.FromString(again.envelope.body)
    # Not run again, and not a failure: the step takes step 1's result.
    assert again.stream == keys.RESULTS and result.status == pb.STEP_STATUS_SUCCEEDED
    assert json.loads(result.content_json) == listing and not result.error
    # After a change, the same read is a new question.
    await gateway.on_proposal(proposal(run.run_id, "filesystem.delete_file", {"path": "/tmp/x"}, step=3))
    await record_result(gateway, settled(run.run_id, 3, "filesystem.delete_file", {"path": "/tmp/x"}))
    [fresh] = await gateway.on_proposal(proposal(run.run_id, "filesystem.list_dir", {"path": "/tmp"}, step=4))
    assert fresh.stream == keys.APPROVED


async def test_an_identical_call_after_a_failure_is_not_made_again(served) -> None:  # noqa: ANN001
    gateway, _, _ = served
    run = await gateway.submit("Read /tmp/missing.txt twice")
    await gateway.on_proposal(proposal(run.run_id, "filesystem.read_file", {"path": "/tmp/missing.txt"}))
    failed = pb.StepResult(
        run_id=run.run_id,
        step=1,
        tool="filesystem.read_file",
        arguments_json=json.dumps({"path": "/tmp/missing.txt"}),
        status=pb.STEP_STATUS_FAILED,
        error="no such file",
    )
    await record_result(gateway, emit(keys.RESULTS, run.run_id, 1, "k", failed.SerializeToString()).envelope)
    [again] = await gateway.on_proposal(
        proposal(run.run_id, "filesystem.read_file", {"path": "/tmp/missing.txt"}, step=2)
    )
    result = pb.StepResult.FromString(again.envelope.body)
    assert result.status == pb.STEP_STATUS_FAILED and result.error.startswith("repeated call: step 1")


def settled(run_id: str, step: int, tool: str, arguments: dict, content: object = None) -> Envelope:
    result = pb.StepResult(
        run_id=run_id,
        step=step,
        tool=tool,
        arguments_json=json.dumps(arguments),
        status=pb.STEP_STATUS_SUCCEEDED,
        content_json=json.dumps(content) if content is not None else "",
    )
    return emit(keys.RESULTS, run_id, step, f"{run_id}:{step}:toolhost", result.SerializeToString()).envelope


async def test_change_waits_for_a_person_then_runs_once_confirmed(served, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gateway, stub, _ = served
    run = await gateway.submit("Delete /tmp/a.txt")
    assert await gateway.on_proposal(proposal(run.run_id, "filesystem.delete_file", {"path": "/tmp/a.txt"})) == []
    assert (await gateway.get_run(run.run_id)).status == pb.RUN_STATUS_AWAITING_CONFIRMATION

    await stub.Confirm(pb.ConfirmRequest(run_id=run.run_id, step=1, approve=True))
    [(_, fields)] = await redis.xrange(keys.APPROVED)
    call = pb.ToolCall.FromString(Envelope.from_fields(fields).body)
    assert call.tool == "filesystem.delete_file"
    assert refusal(KEY, call.approval, **named(call), changes=True) is None
    assert call.approval.kind == pb.GRANT_KIND_PERSON

    with pytest.raises(grpc.aio.AioRpcError) as twice:
        await stub.Confirm(pb.ConfirmRequest(run_id=run.run_id, step=1, approve=True))
    assert twice.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_rejection_settles_the_step_without_running_it(served, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gateway, stub, _ = served
    run = await gateway.submit("Delete /tmp/a.txt")
    await gateway.on_proposal(proposal(run.run_id, "filesystem.delete_file", {"path": "/tmp/a.txt"}))
    await stub.Confirm(pb.ConfirmRequest(run_id=run.run_id, step=1, approve=False, reason="keep it"))
    assert await redis.xlen(keys.APPROVED) == 0
    [(_, fields)] = await redis.xrange(keys.RESULTS)
    result = pb.StepResult.FromString(Envelope.from_fields(fields).body)
    assert result.status == pb.STEP_STATUS_REJECTED and result.error == "keep it"


async def test_dry_run_routes_but_never_approves(served, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gateway, _, _ = served
    run = await gateway.submit("List the files in /tmp", dry_run=True)
    env = proposal(run.run_id, "filesystem.list_dir", {"path": "/tmp"})
    call = pb.ToolCall.FromString(env.body)
    call.dry_run = True
    [out] = await gateway.on_proposal(Envelope(env.run_id, env.step, env.idempotency_key, "", call.SerializeToString()))
    assert out.stream == keys.RESULTS
    assert pb.StepResult.FromString(out.envelope.body).status == pb.STEP_STATUS_SKIPPED


async def test_a_call_held_for_a_question_is_shown_but_never_proposed(served) -> None:  # noqa: ANN001
    gateway, _, _ = served
    run = await gateway.submit("Read that file")  # not a dry run: the hold alone must stop it
    env = proposal(run.run_id, "filesystem.read_file", {"path": "/tmp/a.txt"})
    call = pb.ToolCall.FromString(env.body)
    call.held = "Which file? Give its path."
    [out] = await gateway.on_proposal(Envelope(env.run_id, env.step, env.idempotency_key, "", call.SerializeToString()))
    assert out.stream == keys.RESULTS
    result = pb.StepResult.FromString(out.envelope.body)
    assert result.status == pb.STEP_STATUS_NEEDS_CLARIFICATION and result.error == "Which file? Give its path."
    record = (await gateway.store.get(run.run_id)).steps[0]
    assert record.tool == "filesystem.read_file" and record.status == pb.STEP_STATUS_NEEDS_CLARIFICATION


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


def test_a_read_for_a_request_that_asks_for_a_change_waits_for_a_person() -> None:
    reads = CATALOGUE[0]
    assert core.decide_call(reads, 0.1) is core.Policy.RUN_NOW
    assert core.decide_call(reads, core.CHANGE_INTENT_HOLD) is core.Policy.ASK_PERSON
    assert core.decide_call(CATALOGUE[1], 0.0) is core.Policy.ASK_PERSON  # a change waits whatever the words


async def test_a_held_read_is_proposed_to_the_person_not_run(served) -> None:  # noqa: ANN001
    gateway, _, _ = served
    run = await gateway.submit("Something is eating my CPU, stop it")
    call = pb.ToolCall.FromString(proposal(run.run_id, "filesystem.list_dir", {"path": "/tmp"}).body)
    call.change_intent = 0.9
    envelope = emit(keys.PROPOSED, run.run_id, 1, f"{run.run_id}:1:planner", call.SerializeToString()).envelope
    assert await gateway.on_proposal(envelope) == []
    record = (await gateway.get_run(run.run_id)).steps[0]
    assert record.status == pb.STEP_STATUS_AWAITING_CONFIRMATION and record.confirmation_required


async def test_a_proposal_handled_again_sends_the_same_kind_of_output_without_a_second_event(served) -> None:  # noqa: ANN001
    gateway, _, _ = served
    run = await gateway.submit("List the files in /tmp")
    envelope = proposal(run.run_id, "filesystem.list_dir", {"path": "/tmp"})
    [first] = await gateway.on_proposal(envelope)
    # The process stopped after writing the record and before committing its output: handled again.
    [again] = await gateway.on_proposal(envelope)
    assert first.stream == again.stream == keys.APPROVED
    assert first.envelope.idempotency_key == again.envelope.idempotency_key
    kinds = [
        pb.RunEvent.FromString(f[b"event"]).kind for _, f in await gateway.redis.xrange(keys.run_events_key(run.run_id))
    ]
    assert kinds == [pb.EVENT_KIND_SUBMITTED, pb.EVENT_KIND_APPROVED]
    # Once the result is in, nothing is sent again.
    await record_result(gateway, settled(run.run_id, 1, "filesystem.list_dir", {"path": "/tmp"}, []))
    assert await gateway.on_proposal(envelope) == []
