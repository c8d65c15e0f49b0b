"""Traces across gRPC calls: a CLIENT span for every call a Switchboard channel makes, a SERVER span for
every call a Switchboard server takes, and the W3C `traceparent` (and `tracestate`) in the call's
metadata between them, so the callee's span, and all its handler does, is a child of the caller's.

Spans are named `<package.Service>/<Method>` and carry the RPC conventions' attributes: `rpc.system`
"grpc", `rpc.service`, `rpc.method` (the method's own name) and `rpc.grpc.status_code` (the code's
number), with `rpc.system.name` and `rpc.response.status_code` (the code's name) of the conventions'
later release beside them; a client span also `server.address` and `server.port`; a failed call
`error.type`, the status code's name. Health checks are not traced: orchestrators send them every few
seconds and they say nothing about a turn. Metadata values other than the trace context are never
recorded (the call's credential is one).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from opentelemetry import trace

from switchboard.envelope import as_text
from switchboard.telemetry import ERROR_TYPE, SERVER_ADDRESS, SERVER_PORT, extract, inject, tracer

TRACE_METADATA = ("traceparent", "tracestate")

# Health checks (orchestrators send one every few seconds; they say nothing about a turn).
UNTRACED = ("/grpc.health.v1.Health/",)

# The codes that mean the server failed; any other code is the caller's to judge, so a server span ends
# with it unmarked (a refused credential or an unknown run is no fault of the server).
SERVER_FAULTS = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.UNIMPLEMENTED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DATA_LOSS,
    }
)


def rpc_attributes(method: str) -> tuple[str, dict[str, str]]:
    """The span name and RPC attributes of a call of `method` (`/package.Service/Method`)."""
    service, _, name = method.lstrip("/").rpartition("/")
    return f"{service}/{name}", {
        "rpc.system": "grpc",
        "rpc.system.name": "grpc",
        "rpc.service": service,
        "rpc.method": name,
    }


def target_attributes(target: str) -> dict[str, str | int]:
    """`server.address` and `server.port` of a channel's target (`host:port`, `[v6]:port`, `dns:///host:port`)."""
    address = target.rpartition("///")[2] if "///" in target else target
    if address.startswith(("dns:", "ipv4:", "ipv6:")):
        address = address.partition(":")[2]
    host, colon, port = address.rpartition(":")
    if not colon or not port.isdigit():
        return {SERVER_ADDRESS: address}
    return {SERVER_ADDRESS: host.strip("[]"), SERVER_PORT: int(port)}


def end_with(span: trace.Span, code: grpc.StatusCode, *, server: bool) -> None:
    """Record the call's status on `span`: every code but OK fails a client span, only a server's own
    faults (`SERVER_FAULTS`) a server span."""
    span.set_attribute("rpc.grpc.status_code", code.value[0])
    span.set_attribute("rpc.response.status_code", code.name)
    if code != grpc.StatusCode.OK and (not server or code in SERVER_FAULTS):
        span.set_attribute(ERROR_TYPE, code.name)
        span.set_status(trace.Status(trace.StatusCode.ERROR))


def with_metadata(
    details: grpc.aio.ClientCallDetails, pairs: dict[str, str], replaced: tuple[str, ...] = ()
) -> grpc.aio.ClientCallDetails:
    """`details` with `pairs` in its metadata, in place of anything it held under their keys or under
    the keys `replaced`."""
    metadata = grpc.aio.Metadata()
    for key, value in details.metadata or ():
        if key not in pairs and key not in replaced:
            metadata.add(key, value)
    for key, value in pairs.items():
        metadata.add(key, value)
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


def _with_trace_context(details: grpc.aio.ClientCallDetails, span: trace.Span) -> grpc.aio.ClientCallDetails:
    """`details` with the trace context of `span` in its metadata, and none the caller had set."""
    carrier: dict[str, str] = {}
    inject(carrier, span)
    return with_metadata(details, carrier, replaced=TRACE_METADATA)


