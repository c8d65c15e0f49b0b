"""The gateway's gRPC API: the same operations as the HTTP API."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc

from services.gateway.app import Gateway
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

STATUS_OF = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    UpstreamUnavailable: grpc.StatusCode.UNAVAILABLE,
}


async def _abort(context: grpc.aio.ServicerContext, exc: Exception) -> None:
    for kind, code in STATUS_OF.items():
        if isinstance(exc, kind):
            await context.abort(code, str(exc))
    raise exc


class GatewayServicer(pb_grpc.GatewayServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def Submit(self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext) -> pb.SubmitResponse:
        try:
            run = await self.gateway.submit(request.text, request.session_id, request.dry_run)
        except (InvalidRequest, UpstreamUnavailable) as exc:
            await _abort(context, exc)
        return pb.SubmitResponse(run_id=run.run_id, session_id=run.session_id)

    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        try:
            return await self.gateway.get_run(request.run_id)
        except NotFound as exc:
            await _abort(context, exc)
            raise

    async def WatchRun(
        self, request: pb.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunEvent]:
        try:
            async for event in self.gateway.watch(request.run_id):
                yield event
        except NotFound as exc:
            await _abort(context, exc)

    async def Confirm(self, request: pb.ConfirmRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        try:
            return await self.gateway.confirm(
                request.run_id,
                request.step,
                request.approve,
                request.reason,
                request.scope,
                request.arguments_json,
                request.typed,
            )
        except (NotFound, InvalidRequest, UpstreamUnavailable) as exc:
            await _abort(context, exc)
            raise

    async def Fill(self, request: pb.FillRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        try:
            return await self.gateway.fill(request.run_id, request.step, request.values_json)
        except (NotFound, InvalidRequest, UpstreamUnavailable) as exc:
            await _abort(context, exc)
            raise

    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        limit = max(1, min(request.limit or 20, 500))
        return pb.ListRunsResponse(runs=await self.gateway.list_runs(limit, request.session_id))

    async def ListGrants(
        self, request: pb.ListGrantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGrantsResponse:
        return pb.ListGrantsResponse(grants=await self.gateway.list_grants())

    async def RevokeGrant(
        self, request: pb.RevokeGrantRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeGrantResponse:
        return pb.RevokeGrantResponse(revoked=await self.gateway.revoke_grant(request.grant_id))

    async def Audit(self, request: pb.AuditRequest, context: grpc.aio.ServicerContext) -> pb.AuditResponse:
        try:
            entries = await self.gateway.audit(request.session_id, request.run_id, request.limit or 50)
        except UpstreamUnavailable as exc:
            await _abort(context, exc)
            raise
        return pb.AuditResponse(entries=entries)

    async def Undo(self, request: pb.UndoRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        try:
            return await self.gateway.undo(request.run_id, request.step)
        except (NotFound, InvalidRequest, UpstreamUnavailable) as exc:
            await _abort(context, exc)
            raise

    async def ListTools(self, request: pb.ListToolsRequest, context: grpc.aio.ServicerContext) -> pb.ListToolsResponse:
        try:
            return pb.ListToolsResponse(tools=await self.gateway.list_tools())
        except UpstreamUnavailable as exc:
            await _abort(context, exc)
            raise
