"""The gateway's operations, shared by its HTTP API, its gRPC API and its stream worker.

The gateway is the edge: it authenticates the person, creates a run and publishes its turn, serves the
run's one record (which the planner, the orchestrator, keeps), and applies the confirmation policy to
each call the planner routed: a read runs at once, anything that changes something waits for the
person. It alone holds the approval key, so it alone can let a call run, and only once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis

from services.gateway import core
from switchboard import keys, runs
from switchboard.approvals import UNDO, grant
from switchboard.envelope import Envelope, step_key
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable
from switchboard.events import kind_name
from switchboard.paths import PathPolicy
from switchboard.rpc import ToolHostClient, catalogue_stale
from switchboard.runs import Event, RunStore
from switchboard.streams import Emit, emit
from switchboard.telemetry import FAILURE_MODES, STEP_OUTCOMES, failure_mode
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)

STAGE = "gateway"
# The failure a judged proposal counts as, by the event it was announced with, and by the status it
# left its step in (the only ways a judgement fails or rejects a step).
FAILURE_OF_KIND = {
    pb.EVENT_KIND_REFUSED: pb.FAILURE_MODE_PATH_REFUSED,
    pb.EVENT_KIND_REPEATED_CALL: pb.FAILURE_MODE_REPEATED_CALL,
}
FAILURE_OF_STATUS = {
    pb.STEP_STATUS_REJECTED: pb.FAILURE_MODE_PATH_REFUSED,
    pb.STEP_STATUS_FAILED: pb.FAILURE_MODE_REPEATED_CALL,
}


class Gateway:
    def __init__(
        self,
        redis: aioredis.Redis,
        toolhost: ToolHostClient,
        approval_key: str,
        paths: PathPolicy,
        approval_ttl_seconds: float = 600.0,
        runs_kept: int = 1000,
    ) -> None:
        self.redis = redis
        self.approval_ttl_seconds = approval_ttl_seconds
        self.paths = paths
        self.store = RunStore(redis, STAGE, runs_kept)
        self.toolhost = toolhost
        self.approval_key = approval_key
        self._catalogue: dict[str, pb.ToolInfo] = {}
        self._catalogue_at = 0.0

    # ---- the API ----

    async def submit(self, text: str, session_id: str = "", dry_run: bool = False) -> pb.Run:
        """Record a new run and publish its turn."""
        text = text.strip()
        if not text:
            raise InvalidRequest("text is empty: say what you want done")
        if len(text) > core.MAX_TEXT_CHARS:
            raise InvalidRequest(f"text is {len(text)} characters; the limit is {core.MAX_TEXT_CHARS}")
        run_id = uuid.uuid4().hex
        run = runs.new_run(run_id, session_id or uuid.uuid4().hex, text, dry_run)
        turn = pb.Turn(
            run_id=run_id, session_id=run.session_id, text=text, dry_run=dry_run, created_unix_ms=run.created_unix_ms
        )
        out = emit(keys.TURNS, run_id, 0, step_key(run_id, 0, STAGE), turn.SerializeToString())
        # The record, its first event and the turn in one transaction: a turn never lacks its record.
        await self.store.create(
            run,
            [Event(pb.EVENT_KIND_SUBMITTED, message=text)],
            lambda pipe: pipe.xadd(out.stream, out.envelope.to_fields()),  # type: ignore[arg-type]
        )
        return runs.served(run)

    async def get_run(self, run_id: str) -> pb.Run:
        return runs.served(await self.store.get(run_id))

    async def list_runs(self, limit: int = 20) -> list[pb.Run]:
        return [runs.served(run) for run in await self.store.list(limit)]

    def watch(self, run_id: str) -> AsyncIterator[pb.RunEvent]:
        return self.store.events(run_id)

    async def list_tools(self) -> list[pb.ToolInfo]:
        return list((await self.catalogue()).values())

    async def confirm(self, run_id: str, step: int, approve: bool, reason: str = "") -> pb.Run:
        """A person's answer to a step that waits for confirmation."""

        def decide(run: pb.Run) -> pb.StepRecord:
            record = next((r for r in run.steps if r.number == step), None)
            if record is None:
                raise NotFound(f"run {run_id} has no step {step}")
            if record.status != pb.STEP_STATUS_AWAITING_CONFIRMATION:
                state = runs.step_status_name(record.status)
                raise InvalidRequest(f"step {step} of run {run_id} is {state}, not awaiting confirmation")
            updated = runs.apply_decision(run, step, approve, reason)
            copy = pb.StepRecord()
            copy.CopyFrom(updated)
            return copy

        def announce(_run: pb.Run, record: pb.StepRecord) -> list[Event]:
            return [Event(pb.EVENT_KIND_APPROVED if approve else pb.EVENT_KIND_REJECTED, step, record.tool)]

        def publish_decision(pipe, run: pb.Run, record: pb.StepRecord) -> None:  # noqa: ANN001 - a Pipeline
            out = (
                self._approved(run, record, pb.GRANT_KIND_PERSON)
                if approve
                else self._settled(run, record, pb.STEP_STATUS_REJECTED)
            )
            pipe.xadd(out.stream, out.envelope.to_fields())

        run, _ = await self.store.update(run_id, decide, announce, publish_decision)
        STEP_OUTCOMES.labels(stage=STAGE, outcome="approved" if approve else "rejected").inc()
        return runs.served(run)

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
        return runs.served(run)

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

    # ---- stream handlers ----

    async def on_proposal(self, envelope: Envelope) -> Sequence[Emit]:
        """Apply the confirmation policy to a routed call."""
        call = pb.ToolCall.FromString(envelope.body)
        hops = [*call.hops, keys.PROPOSED]
        catalogue = await self.catalogue(call.tool)
        tool = catalogue.get(call.tool)
        needs_confirmation = core.decide_call(tool, call.change_intent) is core.Policy.ASK_PERSON
        held_for_intent = needs_confirmation and core.decide(tool) is core.Policy.RUN_NOW
        changes = frozenset(name for name, info in catalogue.items() if core.decide(info) is core.Policy.ASK_PERSON)

        def record(run: pb.Run) -> tuple[pb.StepRecord, pb.StepStatus, pb.EventKind]:
            # Judged inside the transaction, against the record as it is now.
            status, kind, reason = core.judge_proposal(run, call, needs_confirmation, changes, self.paths)
            judged = pb.ToolCall()
            judged.CopyFrom(call)
            if reason:
                judged.reason = reason
            runs.apply_proposal(run, judged, hops, status, needs_confirmation)
            copy = pb.StepRecord()
            copy.CopyFrom(runs.step_record(run, call.step))
            return copy, status, kind

        def announce(_run: pb.Run, judged: tuple[pb.StepRecord, pb.StepStatus, pb.EventKind]) -> list[Event]:
            _, status, kind = judged
            message = f"{call.tool} {call.arguments_json}".strip()
            if held_for_intent and status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
                message += f" ({core.HELD_FOR_INTENT})"
            return [Event(kind, call.step, message)]

        current = await self.store.get(call.run_id)
        earlier = next((r for r in current.steps if r.number == call.step), None)
        if earlier is not None and keys.RESULTS in earlier.hops:
            return []  # the step has settled since; nothing more to send
        if earlier is not None and earlier.status not in (pb.STEP_STATUS_ROUTED, pb.STEP_STATUS_PLANNED):
            # Judged before, and the process stopped before its outputs were committed: the same
            # outputs again, from the record, without judging or announcing it twice.
            failure = FAILURE_OF_STATUS.get(earlier.status, pb.FAILURE_MODE_UNSPECIFIED)
            return self._outputs(current, earlier, earlier.status, failure)
        run, (step, status, kind) = await self.store.update(call.run_id, record, announce)
        failure = FAILURE_OF_KIND.get(kind, pb.FAILURE_MODE_UNSPECIFIED)
        if failure:
            FAILURE_MODES.labels(stage=STAGE, mode=failure_mode(failure)).inc()
        STEP_OUTCOMES.labels(stage=STAGE, outcome=kind_name(kind)).inc()
        return self._outputs(run, step, status, failure)

    def _outputs(self, run: pb.Run, step: pb.StepRecord, status: pb.StepStatus, failure: pb.FailureMode) -> list[Emit]:
        """What a judged step sends on: nothing while it waits for the person, the call with an approval
        when the policy let it through, else a result that settles it (a reused read's among them)."""
        if status == pb.STEP_STATUS_APPROVED:
            return [self._approved(run, step, pb.GRANT_KIND_POLICY)]
        if status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
            return []
        return [self._settled(run, step, status, failure)]

    # ---- outputs ----

    def _approved(self, run: pb.Run, step: pb.StepRecord, kind: pb.GrantKind) -> Emit:
        """The call for the tool host, with an approval for this one execution: `kind` says whether the
        policy let it through (a read) or a person confirmed it."""
        key = step_key(run.run_id, step.number, STAGE)
        approval = grant(
            self.approval_key,
            run_id=run.run_id,
            step=step.number,
            tool=step.tool,
            arguments_json=step.arguments_json,
            idempotency_key=key,
            kind=kind,
            ttl_seconds=self.approval_ttl_seconds,
        )
        call = pb.ToolCall(
            run_id=run.run_id,
            step=step.number,
            tool=step.tool,
            arguments_json=step.arguments_json,
            outcome=pb.ROUTE_OUTCOME_ROUTED,
            approval=approval,
            hops=list(step.hops),
            session_id=run.session_id,
        )
        return emit(keys.APPROVED, run.run_id, step.number, key, call.SerializeToString())

    def _settled(
        self,
        run: pb.Run,
        step: pb.StepRecord,
        status: pb.StepStatus,
        failure: pb.FailureMode = pb.FAILURE_MODE_UNSPECIFIED,
    ) -> Emit:
        """A result for a step that will not run, so the planner can finish the run (or go on, with the
        result of the earlier step a repeated read reuses)."""
        reused = core.reused_result(run, step)
        reasons: dict[int, str] = {
            pb.STEP_STATUS_SKIPPED: "dry run: the call was routed, not executed",
            pb.STEP_STATUS_REJECTED: step.error or "rejected by the person",
            pb.STEP_STATUS_NEEDS_CLARIFICATION: step.error or "the request does not say enough",
            pb.STEP_STATUS_FAILED: step.error,
        }
        result = pb.StepResult(
            run_id=run.run_id,
            step=step.number,
            tool=step.tool,
            arguments_json=step.arguments_json,
            status=status,
            content_json=reused,
            error=reasons.get(status, ""),
            hops=list(step.hops),
            session_id=run.session_id,
            failure=failure,
        )
        return emit(
            keys.RESULTS, run.run_id, step.number, step_key(run.run_id, step.number, STAGE), result.SerializeToString()
        )


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
