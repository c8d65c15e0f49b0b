"""The planner's stream work: it orchestrates each run, from the turn to the answer.

For each turn it judges and plans the request. For each step it asks the filter and the router (over
gRPC) for the call and applies the confirmation policy (`switchboard.confirmation`) to it, writing the
step and the verdict into the run's one record: a call that only reads goes to the tool host with the
policy's approval (which the tool host honours for reads only); a call that changes something waits
for the person, whose confirmation the gateway turns into an approval; a step the policy settles
without running is recorded at once. For each result it records it, writes the answer's settled lines
and goes on, or finishes the run. Its working state (`RunState`) is kept in the same record
(`Run.orchestration_json`), written in the same transaction as the step records and the run's events
(`switchboard.runs`). A session's memory (`SessionMemory`) is kept by session.

Handling a message again changes nothing: a turn whose run already has a state, or a result already
recorded, only re-sends the approved call that followed it, under the same idempotency key, so the tool
host drops a copy, and no event is appended twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline

from services.planner import answer, core, policy, structure
from services.planner.context import (
    SessionMemory,
    TurnMemory,
    first_sentences,
    listed_paths,
    mentioned_paths,
    result_text,
)
from services.planner.state import Done, Finish, PlannedStep, RunOutcome, RunState, StepOrder, StepOutcome, StepState
from switchboard import confirmation, grants, keys, runs
from switchboard.approvals import approved_call
from switchboard.confirmation import PolicyFile
from switchboard.envelope import Envelope, step_key
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable
from switchboard.events import KIND_OF_STEP_STATUS, kind_name
from switchboard.metrics import (
    CONFIRMATION_DECISIONS,
    CONFIRMATIONS_REQUESTED,
    FAILURE_MODES,
    RUNS_FINISHED,
    STEP_OUTCOMES,
    FailureMode,
    proto_failure_mode,
    start_failure_modes,
    start_series,
)
from switchboard.paths import PathPolicy
from switchboard.reading import Reading
from switchboard.rpc import catalogue_stale
from switchboard.runs import Event, RunStore
from switchboard.streams import Emit, Redelivery, StreamWorker, emit
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)

STAGE = "planner"

STATE_OF_STATUS = {
    pb.STEP_STATUS_SUCCEEDED: StepState.SUCCEEDED,
    pb.STEP_STATUS_FAILED: StepState.FAILED,
    pb.STEP_STATUS_SKIPPED: StepState.SKIPPED,
    pb.STEP_STATUS_REJECTED: StepState.REJECTED,
    pb.STEP_STATUS_NEEDS_CLARIFICATION: StepState.NEEDS_CLARIFICATION,
}
RUN_STATUS_OF = {
    RunOutcome.ANSWERED: pb.RUN_STATUS_ANSWERED,
    RunOutcome.NEEDS_CLARIFICATION: pb.RUN_STATUS_NEEDS_CLARIFICATION,
    RunOutcome.REFUSED: pb.RUN_STATUS_REFUSED,
    RunOutcome.FAILED: pb.RUN_STATUS_FAILED,
}
OUTCOME_OF_VERDICT = {policy.Verdict.REFUSE: RunOutcome.REFUSED, policy.Verdict.CLARIFY: RunOutcome.NEEDS_CLARIFICATION}

# Ways a run goes wrong the planner catches: the study's, then the proto's reasons it gives.
CAUGHT_HERE = (
    FailureMode.REPEATED_CALL,
    FailureMode.PREMATURE_STOP,
    FailureMode.CONTEXT_EVICTION,
    FailureMode.CONFABULATED_CLAIM,
    FailureMode.PATH_REFUSED,
    FailureMode.RETRY,
    FailureMode.TURN_REFUSED,
    FailureMode.TURN_NEEDS_CLARIFICATION,
    FailureMode.STAGE_GAVE_UP,
)
# The tiers a step waits for a person at: a click, or the target's name typed.
WAITING_TIERS = (pb.CONFIRM_TIER_CONFIRM, pb.CONFIRM_TIER_TYPED)
# A change a standing grant let through, as `switchboard_confirmation_decisions_total` counts it.
GRANTED = "granted"


def start_planner_series() -> None:
    """Create the planner's series at 0: its failure modes, the runs it finishes, the confirmations it
    asks for and the grants it applies."""
    start_failure_modes(STAGE, CAUGHT_HERE)
    start_series(RUNS_FINISHED, ({"status": runs.status_name(status)} for status in sorted(runs.FINAL_STATUSES)))
    start_series(CONFIRMATIONS_REQUESTED, ({"tier": confirmation.tier_name(tier)} for tier in WAITING_TIERS))
    start_series(
        CONFIRMATION_DECISIONS, ({"decision": GRANTED, "scope": scope} for scope in (grants.SESSION, grants.ALWAYS))
    )


def waiting_tier(verdict_tier: pb.ConfirmTier) -> str:
    """The tier a step waits for the person at, as a label: a read held because the request asks for a
    change (tier RUN) is asked about with a click."""
    return confirmation.tier_name(verdict_tier if verdict_tier in WAITING_TIERS else pb.CONFIRM_TIER_CONFIRM)


def outcome_from_result(result: pb.StepResult) -> StepOutcome:
    return StepOutcome(
        number=result.step,
        tool=result.tool,
        state=STATE_OF_STATUS.get(result.status, StepState.FAILED),
        arguments=_loads(result.arguments_json, {}),
        content=_loads(result.content_json, None),
        error=result.error,
        failure=proto_failure_mode(result.failure) if result.failure else "",
        correction=correction_of(result.correction) if result.HasField("correction") else {},
    )


def correction_of(correction: pb.Correction) -> dict[str, Any]:
    """A tool's structured correction as plain data (the suggested value decoded from its JSON)."""
    found: dict[str, Any] = {}
    if correction.parameter:
        found["parameter"] = correction.parameter
    if correction.problem:
        found["problem"] = correction.problem
    if correction.suggested_value_json:
        found["suggested_value"] = _loads(correction.suggested_value_json, None)
    if correction.suggested_tool:
        found["suggested_tool"] = correction.suggested_tool
    return found


