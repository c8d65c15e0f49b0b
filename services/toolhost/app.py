"""The tool host's work: the catalogue of every server's tools, and running approved calls.

A call that needs confirmation runs only with the gateway's signature over exactly that call, so no
other stage (and no text inside a tool result) can make a change the person did not allow. Running a
call from the stream is guarded so that a redelivered message never runs a tool twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Sequence
from typing import Any

import redis.asyncio as aioredis

from services.toolhost import audit as audit_log
from services.toolhost import core
from services.toolhost import undo as undo_actions
from services.toolhost.audit import AuditLog
from services.toolhost.mcp_pool import McpServer, ToolCallFailed
from services.toolhost.sandbox import Sandbox
from services.toolhost.servers.kit import Trash
from switchboard import keys
from switchboard.envelope import Envelope, step_key
from switchboard.errors import SwitchboardError, UpstreamUnavailable
from switchboard.secrets import verify_call
from switchboard.streams import Emit, emit
from switchboard.telemetry import STEP_OUTCOMES, timed
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)
STAGE = "toolhost"
# The tool name an undo approval is signed for.
UNDO = "undo"


class ToolHost:
    def __init__(
        self,
        servers: Sequence[McpServer],
        approval_key: str,
        call_timeout: float,
        audit: AuditLog,
        sandbox: Sandbox,
        trash: Trash,
    ) -> None:
        self.servers = {server.name: server for server in servers}
        self.approval_key = approval_key
        self.call_timeout = call_timeout
        self.audit = audit
        self.sandbox = sandbox
        self.trash = trash

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every server has listed its tools (they start in parallel)."""
        pending = [asyncio.create_task(s.ready.wait()) for s in self.servers.values()]
        done, not_done = await asyncio.wait(pending, timeout=timeout)
        for task in not_done:
            task.cancel()
        if not_done:
            down = [name for name, s in self.servers.items() if not s.ready.is_set()]
            raise UpstreamUnavailable(f"MCP servers did not start within {timeout:.0f}s: {', '.join(down)}")

    def tools(self) -> dict[str, core.ToolSpec]:
        return {spec.name: spec for server in self.servers.values() for spec in server.tools}

    def catalogue(self) -> list[pb.ToolInfo]:
        return [
            pb.ToolInfo(
                name=spec.name,
                server=spec.server,
                description=spec.description,
                input_schema_json=json.dumps(spec.input_schema),
                confirmation_required=spec.confirmation_required,
                undo_supported=spec.undo_supported,
                destructive=spec.destructive,
            )
            for spec in sorted(self.tools().values(), key=lambda s: s.name)
        ]

    async def call(
        self, tool: str, arguments_json: str, run_id: str, step: int, approval: str, session_id: str = ""
    ) -> pb.StepResult:
        """Run one call, audited, and report what happened.

        Failures become a FAILED result whose error says how to correct the call.
        """
        result = pb.StepResult(
            run_id=run_id, step=step, tool=tool, arguments_json=arguments_json, session_id=session_id
        )
        start = time.perf_counter()
        confirmation = audit_log.NOT_REQUIRED
        row: int | None = None
        before: dict[str, str] = {}
        after: dict[str, str] = {}
        content: Any = None
        try:
            spec = core.resolve_tool(tool, self.tools())
            result.tool = spec.name
            arguments = core.parse_arguments(arguments_json)
            if spec.confirmation_required or spec.destructive:
                if not verify_call(self.approval_key, approval, run_id, step, tool, arguments_json):
                    confirmation = "missing"
                    raise core.MissingApproval(f"{spec.name} changes things and needs a person's confirmation first")
                confirmation = audit_log.CONFIRMED
            missing = core.missing_required(spec, arguments)
            if missing:
                params = ", ".join(spec.input_schema.get("properties", {}))
                raise core.InvalidRequest(f"{spec.name} is missing {', '.join(missing)}; its parameters are: {params}")
            before = await asyncio.to_thread(audit_log.hash_files, core.path_arguments(arguments), self.sandbox)
            row = self._audit_start(result, confirmation)
            with timed(STAGE):
                content = await self.servers[spec.server].call(spec.short_name, arguments, self.call_timeout)
            result.status = pb.STEP_STATUS_SUCCEEDED
            result.content_json = json.dumps(content, default=str)
            touched = [*core.path_arguments(arguments), *core.path_arguments(content)]
            after = await asyncio.to_thread(audit_log.hash_files, touched, self.sandbox)
        except (SwitchboardError, ToolCallFailed) as exc:
            result.status = pb.STEP_STATUS_FAILED
            result.error = str(exc)
        result.duration_ms = (time.perf_counter() - start) * 1000
        if row is None:  # refused before it could run: the log still shows it was asked for
            row = self._audit_start(result, confirmation)
        self._audit_finish(row, result, before, after, content)
        STEP_OUTCOMES.labels(
            stage=STAGE, outcome=pb.StepStatus.Name(result.status).removeprefix("STEP_STATUS_").lower()
        ).inc()
        return result

    def _audit_start(self, result: pb.StepResult, confirmation: str) -> int:
        return self.audit.begin(
            kind="call",
            tool=result.tool,
            arguments_json=result.arguments_json,
            confirmation=confirmation,
            run_id=result.run_id,
            step=result.step,
            session_id=result.session_id,
        )

    def _audit_finish(
        self, row: int, result: pb.StepResult, before: dict[str, str], after: dict[str, str], content: Any
    ) -> None:
        read = [
            audit_log.FileHash(path, digest) for path, digest in before.items() if after.get(path, digest) == digest
        ]
        written = [audit_log.FileHash(path, digest) for path, digest in after.items() if before.get(path) != digest]
        undo = content.get("undo", []) if isinstance(content, dict) else []
        self.audit.finish(
            row,
            outcome="succeeded" if result.status == pb.STEP_STATUS_SUCCEEDED else "failed",
            duration_ms=result.duration_ms,
            error=result.error,
            files_read=read,
            files_written=written,
            undo=undo,
        )

    async def undo(self, run_id: str, step: int, approval: str, session_id: str = "") -> list[str]:
        """Undo what step `step` of run `run_id` changed, if it recorded how; audited like a call."""
        if not verify_call(self.approval_key, approval, run_id, step, UNDO, ""):
            raise core.MissingApproval("an undo needs the gateway's approval; ask for it with `sb undo RUN STEP`")
        call = self.audit.undoable(run_id, step)
        if call is None:
            raise core.InvalidRequest(f"step {step} of run {run_id} made no recorded change that can be undone")
        if call.undone:
            raise core.InvalidRequest(f"step {step} of run {run_id} ({call.tool}) was already undone")
        if not call.undo:
            raise core.InvalidRequest(f"{call.tool} recorded nothing to undo for step {step} of run {run_id}")
        row = self.audit.begin(
            kind="undo",
            tool=call.tool,
            arguments_json=json.dumps(call.undo),
            confirmation=audit_log.CONFIRMED,
            run_id=run_id,
            step=step,
            session_id=session_id,
            undoes=call.row_id,
        )
        start = time.perf_counter()
        try:
            actions = await asyncio.to_thread(undo_actions.carry_out, call.undo, self.sandbox, self.trash)
        except (SwitchboardError, OSError) as exc:
            self.audit.finish(row, outcome="failed", duration_ms=(time.perf_counter() - start) * 1000, error=str(exc))
            raise core.InvalidRequest(f"could not undo step {step}: {exc}") from exc
        self.audit.finish(row, outcome="succeeded", duration_ms=(time.perf_counter() - start) * 1000)
        STEP_OUTCOMES.labels(stage=STAGE, outcome="undone").inc()
        return actions


