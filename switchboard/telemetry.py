"""Logs, metrics and traces, set up the same way in every service.

- Logs are JSON lines on stderr, one object per record, with the trace id of the span they were
  written in.
- Metrics are Prometheus, defined in `switchboard.metrics` and served on each service's metrics port.
- Traces are OpenTelemetry spans, one trace per turn. The gateway's HTTP or gRPC server span is its
  root. The W3C `traceparent` (and `tracestate`) travels in gRPC call metadata
  (`switchboard.rpc_tracing`), in every stream message's envelope (`produce_span`, `consume_span`)
  and in an MCP request's `params._meta` (`tool_call_span`), so every stage's span is a child of the
  one that caused it. Span names and attributes follow OpenTelemetry's semantic conventions (RPC,
  messaging, HTTP, GenAI and MCP); what is Switchboard's own is under `switchboard.*`. Attributes never
  carry a credential, an approval or a tool's argument values. Spans are exported over OTLP/gRPC when
  `SWITCHBOARD_OTLP_ENDPOINT` is set (`setup_tracing`); `docs/observability.md` lists them all.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider, _TracerConfig
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

_propagator = TraceContextTextMapPropagator()

# Attribute names, from OpenTelemetry's semantic conventions (and Switchboard's own namespace).
ERROR_TYPE = "error.type"
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
NETWORK_TRANSPORT = "network.transport"
MESSAGING_SYSTEM = "messaging.system"
MESSAGING_DESTINATION = "messaging.destination.name"
MESSAGING_OPERATION_TYPE = "messaging.operation.type"
MESSAGING_CONSUMER_GROUP = "messaging.consumer.group.name"
MESSAGING_MESSAGE_ID = "messaging.message.id"
MCP_METHOD_NAME = "mcp.method.name"
MCP_SESSION_ID = "mcp.session.id"
MCP_PROTOCOL_VERSION = "mcp.protocol.version"
JSONRPC_REQUEST_ID = "jsonrpc.request.id"
GEN_AI_OPERATION_NAME = "gen_ai.operation.name"
GEN_AI_TOOL_NAME = "gen_ai.tool.name"
RUN_ID = "switchboard.run.id"
STEP = "switchboard.step"

# Libraries that trace themselves, switched off: their spans pass their parent's context through
# unchanged. The MCP SDK (2.x) makes a span of every message it sends or receives, its pings included
# (the tool host pings each server every two seconds), with part of the MCP conventions' attributes;
# Switchboard makes its own of each tools/call (`tool_call_span`). FastAPI makes a second SERVER span
# inside the gateway's own (`services.gateway.tracing`, which also answers with the trace's id) and
# three INTERNAL ones per request that say nothing about a turn.
SILENCED_SCOPES = frozenset({"mcp-python-sdk", "fastapi"})


class JsonFormatter(logging.Formatter):
    """One JSON object per log record."""

    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": round(record.created, 3),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        span = trace.get_current_span().get_span_context()
        if span.is_valid:
            entry["trace_id"] = format(span.trace_id, "032x")
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry)


def setup_logging(service: str, level: str = "INFO") -> None:
    """Send every log record to stderr as JSON."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())


def _tracer_config(scope: InstrumentationScope) -> _TracerConfig:
    return _TracerConfig(is_enabled=scope.name not in SILENCED_SCOPES)


def setup_tracing(service: str, otlp_endpoint: str = "") -> TracerProvider:
    """Install a tracer provider for `service` (`service.name` is `switchboard-<service>`); export over
    OTLP/gRPC if an endpoint is given, in batches (`OTEL_BSP_SCHEDULE_DELAY` and the other standard
    batch settings apply)."""
    provider = TracerProvider(
        resource=Resource.create({"service.name": f"switchboard-{service}"}),
        # Experimental in the SDK (hence the underscore); `tests/shared/test_tracing.py` checks it works.
        _tracer_configurator=_tracer_config,
    )
    if otlp_endpoint:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True)))
    trace.set_tracer_provider(provider)
    return provider


@functools.cache
def tracer() -> trace.Tracer:
    """Switchboard's tracer, made once (one taken before the provider is set forwards to it later)."""
    return trace.get_tracer("switchboard")


def current_traceparent() -> str:
    """The W3C traceparent of the current span, or "" outside any span."""
    carrier: dict[str, str] = {}
    _propagator.inject(carrier)
    return carrier.get("traceparent", "")


def inject(carrier: MutableMapping[str, Any], span: trace.Span | None = None) -> None:
    """Put the `traceparent` (and `tracestate`, if any) of `span` (else the current span) into `carrier`."""
    _propagator.inject(carrier, context=trace.set_span_in_context(span) if span is not None else None)