def _loads(raw: str, default: Any) -> Any:
    try:
        return json.loads(raw) if raw else default
    except json.JSONDecodeError:
        return raw


@dataclass
class Catalogue:
    """What the planner knows of the tools: each server's vocabulary, the verbs tool names start
    with (for the splitter), and which tools change things (for the confirmation policy and for
    checking the answer's claims)."""

    server_words: dict[str, set[str]] = field(default_factory=dict)
    verbs: set[str] = field(default_factory=set)
    mutating: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    tools: dict[str, pb.ToolInfo] = field(default_factory=dict)
    loaded_at: float = 0.0  # time.monotonic() of the last load; 0 before the first

    def load(self, tools: Iterable[pb.ToolInfo]) -> None:
        tools = list(tools)
        self.server_words, self.verbs = core.vocabulary(
            (t.server, t.name.split(".", 1)[-1], t.description) for t in tools
        )
        self.mutating = {t.name for t in tools if t.confirmation_required or t.destructive}
        self.names = {t.name for t in tools}
        self.tools = {t.name: t for t in tools}
        self.loaded_at = time.monotonic()

    def stale(self, tool: str = "") -> bool:
        """Whether to ask the tool host again: the list is old, or names a tool it does not know (the
        tool host lists the servers that are up, so a list taken while it starts can be partial)."""
        return catalogue_stale(self.loaded_at, self.names, tool)


class Planning:
    """Judging and planning a request; shared by the stream work and the gRPC API."""

    def __init__(
        self,
        catalogue: Catalogue,
        paths: PathPolicy,
        model_plan: Callable[[str, list[str]], list[tuple[str, str]]] | None = None,
        max_steps: int = core.MAX_STEPS,
        splitter: str = "parse",
    ) -> None:
        self.catalogue = catalogue
        self.paths = paths
        self.model_plan = model_plan
        self.max_steps = max_steps
        self.splitter = splitter

    def assess(self, text: str, has_context: bool) -> policy.Assessment:
        return policy.assess(text, self.paths, has_context)

    def read(self, text: str, history: SessionMemory) -> tuple[str, policy.Assessment, list[PlannedStep]]:
        """A turn's words completed with the step the session left open, judged, and planned unless
        refused (blocking: the parser and maybe the model work)."""
        text = completed_request(text, history)
        assessment = self.assess(text, has_context=not history.empty)
        plan = [] if assessment.verdict is policy.Verdict.REFUSE else self.plan(text)
        return text, assessment, plan

    def plan(self, text: str) -> list[PlannedStep]:
        """The plan for `text` (blocking: the model may be asked)."""
        servers = sorted(self.catalogue.server_words)
        ask = self.model_plan
        model_plan = (lambda t: ask(t, servers)) if ask is not None and servers else None
        return core.plan_request(text, self.catalogue.verbs, self.catalogue.server_words, model_plan, self.splitter)


class Routing(Protocol):
    """Routes one step: the call for it, and the filter's own time (see `switchboard.rpc.StepRouting`)."""

    async def route(self, request: pb.RouteRequest) -> tuple[pb.ToolCall, float]: ...


