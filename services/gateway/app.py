"""The gateway's operations, shared by its HTTP API and its gRPC API.

The gateway is the edge: it authenticates the person, creates a run and publishes its turn, serves the
run's one record (which the planner, the orchestrator, keeps, applying the confirmation policy to each
step), and takes the person's decisions. It alone holds the approval key a person's confirmation is
signed with, so only a person's word, through it, lets a change run, and only once.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from collections.abc import AsyncIterator

import redis.asyncio as aioredis

from services.gateway import core
from switchboard import keys, runs
from switchboard.approvals import UNDO, approved_call, grant
from switchboard.envelope import step_key
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable
from switchboard.events import kind_name
from switchboard.rpc import ToolHostClient, catalogue_stale
from switchboard.runs import Event, RunStore
from switchboard.streams import Emit, emit
from switchboard.telemetry import STEP_OUTCOMES
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)

STAGE = "gateway"


class Gateway:
    def __init__(
        self,
        redis: aioredis.Redis,
        toolhost: ToolHostClient,
        approval_key: str,
        approval_ttl_seconds: float = 600.0,
        runs_kept: int = 1000,
    ) -> None:
        self.redis = redis
        self.approval_ttl_seconds = approval_ttl_seconds
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
        return await self._served(await self.store.get(run_id))

    async def list_runs(self, limit: int = 20) -> list[pb.Run]:
        return [await self._served(run) for run in await self.store.list(limit)]

    async def _served(self, run: pb.Run) -> pb.Run:
        """The run as the API serves it, with any large result its steps refer to in place."""
        return runs.served(run, await runs.referenced_results(self.redis, run))

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
            if approve:
                out = self._approved(run, record)
                pipe.xadd(out.stream, out.envelope.to_fields())
                return
            # The rejection settles the step for the planner, and goes to the tool host's audit log.
            out = self._rejected(run, record)
            pipe.xadd(out.stream, out.envelope.to_fields())
            pipe.xadd(keys.DECISIONS, out.envelope.to_fields())

        run, _ = await self.store.update(run_id, decide, announce, publish_decision)
        STEP_OUTCOMES.labels(stage=STAGE, outcome="approved" if approve else "rejected").inc()
        return await self._served(run)

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

    def _rejected(self, run: pb.Run, step: pb.StepRecord) -> Emit:
        """The result of a step the person rejected, so the planner finishes the run (and the tool host
        audits the decision)."""
        result = pb.StepResult(
            run_id=run.run_id,
            step=step.number,
            tool=step.tool,
            arguments_json=step.arguments_json,
            status=pb.STEP_STATUS_REJECTED,
            error=step.error or "rejected by the person",
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
