"""The gateway's operations, shared by its HTTP API, its gRPC API and its stream workers.

The gateway owns the run records and the confirmation policy. It publishes a turn, follows each step
as it crosses the streams, lets read-only calls through at once, parks anything that changes something
until a person confirms it, signs what it lets through, and records the planner's answer.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Sequence

import redis.asyncio as aioredis

from services.gateway import core
from services.gateway.store import EVENT_KIND_FINISHED, RunStore
from switchboard import keys
from switchboard.envelope import Envelope, step_key
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable
from switchboard.paths import PathPolicy
from switchboard.rpc import ToolHostClient, catalogue_stale
from switchboard.secrets import sign_call
from switchboard.streams import Emit, emit, publish
from switchboard.telemetry import FAILURE_MODES, STEP_OUTCOMES
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)

STAGE = "gateway"
# The tool name an undo approval is signed for (the tool host checks the same).
UNDO = "undo"


class Gateway:
    def __init__(self, redis: aioredis.Redis, toolhost: ToolHostClient, approval_key: str, paths: PathPolicy) -> None:
        self.redis = redis
        self.paths = paths
        self.store = RunStore(redis)
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
        run = core.new_run(run_id, session_id or uuid.uuid4().hex, text, dry_run)
        await self.store.create(run)
        await self.store.add_event(run, "submitted", message=text)
        turn = pb.Turn(
            run_id=run_id, session_id=run.session_id, text=text, dry_run=dry_run, created_unix_ms=run.created_unix_ms
        )
        await publish(self.redis, [emit(keys.TURNS, run_id, 0, step_key(run_id, 0, STAGE), turn.SerializeToString())])
        return run

    async def get_run(self, run_id: str) -> pb.Run:
        return await self.store.get(run_id)

    async def list_runs(self, limit: int = 20) -> list[pb.Run]:
        return await self.store.list(limit)

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
                state = core.step_status_name(record.status)
                raise InvalidRequest(f"step {step} of run {run_id} is {state}, not awaiting confirmation")
            updated = core.apply_decision(run, step, approve, record.arguments_json, reason)
            copy = pb.StepRecord()
            copy.CopyFrom(updated)
            return copy

        def publish_decision(pipe, run: pb.Run, record: pb.StepRecord) -> None:  # noqa: ANN001 - a Pipeline
            out = self._approved(run, record) if approve else self._settled(run, record, pb.STEP_STATUS_REJECTED)
            pipe.xadd(out.stream, out.envelope.to_fields())

        run, record = await self.store.update(run_id, decide, publish_decision)
        STEP_OUTCOMES.labels(stage=STAGE, outcome="approved" if approve else "rejected").inc()
        await self.store.add_event(run, "approved" if approve else "rejected", step, record.tool)
        return run

    async def undo(self, run_id: str, step: int) -> pb.Run:
        """Undo the effect of a step that ran, through the tool host, and record it on the run."""
        run = await self.store.get(run_id)
        record = next((r for r in run.steps if r.number == step), None)
        if record is None:
            raise NotFound(f"run {run_id} has no step {step}")
        if record.status != pb.STEP_STATUS_SUCCEEDED:
            state = core.step_status_name(record.status)
            raise InvalidRequest(f"step {step} of run {run_id} is {state}; only a step that ran can be undone")
        approval = sign_call(self.approval_key, run_id, step, UNDO, "")
        actions = await self.toolhost.undo(run_id, step, approval, run.session_id)
        run, _ = await self.store.update(run_id, lambda r: core.apply_undone(r, step))
        STEP_OUTCOMES.labels(stage=STAGE, outcome="undone").inc()
        await self.store.add_event(run, "undone", step, "; ".join(actions))
        return run

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

    async def on_step(self, envelope: Envelope) -> Sequence[Emit]:
        step = pb.Step.FromString(envelope.body)
        run, _ = await self.store.update(step.run_id, lambda r: core.apply_step(r, step, [*step.hops, keys.STEPS]))
        await self.store.add_event(run, "step_planned", step.number, step.intent)
        return []

    async def on_proposal(self, envelope: Envelope) -> Sequence[Emit]:
        """Apply the confirmation policy to a routed call."""
        call = pb.ToolCall.FromString(envelope.body)
        hops = [*call.hops, keys.PROPOSED]
        catalogue = await self.catalogue(call.tool)
        tool = catalogue.get(call.tool)
        needs_confirmation = core.decide_call(tool, call.change_intent) is core.Policy.ASK_PERSON
        held_for_intent = needs_confirmation and core.decide(tool) is core.Policy.RUN_NOW
        changes = frozenset(name for name, info in catalogue.items() if core.decide(info) is core.Policy.ASK_PERSON)

        def record(run: pb.Run) -> tuple[pb.StepRecord, pb.StepStatus, str]:
            # Judged inside the transaction, against the record as it is now.
            status, kind, reason = core.judge_proposal(run, call, needs_confirmation, changes, self.paths)
            judged = pb.ToolCall()
            judged.CopyFrom(call)
            if reason:
                judged.reason = reason
            core.apply_proposal(run, judged, hops, status, needs_confirmation)
            copy = pb.StepRecord()
            copy.CopyFrom(core.step_record(run, call.step))
            return copy, status, kind

        run, (step, status, kind) = await self.store.update(call.run_id, record)
        if kind in ("refused", "repeated_call"):
            FAILURE_MODES.labels(stage=STAGE, mode=kind).inc()
        STEP_OUTCOMES.labels(stage=STAGE, outcome=kind).inc()
        message = f"{call.tool} {call.arguments_json}".strip()
        if held_for_intent and status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
            message += f" ({core.HELD_FOR_INTENT})"
        await self.store.add_event(run, kind, call.step, message)
        if status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
            return []
        if status == pb.STEP_STATUS_APPROVED:
            return [self._approved(run, step)]
        return [self._settled(run, step, status)]

    async def on_result(self, envelope: Envelope) -> Sequence[Emit]:
        result = pb.StepResult.FromString(envelope.body)
        run, _ = await self.store.update(result.run_id, lambda r: core.apply_result(r, result, [keys.RESULTS]))
        await self.store.add_event(run, core.step_status_name(result.status), result.step, result.error)
        return []

    async def on_finished(self, envelope: Envelope) -> Sequence[Emit]:
        finished = pb.RunFinished.FromString(envelope.body)
        run, _ = await self.store.update(finished.run_id, lambda r: core.apply_finished(r, finished))
        STEP_OUTCOMES.labels(stage=STAGE, outcome=f"run_{core.status_name(finished.status)}").inc()
        await self.store.add_event(run, EVENT_KIND_FINISHED, message=finished.answer)
        return []

    # ---- outputs ----

    def _approved(self, run: pb.Run, step: pb.StepRecord) -> Emit:
        """The call for the tool host, signed so it knows the policy let it through."""
        call = pb.ToolCall(
            run_id=run.run_id,
            step=step.number,
            tool=step.tool,
            arguments_json=step.arguments_json,
            outcome=pb.ROUTE_OUTCOME_ROUTED,
            approval=sign_call(self.approval_key, run.run_id, step.number, step.tool, step.arguments_json),
            hops=list(step.hops),
            session_id=run.session_id,
        )
        return emit(
            keys.APPROVED, run.run_id, step.number, step_key(run.run_id, step.number, STAGE), call.SerializeToString()
        )

    def _settled(self, run: pb.Run, step: pb.StepRecord, status: pb.StepStatus) -> Emit:
        """A result for a step that will not run, so the planner can finish the run (or go on, with the
        result of the earlier step a repeated read reuses)."""
        reused = core.reused_result(run, step)
        reasons = {
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
        "status": core.status_name(run.status),
        "answer": run.answer,
        "created_unix_ms": run.created_unix_ms,
        "updated_unix_ms": run.updated_unix_ms,
        "steps": [
            {
                "number": s.number,
                "intent": s.intent,
                "server": s.server,
                "status": core.step_status_name(s.status),
                "tool": s.tool,
                "arguments": _json_or_text(s.arguments_json) if s.arguments_json else {},
                "result": _json_or_text(s.result_json) if s.result_json else None,
                "error": s.error,
                "missing": list(s.missing),
                "confirmation_required": s.confirmation_required,
                "duration_ms": round(s.duration_ms, 1),
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
        "kind": event.kind,
        "step": event.step,
        "message": event.message,
        "status": core.status_name(event.status),
        "unix_ms": event.unix_ms,
    }


def _json_or_text(raw: str) -> object:
    try:
        return json.loads(raw)
    except json.JSONDecodeError:
        return raw
