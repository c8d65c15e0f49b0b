"""The person's decisions on a waiting step, at the gateway against a real redis-server: each tier,
typed confirmation wrong then right, grants for the session and always (and revoked), corrected
arguments, filled values, rejection with a reason, and the deadline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from prometheus_client import REGISTRY

from services.gateway.app import Gateway
from switchboard import grants, keys, runs
from switchboard.envelope import Envelope
from switchboard.errors import InvalidRequest, NotFound
from switchboard.preview import Declared, preview
from switchboard.v1 import switchboard_pb2 as pb

KEY = "approval-key"
PATH_SCHEMA = {"type": "object", "properties": {"path": {"type": "string"}}, "required": ["path"]}
WRITE_SCHEMA = {
    "type": "object",
    "properties": {"path": {"type": "string"}, "content": {"type": "string"}},
    "required": ["path", "content"],
}
EVENT_SCHEMA = {
    "type": "object",
    "properties": {"title": {"type": "string"}, "start": {"type": "string"}, "minutes": {"type": "integer"}},
    "required": ["title", "start"],
}
DECLARED = {
    "filesystem.delete_file": Declared(False, True, "Delete {path} (goes to the trash, can be undone)", "path"),
    "filesystem.write_file": Declared(False, False, "Write {path}", overwrites=("path",)),
    "calendar.create_event": Declared(False, False, "Add “{title}” to the calendar at {start}"),
}
SCHEMAS = {
    "filesystem.delete_file": PATH_SCHEMA,
    "filesystem.write_file": WRITE_SCHEMA,
    "calendar.create_event": EVENT_SCHEMA,
}


class ToolHostStandIn:
    """The tool host's catalogue and previews, made with the real preview code over a set of files that
    exist; the gateway asks nothing else of it here."""

    def __init__(self) -> None:
        self.files: set[str] = set()

    async def list_tools(self) -> list[pb.ToolInfo]:
        return [
            pb.ToolInfo(name=name, server=name.split(".")[0], input_schema_json=json.dumps(SCHEMAS[name]))
            for name in DECLARED
        ]

    async def preview(self, tool: str, arguments_json: str) -> pb.Preview:
        return preview(tool, DECLARED[tool], json.loads(arguments_json), self.files.__contains__)

    async def audit(self, session_id: str = "", run_id: str = "", limit: int = 50) -> list[pb.AuditEntry]:
        return []


@pytest.fixture
async def gateway(redis: aioredis.Redis) -> AsyncIterator[tuple[Gateway, ToolHostStandIn]]:
    host = ToolHostStandIn()
    yield Gateway(redis, host, KEY, deadline_seconds=0.2), host  # type: ignore[arg-type]


async def waiting(
    gateway: Gateway, host: ToolHostStandIn, tool: str, arguments: dict[str, Any], session_id: str = ""
) -> pb.Run:
    """A run whose first step waits for the person, as the planner writes it (with its preview)."""
    run = await gateway.submit(f"do {tool}", session_id)
    call = pb.ToolCall(run_id=run.run_id, step=1, tool=tool, arguments_json=json.dumps(arguments))
    shown = await host.preview(tool, call.arguments_json)

    def hold(record: pb.Run) -> None:
        runs.apply_routed(record, call, tool.split(".")[0], 1.0, [])
        runs.apply_proposal(record, call, [], pb.STEP_STATUS_AWAITING_CONFIRMATION, True)
        step = runs.step_record(record, 1)
        step.preview.CopyFrom(shown)
        step.deadline_unix_ms = runs.now_ms() + 200

    await gateway.store.update(
        run.run_id,
        hold,
        also=lambda pipe, _r, _n: pipe.zadd(keys.AWAITING, {runs.awaiting_member(run.run_id, 1): runs.now_ms() + 200}),
    )
    return await gateway.get_run(run.run_id)


async def approved_calls(redis: aioredis.Redis) -> list[pb.ToolCall]:
    return [pb.ToolCall.FromString(Envelope.from_fields(f).body) for _, f in await redis.xrange(keys.APPROVED)]


async def results(redis: aioredis.Redis) -> list[pb.StepResult]:
    return [pb.StepResult.FromString(Envelope.from_fields(f).body) for _, f in await redis.xrange(keys.RESULTS)]


async def refused(action: Callable[[], Any], said: str) -> None:
    with pytest.raises(InvalidRequest, match=said):
        await action()


async def test_a_click_tier_step_runs_on_a_plain_allow(gateway, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gw, host = gateway
    run = await waiting(gw, host, "filesystem.write_file", {"path": "/d/new.txt", "content": "x"})
    assert run.steps[0].preview.text == "Write /d/new.txt"
    assert run.steps[0].preview.tier == pb.CONFIRM_TIER_CONFIRM
    await gw.confirm(run.run_id, 1, True)
    [call] = await approved_calls(redis)
    assert call.approval.kind == pb.GRANT_KIND_PERSON
    assert not await redis.zcard(keys.AWAITING)  # no longer waiting, so no deadline


async def test_a_typed_tier_step_needs_its_target_typed_wrong_then_right(gateway, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gw, host = gateway
    run = await waiting(gw, host, "filesystem.delete_file", {"path": "/d/b.txt"})
    assert (run.steps[0].preview.tier, run.steps[0].preview.target) == (pb.CONFIRM_TIER_TYPED, "b.txt")
    await refused(lambda: gw.confirm(run.run_id, 1, True), "type 'b.txt' to confirm")
    await refused(lambda: gw.confirm(run.run_id, 1, True, typed="a.txt"), "'a.txt' is not 'b.txt'")
    await refused(lambda: gw.confirm(run.run_id, 1, True, scope="always", typed="b.txt"), "asked every time")
    assert not await approved_calls(redis)
    assert (await gw.get_run(run.run_id)).steps[0].status == pb.STEP_STATUS_AWAITING_CONFIRMATION
    await gw.confirm(run.run_id, 1, True, typed="b.txt")
    assert [c.tool for c in await approved_calls(redis)] == ["filesystem.delete_file"]


async def test_allowing_for_the_session_or_always_makes_a_signed_revocable_grant(
    gateway, redis: aioredis.Redis
) -> None:  # noqa: ANN001
    gw, host = gateway
    first = await waiting(gw, host, "filesystem.write_file", {"path": "/d/1.txt", "content": "x"}, "s1")
    await gw.confirm(first.run_id, 1, True, scope="session")
    second = await waiting(gw, host, "calendar.create_event", {"title": "Demo", "start": "2026-12-01T10:00"}, "s1")
    await gw.confirm(second.run_id, 1, True, scope="always")
    session, lasting = await gw.list_grants()
    assert (session.tool, session.scope, session.session_id) == ("filesystem.write_file", "session", "s1")
    assert (lasting.tool, lasting.scope, lasting.session_id) == ("calendar.create_event", "always", "")
    assert all(grants.genuine(KEY, g) for g in (session, lasting))
    assert (await gw.get_run(first.run_id)).steps[0].grant_id == session.grant_id
    assert await gw.revoke_grant(session.grant_id)
    assert not await gw.revoke_grant(session.grant_id)
    assert [g.grant_id for g in await gw.list_grants()] == [lasting.grant_id]
    with pytest.raises(InvalidRequest, match="not one of"):
        await gw.confirm(second.run_id, 1, True, scope="forever")


async def test_corrected_arguments_are_checked_against_the_schema_and_judged_again(
    gateway, redis: aioredis.Redis
) -> None:  # noqa: ANN001
    gw, host = gateway
    run = await waiting(gw, host, "filesystem.write_file", {"path": "/d/new.txt", "content": "x"})
    await refused(lambda: gw.confirm(run.run_id, 1, True, arguments_json='{"path": 3, "content": "x"}'), "3 is not")
    await refused(lambda: gw.confirm(run.run_id, 1, True, arguments_json='{"content": "x"}'), "'path' is a required")
    await refused(
        lambda: gw.confirm(run.run_id, 1, True, arguments_json='{"path": "/d/a", "mode": 1}'), "no parameter mode"
    )
    await refused(lambda: gw.confirm(run.run_id, 1, True, arguments_json="[1]"), "must be a JSON object")
    # The corrected path names a file that is there: the write is now an overwrite, asked typed.
    host.files.add("/d/kept.txt")
    edited = '{"path": "/d/kept.txt", "content": "y"}'
    await refused(lambda: gw.confirm(run.run_id, 1, True, arguments_json=edited), "type 'kept.txt'")
    assert not await approved_calls(redis)
    after = await gw.confirm(run.run_id, 1, True, arguments_json=edited, typed="kept.txt")
    assert json.loads(after.steps[0].arguments_json) == {"path": "/d/kept.txt", "content": "y"}
    assert after.steps[0].preview.text == "Overwrite /d/kept.txt (the old version is kept in the trash)"
    [call] = await approved_calls(redis)
    assert json.loads(call.arguments_json) == {"path": "/d/kept.txt", "content": "y"}  # what was approved


async def test_a_rejection_keeps_its_reason(gateway, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gw, host = gateway
    run = await waiting(gw, host, "filesystem.delete_file", {"path": "/d/b.txt"})
    await gw.confirm(run.run_id, 1, False, reason="I still need it")
    [result] = await results(redis)
    assert (result.status, result.error) == (pb.STEP_STATUS_REJECTED, "I still need it")
    assert not await approved_calls(redis)


async def test_a_step_nobody_answers_is_rejected_at_its_deadline(gateway, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gw, host = gateway
    run = await waiting(gw, host, "filesystem.delete_file", {"path": "/d/b.txt"})
    assert await gw.expire_waiting() == 0  # not yet
    await asyncio.sleep(0.3)
    assert await gw.expire_waiting() == 1
    [result] = await results(redis)
    assert result.status == pb.STEP_STATUS_REJECTED
    assert result.failure == pb.FAILURE_MODE_CONFIRMATION_EXPIRED
    assert "nobody answered within 0.2 seconds" in result.error
    kinds = [e.kind async for e in _events(gw, run.run_id)]
    assert pb.EVENT_KIND_EXPIRED in kinds
    await refused(lambda: gw.confirm(run.run_id, 1, True, typed="b.txt"), "is rejected, not awaiting")
    assert await gw.expire_waiting() == 0 and not await redis.zcard(keys.AWAITING)


async def _events(gw: Gateway, run_id: str) -> AsyncIterator[pb.RunEvent]:
    raw = await gw.redis.xrange(keys.run_events_key(run_id))
    for _, fields in raw:
        yield pb.RunEvent.FromString(fields[b"event"]) if b"event" in fields else pb.RunEvent()


async def test_filling_open_values_hands_the_step_back_to_the_planner(gateway, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gw, _ = gateway
    run = await gw.submit("Put the demo in my calendar")
    call = pb.ToolCall(
        run_id=run.run_id,
        step=1,
        tool="calendar.create_event",
        arguments_json='{"title": "Demo"}',
        outcome=pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION,
        missing=["start"],
    )

    def open_field(record: pb.Run) -> None:
        runs.apply_routed(record, call, "calendar", 1.0, [])
        runs.apply_proposal(record, call, [], pb.STEP_STATUS_NEEDS_CLARIFICATION, False)
        runs.step_record(record, 1).missing.extend(call.missing)
        runs.apply_finished(record, pb.RUN_STATUS_NEEDS_CLARIFICATION, "When should it start?")

    await gw.store.update(run.run_id, open_field)
    await refused(lambda: gw.fill(run.run_id, 1, "{}"), "no values were given")
    await refused(lambda: gw.fill(run.run_id, 1, '{"minutes": 30}'), "still needs start")
    await refused(lambda: gw.fill(run.run_id, 1, '{"start": "soon", "minutes": "half"}'), "'half' is not of type")
    await refused(lambda: gw.fill(run.run_id, 1, '{"start": "x", "room": "A"}'), "no parameter room")
    with pytest.raises(NotFound):
        await gw.fill(run.run_id, 2, '{"start": "x"}')
    await gw.fill(run.run_id, 1, '{"start": "2026-12-01T10:00", "minutes": 30}')
    turns = [pb.Turn.FromString(Envelope.from_fields(f).body) for _, f in await redis.xrange(keys.TURNS)]
    filled = [t for t in turns if t.HasField("fill")]
    assert len(filled) == 1 and filled[0].fill.step == 1
    assert json.loads(filled[0].fill.arguments_json) == {"title": "Demo", "start": "2026-12-01T10:00", "minutes": 30}
    await refused(lambda: gw.fill(run.run_id, 1, '{"start": "y"}'), "waits for no values")  # once only


async def test_the_tier_is_the_tool_hosts_at_the_moment_of_the_decision(gateway, redis: aioredis.Redis) -> None:  # noqa: ANN001
    gw, host = gateway
    run = await waiting(gw, host, "filesystem.write_file", {"path": "/d/late.txt", "content": "x"})
    assert run.steps[0].preview.tier == pb.CONFIRM_TIER_CONFIRM  # as proposed: a new file
    host.files.add("/d/late.txt")  # the file appeared meanwhile: the write would now replace it
    await refused(lambda: gw.confirm(run.run_id, 1, True), "type 'late.txt' to confirm")
    approved = await gw.confirm(run.run_id, 1, True, typed="late.txt")
    assert approved.steps[0].preview.text == "Overwrite /d/late.txt (the old version is kept in the trash)"


# ---- what the gateway's metrics say of decisions ----


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def decided(decision: str, scope: str) -> float:
    return sample("switchboard_confirmation_decisions_total", decision=decision, scope=scope)


async def waited_since(gw: Gateway, run_id: str, seconds_ago: float, due: bool = False) -> None:
    """Make the step look as if it began to wait `seconds_ago` (its deadline that long after it began)."""
    started = runs.now_ms() - int(seconds_ago * 1000)
    deadline = started + int(gw.deadline_seconds * 1000)

    def backdate(record: pb.Run) -> None:
        runs.step_record(record, 1).deadline_unix_ms = deadline

    score = runs.now_ms() - 1 if due else deadline
    await gw.store.update(
        run_id, backdate, also=lambda pipe, _r, _n: pipe.zadd(keys.AWAITING, {runs.awaiting_member(run_id, 1): score})
    )


async def test_an_allowance_is_counted_with_its_scope_and_how_long_the_person_took(gateway) -> None:  # noqa: ANN001
    gw, host = gateway
    run = await waiting(gw, host, "filesystem.write_file", {"path": "/d/new.txt", "content": "x"})
    await waited_since(gw, run.run_id, 5.0)
    assert await gw.count_waiting() == 1 and sample("switchboard_confirmations_waiting") == 1
    before = decided("allowed", "once"), sample("switchboard_confirmation_wait_seconds_sum", decision="allowed")
    await gw.confirm(run.run_id, 1, True)
    assert decided("allowed", "once") == before[0] + 1
    took = sample("switchboard_confirmation_wait_seconds_sum", decision="allowed") - before[1]
    assert 5.0 <= took < 60.0
    assert await gw.count_waiting() == 0 and sample("switchboard_confirmations_waiting") == 0
    session = await waiting(gw, host, "filesystem.write_file", {"path": "/d/2.txt", "content": "x"}, "s1")
    edited = decided("allowed_edited", "session")
    await gw.confirm(session.run_id, 1, True, scope="session", arguments_json='{"path": "/d/3.txt", "content": "y"}')
    assert decided("allowed_edited", "session") == edited + 1


async def test_a_rejection_and_an_expiry_are_counted_as_such(gateway) -> None:  # noqa: ANN001
    gw, host = gateway
    rejected, expired = decided("rejected", "none"), decided("expired", "none")
    caught = sample("switchboard_failure_modes_total", stage="gateway", mode="confirmation_expired")
    run = await waiting(gw, host, "filesystem.delete_file", {"path": "/d/b.txt"})
    work = sample("switchboard_stage_work_seconds_count", stage="gateway")
    await gw.confirm(run.run_id, 1, False, reason="I still need it")
    assert decided("rejected", "none") == rejected + 1
    assert sample("switchboard_stage_work_seconds_count", stage="gateway") == work + 1  # a decision is work too
    late = await waiting(gw, host, "filesystem.delete_file", {"path": "/d/c.txt"})
    await waited_since(gw, late.run_id, 1.0, due=True)
    assert await gw.expire_waiting() == 1
    assert decided("expired", "none") == expired + 1
    assert sample("switchboard_failure_modes_total", stage="gateway", mode="confirmation_expired") == caught + 1


async def test_a_turn_is_counted_by_the_api_it_came_by(gateway) -> None:  # noqa: ANN001
    gw, _ = gateway
    assert REGISTRY.get_sample_value("switchboard_turns_accepted_total", {"api": "openai"}) is not None
    before = sample("switchboard_turns_accepted_total", api="http")
    await gw.submit("list my files", api="http")
    await gw.submit("list my files again", idempotency_key="k1", api="http")
    await gw.submit("list my files again", idempotency_key="k1", api="http")  # the same request: no new turn
    assert sample("switchboard_turns_accepted_total", api="http") == before + 2
    work = sample("switchboard_stage_work_seconds_count", stage="gateway")
    await gw.submit("and once more")
    assert sample("switchboard_stage_work_seconds_count", stage="gateway") == work + 1
