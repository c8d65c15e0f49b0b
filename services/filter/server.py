"""The filter's gRPC API."""

from __future__ import annotations

import time

import grpc

from services.filter.app import ToolFilter, caller_entries, candidates
from switchboard.errors import UpstreamUnavailable
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

# The most tools one request may ask to rank instead of the catalogue (OpenAI allows 128 per request).
MAX_CALLER_TOOLS = 256


class FilterServicer(pb_grpc.FilterServicer):
    def __init__(self, tool_filter: ToolFilter) -> None:
        self.tool_filter = tool_filter

    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:
        if not request.text.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
        if len(request.tools) > MAX_CALLER_TOOLS:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, f"{len(request.tools)} tools; at most {MAX_CALLER_TOOLS} are ranked"
            )
        names = [tool.tool for tool in request.tools]
        if any(not name.strip() for name in names):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "every tool to rank needs a name")
        if len(set(names)) != len(names):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "two tools to rank have the same name")
        start = time.perf_counter()
        try:
            if request.tools:
                assessment = await self.tool_filter.assess_tools(
                    request.text, caller_entries(request.tools), request.k or None
                )
            else:
                assessment = await self.tool_filter.assess(request.text, request.k or None)
        except UpstreamUnavailable as exc:
            await context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            raise
        return pb.RankResponse(
            candidates=candidates(assessment.ranked),
            change_intent=assessment.change_intent,
            compute_ms=(time.perf_counter() - start) * 1000,
        )
