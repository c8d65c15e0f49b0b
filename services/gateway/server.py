"""The gateway's gRPC API: the same operations as the HTTP API.

Every method answers the gateway's named errors with a status: NOT_FOUND, INVALID_ARGUMENT,
UNAVAILABLE (a service or Redis does not answer), RESOURCE_EXHAUSTED (too much work waits); a client
told to come back later finds when in the `retry-after` trailing metadata (seconds), as the rate
limit (`limits.GrpcLimits`) says it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from services.gateway import core
from services.gateway.app import API_GRPC, REFUSED_BUSY, REFUSED_REDIS, Gateway
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable
from switchboard.metrics import REQUESTS_REFUSED
from switchboard.streams import REDIS_DOWN
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

STATUS_OF: dict[type[Exception], grpc.StatusCode] = {
    NotFound: grpc.StatusCode.NOT_FOUND,
    InvalidRequest: grpc.StatusCode.INVALID_ARGUMENT,
    UpstreamUnavailable: grpc.StatusCode.UNAVAILABLE,
    core.Busy: grpc.StatusCode.RESOURCE_EXHAUSTED,
    **{kind: grpc.StatusCode.UNAVAILABLE for kind in REDIS_DOWN},
}
ANSWERED = tuple(STATUS_OF)


def refusal(exc: Exception) -> tuple[grpc.StatusCode, str, tuple[tuple[str, str], ...]]:
    """The status, details and trailing metadata that answer `exc` (one of `ANSWERED`)."""
    if isinstance(exc, core.Busy):
        REQUESTS_REFUSED.labels(api=API_GRPC, reason=REFUSED_BUSY).inc()
        return grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc), (("retry-after", str(exc.retry_after_seconds)),)
    if isinstance(exc, REDIS_DOWN):
        REQUESTS_REFUSED.labels(api=API_GRPC, reason=REFUSED_REDIS).inc()
        return grpc.StatusCode.UNAVAILABLE, core.REDIS_AWAY, (("retry-after", str(core.REDIS_AWAY_RETRY_SECONDS)),)
    code = next(code for kind, code in STATUS_OF.items() if isinstance(exc, kind))
    return code, str(exc), ()


@asynccontextmanager
async def answering(context: grpc.aio.ServicerContext) -> AsyncIterator[None]:
    """End the call with the status that answers a named error raised inside."""
    try:
        yield
    except ANSWERED as exc:
        code, details, trailing = refusal(exc)
        await context.abort(code, details, trailing_metadata=trailing)


class GatewayServicer(pb_grpc.GatewayServicer):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    async def Submit(self, request: pb.SubmitRequest, context: grpc.aio.ServicerContext) -> pb.SubmitResponse:
        async with answering(context):
            run = await self.gateway.submit(
                request.text, request.session_id, request.dry_run, request.idempotency_key, api=API_GRPC
            )
        return pb.SubmitResponse(run_id=run.run_id, session_id=run.session_id)

    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        async with answering(context):
            return await self.gateway.get_run(request.run_id)

    async def WatchRun(
        self, request: pb.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunEvent]:
        async with answering(context):
            async for event in self.gateway.watch(request.run_id):
                yield event

    async def Confirm(self, request: pb.ConfirmRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        async with answering(context):
            return await self.gateway.confirm(
                request.run_id,
                request.step,
                request.approve,
                request.reason,
                request.scope,
                request.arguments_json,
                request.typed,
            )

    async def Fill(self, request: pb.FillRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        async with answering(context):
            return await self.gateway.fill(request.run_id, request.step, request.values_json)

    async def ListRuns(self, request: pb.ListRunsRequest, context: grpc.aio.ServicerContext) -> pb.ListRunsResponse:
        limit = max(1, min(request.limit or 20, 500))
        async with answering(context):
            return pb.ListRunsResponse(runs=await self.gateway.list_runs(limit, request.session_id))

    async def ListGrants(
        self, request: pb.ListGrantsRequest, context: grpc.aio.ServicerContext
    ) -> pb.ListGrantsResponse:
        async with answering(context):
            return pb.ListGrantsResponse(grants=await self.gateway.list_grants())

    async def RevokeGrant(
        self, request: pb.RevokeGrantRequest, context: grpc.aio.ServicerContext
    ) -> pb.RevokeGrantResponse:
        async with answering(context):
            return pb.RevokeGrantResponse(revoked=await self.gateway.revoke_grant(request.grant_id))

    async def Audit(self, request: pb.AuditRequest, context: grpc.aio.ServicerContext) -> pb.AuditResponse:
        async with answering(context):
            entries = await self.gateway.audit(request.session_id, request.run_id, request.limit or 50)
        return pb.AuditResponse(entries=entries)

    async def Undo(self, request: pb.UndoRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        async with answering(context):
            return await self.gateway.undo(request.run_id, request.step)

    async def ListTools(self, request: pb.ListToolsRequest, context: grpc.aio.ServicerContext) -> pb.ListToolsResponse:
        async with answering(context):
            return pb.ListToolsResponse(tools=await self.gateway.list_tools())