@dataclass(frozen=True)
class Routed:
    """A step just routed, to be written into the record: the call, the step's server, the filter's time,
    and, for a call that may need the person, what it will do (its preview and tier) and the standing
    grant that covers it."""

    call: pb.ToolCall
    server: str
    rank_ms: float
    preview: pb.Preview | None = None
    grant_id: str = ""
    grant_scope: str = ""  # the covering grant's scope (session, always)


@dataclass(frozen=True)
class Verdict:
    """The confirmation policy's judgement of a routed step."""

    status: pb.StepStatus
    kind: pb.EventKind
    reason: str
    needs_person: bool
    failure: pb.FailureMode
    held_for_intent: bool
    tier: pb.ConfirmTier = pb.CONFIRM_TIER_RUN
    grant_id: str = ""


# The failure a verdict counts as, by the event it is announced with.
FAILURE_OF_KIND: dict[int, pb.FailureMode] = {
    pb.EVENT_KIND_REFUSED: pb.FAILURE_MODE_PATH_REFUSED,
    pb.EVENT_KIND_REPEATED_CALL: pb.FAILURE_MODE_REPEATED_CALL,
}


def settled_result(run: pb.Run, step: pb.StepRecord, verdict: Verdict) -> pb.StepResult:
    """The result of a step the policy settles without running it (a repeated read takes the earlier
    step's result)."""
    reasons: dict[int, str] = {
        pb.STEP_STATUS_SKIPPED: "dry run: the call was routed, not executed",
        pb.STEP_STATUS_REJECTED: step.error,
        pb.STEP_STATUS_NEEDS_CLARIFICATION: step.error or "the request does not say enough",
        pb.STEP_STATUS_FAILED: step.error,
    }
    reused = confirmation.reused_result(run, step)
    return pb.StepResult(
        run_id=run.run_id,
        step=step.number,
        tool=step.tool,
        arguments_json=step.arguments_json,
        status=verdict.status,
        content_json=reused.result_json if reused else "",
        content_ref=reused.result_ref if reused else "",
        error=reasons.get(verdict.status, ""),
        session_id=run.session_id,
        failure=verdict.failure,
    )


def load_state(run: pb.Run, large: Mapping[str, str] | None = None) -> RunState | None:
    """The planner's state kept in `run` (None before the planner took the run), each step's result
    taken from the step's record, where it is kept once (a large one from `large`, by reference)."""
    if not run.orchestration_json:
        return None
    data = json.loads(run.orchestration_json)
    large = large or {}
    results = {record.number: large.get(record.result_ref, "") or record.result_json for record in run.steps}
    for number, outcome in data["outcomes"].items():
        outcome["content"] = _loads(results.get(int(number), ""), None)
    return RunState.from_dict(data)


def dump_state(state: RunState) -> str:
    """`state` as JSON for the record, without the results (the step records hold them)."""
    data = state.to_dict()
    for outcome in data["outcomes"].values():
        outcome["content"] = None
    return json.dumps(data)


