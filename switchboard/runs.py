"""A run's one record and its events: what the API serves and the orchestrator keeps.

Each run is one `switchboard.v1.Run` under `sb:run:{id}`. The planner owns it: it writes each step as
it routes it, each result as it comes back, and the answer, and keeps its own working state in the same
record (`orchestration_json`). The gateway, the edge, writes only what happens at the edge: the run's
creation, the policy's judgement of a routed call, a person's decision, an undo.

Every write is an optimistic transaction (WATCH/MULTI) that retries when another writer changed the
record meanwhile, and the run's events (`sb:run-events:{id}`, what watchers read) are appended in the
same transaction as the change they describe. So a message handled twice, after a crash between the
write and its acknowledgement, finds its change already made and appends nothing again.

The functions `apply_*` change a record in memory and nothing else; the store applies them.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.exceptions import WatchError

from switchboard import keys
from switchboard.errors import NotFound
from switchboard.metrics import RECORD_WRITES, RUNS_FINISHED
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)

T = TypeVar("T")

FINAL_STATUSES = frozenset(
    {pb.RUN_STATUS_ANSWERED, pb.RUN_STATUS_NEEDS_CLARIFICATION, pb.RUN_STATUS_REFUSED, pb.RUN_STATUS_FAILED}
)


def now_ms() -> int:
    return int(time.time() * 1000)


def status_name(status: int) -> str:
    """`RUN_STATUS_ANSWERED` → `answered`."""
    return pb.RunStatus.Name(status).removeprefix("RUN_STATUS_").lower()


def step_status_name(status: int) -> str:
    return pb.StepStatus.Name(status).removeprefix("STEP_STATUS_").lower()


@dataclass(frozen=True)
class Event:
    """An event to append with a change: its kind, step and message (the run's status is added)."""

    kind: pb.EventKind
    step: int = 0
    message: str = ""


# ---- changes to a record ----


def new_run(run_id: str, session_id: str, text: str, dry_run: bool) -> pb.Run:
    at = now_ms()
    return pb.Run(
        run_id=run_id,
        session_id=session_id,
        text=text,
        dry_run=dry_run,
        status=pb.RUN_STATUS_PLANNING,
        created_unix_ms=at,
        updated_unix_ms=at,
    )


def step_record(run: pb.Run, number: int) -> pb.StepRecord:
    """The record of step `number`, created if this is the first we hear of it."""
    for record in run.steps:
        if record.number == number:
            return record
    return run.steps.add(number=number, status=pb.STEP_STATUS_PLANNED)


def add_hops(record: pb.StepRecord, hops: Sequence[str]) -> None:
    for hop in hops:
        if hop not in record.hops:
            record.hops.append(hop)


def apply_routed(run: pb.Run, call: pb.ToolCall, server: str, rank_ms: float, hops: Sequence[str]) -> None:
    """The planner routed a step: its words, its server, the call the router chose."""
    record = step_record(run, call.step)
    record.intent = call.intent
    record.server = server
    record.tool = call.tool
    record.arguments_json = call.arguments_json
    del record.candidates[:]
    record.candidates.extend(call.candidates)
    record.status = pb.STEP_STATUS_ROUTED
    record.rank_ms = rank_ms
    record.route_ms = call.compute_ms
    add_hops(record, hops)
    if run.status not in FINAL_STATUSES:
        run.status = pb.RUN_STATUS_RUNNING
    run.updated_unix_ms = now_ms()


def apply_proposal(
    run: pb.Run, call: pb.ToolCall, hops: Sequence[str], status: pb.StepStatus, needs_confirmation: bool
) -> None:
    """The gateway's policy gave a routed call `status`. The call is written as judged, so what the
    gateway signs is what it judged."""
    record = step_record(run, call.step)
    record.tool = call.tool
    record.arguments_json = call.arguments_json
    record.confirmation_required = needs_confirmation
    record.status = status
    if status in (pb.STEP_STATUS_NEEDS_CLARIFICATION, pb.STEP_STATUS_REJECTED, pb.STEP_STATUS_FAILED):
        record.error = call.reason
    del record.missing[:]
    if status == pb.STEP_STATUS_NEEDS_CLARIFICATION:
        record.missing.extend(call.missing)
    add_hops(record, hops)
    if status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
        run.status = pb.RUN_STATUS_AWAITING_CONFIRMATION
    elif run.status not in FINAL_STATUSES:
        run.status = pb.RUN_STATUS_RUNNING
    run.updated_unix_ms = now_ms()


def apply_decision(run: pb.Run, step: int, approved: bool, reason: str) -> pb.StepRecord:
    """A person approved or rejected a waiting step."""
    record = step_record(run, step)
    record.status = pb.STEP_STATUS_APPROVED if approved else pb.STEP_STATUS_REJECTED
    if not approved:
        record.error = reason or "rejected by the person"
    run.status = pb.RUN_STATUS_RUNNING
    run.updated_unix_ms = now_ms()
    return record


def apply_result(run: pb.Run, result: pb.StepResult, hops: Sequence[str]) -> None:
    """A step finished (or was settled without running)."""
    record = step_record(run, result.step)
    record.status = result.status
    record.result_json = result.content_json
    record.result_ref = result.content_ref
    if result.error:
        record.error = result.error
    record.duration_ms = result.duration_ms
    add_hops(record, [*result.hops, *hops])
    run.updated_unix_ms = now_ms()


def apply_undone(run: pb.Run, step: int) -> None:
    """A person undid what a step did."""
    step_record(run, step).status = pb.STEP_STATUS_UNDONE
    run.updated_unix_ms = now_ms()


def apply_finished(run: pb.Run, status: pb.RunStatus, answer: str) -> None:
    """The run ended: how, and the whole answer."""
    run.status = status
    run.answer = answer
    run.updated_unix_ms = run.finished_unix_ms = now_ms()


def apply_reopened(run: pb.Run) -> None:
    """A finished run goes on: the person filled a step's open values."""
    run.status = pb.RUN_STATUS_RUNNING
    run.answer = ""
    run.finished_unix_ms = 0
    run.updated_unix_ms = now_ms()


def awaiting_member(run_id: str, step: int) -> str:
    """A waiting step's member of `keys.AWAITING`."""
    return f"{run_id}:{step}"


def parse_awaiting_member(member: str) -> tuple[str, int]:
    run_id, _, step = member.rpartition(":")
    return run_id, int(step)


# A result larger than this is kept once in the run's contents hash and referenced from the stream
# message and the record, instead of travelling and being stored inline.
LARGE_RESULT_BYTES = 64 * 1024


async def store_large(redis: aioredis.Redis, result: pb.StepResult) -> None:
    """Move a large output out of `result` into the run's contents hash, leaving a reference."""
    if len(result.content_json) <= LARGE_RESULT_BYTES:
        return
    field = str(result.step)
    key = keys.contents_key(result.run_id)
    pipe = redis.pipeline(transaction=True)
    pipe.hset(key, field, result.content_json)
    pipe.expire(key, keys.RUN_TTL_SECONDS)
    await pipe.execute()
    result.content_ref = field
    result.content_json = ""


async def large_results(redis: aioredis.Redis, run_id: str, refs: Iterable[str]) -> dict[str, str]:
    """The large results kept for a run under these references, by reference."""
    wanted = sorted({ref for ref in refs if ref})
    if not wanted:
        return {}
    values: Any = await redis.hmget(keys.contents_key(run_id), wanted)
    return {ref: value.decode() for ref, value in zip(wanted, values, strict=True) if value is not None}


async def referenced_results(redis: aioredis.Redis, run: pb.Run) -> dict[str, str]:
    """The large results the steps of `run` refer to, by reference."""
    return await large_results(redis, run.run_id, (record.result_ref for record in run.steps))


def served(run: pb.Run, large: Mapping[str, str] | None = None) -> pb.Run:
    """The record as the API serves it: without the orchestrator's working state, with each large
    result in place of its reference."""
    shown = pb.Run()
    shown.CopyFrom(run)
    shown.ClearField("orchestration_json")
    for record in shown.steps:
        if record.result_ref and large and record.result_ref in large:
            record.result_json = large[record.result_ref]
    return shown


# ---- the store ----


class RunStore:
    """Run records and their events in Redis, shared by the planner and every gateway replica.

    `stage` names the writer in the `switchboard_run_record_writes_total` metric."""

    def __init__(self, redis: aioredis.Redis, stage: str, runs_kept: int = 1000) -> None:
        self.redis = redis
        self.stage = stage
        self.runs_kept = runs_kept

    async def create(
        self, run: pb.Run, events: Sequence[Event] = (), also: Callable[[Pipeline], None] | None = None
    ) -> None:
        """Record a new run (and queue `also` in the same transaction), then forget the oldest finished
        runs beyond `runs_kept`."""
        pipe = self.redis.pipeline(transaction=True)
        self._queue_new(pipe, run, events, also)
        await pipe.execute()
        RECORD_WRITES.labels(stage=self.stage).inc()
        await self._tidy()

    async def create_once(
        self, run: pb.Run, events: Sequence[Event] = (), also: Callable[[Pipeline], None] | None = None
    ) -> bool:
        """`create`, unless a run with this id exists already (made by an earlier copy of the same
        request): then nothing is written and the answer is False. Of two copies racing, one writes."""
        async with self.redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(keys.run_key(run.run_id))
                if await pipe.exists(keys.run_key(run.run_id)):
                    return False
                pipe.multi()
                self._queue_new(pipe, run, events, also)
                await pipe.execute()
            except WatchError:
                return False
        RECORD_WRITES.labels(stage=self.stage).inc()
        await self._tidy()
        return True

    @staticmethod
    def _queue_new(
        pipe: Pipeline, run: pb.Run, events: Sequence[Event], also: Callable[[Pipeline], None] | None
    ) -> None:
        pipe.set(keys.run_key(run.run_id), run.SerializeToString(), ex=keys.RUN_TTL_SECONDS)
        pipe.zadd(keys.RUNS_INDEX, {run.run_id: run.created_unix_ms})
        queue_events(pipe, run, events)
        if also is not None:
            also(pipe)

    async def _tidy(self) -> None:
        """Forget old runs after recording a new one. The run is recorded whatever happens here: a
        failure is logged (the next new run tidies up), not turned into a failure of the request."""
        try:
            await self.forget_old_runs()
        except (RedisConnectionError, RedisTimeoutError) as exc:
            log.warning("could not forget old runs now: %s", exc)

    async def forget_old_runs(self) -> int:
        """Delete the oldest runs beyond `runs_kept` (record, events, and their markers), finished ones
        only, and the least recently used sessions beyond as many; how many runs were deleted."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.zcard(keys.RUNS_INDEX)
        pipe.zcard(keys.SESSIONS_INDEX)
        run_count, session_count = await pipe.execute()
        if int(session_count) > self.runs_kept:
            oldest_sessions: Any = await self.redis.zpopmin(keys.SESSIONS_INDEX, int(session_count) - self.runs_kept)
            await self.redis.delete(*(keys.session_key(raw.decode()) for raw, _ in oldest_sessions))
        excess = int(run_count) - self.runs_kept
        if excess <= 0:
            return 0
        # Only finished runs go (one still going is kept until it ends), and they are indexed apart, so
        # runs left waiting for a person at the old end are never read again on every new run.
        oldest: Any = await self.redis.zrange(keys.FINISHED_RUNS, 0, excess - 1)
        if not oldest:
            return 0
        pipe = self.redis.pipeline(transaction=True)
        for raw_id in oldest:
            run_id = raw_id.decode()
            pipe.delete(*keys.run_keys(run_id))
            pipe.zrem(keys.RUNS_INDEX, run_id)
            pipe.zrem(keys.FINISHED_RUNS, run_id)
        await pipe.execute()
        return len(oldest)

    async def get(self, run_id: str) -> pb.Run:
        run = await self.find(run_id)
        if run is None:
            raise NotFound(f"no run {run_id!r}")
        return run

    async def find(self, run_id: str) -> pb.Run | None:
        """The run, or None when there is no such run (or it was forgotten)."""
        raw = await self.redis.get(keys.run_key(run_id))
        return None if raw is None else pb.Run.FromString(raw)

    async def list(self, limit: int = 20, session_id: str = "") -> list[pb.Run]:
        """The newest runs first; only `session_id`'s when given."""
        found: list[pb.Run] = []
        page = max(limit, 100) if session_id else limit
        start = 0
        while len(found) < limit:
            ids: Any = await self.redis.zrevrange(keys.RUNS_INDEX, start, start + page - 1)
            if not ids:
                break
            start += len(ids)
            raws = await self.redis.mget([keys.run_key(run_id.decode()) for run_id in ids])
            gone = [run_id for run_id, raw in zip(ids, raws, strict=True) if raw is None]
            if gone:  # expired since they were indexed
                await self.redis.zrem(keys.RUNS_INDEX, *gone)
                await self.redis.zrem(keys.FINISHED_RUNS, *gone)
            for raw in raws:
                if raw is None:
                    continue
                run = pb.Run.FromString(raw)
                if not session_id or run.session_id == session_id:
                    found.append(run)
            if not session_id:
                break
        return found[:limit]

    async def update(
        self,
        run_id: str,
        mutate: Callable[[pb.Run], T],
        events: Callable[[pb.Run, T], Sequence[Event]] | None = None,
        also: Callable[[Pipeline, pb.Run, T], None] | None = None,
    ) -> tuple[pb.Run, T]:
        """Apply `mutate` to the record atomically, append the `events` it makes and queue `also` in the
        same transaction. A write that gives the run a final status it did not have counts it in
        `switchboard_runs_finished_total` (once: a message handled again finds the run finished)."""
        key = keys.run_key(run_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise NotFound(f"no run {run_id!r}")
                    run = pb.Run.FromString(raw)
                    was_final = run.status in FINAL_STATUSES
                    result = mutate(run)
                    pipe.multi()
                    pipe.set(key, run.SerializeToString(), ex=keys.RUN_TTL_SECONDS)
                    if run.status in FINAL_STATUSES:
                        pipe.zadd(keys.FINISHED_RUNS, {run_id: run.created_unix_ms})
                    else:  # going, or reopened
                        pipe.zrem(keys.FINISHED_RUNS, run_id)
                    if events is not None:
                        queue_events(pipe, run, events(run, result))
                    if also is not None:
                        also(pipe, run, result)
                    await pipe.execute()
                    RECORD_WRITES.labels(stage=self.stage).inc()
                    if run.status in FINAL_STATUSES and not was_final:
                        RUNS_FINISHED.labels(status=status_name(run.status)).inc()
                    return run, result
                except WatchError:
                    continue

    async def events(self, run_id: str, block_ms: int = 5000) -> AsyncIterator[pb.RunEvent]:
        """Every event of the run from its start, then new ones as they come, until it finishes."""
        await self.get(run_id)  # NotFound for an unknown run
        key = keys.run_events_key(run_id)
        last = b"0"
        while True:
            reply: Any = await self.redis.xread({key: last}, block=block_ms, count=100)
            for _, items in reply or []:
                for msg_id, fields in items:
                    last = msg_id
                    event = pb.RunEvent.FromString(fields[b"event"])
                    yield event
                    if event.kind == pb.EVENT_KIND_FINISHED:
                        return
            if not reply and (await self.get(run_id)).status in FINAL_STATUSES:
                return


def queue_events(pipe: Pipeline, run: pb.Run, events: Sequence[Event]) -> None:
    """Queue `events` on the run's event stream (kept as long as the record), with the run's status."""
    if not events:
        return
    key = keys.run_events_key(run.run_id)
    at = now_ms()
    for event in events:
        message = pb.RunEvent(
            run_id=run.run_id, kind=event.kind, step=event.step, message=event.message, status=run.status, unix_ms=at
        )
        pipe.xadd(key, {"event": message.SerializeToString()})
    pipe.expire(key, keys.RUN_TTL_SECONDS)
