"""The gateway's operations, shared by its HTTP API and its gRPC API.

The gateway is the edge: it authenticates the person, creates a run and publishes its turn, serves the
run's one record (which the planner, the orchestrator, keeps, applying the confirmation policy to each
step), and takes the person's decisions: allow once, for the session or always (a standing grant),
with corrected arguments, with the target's name typed where the call asks for it; reject with a
reason; fill the values a step waits for. It alone holds the approval key a person's confirmation and
standing grants are signed with, so only a person's word, through it, lets a change run. A step
nobody answers by its deadline is rejected (`expire_waiting`).

Work waiting is bounded: a turn is refused (`core.Busy`) while `max_backlog` turns already wait for
the planner, and a watch while `max_watchers` event streams are open.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from services.gateway import core
from switchboard import grants, keys, runs
from switchboard.approvals import UNDO, approved_call, grant
from switchboard.confirmation import tier_name
from switchboard.envelope import as_text, step_key
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable
from switchboard.events import kind_name
from switchboard.metrics import (
    CONFIRMATION_DECISIONS,
    CONFIRMATION_WAIT,
    CONFIRMATIONS_WAITING,
    FAILURE_MODES,
    REQUESTS_REFUSED,
    STEP_OUTCOMES,
    TURNS_ACCEPTED,
    FailureMode,
    start_failure_modes,
    start_series,
    works_for,
)
from switchboard.preview import typed_matches
from switchboard.rpc import ToolHostClient, catalogue_stale
from switchboard.runs import Event, RunStore
from switchboard.streams import Emit, emit, group_lag
from switchboard.telemetry import RUN_ID, STEP, continued, current_traceparent
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)

STAGE = "gateway"

# The APIs a turn comes in by (`switchboard_turns_accepted_total{api}`).
API_HTTP = "http"
API_GRPC = "grpc"
API_OPENAI = "openai"
APIS = (API_HTTP, API_GRPC, API_OPENAI)
# Why a request was turned away for a while (`switchboard_requests_refused_total{reason}`).
REFUSED_BUSY = "busy"  # too much work waits
REFUSED_REDIS = "redis"  # Redis does not answer

# What became of a step that waited for a person (`switchboard_confirmation_decisions_total`).
ALLOWED = "allowed"
ALLOWED_EDITED = "allowed_edited"
REJECTED = "rejected"
EXPIRED = "expired"
NO_SCOPE = "none"  # the scope of a decision that allows nothing


def decision_labels(approve: bool, edited: bool, expired: bool, scope: str) -> tuple[str, str]:
    """A person's decision (or its expiry) as the labels `decision` and `scope`."""
    if expired:
        return EXPIRED, NO_SCOPE
    if not approve:
        return REJECTED, NO_SCOPE
    return (ALLOWED_EDITED if edited else ALLOWED), scope or grants.ONCE


def start_gateway_series() -> None:
    """Create the gateway's series at 0: turns by API, decisions and their waits, requests turned away, and
    the failure modes it catches."""
    start_series(TURNS_ACCEPTED, ({"api": api} for api in APIS))
    decided = [{"decision": d, "scope": s} for d in (ALLOWED, ALLOWED_EDITED) for s in grants.SCOPES]
    decided += [{"decision": d, "scope": NO_SCOPE} for d in (REJECTED, EXPIRED)]
    start_series(CONFIRMATION_DECISIONS, decided)
    start_series(CONFIRMATION_WAIT, ({"decision": d} for d in (ALLOWED, ALLOWED_EDITED, REJECTED, EXPIRED)))
    start_series(REQUESTS_REFUSED, ({"api": a, "reason": r} for a in APIS for r in (REFUSED_BUSY, REFUSED_REDIS)))
    # An unknown tool: the OpenAI endpoint's check of the call the router proposed (openai_compat).
    start_failure_modes(STAGE, [FailureMode.CONFIRMATION_EXPIRED, FailureMode.UNKNOWN_TOOL_UNRESOLVED])