# An asyncio channel sorts its interceptors by kind, taking each as one kind only: one class per kind.
class TracingUnaryClient(grpc.aio.UnaryUnaryClientInterceptor):
    """A CLIENT span around each unary call, its context sent in the call's metadata."""

    def __init__(self, target: str) -> None:
        self.target = target_attributes(target)

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        method = as_text(client_call_details.method)
        if method.startswith(UNTRACED):
            return await continuation(client_call_details, request)
        name, attributes = rpc_attributes(method)
        with tracer().start_as_current_span(
            name,
            kind=trace.SpanKind.CLIENT,
            attributes={**attributes, **self.target},
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            call = await continuation(_with_trace_context(client_call_details, span), request)
            try:
                await call
            except grpc.aio.AioRpcError as exc:
                end_with(span, exc.code(), server=False)
                raise
            except asyncio.CancelledError:
                end_with(span, grpc.StatusCode.CANCELLED, server=False)
                raise
            end_with(span, await call.code(), server=False)
            return call


class TracingStreamClient(grpc.aio.UnaryStreamClientInterceptor):
    """A CLIENT span for each server-streaming call, from the call until its stream ends."""

    def __init__(self, target: str) -> None:
        self.target = target_attributes(target)
        self._finishing: set[asyncio.Task[None]] = set()

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        method = as_text(client_call_details.method)
        if method.startswith(UNTRACED):
            return await continuation(client_call_details, request)
        name, attributes = rpc_attributes(method)
        span = tracer().start_span(name, kind=trace.SpanKind.CLIENT, attributes={**attributes, **self.target})
        try:
            call = await continuation(_with_trace_context(client_call_details, span), request)
        except BaseException:
            span.end()
            raise

        async def finish(done: Any) -> None:
            try:
                end_with(span, await done.code(), server=False)
            finally:
                span.end()

        def on_done(done: Any) -> None:
            # The call's code is read asynchronously; the task is kept until it has run.
            task = asyncio.get_running_loop().create_task(finish(done))
            self._finishing.add(task)
            task.add_done_callback(self._finishing.discard)

        call.add_done_callback(on_done)
        return call


def client_interceptors(target: str) -> list[grpc.aio.ClientInterceptor]:
    """The interceptors that trace every call of an asyncio channel to `target`."""
    return [TracingUnaryClient(target), TracingStreamClient(target)]


def _server_code(context: grpc.aio.ServicerContext, failure: BaseException | None) -> grpc.StatusCode:
    """The status the handler ended the call with: the one it set or aborted with, else OK, or UNKNOWN
    (CANCELLED) for a handler that raised (was cancelled)."""
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(code, int):
        return next((known for known in grpc.StatusCode if known.value[0] == code), grpc.StatusCode.UNKNOWN)
    if isinstance(failure, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK if failure is None else grpc.StatusCode.UNKNOWN


class ServerTracing(grpc.aio.ServerInterceptor):
    """Runs each call's handler (but health checks') inside a SERVER span, the child of the span the
    caller's metadata names, so what the handler calls or publishes joins the caller's trace."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = as_text(handler_call_details.method)  # type: ignore[attr-defined]
        if handler is None or method.startswith(UNTRACED):
            return handler
        metadata = {
            key: as_text(value)
            for key, value in handler_call_details.invocation_metadata or ()  # type: ignore[attr-defined]
            if key in TRACE_METADATA
        }
        parent = extract(metadata)
        name, attributes = rpc_attributes(method)
        shape = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)

        def span() -> Any:
            return tracer().start_as_current_span(
                name,
                context=parent,
                kind=trace.SpanKind.SERVER,
                attributes=attributes,
                record_exception=False,
                set_status_on_exception=False,
            )

        if handler.unary_unary is not None:
            behaviour = handler.unary_unary

            async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
                with span() as current:
                    try:
                        reply = behaviour(request, context)
                        if inspect.isawaitable(reply):
                            reply = await reply
                    except BaseException as exc:
                        end_with(current, _server_code(context, exc), server=True)
                        raise
                    end_with(current, _server_code(context, None), server=True)
                    return reply

            return grpc.unary_unary_rpc_method_handler(unary, **shape)

        if handler.unary_stream is not None:
            streaming = handler.unary_stream

            async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                with span() as current:
                    try:
                        replies = streaming(request, context)
                        if inspect.isasyncgen(replies):
                            async for reply in replies:
                                yield reply
                        elif inspect.isawaitable(replies):  # a handler that writes with `context.write`
                            await replies
                    except BaseException as exc:
                        end_with(current, _server_code(context, exc), server=True)
                        raise
                    end_with(current, _server_code(context, None), server=True)

            return grpc.unary_stream_rpc_method_handler(stream, **shape)

        return handler  # Switchboard has no client-streaming methods
