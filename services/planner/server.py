"""The planner's gRPC API: the judgement and plan the stream work makes, and the answer from a run."""

from __future__ import annotations

import asyncio
import json

import grpc

from services.planner import answer, core, policy
from services.planner.state import PlannedStep, RunState, StepOrder, StepOutcome
from services.planner.worker import OUTCOME_OF_VERDICT, RUN_STATUS_OF, STATE_OF_STATUS, Planning
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


class PlannerServicer(pb_grpc.PlannerServicer):
    def __init__(self, planning: Planning) -> None:
        self.planning = planning

    async def Plan(self, request: pb.PlanRequest, context: grpc.aio.ServicerContext) -> pb.TurnPlan:
        """The plan a turn would get, without running it (no session: references cannot be resolved)."""
        assessment = self.planning.assess(request.text, has_context=bool(request.session_id))
        if assessment.verdict is not policy.Verdict.PROCEED:
            outcome = OUTCOME_OF_VERDICT[assessment.verdict]
            return pb.TurnPlan(run_id=request.run_id, outcome=outcome.value, reason=assessment.reason)
        steps = await asyncio.to_thread(self.planning.plan, request.text)
        return pb.TurnPlan(
            run_id=request.run_id,
            steps=[
                pb.PlannedStep(number=s.number, intent=s.intent, server=s.server, for_each=s.for_each) for s in steps
            ],
        )

    async def Synthesize(
        self, request: pb.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.SynthesizeResponse:
        """The answer for a run's records (as the planner would give it at the end of the run)."""
        run = request.run
        state = RunState(
            text=run.text,
            session_id=run.session_id,
            dry_run=run.dry_run,
            plan=[PlannedStep(s.number, s.intent, s.server) for s in run.steps],
        )
        state.cursor = len(state.plan)
        for s in run.steps:
            state.orders.append(StepOrder(s.number, s.number, s.intent, s.server))
            if s.status in STATE_OF_STATUS:
                core.record(
                    state,
                    StepOutcome(
                        number=s.number,
                        tool=s.tool,
                        state=STATE_OF_STATUS[s.status],
                        arguments=json.loads(s.arguments_json) if s.arguments_json else {},
                        content=json.loads(s.result_json) if s.result_json else None,
                        error=s.error,
                    ),
                )
        finish = answer.compose(state, core.finish(state), self.planning.catalogue.mutating)
        return pb.SynthesizeResponse(status=RUN_STATUS_OF[finish.outcome], answer=finish.answer)