class Gateway:
    def __init__(
        self,
        redis: aioredis.Redis,
        toolhost: ToolHostClient,
        approval_key: str,
        approval_ttl_seconds: float = 600.0,
        runs_kept: int = 1000,
        deadline_seconds: float = 600.0,
        *,
        max_backlog: int = core.DEFAULT_MAX_BACKLOG,
        max_watchers: int = core.DEFAULT_MAX_WATCHERS,
    ) -> None:
        self.redis = redis
        self.max_backlog = max_backlog
        self.max_watchers = max_watchers
        self.drain = core.DrainRate()
        self._watchers = 0
        self.deadline_seconds = deadline_seconds
        self.approval_ttl_seconds = approval_ttl_seconds
        self.store = RunStore(redis, STAGE, runs_kept)
        self.toolhost = toolhost
        self.approval_key = approval_key
        self._catalogue: dict[str, pb.ToolInfo] = {}
        self._catalogue_at = 0.0
        start_gateway_series()

    # ---- the API ----

    @works_for(STAGE)
    async def submit(
        self,
        text: str,
        session_id: str = "",
        dry_run: bool = False,
        idempotency_key: str = "",
        *,
        api: str = API_GRPC,
    ) -> pb.Run:
        """Record a new run and publish its turn, unless too many turns wait already (`core.Busy`).

        A request sent again under the same `idempotency_key` (its answer was lost: the connection
        broke, or Redis went away after the run was recorded) is answered with the run the first copy
        made; nothing is published twice. `api` names the API the turn came by, for the metrics."""
        text = text.strip()
        if not text:
            raise InvalidRequest("text is empty: say what you want done")
        if len(text) > core.MAX_TEXT_CHARS:
            raise InvalidRequest(f"text is {len(text)} characters; the limit is {core.MAX_TEXT_CHARS}")
        run_id = core.run_id_for(idempotency_key) if idempotency_key else uuid.uuid4().hex
        if idempotency_key:
            earlier = await self.store.find(run_id)
            if earlier is not None:
                return await self._same_request(earlier, text, session_id, dry_run)
        await self._admit_turn()
        run = runs.new_run(run_id, session_id or uuid.uuid4().hex, text, dry_run)
        turn = pb.Turn(
            run_id=run_id, session_id=run.session_id, text=text, dry_run=dry_run, created_unix_ms=run.created_unix_ms
        )
        out = emit(keys.TURNS, run_id, 0, step_key(run_id, 0, STAGE), turn.SerializeToString())
        # The record, its first event and the turn in one transaction: a turn never lacks its record.
        traced = current_traceparent()

        def publish(pipe) -> None:  # noqa: ANN001 - a Pipeline
            pipe.xadd(out.stream, out.envelope.to_fields())
            if traced:  # what a person decides on the run later is traced in this trace
                pipe.set(keys.trace_key(run_id), traced, ex=keys.RUN_TTL_SECONDS)

        created = await self.store.create_once(run, [Event(pb.EVENT_KIND_SUBMITTED, message=text)], publish)
        if not created:  # a copy of the same request won the race
            return await self._same_request(await self.store.get(run_id), text, session_id, dry_run)
        TURNS_ACCEPTED.labels(api=api).inc()
        return runs.served(run)

    async def _same_request(self, earlier: pb.Run, text: str, session_id: str, dry_run: bool) -> pb.Run:
        """The run an earlier copy of this request made; `InvalidRequest` if the key named another."""
        if earlier.text != text or earlier.dry_run != dry_run or (session_id and earlier.session_id != session_id):
            raise InvalidRequest("this Idempotency-Key was used for another request; use a new key for a new request")
        return await self._served(earlier)

    async def get_run(self, run_id: str) -> pb.Run:
        return await self._served(await self.store.get(run_id))

    async def list_runs(self, limit: int = 20, session_id: str = "") -> list[pb.Run]:
        return [await self._served(run) for run in await self.store.list(limit, session_id)]

    async def _served(self, run: pb.Run) -> pb.Run:
        """The run as the API serves it, with any large result its steps refer to in place."""
        return runs.served(run, await runs.referenced_results(self.redis, run))

    async def turns_waiting(self) -> tuple[int, int | None]:
        """How many accepted turns the planner has not finished taking up (read by none of its replicas,
        or read and not yet acknowledged), and its group's `entries-read` (None when Redis cannot say)."""
        try:
            groups: Any = await self.redis.xinfo_groups(keys.TURNS)
        except ResponseError:  # no turn was ever published
            return 0, None
        planner = next((g for g in groups if as_text(g["name"]) == keys.GROUP_PLANNER), None)
        if planner is None:  # no planner has started yet: every turn waits
            return int(await self.redis.xlen(keys.TURNS)), None
        lag = await group_lag(self.redis, keys.TURNS, planner, at_most=self.max_backlog)
        read = planner.get("entries-read")
        return int(lag) + int(planner["pending"]), None if read is None else int(read)

    async def _admit_turn(self) -> None:
        """Refuse a new turn (`core.Busy`, with when to come back) while `max_backlog` wait already."""
        waiting, read = await self.turns_waiting()
        if read is not None:
            self.drain.observe(read)
        if waiting < self.max_backlog:
            return
        seconds = core.retry_after_seconds(waiting, self.max_backlog, self.drain.per_second())
        raise core.Busy(
            f"busy, retry later: {waiting} requests wait for the planner (at most {self.max_backlog} may); "
            f"retry after {seconds} s",
            seconds,
        )

    def watch(self, run_id: str) -> AsyncIterator[pb.RunEvent]:
        """The run's events from its start until it finishes; `core.Busy` at once while `max_watchers`
        event streams are open (each holds a Redis connection while it waits)."""
        if self._watchers >= self.max_watchers:
            raise core.Busy(
                f"busy, retry later: {self._watchers} event streams are open (at most {self.max_watchers} may)",
                core.RETRY_AFTER_UNKNOWN_SECONDS,
            )
        return self._watched(run_id)

    async def _watched(self, run_id: str) -> AsyncIterator[pb.RunEvent]:
        self._watchers += 1
        try:
            async for event in self.store.events(run_id):
                yield event
        finally:
            self._watchers -= 1

    async def list_tools(self) -> list[pb.ToolInfo]:
        return list((await self.catalogue()).values())

    @works_for(STAGE)
    async def confirm(
        self,
        run_id: str,
        step: int,
        approve: bool,
        reason: str = "",
        scope: str = "",
        arguments_json: str = "",
        typed: str = "",
    ) -> pb.Run:
        """A person's answer to a step that waits for confirmation: allow it (once, for the session or
        always; with corrected arguments; with the target's name typed where its tier asks for that) or
        reject it with a reason."""
        scope = grants.check_scope(scope)
        run = await self.store.get(run_id)
        record = _waiting(run, step)
        shown = pb.Preview()
        shown.CopyFrom(record.preview)
        edited = ""
        if approve and arguments_json.strip():
            edited, shown = await self._edited(record, arguments_json)
        elif approve and record.tool:
            # The tier is the tool host's, asked now: not the one the record says (written by another
            # stage), and a file that appeared since makes a write an overwrite.
            shown = await self.toolhost.preview(record.tool, record.arguments_json)
        if approve:
            arguments = core.json_object(edited or record.arguments_json or "{}", "the arguments")
            _check_typed(shown, typed, arguments, scope)
        made = None
        if approve and scope != grants.ONCE:
            made = grants.make(
                self.approval_key,
                tool=record.tool,
                scope=scope,
                session_id=run.session_id,
                run_id=run_id,
                step=step,
                created_unix_ms=runs.now_ms(),
            )
        return await self._decide(run_id, step, approve, reason, record.arguments_json, edited, shown, made)

    async def expire_waiting(self) -> int:
        """Reject every step whose deadline passed without an answer; how many were."""
        due: list[bytes] = await self.redis.zrangebyscore(keys.AWAITING, 0, runs.now_ms(), start=0, num=100)  # type: ignore[assignment]
        expired = 0
        for member in due:
            run_id, step = runs.parse_awaiting_member(member.decode())
            minutes = self.deadline_seconds / 60
            waited = f"{minutes:g} minutes" if minutes >= 1 else f"{self.deadline_seconds:g} seconds"
            reason = f"nobody answered within {waited}, so it was rejected"
            try:
                await self._decide(run_id, step, False, reason, expired_=True)
                expired += 1
            except (NotFound, InvalidRequest):  # answered meanwhile, or the run is gone
                pass
            await self.redis.zrem(keys.AWAITING, member)
        return expired

    async def count_waiting(self) -> int:
        """How many steps wait for a person now (also set as `switchboard_confirmations_waiting`)."""
        waiting = int(await self.redis.zcard(keys.AWAITING))
        CONFIRMATIONS_WAITING.set(waiting)
        return waiting

    async def _edited(self, record: pb.StepRecord, arguments_json: str) -> tuple[str, pb.Preview]:
        """The person's corrected arguments, checked against the tool's schema, and what the call will
        now do (its tier may change: a write that now replaces a file asks for the name typed)."""
        arguments = core.json_object(arguments_json, "the corrected arguments")
        tool = (await self.catalogue(record.tool)).get(record.tool)
        if tool is None:
            raise InvalidRequest(f"{record.tool} is not in the tool catalogue; its arguments cannot be checked")
        schema = core.json_object(tool.input_schema_json or "{}", f"{record.tool}'s schema")
        core.check_arguments(record.tool, schema, arguments)
        edited = json.dumps(arguments, ensure_ascii=False)
        shown = await self.toolhost.preview(record.tool, edited)
        if shown.refused:
            raise InvalidRequest(f"the corrected arguments cannot be used: {shown.refused}")
        return edited, shown

    async def _decide(
        self,
        run_id: str,
        step: int,
        approve: bool,
        reason: str,
        judged_arguments: str = "",
        edited: str = "",
        shown: pb.Preview | None = None,
        made: pb.Grant | None = None,
        expired_: bool = False,
    ) -> pb.Run:
        """Write the decision and publish what follows from it, in one transaction."""

        def decide(run: pb.Run) -> pb.StepRecord:
            record = _waiting(run, step)
            if judged_arguments and record.arguments_json != judged_arguments:
                raise InvalidRequest(f"step {step} of run {run_id} changed while you decided; look at it again")
            if edited:
                record.arguments_json = edited
            if shown is not None and approve:
                record.preview.CopyFrom(shown)
            if made is not None:
                record.grant_id = made.grant_id
            updated = runs.apply_decision(run, step, approve, reason)
            copy = pb.StepRecord()
            copy.CopyFrom(updated)
            return copy

        def announce(_run: pb.Run, record: pb.StepRecord) -> list[Event]:
            if expired_:
                return [Event(pb.EVENT_KIND_EXPIRED, step, record.error)]
            if not approve:
                return [Event(pb.EVENT_KIND_REJECTED, step, record.tool)]
            said = [record.preview.text or record.tool]
            if edited:
                said.append("with the person's corrected arguments")
            if made is not None:
                said.append(f"and {record.tool} is allowed {_scope_words(made)} from now on")
            return [Event(pb.EVENT_KIND_APPROVED, step, " ".join(said))]

        def publish_decision(pipe, run: pb.Run, record: pb.StepRecord) -> None:  # noqa: ANN001 - a Pipeline
            pipe.zrem(keys.AWAITING, runs.awaiting_member(run_id, step))
            if made is not None:
                pipe.hset(keys.GRANTS, made.grant_id, made.SerializeToString())
            if approve:
                out = self._approved(run, record)
                pipe.xadd(out.stream, out.envelope.to_fields())
                return
            # The rejection settles the step for the planner, and goes to the tool host's audit log.
            out = self._rejected(run, record, expired_)
            pipe.xadd(out.stream, out.envelope.to_fields())
            pipe.xadd(keys.DECISIONS, out.envelope.to_fields())

        outcome = "expired" if expired_ else "approved" if approve else "rejected"
        with continued(await self._turn_trace(run_id), "decide step", **_traced_step(run_id, step, outcome)):
            run, record = await self.store.update(run_id, decide, announce, publish_decision)
        STEP_OUTCOMES.labels(stage=STAGE, outcome=outcome).inc()
        self._count_decision(record, approve, bool(edited), expired_, made.scope if made is not None else "")
        return await self._served(run)

    def _count_decision(self, record: pb.StepRecord, approve: bool, edited: bool, expired: bool, scope: str) -> None:
        """Count a decision on a waiting step, and how long the person took to make it."""
        decision, scope = decision_labels(approve, edited, expired, scope)
        CONFIRMATION_DECISIONS.labels(decision=decision, scope=scope).inc()
        if record.deadline_unix_ms:
            # The planner set the deadline this long after the step began to wait (the same setting,
            # SWITCHBOARD_CONFIRMATION_DEADLINE_SECONDS, read by both).
            since_ms = record.deadline_unix_ms - int(self.deadline_seconds * 1000)
            CONFIRMATION_WAIT.labels(decision=decision).observe(max(0.0, (runs.now_ms() - since_ms) / 1000))
        if expired:
            FAILURE_MODES.labels(stage=STAGE, mode=FailureMode.CONFIRMATION_EXPIRED).inc()

    @works_for(STAGE)
    async def fill(self, run_id: str, step: int, values_json: str) -> pb.Run:
        """The values a step waits for (its open `missing` parameters): checked against the tool's
        schema with the step's other arguments, then handed to the planner, which takes the run up
        again from that step under the confirmation policy."""
        values = core.json_object(values_json or "{}", "the values")
        if not values:
            raise InvalidRequest('no values were given; send them as {"values": {"parameter": value}}')
        run = await self.store.get(run_id)
        record = next((r for r in run.steps if r.number == step), None)
        if record is None:
            raise NotFound(f"run {run_id} has no step {step}")
        if record.status != pb.STEP_STATUS_NEEDS_CLARIFICATION or not record.missing or not record.tool:
            state = runs.step_status_name(record.status)
            raise InvalidRequest(f"step {step} of run {run_id} is {state} and waits for no values")
        tool = (await self.catalogue(record.tool)).get(record.tool)
        if tool is None:
            raise InvalidRequest(f"{record.tool} is not in the tool catalogue; the values cannot be checked")
        merged = {**core.json_object(record.arguments_json or "{}", "the step's arguments"), **values}
        still = [name for name in record.missing if merged.get(name) in (None, "")]
        if still:
            raise InvalidRequest(f"step {step} still needs {', '.join(still)}")
        schema = core.json_object(tool.input_schema_json or "{}", f"{record.tool}'s schema")
        core.check_arguments(record.tool, schema, merged)
        arguments_json = json.dumps(merged, ensure_ascii=False)

        def take(run: pb.Run) -> None:
            current = next((r for r in run.steps if r.number == step), None)
            if current is None or current.status != pb.STEP_STATUS_NEEDS_CLARIFICATION or not current.missing:
                raise InvalidRequest(f"step {step} of run {run_id} was filled or changed meanwhile")
            del current.missing[:]
            run.updated_unix_ms = runs.now_ms()

        def publish(pipe, run: pb.Run, _none: None) -> None:  # noqa: ANN001 - a Pipeline
            turn = pb.Turn(
                run_id=run_id,
                session_id=run.session_id,
                text=run.text,
                dry_run=run.dry_run,
                created_unix_ms=runs.now_ms(),
                fill=pb.Fill(step=step, arguments_json=arguments_json),
            )
            key = step_key(run_id, step, f"{STAGE}-fill-{uuid.uuid4().hex[:8]}")
            out = emit(keys.TURNS, run_id, step, key, turn.SerializeToString())
            pipe.xadd(out.stream, out.envelope.to_fields())

        with continued(await self._turn_trace(run_id), "fill step", **_traced_step(run_id, step, "filled")):
            run, _ = await self.store.update(
                run_id,
                take,
                lambda _r, _n: [Event(pb.EVENT_KIND_FILLED, step, ", ".join(sorted(values)))],
                publish,
            )
        return await self._served(run)

    async def list_grants(self) -> list[pb.Grant]:
        return await grants.load(self.redis)

    async def revoke_grant(self, grant_id: str) -> bool:
        return await grants.revoke(self.redis, grant_id)

    async def audit(self, session_id: str = "", run_id: str = "", limit: int = 50) -> list[pb.AuditEntry]:
        return await self.toolhost.audit(session_id, run_id, max(1, min(limit, 1000)))

    @works_for(STAGE)
    async def undo(self, run_id: str, step: int) -> pb.Run:
        """Undo the effect of a step that ran, through the tool host, and record it on the run."""
        run = await self.store.get(run_id)
        record = next((r for r in run.steps if r.number == step), None)
        if record is None:
            raise NotFound(f"run {run_id} has no step {step}")
        if record.status != pb.STEP_STATUS_SUCCEEDED:
            state = runs.step_status_name(record.status)
            raise InvalidRequest(f"step {step} of run {run_id} is {state}; only a step that ran can be undone")
        approval = grant(
            self.approval_key,
            run_id=run_id,
            step=step,
            tool=UNDO,
            arguments_json="",
            idempotency_key=step_key(run_id, step, UNDO),
            kind=pb.GRANT_KIND_PERSON,
            ttl_seconds=self.approval_ttl_seconds,
        )
        actions = await self.toolhost.undo(run_id, step, approval, run.session_id)
        run, _ = await self.store.update(
            run_id,
            lambda r: runs.apply_undone(r, step),
            lambda _r, _x: [Event(pb.EVENT_KIND_UNDONE, step, "; ".join(actions))],
        )
        STEP_OUTCOMES.labels(stage=STAGE, outcome="undone").inc()
        return await self._served(run)

    async def catalogue(self, tool: str = "") -> dict[str, pb.ToolInfo]:
        """The tool host's tools by name, refreshed every half minute, and sooner when `tool` is not in
        it (a list taken while the tool host was starting holds only the servers that were up)."""
        if not self._catalogue or catalogue_stale(self._catalogue_at, self._catalogue, tool):
            try:
                self._catalogue = {tool.name: tool for tool in await self.toolhost.list_tools()}
                self._catalogue_at = time.monotonic()
            except UpstreamUnavailable:
                if not self._catalogue:
                    raise
                log.warning(
                    "tool host unreachable; using the catalogue from %.0fs ago", time.monotonic() - self._catalogue_at
                )
        return self._catalogue

    async def _turn_trace(self, run_id: str) -> str:
        """The traceparent of the span that took the run's turn ("" if none was kept)."""
        kept = await self.redis.get(keys.trace_key(run_id))
        return as_text(kept) if kept else ""

    # ---- outputs ----

    def _approved(self, run: pb.Run, step: pb.StepRecord) -> Emit:
        """The call for the tool host, with the person's approval of this one execution."""
        key = step_key(run.run_id, step.number, STAGE)
        call = approved_call(
            self.approval_key,
            pb.GRANT_KIND_PERSON,
            self.approval_ttl_seconds,
            run_id=run.run_id,
            step=step.number,
            tool=step.tool,
            arguments_json=step.arguments_json,
            idempotency_key=key,
            session_id=run.session_id,
            hops=list(step.hops),
        )
        return emit(keys.APPROVED, run.run_id, step.number, key, call.SerializeToString())

    def _rejected(self, run: pb.Run, step: pb.StepRecord, expired: bool = False) -> Emit:
        """The result of a step the person rejected (or nobody answered in time), so the planner
        finishes the run (and the tool host audits the decision)."""
        result = pb.StepResult(
            run_id=run.run_id,
            step=step.number,
            tool=step.tool,
            arguments_json=step.arguments_json,
            status=pb.STEP_STATUS_REJECTED,
            error=step.error or "rejected by the person",
            hops=list(step.hops),
            session_id=run.session_id,
            failure=pb.FAILURE_MODE_CONFIRMATION_EXPIRED if expired else pb.FAILURE_MODE_UNSPECIFIED,
        )
        return emit(
            keys.RESULTS, run.run_id, step.number, step_key(run.run_id, step.number, STAGE), result.SerializeToString()
        )


