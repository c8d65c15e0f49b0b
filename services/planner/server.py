"""The planner's gRPC API: the same planning and synthesis the stream work uses."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import grpc

from services.planner import core
from services.planner.worker import RUN_STATUS_OF, STATE_OF_STATUS
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


class PlannerServicer(pb_grpc.PlannerServicer):
    def __init__(self, guess_server: Callable[[str], str] | None) -> None:
        self.guess_server = guess_server

    async def Plan(self, request: pb.PlanRequest, context: grpc.aio.ServicerContext) -> pb.TurnPlan:
        steps = await asyncio.to_thread(core.plan_turn, request.text, self.guess_server)
        return pb.TurnPlan(
            run_id=request.run_id,
            steps=[pb.PlannedStep(number=s.number, intent=s.intent, server=s.server) for s in steps],
        )

    async def Synthesize(
        self, request: pb.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> pb.SynthesizeResponse:
        run = request.run
        plan = [core.PlannedStep(s.number, s.intent, s.server) for s in run.steps]
        outcomes = {
            s.number: core.StepOutcome(
                number=s.number,
                tool=s.tool,
                state=STATE_OF_STATUS[s.status],
                arguments=json.loads(s.arguments_json) if s.arguments_json else {},
                content=json.loads(s.result_json) if s.result_json else None,
                error=s.error,
            )
            for s in run.steps
            if s.status in STATE_OF_STATUS
        }
        finish = core.synthesize(plan, outcomes) if plan else core.synthesize([], {})
        return pb.SynthesizeResponse(status=RUN_STATUS_OF[finish.outcome], answer=finish.answer)
