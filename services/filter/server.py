"""The filter's gRPC API."""

from __future__ import annotations

import time

import grpc

from services.filter.app import ToolFilter, candidates
from switchboard.errors import UpstreamUnavailable
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


class FilterServicer(pb_grpc.FilterServicer):
    def __init__(self, tool_filter: ToolFilter) -> None:
        self.tool_filter = tool_filter

    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        if not request.text.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
        start = time.perf_counter()
        try:
            assessment = await self.tool_filter.assess(request.text, request.k or None)
        except UpstreamUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            raise
        return pb.RankResponse(
            candidates=candidates(assessment.ranked),
            change_intent=assessment.change_intent,
            compute_ms=(time.perf_counter() - start) * 1000,
        )
