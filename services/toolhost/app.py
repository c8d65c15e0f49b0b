"""The tool host's work: the catalogue of every server's tools, and running approved calls.

Every call, from the stream or over gRPC, runs only with an approval of exactly that call
(`switchboard.approvals`), and only once: the approval's nonce is consumed atomically before the tool
runs. Which approvals are good for a call follows from its confirmation tier, which this host works out
itself from its own declaration of the tool's effects, the files the call would replace and the
policy file (`preview`): the policy's approval (the planner's) only for a call the policy runs at once,
a person's standing grant (checked here against the grant's own signature) for one that asks for a
click, and only the approval a person gave through the gateway for one that asks for a typed
confirmation. So no other stage, no text inside
a tool result and no process replaying an old message can make a change the person did not allow.
Every refusal is audited with its reason. Running a call from the stream is guarded besides, so that a
redelivered message reports its first outcome instead of running again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping, Sequence
from typing import Any

import redis.asyncio as aioredis

from services.toolhost import audit as audit_log
from services.toolhost import core
from services.toolhost import undo as undo_actions
from services.toolhost.audit import AuditLog
from services.toolhost.mcp_pool import CallInterrupted, McpServer, ToolCallFailed
from services.toolhost.sandbox import Sandbox
from services.toolhost.servers.kit import Trash
from switchboard import grants, keys
from switchboard.approvals import UNDO, ApprovalRefused, Refusal, consume, refusal
from switchboard.confirmation import PolicyFile
from switchboard.envelope import Envelope, step_key
from switchboard.errors import InvalidRequest, SwitchboardError, UpstreamUnavailable
from switchboard.metrics import (
    APPROVAL_REFUSALS,
    FAILURE_MODES,
    STEP_OUTCOMES,
    TOOL_CALLS,
    TOOL_DURATION,
    FailureMode,
    proto_failure_mode,
    start_failure_modes,
    start_series,
)
from switchboard.preview import declared_tier, preview, render
from switchboard.runs import store_large
from switchboard.streams import Emit, Forget, emit
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)
STAGE = "toolhost"


# How a call was let through, as the audit log's confirmation column says it (a read the policy let
# through says `not_required`).
GRANTED_BY = {
    pb.GRANT_KIND_PERSON: audit_log.CONFIRMED,
    pb.GRANT_KIND_STANDING: "standing_grant",
    pb.GRANT_KIND_POLICY: "policy",
}

# How a call ended (`switchboard_tool_calls_total{outcome}`).
CALL_SUCCEEDED = "succeeded"
CALL_FAILED = "failed"
CALL_REFUSED = "refused"  # its approval was refused: the tool never ran
CALL_INTERRUPTED = "interrupted"  # the tool's server stopped mid-change; whether it happened is unknown
CALL_OUTCOMES = (CALL_SUCCEEDED, CALL_FAILED, CALL_REFUSED, CALL_INTERRUPTED)
# The `tool` label of a call naming no tool there is: callers' names must not make new series.
UNKNOWN_TOOL = "unknown"

# Ways a call goes wrong the tool host catches (the study's, then the proto's reasons).
CAUGHT_HERE = (
    FailureMode.MALFORMED_CALL,
    FailureMode.INVALID_ARGUMENT,
    FailureMode.UNKNOWN_TOOL_RESOLVED,
    FailureMode.UNKNOWN_TOOL_UNRESOLVED,
    FailureMode.APPROVAL_REFUSED,
    FailureMode.TOOL_ERROR,
    FailureMode.INTERRUPTED,
)


def call_outcome(result: pb.StepResult) -> str:
    """How a call ended, as `switchboard_tool_calls_total` says it."""
    if result.status == pb.STEP_STATUS_SUCCEEDED:
        return CALL_SUCCEEDED
    if result.failure == pb.FAILURE_MODE_APPROVAL_REFUSED:
        return CALL_REFUSED
    if result.failure == pb.FAILURE_MODE_INTERRUPTED:
        return CALL_INTERRUPTED
    return CALL_FAILED


class ToolHost:
    def __init__(
        self,
        redis: aioredis.Redis,
        servers: Sequence[McpServer],
        grant_keys: Mapping[int, str],
        call_timeout: float,
        audit: AuditLog,
        sandbox: Sandbox,
        trash: Trash,
        policy: PolicyFile | None = None,
    ) -> None:
        self.redis = redis
        self.policy = policy or PolicyFile()
        self.servers = {server.name: server for server in servers}
        # The key each kind of approval is checked with: the policy's (the planner's) and a person's
        # (the gateway's).
        self.grant_keys = dict(grant_keys)
        self.call_timeout = call_timeout
        self.audit = audit
        self.sandbox = sandbox
        self.trash = trash
        start_failure_modes(STAGE, CAUGHT_HERE)
        start_series(APPROVAL_REFUSALS, ({"reason": reason.value} for reason in Refusal))

    def start_tool_series(self) -> None:
        """Create every tool's call counts at 0 (once the servers have listed their tools)."""
        names = sorted(self.tools())
        start_series(TOOL_CALLS, ({"tool": name, "outcome": outcome} for name in names for outcome in CALL_OUTCOMES))
        for name in names:
            TOOL_DURATION.labels(tool=name)

    async def wait_ready(self, timeout: float = 120.0) -> None:
        """Wait until every server has listed its tools (they start in parallel)."""
        pending = [asyncio.create_task(s.ready.wait()) for s in self.servers.values()]
        done, not_done = await asyncio.wait(pending, timeout=timeout)
        for task in not_done:
            task.cancel()
        if not_done:
            down = [name for name, s in self.servers.items() if not s.ready.is_set()]
            raise UpstreamUnavailable(f"MCP servers did not start within {timeout:.0f}s: {', '.join(down)}")
        self.start_tool_series()

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
        self,
        tool: str,
        arguments_json: str,
        run_id: str,
        step: int,
        approval: pb.Approval,
        session_id: str = "",
        message_key: str | None = None,
        resume: bool = False,
    ) -> pb.StepResult:
        """Run one call, audited, and report what happened.

        Failures become a FAILED result whose error says how to correct the call; a call whose approval
        is refused never reaches its tool. With `resume`, this is the same stream message again after an
        earlier attempt stopped midway: its approval's use by that attempt counts as its own, the
        attempt's audit row is completed rather than a second one begun, and the tool's server answers
        from its journal if the call ran (`servers.journal`).
        """
        result = pb.StepResult(
            run_id=run_id, step=step, tool=tool, arguments_json=arguments_json, session_id=session_id
        )
        confirmation = audit_log.NOT_REQUIRED
        row: int | None = None
        before: dict[str, str] = {}
        after: dict[str, str] = {}
        content: Any = None
        try:
            spec = self._resolve_called(tool)
            result.tool = spec.name
            try:
                arguments = core.parse_arguments(arguments_json)
            except core.InvalidRequest:
                self._caught(FailureMode.MALFORMED_CALL)
                raise
            changes = spec.confirmation_required or spec.destructive
            confirmation = audit_log.CONFIRMED if changes else audit_log.NOT_REQUIRED
            missing = core.missing_required(spec, arguments)
            if missing:
                self._caught(FailureMode.INVALID_ARGUMENT)
                params = ", ".join(spec.input_schema.get("properties", {}))
                raise core.InvalidRequest(f"{spec.name} is missing {', '.join(missing)}; its parameters are: {params}")
            tier = self.tier_of(spec, arguments)
            await self._honour(approval, run_id, step, tool, arguments_json, tier, message_key, session_id, resume)
            if approval.kind != pb.GRANT_KIND_POLICY or changes:
                confirmation = GRANTED_BY.get(approval.kind, confirmation)
            before = await audit_log.hash_files_async(core.path_arguments(arguments), self.sandbox)
            if changes:
                # A change is logged before it runs, so a process that dies during it leaves a
                # started row behind (which its resumption completes); a read changes nothing and is
                # logged once, when it is done.
                row = self.audit.started_call(run_id, step) if resume else None
                row = row if row is not None else self._audit_start(result, confirmation)
            start = time.perf_counter()
            try:
                content = await self.servers[spec.server].call(
                    spec.short_name,
                    arguments,
                    self.call_timeout,
                    key=(message_key or approval.nonce) if changes else "",
                )
            finally:
                result.duration_ms = (time.perf_counter() - start) * 1000
                TOOL_DURATION.labels(tool=spec.name).observe(result.duration_ms / 1000)
            result.status = pb.STEP_STATUS_SUCCEEDED
            result.content_json = json.dumps(content, default=str)
            touched = [*core.path_arguments(arguments), *core.path_arguments(content)]
            after = await audit_log.hash_files_async(touched, self.sandbox)
        except ApprovalRefused as exc:
            confirmation = f"refused_{exc.reason.value}"
            result.status = pb.STEP_STATUS_FAILED
            result.failure = pb.FAILURE_MODE_APPROVAL_REFUSED
            result.error = f"not run: {exc}"
        except CallInterrupted as exc:
            result.status = pb.STEP_STATUS_FAILED
            result.failure = pb.FAILURE_MODE_INTERRUPTED
            result.error = str(exc)
        except ToolCallFailed as exc:
            result.status = pb.STEP_STATUS_FAILED
            result.failure = pb.FAILURE_MODE_TOOL_ERROR
            result.error = str(exc)
            if exc.correction is not None:
                result.correction.CopyFrom(exc.correction)
        except SwitchboardError as exc:  # an unknown tool, arguments that are no JSON object, a missing one
            result.status = pb.STEP_STATUS_FAILED
            result.error = str(exc)
        if row is None:  # a read, or refused before it could run: one row, written whole
            with self.audit.together():
                row = self._audit_start(result, confirmation)
                self._audit_finish(row, result, before, after, content)
        else:
            self._audit_finish(row, result, before, after, content)
        STEP_OUTCOMES.labels(
            stage=STAGE, outcome=pb.StepStatus.Name(result.status).removeprefix("STEP_STATUS_").lower()
        ).inc()
        TOOL_CALLS.labels(tool=self._tool_label(result.tool), outcome=call_outcome(result)).inc()
        if result.failure in (pb.FAILURE_MODE_TOOL_ERROR, pb.FAILURE_MODE_INTERRUPTED):
            self._caught(proto_failure_mode(result.failure))
        return result

    def _resolve_called(self, name: str) -> core.ToolSpec:
        """The tool a call names, counting a name that is not exactly a tool's (FM-8) as resolved to
        one (a unique suffix, an alias, a close match on the same server) or not."""
        try:
            spec = core.resolve_tool(name, self.tools())
        except core.UnknownTool:
            self._caught(FailureMode.UNKNOWN_TOOL_UNRESOLVED)
            raise
        if spec.name != name:
            self._caught(FailureMode.UNKNOWN_TOOL_RESOLVED)
        return spec

    def _tool_label(self, name: str) -> str:
        return name if name in self.tools() else UNKNOWN_TOOL

    @staticmethod
    def _caught(mode: FailureMode) -> None:
        FAILURE_MODES.labels(stage=STAGE, mode=mode).inc()

    async def preview(self, tool: str, arguments_json: str) -> pb.Preview:
        """What the call would do and the tier it is confirmed at (`refused` says why a path it names
        may not be touched at all). A tool that names a resource to preview from (a draft's envelope
        for sending it) has that resource read, so the preview says what the arguments stand for."""
        spec = core.resolve_tool(tool, self.tools())
        arguments = core.parse_arguments(arguments_json)
        known: dict[str, Any] = {}
        if spec.preview_from:
            uri = render(spec.preview_from, arguments)
            try:
                known = await self.servers[spec.server].read_json(uri, self.call_timeout)
            except UpstreamUnavailable as exc:
                log.info("preview of %s without %s: %s", spec.name, uri, exc)
        return self.preview_of(spec, arguments, known)

    def preview_of(
        self, spec: core.ToolSpec, arguments: dict[str, Any], known: dict[str, Any] | None = None
    ) -> pb.Preview:
        """The preview of a call; `known` are values the call's arguments stand for (a resource's
        fields), shown where the arguments do not give them. The tier never depends on them."""
        refused = ""
        for raw in core.path_arguments(arguments):
            try:
                self.sandbox.resolve(raw)
            except InvalidRequest as exc:
                refused = str(exc)
                break
        shown = preview(spec.name, spec.declared(), {**(known or {}), **arguments}, self._is_file)
        shown.tier = self.tier_of(spec, arguments)  # from the call's own arguments only
        shown.refused = refused
        return shown

    def tier_of(self, spec: core.ToolSpec, arguments: dict[str, Any]) -> pb.ConfirmTier:
        """The tier a call is confirmed at: its declared effects with these arguments (a read looks at
        no file), then the policy file."""
        return self.policy.tier(spec.name, declared_tier(spec.declared(), arguments, self._is_file))

    def _is_file(self, raw: str) -> bool:
        try:
            return self.sandbox.resolve(raw).is_file()
        except (InvalidRequest, OSError):
            return False

    async def _honour(
        self,
        approval: pb.Approval,
        run_id: str,
        step: int,
        tool: str,
        arguments_json: str,
        tier: pb.ConfirmTier,
        message_key: str | None = None,
        session_id: str = "",
        resume: bool = False,
    ) -> None:
        """Check `approval` for this call and use it up; `ApprovalRefused` saying why it cannot be."""
        why = refusal(
            self.grant_keys,
            approval,
            run_id=run_id,
            step=step,
            tool=tool,
            arguments_json=arguments_json,
            tier=tier,
        )
        if why is None and approval.kind == pb.GRANT_KIND_STANDING:
            why = await self._standing(approval.grant_id, tool, session_id)
        if why is None:
            why = await consume(self.redis, approval, message_key, resume=resume)
        if why is not None:
            self._count_refusal(why, tool, run_id, step)
            raise ApprovalRefused(why)

    async def _standing(self, grant_id: str, tool: str, session_id: str) -> Refusal | None:
        """Whether the standing grant an approval names exists, is the gateway's, and covers the call."""
        grant = await grants.find(self.redis, grant_id)
        person_key = self.grant_keys.get(pb.GRANT_KIND_PERSON, "")
        if grant is None or not person_key or not grants.genuine(person_key, grant):
            return Refusal.UNGRANTED
        spec = core.resolve_tool(tool, self.tools())
        return None if grants.covers(grant, spec.name, session_id) else Refusal.UNGRANTED

    def recent(self, session_id: str = "", run_id: str = "", limit: int = 50) -> list[pb.AuditEntry]:
        """The audit log's newest entries, for the API."""
        return [
            pb.AuditEntry(
                id=row["id"],
                at=row["started_at"] or "",
                session_id=row["session_id"] or "",
                run_id=row["run_id"] or "",
                step=row["step"] or 0,
                tool=row["tool"] or "",
                arguments_json=row["arguments_json"] or "",
                confirmation=row["confirmation"] or "",
                status=row["outcome"] or "",
                error=row["error"] or "",
                duration_ms=row["duration_ms"] or 0.0,
                kind=row["kind"] or "",
            )
            for row in self.audit.recent(session_id=session_id, run_id=run_id, limit=limit)
        ]

    def _count_refusal(self, why: Refusal, tool: str, run_id: str, step: int) -> None:
        APPROVAL_REFUSALS.labels(reason=why.value).inc()
        self._caught(FailureMode.APPROVAL_REFUSED)
        log.warning("refused %s for run %s step %s: approval %s", tool, run_id, step, why.value)

    def refuse_replayed_message(self, call: pb.ToolCall) -> None:
        """Audit a copy of an approved call's message that arrived after the call was done: the stream
        skips it (the message is already handled), and the log shows the attempt."""
        self._count_refusal(Refusal.REPLAYED, call.tool, call.run_id, call.step)
        TOOL_CALLS.labels(tool=self._tool_label(call.tool), outcome=CALL_REFUSED).inc()
        row = self.audit.begin(
            kind="call",
            tool=call.tool,
            arguments_json=call.arguments_json,
            confirmation=f"refused_{Refusal.REPLAYED.value}",
            run_id=call.run_id,
            step=call.step,
            session_id=call.session_id,
        )
        self.audit.finish(row, outcome="failed", duration_ms=0.0, error=f"not run: {ApprovalRefused(Refusal.REPLAYED)}")

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

    async def undo(self, run_id: str, step: int, approval: pb.Approval, session_id: str = "") -> list[str]:
        """Undo what step `step` of run `run_id` changed, if it recorded how; audited like a call."""
        try:
            await self._honour(approval, run_id, step, UNDO, "", pb.CONFIRM_TIER_TYPED)
        except ApprovalRefused as exc:
            row = self.audit.begin(
                kind="undo",
                tool=UNDO,
                arguments_json="{}",
                confirmation=f"refused_{exc.reason.value}",
                run_id=run_id,
                step=step,
                session_id=session_id,
            )
            self.audit.finish(row, outcome="failed", duration_ms=0.0, error=f"not run: {exc}")
            raise core.MissingApproval(f"the undo was not run: {exc}; ask for it with `sb undo RUN STEP`") from exc
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

    async def on_approved(self, envelope: Envelope) -> Sequence[Emit | Forget]:
        call = pb.ToolCall.FromString(envelope.body)
        calls = keys.calls_key(envelope.run_id)
        claim, stored = f"claim:{envelope.idempotency_key}", f"outcome:{envelope.idempotency_key}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hsetnx(calls, claim, b"1")
        pipe.expire(calls, keys.RUN_TTL_SECONDS)
        claimed, _ = await pipe.execute()
        raw = None if claimed else await self.redis.hget(calls, stored)
        if raw is not None:  # ran before, and the process stopped before its result was published
            result = pb.StepResult.FromString(raw)
        else:
            if not claimed:
                # An earlier attempt started this call and stopped before recording its outcome: the
                # same call again, resumed. A change it made is not made twice: the tool's server
                # answers from its journal, or says the change was cut off midway.
                log.warning("call %s was interrupted earlier; resuming it", envelope.idempotency_key)
            # On the stream, the approval must also name the message that carries it.
            result = await self.host.call(
                call.tool,
                call.arguments_json,
                call.run_id,
                call.step,
                call.approval,
                call.session_id,
                message_key=envelope.idempotency_key,
                resume=not claimed,
            )
            # A large output is kept once, in the run's contents, and the result refers to it.
            await store_large(self.redis, result)
            # Kept only until the result is published (the commit below forgets it).
            await self.redis.hset(calls, stored, result.SerializeToString())
        del result.hops[:]
        result.hops.extend([*call.hops, keys.APPROVED])
        return [
            emit(
                keys.RESULTS,
                call.run_id,
                call.step,
                step_key(call.run_id, call.step, STAGE),
                result.SerializeToString(),
            ),
            Forget(calls, stored),
        ]

    async def on_duplicate(self, envelope: Envelope) -> None:
        """A second copy of an approved call whose first copy was handled: audited as a replay."""
        self.host.refuse_replayed_message(pb.ToolCall.FromString(envelope.body))

    async def on_decision(self, envelope: Envelope) -> Sequence[Emit]:
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
