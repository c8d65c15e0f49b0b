"""Logs, metrics and traces, set up the same way in every service.

- Logs are JSON lines on stderr, one object per record.
- Metrics are Prometheus: a latency histogram per stage, counts of step outcomes, stream pending counts,
  dead letters, Redis outages and requests turned away, served on each service's metrics port.
- Traces are OpenTelemetry spans. A stream message carries the producing span's `traceparent`, and the
  consuming stage starts its span as that span's child, so one trace follows a turn across every hop.
  Spans are exported over OTLP when `SWITCHBOARD_OTLP_ENDPOINT` is set.
"""

from __future__ import annotations

import functools
import json
import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from prometheus_client import Counter, Gauge, Histogram

STAGE_LATENCY = Histogram(
    "switchboard_stage_latency_seconds",
    "Time a stage spent on one message or call.",
    ["stage"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
STREAM_WAIT = Histogram(
    "switchboard_stream_wait_seconds",
    "Time from a message's addition to a stream to the start of its handling, by stream and group.",
    ["stream", "group"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0),
)
STEP_OUTCOMES = Counter(
    "switchboard_step_outcomes_total",
    "Steps by the outcome a stage gave them.",
    ["stage", "outcome"],
)
STREAM_PENDING = Gauge(
    "switchboard_stream_pending",
    "Messages delivered to a consumer group and not yet acknowledged.",
    ["stream", "group"],
)
STREAM_LENGTH = Gauge("switchboard_stream_length", "Entries in a stream.", ["stream"])
STAGE_ERRORS = Counter(
    "switchboard_stage_errors_total",
    "Messages a stage failed to process, by error type.",
    ["stage", "error"],
)
FAILURE_MODES = Counter(
    "switchboard_failure_modes_total",
    "Known ways a turn goes wrong, counted where they are caught (the proto's FailureMode, in lower case).",
    ["stage", "mode"],
)
AUTH_REFUSALS = Counter(
    "switchboard_auth_refusals_total",
    "gRPC calls refused for a missing or wrong credential, by method.",
    ["method"],
)
APPROVAL_REFUSALS = Counter(
    "switchboard_approval_refusals_total",
    "Calls the tool host refused for their approval, by reason (missing, forged, mismatched, expired, "
    "replayed, insufficient).",
    ["reason"],
)
DEAD_LETTERED = Counter(
    "switchboard_dead_letters_total",
    "Messages a stage gave up on and kept on the dead-letter stream (malformed, failing on every attempt, "
    "or never finishing), by the stream and group they came from.",
    ["stream", "group"],
)
REDIS_OUTAGES = Counter(
    "switchboard_redis_outages_total",
    "Times a loop found Redis unreachable (restarting, loading its data, down) and waited for it, by loop.",
    ["loop"],
)
REQUESTS_REFUSED = Counter(
    "switchboard_requests_refused_total",
    "Requests the gateway turned away for a while, by API (http, grpc, openai) and reason (busy: too much "
    "work waits; redis: Redis does not answer).",
    ["api", "reason"],
)
RECORD_WRITES = Counter(
    "switchboard_run_record_writes_total",
    "Writes of a run's record, by the stage that made them.",
    ["stage"],
)


def failure_mode(mode: int) -> str:
    """A `FailureMode` as its metric label: `FAILURE_MODE_REPEATED_CALL` → `repeated_call`."""
    from switchboard.v1 import switchboard_pb2 as pb

    return pb.FailureMode.Name(mode).removeprefix("FAILURE_MODE_").lower()


_propagator = TraceContextTextMapPropagator()


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


def setup_tracing(service: str, otlp_endpoint: str = "") -> TracerProvider:
    """Install a tracer provider for `service`; export over OTLP/gRPC if an endpoint is given."""
    provider = TracerProvider(resource=Resource.create({"service.name": f"switchboard-{service}"}))
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


@contextmanager
def consume_span(name: str, traceparent: str, **attributes: str | int) -> Iterator[trace.Span]:
    """A consumer span that continues the trace the message's `traceparent` names."""
    parent = _propagator.extract({"traceparent": traceparent}) if traceparent else otel_context.Context()
    with tracer().start_as_current_span(
        name, context=parent, kind=trace.SpanKind.CONSUMER, attributes=attributes
    ) as span:
        yield span


@contextmanager
def timed(stage: str) -> Iterator[None]:
    """Observe the block's duration in the stage latency histogram."""
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_LATENCY.labels(stage=stage).observe(time.perf_counter() - start)
