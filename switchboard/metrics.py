"""Every Prometheus metric Switchboard serves, defined once.

Names follow Prometheus's conventions: a `switchboard_` prefix, base units in the name (`_seconds`,
`_tokens`), `_total` on counters, and labels for what varies. The dashboards in
`observability/grafana/dashboards/` and the rules in `observability/prometheus/rules.yml` read these
names; `tests/observability/` checks that every name they use is defined here.

Series a dashboard panel shows are created at 0 when a service starts (`start_series`), so a panel
says "none yet" rather than "no data" before the first event.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, ParamSpec, TypeVar

from prometheus_client import Counter, Gauge, Histogram

# Latency buckets, in seconds, from a cache hit to a slow model call.
_STAGE_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0)
# How long a person takes to decide: seconds to the confirmation deadline (10 minutes by default) and past.
_PERSON_BUCKETS = (1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
_TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096)
# Cosine similarities and their differences lie in [-1, 1]; what matters is the top of the range.
_SCORE_BUCKETS = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
_MARGIN_BUCKETS = (0.0, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0)


class FailureMode(StrEnum):
    """A way a turn goes wrong, as the `mode` label of `switchboard_failure_modes_total`.

    The first group is the study's taxonomy (research.md, FM-1 to FM-12 and confabulation): counted
    where a stage catches one, whether it then mended it or not. The second group is the proto's
    `FailureMode`, why a step or run failed (`proto_failure_mode` turns one into the other).
    """

    # The study's taxonomy.
    MALFORMED_CALL = "malformed_call"  # FM-1: a call that is not valid JSON for the tool
    EMPTY_REPLY = "empty_reply"  # FM-2: the model said nothing
    DEFLECTION = "deflection"  # FM-3: asked the person back instead of acting
    UNKNOWN_TOOL_RESOLVED = "unknown_tool_resolved"  # FM-8: a wrong tool name mapped to a real one
    UNKNOWN_TOOL_UNRESOLVED = "unknown_tool_unresolved"  # FM-8: a wrong tool name nothing matched
    INVALID_ARGUMENT = "invalid_argument"  # FM-5: an argument the schema refuses
    INVENTED_ARGUMENT = "invented_argument"  # FM-4: a value the person's words do not contain
    REPEATED_CALL = "repeated_call"  # FM-10: the same call again with nothing changed
    PREMATURE_STOP = "premature_stop"  # FM-7: work stopped before every item was done
    CONTEXT_EVICTION = "context_eviction"  # FM-12: older turns left out to fit the budget
    CONFABULATED_CLAIM = "confabulated_claim"  # a claim the executed steps do not back
    APPROVAL_REFUSED = "approval_refused"  # a change without a valid approval, refused
    # The proto's other reasons for a failed step or run.
    NO_TOOL_FITS = "no_tool_fits"
    PATH_REFUSED = "path_refused"
    RETRY = "retry"
    TURN_REFUSED = "turn_refused"
    TURN_NEEDS_CLARIFICATION = "turn_needs_clarification"
    TOOL_ERROR = "tool_error"
    STAGE_GAVE_UP = "stage_gave_up"
    INTERRUPTED = "interrupted"
    CONFIRMATION_EXPIRED = "confirmation_expired"


def proto_failure_mode(mode: int) -> FailureMode:
    """A proto `FailureMode` as its label: `FAILURE_MODE_REPEATED_CALL` → `repeated_call`."""
    from switchboard.v1 import switchboard_pb2 as pb

    return FailureMode(pb.FailureMode.Name(mode).removeprefix("FAILURE_MODE_").lower())


# ---- stages: where the time goes ----

STAGE_WAIT = Histogram(
    "switchboard_stage_wait_seconds",
    "Time a piece of work waited before a stage started on it: in its stream (queue = the stream) or, "
    "for a gRPC stage, for the model or worker it needs (queue = rpc).",
    ["stage", "queue"],
    buckets=_STAGE_BUCKETS,
)
STAGE_WORK = Histogram(
    "switchboard_stage_work_seconds",
    "Time a stage worked on one message or call, waiting excluded.",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
STEP_OUTCOMES = Counter(
    "switchboard_step_outcomes_total",
    "Steps by the outcome a stage gave them.",
    ["stage", "outcome"],
)
RUNS_FINISHED = Counter(
    "switchboard_runs_finished_total",
    "Runs that reached a final status (succeeded, failed, rejected, refused, ...), by that status.",
    ["status"],
)
TURNS_ACCEPTED = Counter(
    "switchboard_turns_accepted_total",
    "Turns the gateway accepted and published, by API (http, grpc, openai).",
    ["api"],
)
STAGE_ERRORS = Counter(
    "switchboard_stage_errors_total",
    "Messages a stage failed to process, by error type.",
    ["stage", "error"],
)
FAILURE_MODES = Counter(
    "switchboard_failure_modes_total",
    "Ways a turn went wrong, by the stage that caught it and the mode (FailureMode in switchboard/metrics.py).",
    ["stage", "mode"],
)

# ---- the model ----

MODEL_PROMPT_TOKENS = Histogram(
    "switchboard_model_prompt_tokens",
    "Tokens in a prompt given to the local model, by the stage that called it.",
    ["stage"],
    buckets=_TOKEN_BUCKETS,
)
MODEL_GENERATED_TOKENS = Histogram(
    "switchboard_model_generated_tokens",
    "Tokens the local model generated for one call.",
    ["stage"],
    buckets=_TOKEN_BUCKETS,
)
MODEL_PROMPT_EVAL = Histogram(
    "switchboard_model_prompt_eval_seconds",
    "Time the local model spent evaluating a prompt (the part not already in its cache).",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)
MODEL_GENERATION = Histogram(
    "switchboard_model_generation_seconds",
    "Time the local model spent generating, grammar sampling included.",
    ["stage"],
    buckets=_STAGE_BUCKETS,
)

# ---- retrieval (the filter) ----

RETRIEVAL_TOP_SCORE = Histogram(
    "switchboard_retrieval_top_score",
    "The best candidate's similarity to a step.",
    buckets=_SCORE_BUCKETS,
)
RETRIEVAL_MARGIN = Histogram(
    "switchboard_retrieval_score_margin",
    "How far the best candidate's score lies above the second's.",
    buckets=_MARGIN_BUCKETS,
)
RETRIEVAL_DECISIONS = Counter(
    "switchboard_retrieval_decisions_total",
    "What the filter made of a step: candidates, or no_tool_fits.",
    ["decision"],
)

# ---- tools ----

TOOL_CALLS = Counter(
    "switchboard_tool_calls_total",
    "Tool calls by tool and outcome (succeeded, failed, refused, interrupted).",
    ["tool", "outcome"],
)
TOOL_DURATION = Histogram(
    "switchboard_tool_call_duration_seconds",
    "Time a tool call took on its MCP server.",
    ["tool"],
    buckets=_STAGE_BUCKETS,
)

# ---- confirmations ----

CONFIRMATIONS_REQUESTED = Counter(
    "switchboard_confirmations_requested_total",
    "Steps that waited for a person, by tier (confirm, typed).",
    ["tier"],
)
CONFIRMATION_DECISIONS = Counter(
    "switchboard_confirmation_decisions_total",
    "What happened to a step waiting for a person: allowed, allowed_edited, rejected, expired; scope "
    "once, session or always for an allowance (none otherwise). A change a person's standing grant let "
    "through without asking counts as granted, with the grant's scope (session or always).",
    ["decision", "scope"],
)
CONFIRMATION_WAIT = Histogram(
    "switchboard_confirmation_wait_seconds",
    "Time from a step starting to wait for a person to their decision (or its expiry), by decision.",
    ["decision"],
    buckets=_PERSON_BUCKETS,
)
CONFIRMATIONS_WAITING = Gauge(
    "switchboard_confirmations_waiting",
    "Steps waiting for a person now.",
)
APPROVAL_REFUSALS = Counter(
    "switchboard_approval_refusals_total",
    "Calls the tool host refused for their approval, by reason (missing, forged, mismatched, expired, "
    "replayed, insufficient, ungranted).",
    ["reason"],
)

# ---- streams ----

STREAM_LENGTH = Gauge("switchboard_stream_length", "Entries in a stream.", ["stream"])
STREAM_PENDING = Gauge(
    "switchboard_stream_pending",
    "Messages delivered to a consumer group and not yet acknowledged.",
    ["stream", "group"],
)
STREAM_LAG = Gauge(
    "switchboard_stream_lag",
    "Entries added to a stream that a consumer group has not been delivered yet.",
    ["stream", "group"],
)
DEAD_LETTERED = Counter(
    "switchboard_dead_letters_total",
    "Messages a stage gave up on and kept on the dead-letter stream (malformed, failing on every attempt, "
    "or never finishing), by the stream and group they came from.",
    ["stream", "group"],
)

# ---- the service around the work ----

AUTH_REFUSALS = Counter(
    "switchboard_auth_refusals_total",
    "gRPC calls refused for a missing or wrong credential, by method.",
    ["method"],
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


def start_series(metric: Counter | Histogram, combinations: Iterable[dict[str, str]]) -> None:
    """Create `metric`'s series for the given label combinations at 0, so that they are scraped
    before anything happens (and the first event shows as an increase)."""
    for labels in combinations:
        metric.labels(**labels)


def start_failure_modes(stage: str, modes: Iterable[FailureMode]) -> None:
    """Create the failure-mode series a stage can count, at 0."""
    start_series(FAILURE_MODES, ({"stage": stage, "mode": mode.value} for mode in modes))


@contextmanager
def timed_work(stage: str) -> Iterator[None]:
    """Observe the block's duration as `stage`'s work time."""
    start = time.perf_counter()
    try:
        yield
    finally:
        STAGE_WORK.labels(stage=stage).observe(time.perf_counter() - start)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def works_for(stage: str) -> Callable[[Callable[_P, Coroutine[Any, Any, _R]]], Callable[_P, Coroutine[Any, Any, _R]]]:
    """Decorate an async method whose whole duration is `stage`'s work (a request it answers itself)."""

    def decorate(method: Callable[_P, Coroutine[Any, Any, _R]]) -> Callable[_P, Coroutine[Any, Any, _R]]:
        @functools.wraps(method)
        async def timed(*args: _P.args, **kwargs: _P.kwargs) -> _R:
            with timed_work(stage):
                return await method(*args, **kwargs)

        return timed

    return decorate


# What the thread running a stage's call spent waiting (for the model's lock) rather than working.
_waited = threading.local()

T = TypeVar("T")

# The clock a gRPC stage's wait and work are read from (a test may set its own).
perf_clock: Callable[[], float] = time.perf_counter

# The `queue` label of a gRPC stage's wait: for the worker thread and the model it needs.
RPC_QUEUE = "rpc"


@contextmanager
def counted_as_waiting() -> Iterator[None]:
    """Count the block's duration as waiting, not work, for the `timed_call` this thread runs (a call
    waiting for the model's lock works no more than one waiting for a worker thread). Outside a
    `timed_call` it counts nowhere."""
    start = perf_clock()
    try:
        yield
    finally:
        _waited.seconds = getattr(_waited, "seconds", 0.0) + perf_clock() - start


async def timed_call(stage: str, fn: Callable[..., T], *args: object) -> T:
    """`fn(*args)` in a worker thread, off the event loop, observed as `stage`'s wait (`queue="rpc"`:
    until a thread took it up, and inside it while `counted_as_waiting`) and its work (the rest)."""
    queued = perf_clock()

    def run() -> T:
        started = perf_clock()
        _waited.seconds = 0.0
        try:
            return fn(*args)
        finally:
            inside = _waited.seconds
            _waited.seconds = 0.0
            STAGE_WAIT.labels(stage=stage, queue=RPC_QUEUE).observe(started - queued + inside)
            STAGE_WORK.labels(stage=stage).observe(max(0.0, perf_clock() - started - inside))

    return await asyncio.to_thread(run)