def extract(carrier: Mapping[str, Any] | None) -> otel_context.Context | None:
    """The context a `traceparent` (and `tracestate`) in `carrier` names, or None when there is no
    valid one (a span started then is the root of a new trace, or the child of the current span)."""
    if not carrier:
        return None
    text = {key: value for key in ("traceparent", "tracestate") if isinstance(value := carrier.get(key), str)}
    if "traceparent" not in text:
        return None
    context = _propagator.extract(text)
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def produce_span(stream: str, run_id: str, step: int) -> str:
    """Record a PRODUCER span for one message put on `stream` and return its `traceparent`, which the
    message's envelope carries so that the consumer's span becomes its child.

    The span marks the moment the message is made; the message is added to the stream with the rest of
    its stage's outputs, in one transaction, when the stage commits."""
    span = tracer().start_span(
        f"send {stream}",
        kind=trace.SpanKind.PRODUCER,
        attributes={
            MESSAGING_SYSTEM: "redis",
            MESSAGING_DESTINATION: stream,
            MESSAGING_OPERATION_TYPE: "send",
            RUN_ID: run_id,
            STEP: step,
        },
    )
    try:
        carrier: dict[str, str] = {}
        inject(carrier, span)
        return carrier.get("traceparent", "")
    finally:
        span.end()


@contextmanager
def consume_span(
    stream: str, group: str, traceparent: str, *, message_id: str, run_id: str, step: int
) -> Iterator[trace.Span]:
    """The CONSUMER span of a stage handling one message of `stream` as `group`: a child of the span
    that produced it (its `traceparent`), so that one trace follows a turn across the hop."""
    parent = extract({"traceparent": traceparent}) or otel_context.Context()
    with tracer().start_as_current_span(
        f"process {stream}",
        context=parent,
        kind=trace.SpanKind.CONSUMER,
        attributes={
            MESSAGING_SYSTEM: "redis",
            MESSAGING_DESTINATION: stream,
            MESSAGING_OPERATION_TYPE: "process",
            MESSAGING_CONSUMER_GROUP: group,
            MESSAGING_MESSAGE_ID: message_id,
            RUN_ID: run_id,
            STEP: step,
        },
    ) as span:
        yield span


@contextmanager
def continued(traceparent: str, name: str, **attributes: str | int) -> Iterator[trace.Span]:
    """An INTERNAL span in the trace `traceparent` names (a new trace if it names none), linked to the
    current span: for work one request does on behalf of another's trace (a person's decision on a
    step of a turn that an earlier request started)."""
    current = trace.get_current_span().get_span_context()
    links = [trace.Link(current)] if current.is_valid else []
    parent = extract({"traceparent": traceparent}) or otel_context.Context()
    with tracer().start_as_current_span(name, context=parent, links=links, attributes=attributes) as span:
        yield span


@contextmanager
def tool_call_span(
    kind: trace.SpanKind,
    tool: str,
    *,
    parent: otel_context.Context | None = None,
    request_id: str = "",
    session_id: str = "",
    protocol_version: str = "",
    tool_errors: tuple[type[BaseException], ...] = (),
) -> Iterator[trace.Span]:
    """The span of one MCP `tools/call` of `tool`, on the client (CLIENT) or the server (SERVER) side,
    named and described after the MCP and GenAI conventions; over stdio (`network.transport` "pipe").

    A failure of the tool reported as an error result is the caller's to mark (`failed(span,
    "tool_error")`); an exception of a `tool_errors` type (one the SDK answers with an error result)
    is marked "tool_error" here, any other with its type."""
    attributes: dict[str, str] = {
        MCP_METHOD_NAME: "tools/call",
        GEN_AI_OPERATION_NAME: "execute_tool",
        GEN_AI_TOOL_NAME: tool,
        NETWORK_TRANSPORT: "pipe",
    }
    for key, value in ((JSONRPC_REQUEST_ID, request_id), (MCP_SESSION_ID, session_id)):
        if value:
            attributes[key] = value
    if protocol_version:
        attributes[MCP_PROTOCOL_VERSION] = protocol_version
    with tracer().start_as_current_span(
        f"tools/call {tool}", context=parent, kind=kind, attributes=attributes, record_exception=False
    ) as span:
        try:
            yield span
        except tool_errors as exc:
            failed(span, "tool_error", str(exc))
            raise
        except BaseException as exc:
            failed(span, exc)
            raise


def failed(span: trace.Span, exc: BaseException | str, description: str = "") -> None:
    """Mark `span` failed: `error.type` is the exception's type (or the given text) and its status ERROR."""
    error_type = exc if isinstance(exc, str) else type(exc).__qualname__
    span.set_attribute(ERROR_TYPE, error_type)
    span.set_status(trace.Status(trace.StatusCode.ERROR, description or (None if isinstance(exc, str) else str(exc))))
