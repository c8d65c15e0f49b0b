"""The tool host's gRPC API: the catalogue, calls (confirmation-gated like the stream path) and undo."""

from __future__ import annotations

import asyncio

import grpc

from services.toolhost.app import STAGE, ToolHost
from services.toolhost.core import MAX_AUDIT_ENTRIES, MissingApproval, fitted_audit
from switchboard.errors import InvalidRequest, NotFound
from switchboard.metrics import works_for
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


class ToolHostServicer(pb_grpc.ToolHostServicer):
    def __init__(self, host: ToolHost) -> None:
        self.host = host

    async def ListTools(self, request: pb.ListToolsRequest, context: grpc.aio.ServicerContext) -> pb.ListToolsResponse:
        return pb.ListToolsResponse(tools=self.host.catalogue())

    # The stream path times its work in the stream worker; calls over gRPC are timed here.
    @works_for(STAGE)
    async def CallTool(self, request: pb.CallToolRequest, context: grpc.aio.ServicerContext) -> pb.StepResult:
        if not request.tool:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "tool is empty")
        return await self.host.call(
            request.tool, request.arguments_json, request.run_id, request.step, request.approval, request.session_id
        )

    @works_for(STAGE)
    async def Undo(self, request: pb.UndoRequest, context: grpc.aio.ServicerContext) -> pb.UndoResponse:
        try:
            actions = await self.host.undo(request.run_id, request.step, request.approval, request.session_id)
        except MissingApproval as exc:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
            raise
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            raise
        return pb.UndoResponse(actions=actions)

    @works_for(STAGE)
    async def PreviewCall(self, request: pb.PreviewRequest, context: grpc.aio.ServicerContext) -> pb.Preview:
        try:
            return await self.host.preview(request.tool, request.arguments_json)
        except NotFound as exc:
            await context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
            raise
        except InvalidRequest as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
            raise

    async def Audit(self, request: pb.AuditRequest, context: grpc.aio.ServicerContext) -> pb.AuditResponse:
        # SQLite reads a negative LIMIT as none at all: the whole log.
        limit = max(1, min(request.limit or 50, MAX_AUDIT_ENTRIES))
        entries = await asyncio.to_thread(self.host.recent, request.session_id, request.run_id, limit)
        return pb.AuditResponse(entries=fitted_audit(entries))