class PlannerWorker:
    def __init__(
        self,
        redis: aioredis.Redis,
        planning: Planning,
        session_tokens: int,
        routing: Routing,
        policy_key: str,
        list_tools: Callable[[], Awaitable[list[pb.ToolInfo]]] | None = None,
        session_memory: bool = True,
        approval_ttl_seconds: float = 600.0,
        *,
        preview: Callable[[str, str], Awaitable[pb.Preview]] | None = None,
        policy_file: PolicyFile | None = None,
        deadline_seconds: float = 600.0,
    ) -> None:
        self.redis = redis
        # The tool host says what a call will do and its tier; the policy file tells which reads it must
        # be asked about too; a step waits for the person this long.
        self.preview = preview
        self.policy_file = policy_file or PolicyFile()
        self.deadline_seconds = deadline_seconds
        self.policy_key = policy_key
        self.approval_ttl_seconds = approval_ttl_seconds
        self.store = RunStore(redis, STAGE)
        self.planning = planning
        self.session_tokens = session_tokens
        self.routing = routing
        self.list_tools = list_tools
        self.session_memory = session_memory
        start_planner_series()

    async def refresh_catalogue(self, tool: str = "") -> None:
        """Reload the catalogue when it is stale; keep the old one if the tool host does not answer."""
        catalogue = self.planning.catalogue
        if self.list_tools is None or not catalogue.stale(tool):
            return
        try:
            catalogue.load(await self.list_tools())
        except UpstreamUnavailable as exc:
            log.warning("tool catalogue not refreshed (%s); using the one from before", exc)
            catalogue.loaded_at = time.monotonic()  # do not ask again on every message

    async def on_turn(self, envelope: Envelope) -> Sequence[Emit]:
        turn = pb.Turn.FromString(envelope.body)
        await self.refresh_catalogue()
        run = await self._record(turn.run_id)
        if run is None:
            return []
        if turn.HasField("fill"):
            return await self._take_up(run, turn.fill)
        earlier = await self._state(run)
        if earlier is not None:  # a turn handled before: send on what was decided then
            return await self._repeat(turn.run_id, earlier)
        history = await self._session(turn.session_id) if self.session_memory else SessionMemory()
        # Reading, judging and planning the words (the parse may take a while) in one trip off the loop.
        text, assessment, plan = await asyncio.to_thread(self.planning.read, turn.text, history)
        if assessment.verdict is policy.Verdict.REFUSE:
            FAILURE_MODES.labels(stage=STAGE, mode=proto_failure_mode(pb.FAILURE_MODE_TURN_REFUSED)).inc()
            state = core.start_run(text, turn.session_id, turn.dry_run, [], history)
            return await self._finish(turn.run_id, state, Finish(RunOutcome.REFUSED, assessment.reason))
        if assessment.verdict is policy.Verdict.CLARIFY and len(plan) > 1:
            # "Take a screenshot and run OCR on the screenshot": a later step may point at what an
            # earlier one makes, so only the first step's words must stand on their own.
            first = self.planning.assess(plan[0].intent, has_context=not history.empty)
            if first.verdict is policy.Verdict.PROCEED:
                assessment = first
        if assessment.verdict is policy.Verdict.CLARIFY:
            # The person is asked first; the first step is still routed, held (and a dry run besides),
            # so the question comes with the tool it is about and the values already known.
            FAILURE_MODES.labels(stage=STAGE, mode=proto_failure_mode(pb.FAILURE_MODE_TURN_NEEDS_CLARIFICATION)).inc()
            state = core.start_run(text, turn.session_id, True, plan[:1], history)
            state.held = assessment.reason
            if not plan:
                return await self._finish(turn.run_id, state, Finish(RunOutcome.NEEDS_CLARIFICATION, state.held))
            return await self._advance(turn.run_id, state)
        state = core.start_run(text, turn.session_id, turn.dry_run, plan, history)
        return await self._advance(turn.run_id, state)

    async def on_result(self, envelope: Envelope) -> Sequence[Emit]:
        result = pb.StepResult.FromString(envelope.body)
        run = await self._record(result.run_id)
        state = await self._state(run) if run is not None else None
        if state is None:  # not a run this planner started (or long forgotten)
            return []
        if result.step in state.outcomes:
            return await self._repeat(result.run_id, state)
        outcome = outcome_from_result(await self._with_content(result))
        await self.refresh_catalogue(outcome.tool)
        core.record(state, outcome)
        STEP_OUTCOMES.labels(stage=STAGE, outcome=outcome.state.value).inc()
        return await self._advance(result.run_id, state, result)

    async def give_up(self, envelope: Envelope, exc: BaseException) -> Sequence[Emit]:
        """After repeated failures on a message: end its run as failed, saying which stage gave up."""
        answer_text = f"The planner could not continue this request ({type(exc).__name__}: {exc})."

        def fail(run: pb.Run) -> bool:
            if run.status in runs.FINAL_STATUSES:
                return False
            runs.apply_finished(run, pb.RUN_STATUS_FAILED, answer_text)
            return True

        def announce(_run: pb.Run, failed: bool) -> list[Event]:
            return [Event(pb.EVENT_KIND_FINISHED, message=answer_text)] if failed else []

        try:
            await self.store.update(envelope.run_id, fail, announce)
        except NotFound:
            pass
        FAILURE_MODES.labels(stage=STAGE, mode=proto_failure_mode(pb.FAILURE_MODE_STAGE_GAVE_UP)).inc()
        return []

    async def _advance(self, run_id: str, state: RunState, result: pb.StepResult | None = None) -> Sequence[Emit]:
        """Go on from where the run is: route the next step and apply the policy to it, until a step
        goes to the tool host (a read the policy lets through), waits for the person, or the run ends.
        A step the policy settles without running (a dry run, a question, a refused path, a repeated
        call) is recorded at once and the run goes on."""
        while True:
            action = core.advance(state, self.planning.max_steps)
            if isinstance(action, Done):
                if state.held:
                    finished = await self._finish(run_id, state, answer.held(state), result)
                else:
                    finish = answer.compose(state, action, self.planning.catalogue.mutating)
                    finished = await self._finish(run_id, state, finish, result)
                if action.cut_short:  # the step limit stopped the run with work left; the answer says so
                    FAILURE_MODES.labels(stage=STAGE, mode=FailureMode.PREMATURE_STOP).inc()
                return finished
            lines = answer.settled_lines(state, self.planning.catalogue.mutating)
            if action is None:
                await self._write(run_id, state, result, lines)
                return []
            if action.attempt > 1:
                FAILURE_MODES.labels(stage=STAGE, mode=proto_failure_mode(pb.FAILURE_MODE_RETRY)).inc()
            if core.context_left_out(state, action):  # earlier work left out of the step's context
                FAILURE_MODES.labels(stage=STAGE, mode=FailureMode.CONTEXT_EVICTION).inc()
            routed = await self._confirming(state, await self._route(run_id, state, action))
            sent = await self._settle(run_id, state, result, lines, routed)
            result = None
            if sent is not None:
                return sent

    async def _settle(
        self,
        run_id: str,
        state: RunState,
        result: pb.StepResult | None,
        lines: list[str],
        routed: Routed,
        reopen: bool = False,
    ) -> Sequence[Emit] | None:
        """Write a routed step with the policy's verdict; what goes out (a call for the tool host, or
        nothing while the person decides), or None when the policy settled the step and the run goes on."""
        verdict = await self._write(run_id, state, result, lines, routed, reopen=reopen)
        assert verdict is not None
        if verdict.failure:
            FAILURE_MODES.labels(stage=STAGE, mode=proto_failure_mode(verdict.failure)).inc()
        STEP_OUTCOMES.labels(stage=STAGE, outcome=kind_name(verdict.kind)).inc()
        call = routed.call
        if verdict.grant_id:
            CONFIRMATION_DECISIONS.labels(decision=GRANTED, scope=routed.grant_scope or "none").inc()
        if verdict.status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
            CONFIRMATIONS_REQUESTED.labels(tier=waiting_tier(verdict.tier)).inc()
        if verdict.status == pb.STEP_STATUS_APPROVED:
            kind = pb.GRANT_KIND_STANDING if verdict.grant_id else pb.GRANT_KIND_POLICY
            return [
                self._approved(
                    run_id,
                    call.step,
                    call.tool,
                    call.arguments_json,
                    call.session_id,
                    call.hops,
                    kind,
                    verdict.grant_id,
                )
            ]
        if verdict.status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
            return []  # the gateway lets it run when the person confirms it
        return None

    async def _confirming(self, state: RunState, routed: Routed) -> Routed:
        """`routed` with what its call will do and its tier, from the tool host, when it may need the
        person (a plain read the policy file leaves alone runs without asking), and the standing grant
        that lets a call asking for a click through."""
        call = routed.call
        if not call.tool or call.outcome != pb.ROUTE_OUTCOME_ROUTED or call.held or state.dry_run:
            return routed
        tool = self.planning.catalogue.tools.get(call.tool)
        plain_read = confirmation.decide(tool) is confirmation.Policy.RUN_NOW
        if self.preview is None or (plain_read and self.policy_file.configured(call.tool) is None):
            return routed
        try:
            shown = await self.preview(call.tool, call.arguments_json)
        except (UpstreamUnavailable, InvalidRequest) as exc:
            # The person is asked with the call as it is; the tool host judges it again when it runs.
            log.warning("no preview of %s (%s); the person is asked with a click", call.tool, exc)
            text = f"Run {call.tool} with {call.arguments_json}"
            shown = pb.Preview(text=text, tier=pb.CONFIRM_TIER_CONFIRM)
        grant_id = scope = ""
        if shown.tier == pb.CONFIRM_TIER_CONFIRM:
            covering = grants.covering(await grants.load(self.redis), call.tool, state.session_id)
            grant_id, scope = (covering.grant_id, covering.scope) if covering is not None else ("", "")
        return Routed(call, routed.server, routed.rank_ms, shown, grant_id, scope)

    async def _take_up(self, run: pb.Run, fill: pb.Fill) -> Sequence[Emit]:
        """The person filled the open values of a step that waited for them: the run goes on from that
        step, its call judged by the policy like any other."""
        state = await self._state(run)
        if state is None:
            return []
        record = next((r for r in run.steps if r.number == fill.step), None)
        outcome = state.outcomes.get(fill.step)
        if (
            record is None
            or outcome is None
            or outcome.state is not StepState.NEEDS_CLARIFICATION
            or record.status != pb.STEP_STATUS_NEEDS_CLARIFICATION
        ):
            return await self._repeat(run.run_id, state)  # taken up before
        del state.outcomes[fill.step]
        state.finished = {}
        call = pb.ToolCall(
            run_id=run.run_id,
            step=fill.step,
            tool=record.tool,
            arguments_json=fill.arguments_json,
            outcome=pb.ROUTE_OUTCOME_ROUTED,
            intent=record.intent,
            session_id=state.session_id,
            dry_run=state.dry_run,
            hops=list(record.hops),
            candidates=list(record.candidates),  # what the filter ranked when the step was routed
        )
        routed = await self._confirming(state, Routed(call, record.server, record.rank_ms))
        lines = answer.settled_lines(state, self.planning.catalogue.mutating)
        sent = await self._settle(run.run_id, state, None, lines, routed, reopen=True)
        return sent if sent is not None else await self._advance(run.run_id, state)

    async def _finish(
        self, run_id: str, state: RunState, finish: Finish, result: pb.StepResult | None = None
    ) -> Sequence[Emit]:
        state.finished = {"outcome": finish.outcome.value, "answer": finish.answer}
        await self._write(run_id, state, result, finish.answer.split("\n"), finish=finish)
        return []

    async def _repeat(self, run_id: str, state: RunState) -> Sequence[Emit]:
        """What follows from a message handled before whose outputs were never sent (the process
        stopped between the record's write and the message's acknowledgement): the approved call of a
        step the policy let through, granted again; or, when the run was settling steps without
        running them, the rest of that work."""
        if state.finished or not state.orders:
            return []
        last = state.orders[-1]
        if last.number in state.outcomes:
            return await self._advance(run_id, state)
        record = next((r for r in (await self.store.get(run_id)).steps if r.number == last.number), None)
        if record is None or record.status != pb.STEP_STATUS_APPROVED or keys.RESULTS in record.hops:
            return []
        return [
            self._approved(run_id, record.number, record.tool, record.arguments_json, state.session_id, record.hops)
        ]

    async def _route(self, run_id: str, state: RunState, order: StepOrder) -> Routed:
        request = pb.RouteRequest(
            text=order.intent,
            context=order.context,
            inputs_json=json.dumps(order.inputs) if order.inputs else "",
            reading_json=Reading.of(order.intent, datetime.fromisoformat(state.asked_at)).to_json(),
        )
        call, rank_ms = await self.routing.route(request)
        call.run_id = run_id
        call.step = order.number
        call.intent = order.intent
        call.session_id = state.session_id
        call.dry_run = state.dry_run
        call.held = state.held
        del call.hops[:]
        call.hops.extend([keys.HOP_RANK, keys.HOP_ROUTE])
        return Routed(call, order.server, rank_ms)

    def _approved(
        self,
        run_id: str,
        step: int,
        tool: str,
        arguments_json: str,
        session_id: str,
        hops: Sequence[str],
        kind: pb.GrantKind = pb.GRANT_KIND_POLICY,
        grant_id: str = "",
    ) -> Emit:
        """The call for the tool host, with the policy's approval of it: valid for one execution, and
        only for a call the policy runs at once, or one a person's standing grant covers (the tool host
        checks both itself)."""
        key = step_key(run_id, step, STAGE)
        call = approved_call(
            self.policy_key,
            kind,
            self.approval_ttl_seconds,
            run_id=run_id,
            step=step,
            tool=tool,
            arguments_json=arguments_json,
            idempotency_key=key,
            session_id=session_id,
            hops=list(hops),
            grant_id=grant_id,
        )
        return emit(keys.APPROVED, run_id, step, key, call.SerializeToString())

    def _judge(self, run: pb.Run, routed: Routed) -> Verdict:
        """The confirmation policy on a routed call, against the record as it is now."""
        call = routed.call
        tools = self.planning.catalogue.tools
        tier = confirmation.call_tier(tools.get(call.tool), routed.preview, call.change_intent, routed.grant_id)
        changes = frozenset(
            name for name, info in tools.items() if confirmation.decide(info) is confirmation.Policy.ASK_PERSON
        )
        status, kind, reason = confirmation.judge_proposal(run, call, tier.needs_person, changes, self.planning.paths)
        granted = tier.grant_id if status == pb.STEP_STATUS_APPROVED else ""
        if granted:
            kind = pb.EVENT_KIND_GRANTED
        failure = FAILURE_OF_KIND.get(kind, pb.FAILURE_MODE_UNSPECIFIED)
        return Verdict(status, kind, reason, tier.needs_person, failure, tier.held_for_intent, tier.tier, granted)

    async def _write(
        self,
        run_id: str,
        state: RunState,
        result: pb.StepResult | None,
        lines: list[str],
        routed: Routed | None = None,
        finish: Finish | None = None,
        reopen: bool = False,
    ) -> Verdict | None:
        """One write of the record: the result that came in, the state, the step just routed with the
        policy's verdict on it (and, for a step the verdict settles without running, its result), or
        the answer, with the events they make (the answer's lines not yet sent among them). Returns
        the verdict on the routed step."""
        unsent = lines[state.streamed :]
        state.streamed = max(state.streamed, len(lines))
        verdicts: list[Verdict] = []
        settled: list[pb.StepResult] = []
        waiting: list[tuple[str, int]] = []  # steps that now wait for the person, with their deadlines

        def mutate(run: pb.Run) -> None:
            verdicts.clear()
            settled.clear()
            waiting.clear()
            if reopen:
                runs.apply_reopened(run)
            if result is not None:
                runs.apply_result(run, result, [keys.RESULTS])
            if routed is not None:
                call = routed.call
                runs.apply_routed(run, call, routed.server, routed.rank_ms, call.hops)
                verdict = self._judge(run, routed)
                verdicts.append(verdict)
                judged = pb.ToolCall()
                judged.CopyFrom(call)
                if verdict.reason:
                    judged.reason = verdict.reason
                runs.apply_proposal(run, judged, [], verdict.status, verdict.needs_person)
                record = runs.step_record(run, call.step)
                if routed.preview is not None:
                    record.preview.CopyFrom(routed.preview)
                    record.preview.tier = verdict.tier
                record.grant_id = verdict.grant_id
                if verdict.status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
                    record.deadline_unix_ms = runs.now_ms() + int(self.deadline_seconds * 1000)
                    waiting.append((runs.awaiting_member(run.run_id, call.step), record.deadline_unix_ms))
                if verdict.status not in (pb.STEP_STATUS_APPROVED, pb.STEP_STATUS_AWAITING_CONFIRMATION):
                    outcome = settled_result(run, runs.step_record(run, call.step), verdict)
                    runs.apply_result(run, outcome, [])
                    settled.append(outcome)
                    core.record(state, outcome_from_result(outcome))
            if finish is not None:
                runs.apply_finished(run, RUN_STATUS_OF[finish.outcome], finish.answer)
            run.orchestration_json = dump_state(state)

        def announce(_run: pb.Run, _none: None) -> list[Event]:
            made: list[Event] = []
            if result is not None:
                kind = KIND_OF_STEP_STATUS.get(result.status, pb.EVENT_KIND_FAILED)
                made.append(Event(kind, result.step, result.error))
            made += [Event(pb.EVENT_KIND_ANSWER, message=line + "\n") for line in unsent]
            if routed is not None:
                call = routed.call
                made.append(Event(pb.EVENT_KIND_STEP_PLANNED, call.step, call.intent))
                verdict = verdicts[0]
                message = f"{call.tool} {call.arguments_json}".strip()
                if verdict.status == pb.STEP_STATUS_AWAITING_CONFIRMATION and routed.preview is not None:
                    message = routed.preview.text
                if verdict.held_for_intent and verdict.status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
                    message += f" ({confirmation.HELD_FOR_INTENT})"
                made.append(Event(verdict.kind, call.step, message))
                for outcome in settled:
                    kind = KIND_OF_STEP_STATUS.get(outcome.status, pb.EVENT_KIND_FAILED)
                    made.append(Event(kind, outcome.step, outcome.error))
            if finish is not None:
                made.append(Event(pb.EVENT_KIND_FINISHED, message=finish.answer))
            return made

        remembered = self._remember(state, finish) if finish is not None else None

        def also(pipe: Pipeline, run: pb.Run, none: None) -> None:
            if waiting:  # the gateway rejects a step still waiting at its deadline
                pipe.zadd(keys.AWAITING, dict(waiting))
            if remembered is not None:
                remembered[0](pipe, run, none)

        await self.store.update(run_id, mutate, announce, also)
        # Counted once the write is made: a result is written once, a turn remembered once.
        if result is not None and answer.claim_caught(state, result.step, self.planning.catalogue.mutating):
            FAILURE_MODES.labels(stage=STAGE, mode=FailureMode.CONFABULATED_CLAIM).inc()
        if remembered is not None and remembered[1]:  # older turns folded into the session's summary
            FAILURE_MODES.labels(stage=STAGE, mode=FailureMode.CONTEXT_EVICTION).inc()
        return verdicts[0] if verdicts else None

    async def _state(self, run: pb.Run) -> RunState | None:
        """The planner's state in `run`, with the large results its steps refer to."""
        return load_state(run, await runs.referenced_results(self.redis, run))

    async def _with_content(self, result: pb.StepResult) -> pb.StepResult:
        """`result` with its output in place, when the tool host kept a large one by reference."""
        if not result.content_ref:
            return result
        large = await runs.large_results(self.redis, result.run_id, [result.content_ref])
        full = pb.StepResult()
        full.CopyFrom(result)
        full.content_json = large.get(result.content_ref, "")
        return full

    async def _record(self, run_id: str) -> pb.Run | None:
        try:
            return await self.store.get(run_id)
        except NotFound:
            log.warning("run %s has no record (forgotten, or never created); its message is dropped", run_id)
            return None

    def _remember(self, state: RunState, finish: Finish) -> tuple[Callable[[Pipeline, pb.Run, None], None], int] | None:
        """The finished turn added to its session's memory (the session as the turn found it, the
        oldest turns folded into the summary), written in the same transaction as the answer, and how
        many turns were folded. The gateway forgets the least recently used sessions beyond the
        number kept."""
        if not state.session_id or not self.session_memory:
            return None
        history = SessionMemory.from_json(state.history.to_json())
        folded = history.remember(turn_memory(state, finish), self.session_tokens)
        stored = history.to_json()

        def write(pipe: Pipeline, _run: pb.Run, _none: None) -> None:
            pipe.set(keys.session_key(state.session_id), stored, ex=keys.RUN_TTL_SECONDS)
            pipe.zadd(keys.SESSIONS_INDEX, {state.session_id: runs.now_ms()})

        return write, folded

    async def _session(self, session_id: str) -> SessionMemory:
        if not session_id:
            return SessionMemory()
        try:
            return SessionMemory.from_json(await self.redis.get(keys.session_key(session_id)))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("session %s has an unreadable memory; starting it afresh: %s", session_id, exc)
            return SessionMemory()

    def workers(self, consumer: str, redelivery: Redelivery) -> list[StreamWorker]:
        """The planner's two stream workers, handing a message they give up on to `give_up`."""
        return [
            StreamWorker(
                self.redis,
                stream=keys.TURNS,
                group=keys.GROUP_PLANNER,
                consumer=consumer,
                handler=self.on_turn,
                on_failure=self.give_up,
                redelivery=redelivery,
            ),
            StreamWorker(
                self.redis,
                stream=keys.RESULTS,
                group=keys.GROUP_PLANNER,
                consumer=consumer,
                handler=self.on_result,
                on_failure=self.give_up,
                redelivery=redelivery,
            ),
        ]