class ApprovedCallWorker:
    """Runs approved calls from the stream, at most once each."""

    def __init__(self, redis: aioredis.Redis, host: ToolHost) -> None:
        self.redis = redis
        self.host = host

    async def on_approved(self, envelope: Envelope) -> Sequence[Emit]:
        call = pb.ToolCall.FromString(envelope.body)
        claim = keys.claim_key(keys.GROUP_TOOLHOST, envelope.idempotency_key)
        stored = keys.outcome_key(keys.GROUP_TOOLHOST, envelope.idempotency_key)
        raw = await self.redis.get(stored)
        if raw is not None:
            result = pb.StepResult.FromString(raw)
        elif await self.redis.set(claim, b"1", nx=True, ex=keys.DONE_TTL_SECONDS):
            result = await self.host.call(
                call.tool, call.arguments_json, call.run_id, call.step, call.approval, call.session_id
            )
            await self.redis.set(stored, result.SerializeToString(), ex=keys.DONE_TTL_SECONDS)
        else:
            # An earlier attempt started this call and died before recording its outcome. Running it
            # again could apply its effect twice, so report it instead.
            log.warning("call %s was interrupted earlier; not repeating it", envelope.idempotency_key)
            result = pb.StepResult(
                run_id=call.run_id,
                step=call.step,
                tool=call.tool,
                arguments_json=call.arguments_json,
                status=pb.STEP_STATUS_FAILED,
                error="the tool host stopped while this call ran; it was not repeated: check its effect, then retry",
            )
        del result.hops[:]
        result.hops.extend([*call.hops, keys.APPROVED])
        return [
            emit(
                keys.RESULTS,
                call.run_id,
                call.step,
                step_key(call.run_id, call.step, STAGE),
                result.SerializeToString(),
            )
        ]

    async def on_result(self, envelope: Envelope) -> Sequence[Emit]:
        """Audit a person's rejection, which settles a step without the call ever reaching the tool host."""
        result = pb.StepResult.FromString(envelope.body)
        if result.status == pb.STEP_STATUS_REJECTED:
            self.host.audit.record_decision(
                run_id=result.run_id,
                step=result.step,
                session_id=result.session_id,
                tool=result.tool,
                arguments_json=result.arguments_json,
                reason=result.error,
            )
        return []
