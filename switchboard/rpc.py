"""gRPC clients for calls between services."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Container
from typing import Any, TypeVar

import grpc

from switchboard.auth import channel
from switchboard.errors import InvalidRequest, UpstreamUnavailable
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)


# How old a service's copy of the tool catalogue may get before it asks the tool host again, and how
# soon a tool name the copy lacks makes it ask again (a copy taken while the tool host was starting
# lists only the servers that were up; a bogus name must not cause a call per message).
CATALOGUE_TTL_SECONDS = 30.0
UNKNOWN_TOOL_RETRY_SECONDS = 2.0


# A call that is safe to repeat (a ranking, a routing, a preview) is repeated while the service is
# unreachable: a replica restarting after a crash, or one of several going away during the call.
_Reply = TypeVar("_Reply")


async def patiently(call: Callable[..., Awaitable[_Reply]], request: Any, *, deadline: float) -> _Reply:
    """`call(request)`, repeated with backoff while it fails with UNAVAILABLE, until `deadline`
    (`time.monotonic()`); each attempt may take what time is left, so the whole stays within it."""
    delay = 0.1
    while True:
        try:
            return await call(request, timeout=max(0.001, deadline - time.monotonic()))
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or time.monotonic() + delay >= deadline:
                raise
            log.info("unavailable (%s); trying again in %.1fs", exc.details(), delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


def catalogue_stale(loaded_at: float, known: Container[str], tool: str = "") -> bool:
    """Whether a catalogue copy taken at `loaded_at` (time.monotonic()) should be taken again."""
    age = time.monotonic() - loaded_at
    return age > CATALOGUE_TTL_SECONDS or (bool(tool) and tool not in known and age > UNKNOWN_TOOL_RETRY_SECONDS)


class ToolHostClient:
    """The tool host's catalogue and calls, as other services reach them."""

    def __init__(self, addr: str, internal_key: str, timeout: float = 10.0) -> None:
        self.addr = addr
        self.timeout = timeout
        self._channel = channel(addr, internal_key)
        self._stub = pb_grpc.ToolHostStub(self._channel)

    async def list_tools(self) -> list[pb.ToolInfo]:
        try:
            reply = await self._stub.ListTools(pb.ListToolsRequest(), timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise UpstreamUnavailable(f"tool host at {self.addr}: {exc.code().name} {exc.details()}") from exc
        return list(reply.tools)

    async def wait_for_tools(self, deadline_seconds: float = 300.0) -> list[pb.ToolInfo]:
        """The catalogue, waiting (with backoff) for the tool host to come up and list its tools."""
        give_up = time.monotonic() + deadline_seconds
        delay = 0.2
        while True:
            try:
                tools = await self.list_tools()
                if tools:
                    return tools
                problem = "no tools listed yet"
            except UpstreamUnavailable as exc:
                problem = str(exc)
            if time.monotonic() > give_up:
                raise UpstreamUnavailable(f"gave up waiting for the tool catalogue: {problem}")
            log.info("waiting for the tool host: %s", problem)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)

    async def undo(self, run_id: str, step: int, approval: pb.Approval, session_id: str) -> list[str]:
        """Ask the tool host to undo a step; `InvalidRequest` when it cannot, saying why."""
        request = pb.UndoRequest(run_id=run_id, step=step, approval=approval, session_id=session_id)
        try:
            reply = await self._stub.Undo(request, timeout=self.timeout * 6)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.PERMISSION_DENIED):
                raise InvalidRequest(exc.details() or "the tool host refused the undo") from exc
            raise UpstreamUnavailable(f"tool host at {self.addr}: {exc.code().name} {exc.details()}") from exc
        return list(reply.actions)

    async def preview(self, tool: str, arguments_json: str) -> pb.Preview:
        """What a call would do and its confirmation tier; `InvalidRequest` for an unknown tool or
        arguments that are no JSON object."""
        try:
            return await patiently(
                self._stub.PreviewCall,
                pb.PreviewRequest(tool=tool, arguments_json=arguments_json),
                deadline=time.monotonic() + self.timeout,
            )
        except grpc.aio.AioRpcError as exc:
            if exc.code() in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT):
                raise InvalidRequest(exc.details() or "the tool host cannot preview this call") from exc
            raise UpstreamUnavailable(f"tool host at {self.addr}: {exc.code().name} {exc.details()}") from exc

    async def audit(self, session_id: str = "", run_id: str = "", limit: int = 50) -> list[pb.AuditEntry]:
        """The audit log's newest entries."""
        request = pb.AuditRequest(session_id=session_id, run_id=run_id, limit=limit)
        try:
            reply = await self._stub.Audit(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise UpstreamUnavailable(f"tool host at {self.addr}: {exc.code().name} {exc.details()}") from exc
        return list(reply.entries)

    async def close(self) -> None:
        await self._channel.close()


class StepRouting:
    """The planner's way to route a step: the filter ranks the tools, the router picks one and fills
    it, both over gRPC with the internal key. Returns the call and the filter's own time."""

    def __init__(self, filter_addr: str, router_addr: str, internal_key: str, timeout: float = 120.0) -> None:
        self.timeout = timeout
        # Round robin: scaled filter and router replicas (one name, several addresses) share the steps.
        self._channels = [
            channel(filter_addr, internal_key, spread=True),
            channel(router_addr, internal_key, spread=True),
        ]
        self._filter = pb_grpc.FilterStub(self._channels[0])
        self._router = pb_grpc.RouterStub(self._channels[1])

    async def route(self, request: pb.RouteRequest) -> tuple[pb.ToolCall, float]:
        try:
            # Ranking and routing together, retries included, take at most `timeout`: the planner's
            # claim idle time is derived from it.
            deadline = time.monotonic() + self.timeout
            ranked = await patiently(self._filter.Rank, pb.RankRequest(text=request.text), deadline=deadline)
            routed = pb.RouteRequest()
            routed.CopyFrom(request)
            del routed.candidates[:]
            routed.candidates.extend(ranked.candidates)
            call = await patiently(self._router.Route, routed, deadline=deadline)
        except grpc.aio.AioRpcError as exc:
            raise UpstreamUnavailable(f"routing a step: {exc.code().name} {exc.details()}") from exc
        call.change_intent = ranked.change_intent
        return call, ranked.compute_ms

    async def close(self) -> None:
        for open_channel in self._channels:
            await open_channel.close()
