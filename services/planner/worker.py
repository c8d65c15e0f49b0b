"""The planner's stream work: judge and plan each turn, emit one step at a time, answer.

A run's state (`RunState`: plan, emitted steps, results) lives in Redis, keyed by run; a session's
memory (`SessionMemory`) too, keyed by session. Handling a redelivered message again changes nothing:
a result already recorded only re-emits the decision that followed it, under the same idempotency key,
so the next stage drops the copy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import redis.asyncio as aioredis

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
from switchboard import keys
from switchboard.envelope import Envelope, step_key
from switchboard.errors import UpstreamUnavailable
from switchboard.events import ANSWER, append_event
from switchboard.failures import fail_run
from switchboard.paths import PathPolicy
from switchboard.reading import Reading
from switchboard.rpc import catalogue_stale
from switchboard.streams import Emit, StreamWorker, emit
from switchboard.telemetry import FAILURE_MODES, STEP_OUTCOMES
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


def outcome_from_result(result: pb.StepResult) -> StepOutcome:
    return StepOutcome(
        number=result.step,
        tool=result.tool,
        state=STATE_OF_STATUS.get(result.status, StepState.FAILED),
        arguments=_loads(result.arguments_json, {}),
        content=_loads(result.content_json, None),
        error=result.error,
    )


def _loads(raw: str, default: Any) -> Any:
    try:
        return json.loads(raw) if raw else default
    except json.JSONDecodeError:
        return raw


@dataclass
class Catalogue:
    """What the planner knows of the tools: each server's vocabulary, the verbs tool names start
    with (for the splitter), and which tools change things (for checking the answer's claims)."""

    server_words: dict[str, set[str]] = field(default_factory=dict)
    verbs: set[str] = field(default_factory=set)
    mutating: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    loaded_at: float = 0.0  # time.monotonic() of the last load; 0 before the first

    def load(self, tools: Iterable[pb.ToolInfo]) -> None:
        tools = list(tools)
        self.server_words, self.verbs = core.vocabulary(
            (t.server, t.name.split(".", 1)[-1], t.description) for t in tools
        )
        self.mutating = {t.name for t in tools if t.confirmation_required or t.destructive}
        self.names = {t.name for t in tools}
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

    def plan(self, text: str) -> list[PlannedStep]:
        """The plan for `text` (blocking: the model may be asked)."""
        servers = sorted(self.catalogue.server_words)
        ask = self.model_plan
        model_plan = (lambda t: ask(t, servers)) if ask is not None and servers else None
        return core.plan_request(text, self.catalogue.verbs, self.catalogue.server_words, model_plan, self.splitter)


class PlannerWorker:
    def __init__(
        self,
        redis: aioredis.Redis,
        planning: Planning,
        session_tokens: int,
        list_tools: Callable[[], Awaitable[list[pb.ToolInfo]]] | None = None,
        session_memory: bool = True,
    ) -> None:
        self.redis = redis
        self.planning = planning
        self.session_tokens = session_tokens
        self.list_tools = list_tools
        self.session_memory = session_memory

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
        state = await self._load(turn.run_id)
        if state is not None:  # a redelivered turn: repeat what was decided
            return self._repeat(turn.run_id, state)
        history = await self._session(turn.session_id) if self.session_memory else SessionMemory()
        text = await asyncio.to_thread(completed_request, turn.text, history)
        assessment = self.planning.assess(text, has_context=not history.empty)
        if assessment.verdict is policy.Verdict.REFUSE:
            FAILURE_MODES.labels(stage=STAGE, mode=f"turn_{RunOutcome.REFUSED.value}").inc()
            state = core.start_run(text, turn.session_id, turn.dry_run, [], history)
            await self._save(turn.run_id, state)
            return await self._finish(turn.run_id, state, Finish(RunOutcome.REFUSED, assessment.reason))
        plan = await asyncio.to_thread(self.planning.plan, text)
        if assessment.verdict is policy.Verdict.CLARIFY and len(plan) > 1:
            # "Take a screenshot and run OCR on the screenshot": a later step may point at what an
            # earlier one makes, so only the first step's words must stand on their own.
            first = self.planning.assess(plan[0].intent, has_context=not history.empty)
            if first.verdict is policy.Verdict.PROCEED:
                assessment = first
        if assessment.verdict is policy.Verdict.CLARIFY:
            # The person is asked first; the first step is still routed, held (and a dry run besides),
            # so the question comes with the tool it is about and the values already known.
            FAILURE_MODES.labels(stage=STAGE, mode=f"turn_{RunOutcome.NEEDS_CLARIFICATION.value}").inc()
            state = core.start_run(text, turn.session_id, True, plan[:1], history)
            state.held = assessment.reason
            if not plan:
                await self._save(turn.run_id, state)
                return await self._finish(turn.run_id, state, Finish(RunOutcome.NEEDS_CLARIFICATION, state.held))
            return await self._advance(turn.run_id, state)
        state = core.start_run(text, turn.session_id, turn.dry_run, plan, history)
        return await self._advance(turn.run_id, state)

    async def on_result(self, envelope: Envelope) -> Sequence[Emit]:
        result = pb.StepResult.FromString(envelope.body)
        state = await self._load(result.run_id)
        if state is None:  # not a run this planner started (or long expired)
            return []
        if result.step in state.outcomes:
            return self._repeat(result.run_id, state)
        outcome = outcome_from_result(result)
        await self.refresh_catalogue(outcome.tool)
        core.record(state, outcome)
        STEP_OUTCOMES.labels(stage=STAGE, outcome=outcome.state.value).inc()
        return await self._advance(result.run_id, state)

    async def _advance(self, run_id: str, state: RunState) -> Sequence[Emit]:
        action = core.advance(state, self.planning.max_steps)
        if isinstance(action, Done):
            if state.held:
                return await self._finish(run_id, state, answer.held(state))
            return await self._finish(run_id, state, answer.compose(state, action, self.planning.catalogue.mutating))
        await self._stream(run_id, state, answer.settled_lines(state, self.planning.catalogue.mutating))
        await self._save(run_id, state)
        if action is None:
            return []
        if action.attempt > 1:
            FAILURE_MODES.labels(stage=STAGE, mode="retry").inc()
        return [self._step(run_id, state, action)]

    async def _finish(self, run_id: str, state: RunState, finish: Finish) -> Sequence[Emit]:
        await self._stream(run_id, state, finish.answer.split("\n"))
        state.finished = {"outcome": finish.outcome.value, "answer": finish.answer}
        await self._save(run_id, state)
        await self._remember(state, finish)
        return [self._finished(run_id, finish)]

    def _repeat(self, run_id: str, state: RunState) -> Sequence[Emit]:
        if state.finished:
            finish = Finish(RunOutcome(state.finished["outcome"]), state.finished["answer"])
            return [self._finished(run_id, finish)]
        if state.orders and state.orders[-1].number not in state.outcomes:
            return [self._step(run_id, state, state.orders[-1])]
        return []

    def _step(self, run_id: str, state: RunState, order: StepOrder) -> Emit:
        step = pb.Step(
            run_id=run_id,
            number=order.number,
            intent=order.intent,
            server=order.server,
            session_id=state.session_id,
            dry_run=state.dry_run,
            context=order.context,
            inputs_json=json.dumps(order.inputs) if order.inputs else "",
            reading_json=Reading.of(order.intent, datetime.fromisoformat(state.asked_at)).to_json(),
            held=state.held,
        )
        return emit(keys.STEPS, run_id, order.number, step_key(run_id, order.number, STAGE), step.SerializeToString())

    def _finished(self, run_id: str, finish: Finish) -> Emit:
        message = pb.RunFinished(run_id=run_id, status=RUN_STATUS_OF[finish.outcome], answer=finish.answer)
        return emit(keys.FINISHED, run_id, 0, f"{run_id}:finished", message.SerializeToString())

    async def _stream(self, run_id: str, state: RunState, lines: list[str]) -> None:
        """Send the answer's lines the person has not seen yet."""
        for line in lines[state.streamed :]:
            await append_event(self.redis, pb.RunEvent(run_id=run_id, kind=ANSWER, message=line + "\n"))
        state.streamed = max(state.streamed, len(lines))

    async def _remember(self, state: RunState, finish: Finish) -> None:
        """Add the finished turn to its session's memory, folding old turns into the summary."""
        if not state.session_id:
            return
        history = await self._session(state.session_id)
        history.remember(turn_memory(state, finish), self.session_tokens)
        await self.redis.set(keys.session_key(state.session_id), history.to_json(), ex=keys.RUN_TTL_SECONDS)

    async def _session(self, session_id: str) -> SessionMemory:
        if not session_id:
            return SessionMemory()
        try:
            return SessionMemory.from_json(await self.redis.get(keys.session_key(session_id)))
        except (ValueError, TypeError, KeyError) as exc:
            log.warning("session %s has an unreadable memory; starting it afresh: %s", session_id, exc)
            return SessionMemory()

    async def _save(self, run_id: str, state: RunState) -> None:
        await self.redis.set(keys.planner_state_key(run_id), json.dumps(state.to_dict()), ex=keys.RUN_TTL_SECONDS)

    async def _load(self, run_id: str) -> RunState | None:
        raw = await self.redis.get(keys.planner_state_key(run_id))
        return RunState.from_dict(json.loads(raw)) if raw else None

    def workers(self, consumer: str) -> list[StreamWorker]:
        return [
            StreamWorker(
                self.redis,
                stream=keys.TURNS,
                group=keys.GROUP_PLANNER,
                consumer=consumer,
                handler=self.on_turn,
                on_failure=fail_run("planner"),
            ),
            StreamWorker(
                self.redis,
                stream=keys.RESULTS,
                group=keys.GROUP_PLANNER,
                consumer=consumer,
                handler=self.on_result,
                on_failure=fail_run("planner"),
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