def warm_up_reading() -> None:
    """Load the parser and the date reader's language data now rather than in the first request."""
    structure.split_by_structure("Find the report and send it to me tomorrow at noon")
    Reading.of("tomorrow at noon")


def completed_request(text: str, history: SessionMemory) -> str:
    """`text`, or, when the session's last turn left a step with values open and `text` only gives values
    ("tomorrow at 3pm", "~/notes.txt") rather than a new instruction, that step's words and `text`."""
    pending = history.turns[-1].open_intent if history.turns else ""
    if not pending or not text.strip() or structure.starts_instruction(text):
        return text
    return f"{pending} {text.strip()}"


def turn_memory(state: RunState, finish: Finish) -> TurnMemory:
    """What the session keeps of a finished turn: its calls, what it was about, what came out."""
    calls: list[str] = []
    subjects: list[str] = []
    gist = ""
    for order in reversed(state.orders):
        outcome = state.outcomes.get(order.number)
        if outcome is None or not outcome.tool:
            continue
        calls.insert(0, f"{outcome.tool}({core.format_arguments(outcome.arguments)})")
        found = listed_paths(outcome.content) or mentioned_paths(outcome.content) or mentioned_paths(outcome.arguments)
        subjects.extend(p for p in found if p not in subjects)
        if not gist and outcome.state is StepState.SUCCEEDED:
            text = result_text(outcome.content)
            gist = first_sentences(text, 300) if text else core.summarise_content(outcome.content)[:300]
    if not state.orders:
        gist = first_sentences(finish.answer, 200)
    open_intent = ""
    if finish.outcome is RunOutcome.NEEDS_CLARIFICATION:
        for order in reversed(state.orders):
            outcome = state.outcomes.get(order.number)
            if outcome is not None and outcome.tool and (state.held or outcome.state is StepState.NEEDS_CLARIFICATION):
                open_intent = order.intent
                break
    return TurnMemory(state.text, finish.outcome.value, calls[-6:], subjects[:10], gist, open_intent)
