"""The router's gRPC API."""

from __future__ import annotations

import grpc

from services.router.app import ToolRouter
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


class RouterServicer(pb_grpc.RouterServicer):
    def __init__(self, router: ToolRouter) -> None:
        self.router = router

    async def Route(self, request: pb.RouteRequest, context: grpc.aio.ServicerContext) -> pb.ToolCall:
        if not request.text.strip():
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "text is empty")
        return await self.router.route(
            request.text, request.candidates, request.context, request.inputs_json, request.reading_json
        )
