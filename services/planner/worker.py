"""The planner's stream work: plan each turn, emit one step at a time, finish the run.

The planner's state for a run (its plan and the outcomes so far) lives in Redis, keyed by run, with
outcomes keyed by step number, so handling a redelivered result again changes nothing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

import redis.asyncio as aioredis

from services.planner import core
from switchboard import keys
from switchboard.envelope import Envelope, step_key
from switchboard.failures import fail_run
from switchboard.streams import Emit, StreamWorker, emit
from switchboard.telemetry import STEP_OUTCOMES
from switchboard.v1 import switchboard_pb2 as pb

STAGE = "planner"

STATE_OF_STATUS = {
    pb.STEP_STATUS_SUCCEEDED: core.StepState.SUCCEEDED,
    pb.STEP_STATUS_FAILED: core.StepState.FAILED,
    pb.STEP_STATUS_SKIPPED: core.StepState.SKIPPED,
    pb.STEP_STATUS_REJECTED: core.StepState.REJECTED,
    pb.STEP_STATUS_NEEDS_CLARIFICATION: core.StepState.NEEDS_CLARIFICATION,
}
RUN_STATUS_OF = {
    core.RunOutcome.ANSWERED: pb.RUN_STATUS_ANSWERED,
    core.RunOutcome.NEEDS_CLARIFICATION: pb.RUN_STATUS_NEEDS_CLARIFICATION,
    core.RunOutcome.REFUSED: pb.RUN_STATUS_REFUSED,
    core.RunOutcome.FAILED: pb.RUN_STATUS_FAILED,
}


def outcome_from_result(result: pb.StepResult) -> core.StepOutcome:
    return core.StepOutcome(
        number=result.step,
        tool=result.tool,
        state=STATE_OF_STATUS.get(result.status, core.StepState.FAILED),
        arguments=_loads(result.arguments_json, {}),
        content=_loads(result.content_json, None),
        error=result.error,
    )


def _loads(raw: str, default: Any) -> Any:
    try:
        return json.loads(raw) if raw else default
    except json.JSONDecodeError:
        return raw


class PlannerWorker:
    def __init__(self, redis: aioredis.Redis, guess_server: Callable[[str], str] | None) -> None:
        self.redis = redis
        self.guess_server = guess_server

    async def on_turn(self, envelope: Envelope) -> Sequence[Emit]:
        turn = pb.Turn.FromString(envelope.body)
        plan = await asyncio.to_thread(core.plan_turn, turn.text, self.guess_server)
        state = {
            "text": turn.text,
            "session_id": turn.session_id,
            "dry_run": turn.dry_run,
            "plan": [asdict(step) for step in plan],
            "outcomes": {},
        }
        await self._save(turn.run_id, state)
        return [self._next(turn.run_id, state)]

    async def on_result(self, envelope: Envelope) -> Sequence[Emit]:
        result = pb.StepResult.FromString(envelope.body)
        state = await self._load(result.run_id)
        if state is None:  # not a run this planner started (or long expired)
            return []
        outcome = outcome_from_result(result)
        state["outcomes"][str(result.step)] = {**asdict(outcome), "state": outcome.state.value}
        await self._save(result.run_id, state)
        STEP_OUTCOMES.labels(stage=STAGE, outcome=outcome.state.value).inc()
        return [self._next(result.run_id, state)]

    def _next(self, run_id: str, state: dict[str, Any]) -> Emit:
        plan = [core.PlannedStep(**step) for step in state["plan"]]
        outcomes = {
            int(number): core.StepOutcome(**{**raw, "state": core.StepState(raw["state"])})
            for number, raw in state["outcomes"].items()
        }
        action = core.next_step(plan, outcomes)
        if isinstance(action, core.PlannedStep):
            step = pb.Step(
                run_id=run_id,
                number=action.number,
                intent=action.intent,
                server=action.server,
                session_id=state["session_id"],
                dry_run=state["dry_run"],
                context="\n".join(core.describe(o) for o in outcomes.values()),
            )
            return emit(
                keys.STEPS, run_id, action.number, step_key(run_id, action.number, STAGE), step.SerializeToString()
            )
        finished = pb.RunFinished(run_id=run_id, status=RUN_STATUS_OF[action.outcome], answer=action.answer)
        return emit(keys.FINISHED, run_id, 0, f"{run_id}:finished", finished.SerializeToString())

    async def _save(self, run_id: str, state: dict[str, Any]) -> None:
        await self.redis.set(keys.planner_state_key(run_id), json.dumps(state), ex=keys.RUN_TTL_SECONDS)

    async def _load(self, run_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(keys.planner_state_key(run_id))
        return json.loads(raw) if raw else None

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