def _traced_step(run_id: str, step: int, decision: str) -> dict[str, str | int]:
    """The attributes of the span of a person's decision on a step."""
    return {RUN_ID: run_id, STEP: step, "switchboard.decision": decision}


def _waiting(run: pb.Run, step: int) -> pb.StepRecord:
    """Step `step` of `run`, which must be waiting for the person."""
    record = next((r for r in run.steps if r.number == step), None)
    if record is None:
        raise NotFound(f"run {run.run_id} has no step {step}")
    if record.status != pb.STEP_STATUS_AWAITING_CONFIRMATION:
        state = runs.step_status_name(record.status)
        raise InvalidRequest(f"step {step} of run {run.run_id} is {state}, not awaiting confirmation")
    return record


def _check_typed(shown: pb.Preview, typed: str, arguments: dict, scope: str) -> None:
    """A call whose tier asks for a typed confirmation runs only when the person typed its target, and
    is never granted beyond this once."""
    if shown.tier != pb.CONFIRM_TIER_TYPED:
        return
    if scope != grants.ONCE:
        raise InvalidRequest(
            f"{shown.text}: a call that asks for a typed confirmation is asked every time; it cannot be "
            f"allowed for the {'session' if scope == grants.SESSION else 'future'} (allow it once)"
        )
    if not typed.strip():
        raise InvalidRequest(f"{shown.text}: type {shown.target!r} to confirm it")
    if not typed_matches(shown, typed, arguments):
        raise InvalidRequest(f"{typed.strip()!r} is not {shown.target!r}; type {shown.target!r} to confirm")


