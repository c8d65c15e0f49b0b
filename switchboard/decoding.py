"""gRPC requests whose bytes are not the message the method takes.

gRPC decodes a request before any handler or interceptor sees it; bytes that do not parse (a field of
the wrong wire type, a string that is not UTF-8, a truncated message) make grpcio answer UNKNOWN with
the parser's exception, as if the service had failed. `RefuseUndecodable` makes such a request
INVALID_ARGUMENT, saying which message it should have been, the way any other malformed request is
answered. It must be the last of a server's interceptors: then an authentication check before it still
refuses a caller without a credential first (UNAUTHENTICATED), whatever bytes it sent.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.message import DecodeError

__all__ = ["RefuseUndecodable"]


@dataclass(frozen=True)
class _Undecodable:
    """Stands for a request that did not decode, so the handler can refuse it."""

    method: str
    problem: str

    def details(self) -> str:
        return f"the request is not a valid message for {self.method}: {self.problem}"


class RefuseUndecodable(grpc.aio.ServerInterceptor):
    """Answers a unary request that does not decode with INVALID_ARGUMENT (see the module's note)."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None or handler.request_streaming:
            return handler
        method = handler_call_details.method  # type: ignore[attr-defined]
        decode = handler.request_deserializer

        def decoded(raw: bytes) -> Any:
            try:
                return decode(raw)
            except DecodeError as exc:
                return _Undecodable(method, str(exc))

        shape = dict(request_deserializer=decoded, response_serializer=handler.response_serializer)
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(_unary(handler.unary_unary), **shape)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(_streaming(handler.unary_stream), **shape)
        return handler


def _unary(behaviour: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def answer(request: Any, context: grpc.aio.ServicerContext) -> Any:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details())
        return await behaviour(request, context)

    return answer


def _streaming(behaviour: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def answer(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if isinstance(request, _Undecodable):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.details())
        replies = behaviour(request, context)
        if inspect.isasyncgen(replies):
            async for reply in replies:
                yield reply
        else:  # a handler that writes its replies with context.write
            await replies

    return answer
