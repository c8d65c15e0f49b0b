"""The root of a turn's trace: a SERVER span for each HTTP request the gateway takes.

A request that carries a W3C `traceparent` header continues that trace; any other starts one. Every
response (but the health probe's) carries a `traceresponse` header (W3C Trace Context Level 2): the
trace id and the gateway's span id, so a person can find a run's trace in their tracing backend.
Attributes follow the HTTP conventions: `http.request.method`, `http.route` (the route's template, not
the path, which holds ids), `url.path`, `url.scheme`, `http.response.status_code`, and `error.type`
for a server error. Headers other than the trace context are never recorded (one is the token).
"""

from __future__ import annotations

from opentelemetry import trace
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.telemetry import ERROR_TYPE, extract, failed, inject, tracer

KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH"})
TRACE_HEADERS = (b"traceparent", b"tracestate")
RESPONSE_HEADER = "traceresponse"


class HttpTracing:
    """ASGI middleware: each HTTP request but those to `untraced` paths runs inside a SERVER span."""

    def __init__(self, app: ASGIApp, untraced: tuple[str, ...] = ("/healthz",)) -> None:
        self.app = app
        self.untraced = untraced

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.untraced:
            await self.app(scope, receive, send)
            return
        carrier = {
            key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"] if key in TRACE_HEADERS
        }
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "_OTHER"
        status = 0
        with tracer().start_as_current_span(
            method,
            context=extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
            },
            record_exception=False,
            set_status_on_exception=False,
        ) as span:

            async def traced_send(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = int(message["status"])
                    said: dict[str, str] = {}
                    inject(said, span)
                    message.setdefault("headers", [])
                    MutableHeaders(scope=message).append(RESPONSE_HEADER, said.get("traceparent", ""))
                await send(message)

            try:
                await self.app(scope, receive, traced_send)
            except BaseException as exc:
                failed(span, exc)
                raise
            finally:
                # The router names the route (FastAPI's `APIRoute`) once it has matched one.
                route = getattr(scope.get("route"), "path", None)
                if isinstance(route, str):
                    span.update_name(f"{method} {route}")
                    span.set_attribute("http.route", route)
                if status:
                    span.set_attribute("http.response.status_code", status)
                    if status >= 500:
                        span.set_attribute(ERROR_TYPE, str(status))
                        span.set_status(trace.Status(trace.StatusCode.ERROR))