def _scope_words(grant_: pb.Grant) -> str:
    return "for this session" if grant_.scope == grants.SESSION else "always"


def preview_to_dict(preview: pb.Preview) -> dict:
    return {"text": preview.text, "tier": tier_name(preview.tier), "target": preview.target}


def grant_to_dict(grant_: pb.Grant) -> dict:
    return {
        "grant_id": grant_.grant_id,
        "tool": grant_.tool,
        "scope": grant_.scope,
        "session_id": grant_.session_id,
        "created_unix_ms": grant_.created_unix_ms,
        "run_id": grant_.run_id,
        "step": grant_.step,
    }


def audit_to_dict(entry: pb.AuditEntry) -> dict:
    return {
        "id": entry.id,
        "kind": entry.kind,
        "at": entry.at,
        "session_id": entry.session_id,
        "run_id": entry.run_id,
        "step": entry.step,
        "tool": entry.tool,
        "arguments": _json_or_text(entry.arguments_json) if entry.arguments_json else {},
        "confirmation": entry.confirmation,
        "status": entry.status,
        "error": entry.error,
        "duration_ms": round(entry.duration_ms, 1),
    }


def run_to_dict(run: pb.Run) -> dict:
    """A run as the HTTP API and `sb --json` show it: plain names, arguments and results as JSON."""
    return {
        "run_id": run.run_id,
        "session_id": run.session_id,
        "text": run.text,
        "dry_run": run.dry_run,
        "status": runs.status_name(run.status),
        "answer": run.answer,
        "created_unix_ms": run.created_unix_ms,
        "updated_unix_ms": run.updated_unix_ms,
        "finished_unix_ms": run.finished_unix_ms,
        "steps": [
            {
                "number": s.number,
                "intent": s.intent,
                "server": s.server,
                "status": runs.step_status_name(s.status),
                "tool": s.tool,
                "arguments": _json_or_text(s.arguments_json) if s.arguments_json else {},
                "result": _json_or_text(s.result_json) if s.result_json else None,
                "error": s.error,
                "missing": list(s.missing),
                "confirmation_required": s.confirmation_required,
                "preview": preview_to_dict(s.preview) if s.HasField("preview") else None,
                "deadline_unix_ms": s.deadline_unix_ms,
                "grant_id": s.grant_id,
                "duration_ms": round(s.duration_ms, 1),
                "rank_ms": round(s.rank_ms, 1),
                "route_ms": round(s.route_ms, 1),
                "hops": list(s.hops),
                "candidates": [{"tool": c.tool, "score": round(c.score, 4)} for c in s.candidates],
            }
            for s in run.steps
        ],
    }


def tool_to_dict(tool: pb.ToolInfo) -> dict:
    return {
        "name": tool.name,
        "server": tool.server,
        "description": tool.description,
        "input_schema": _json_or_text(tool.input_schema_json) if tool.input_schema_json else {},
        "confirmation_required": tool.confirmation_required,
        "undo_supported": tool.undo_supported,
        "destructive": tool.destructive,
    }


def event_to_dict(event: pb.RunEvent) -> dict:
    return {
        "run_id": event.run_id,
        "kind": kind_name(event.kind),
        "step": event.step,
        "message": event.message,
        "status": runs.status_name(event.status),
        "unix_ms": event.unix_ms,
    }


def _json_or_text(raw: str) -> object:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw
