"""Every Redis stream, consumer group and key name Switchboard uses, defined once.

A request travels gateway → planner (which calls filter and router over gRPC and applies the
confirmation policy) → toolhost → planner, one stream per hop; a step that waits for the person goes
to the tool host from the gateway, when the person confirms it. Each stage reads a stream through its
own consumer group, so replicas of a stage share the work and a message unacknowledged by a crashed
replica is claimed by another.

Everything kept about one run sits under a handful of keys named after it (`run_keys`), so a run that
is forgotten takes all of it along.
"""

from __future__ import annotations

PREFIX = "sb"

# One stream per hop.
TURNS = f"{PREFIX}:turns"  # gateway → planner: a new request
APPROVED = f"{PREFIX}:approved"  # planner (a read) or gateway (a person's yes) → toolhost: a call to run
RESULTS = f"{PREFIX}:results"  # toolhost (or gateway, for a step the person rejected) → planner
DECISIONS = f"{PREFIX}:decisions"  # gateway → toolhost: a step the person rejected, for the audit log

ALL_STREAMS = (TURNS, APPROVED, RESULTS, DECISIONS)

# The two calls a step makes over gRPC before it is proposed, as its record lists them among its hops.
HOP_RANK = "grpc:Filter.Rank"
HOP_ROUTE = "grpc:Router.Route"

# Messages a stage gave up on after repeated failures, with the error; nothing reads it automatically.
DEAD_LETTERS = f"{PREFIX}:dead-letters"

# Consumer groups: one per stage.
GROUP_PLANNER = "planner"
GROUP_TOOLHOST = "toolhost"

# Which group reads which stream (for status and pending-count metrics, and for trimming: an entry
# every group has acknowledged is dropped).
STREAM_GROUPS: dict[str, tuple[str, ...]] = {
    TURNS: (GROUP_PLANNER,),
    APPROVED: (GROUP_TOOLHOST,),
    RESULTS: (GROUP_PLANNER,),
    DECISIONS: (GROUP_TOOLHOST,),
}

# How long a run's record and everything else kept about it last at most (see also runs_kept).
RUN_TTL_SECONDS = 30 * 24 * 3600
SERVICE_TTL_SECONDS = 15


def done_key(run_id: str) -> str:
    """A hash of the messages of a run each group has finished: field `{group}:{idempotency key}`."""
    return f"{PREFIX}:done:{run_id}"


def done_field(group: str, idempotency_key: str) -> str:
    return f"{group}:{idempotency_key}"


def calls_key(run_id: str) -> str:
    """The tool host's guard over a run's calls: field `claim:{key}` once a call started, `outcome:{key}`
    holding its result until the result is published."""
    return f"{PREFIX}:calls:{run_id}"


def approval_used_key(nonce: str) -> str:
    """Marker that the approval with this nonce has been used (the tool host's single-use check)."""
    return f"{PREFIX}:approval-used:{nonce}"


def run_key(run_id: str) -> str:
    """A run's one record (a serialized `switchboard.v1.Run`; see `switchboard.runs`)."""
    return f"{PREFIX}:run:{run_id}"


def run_events_key(run_id: str) -> str:
    """A per-run stream of `RunEvent`s that watchers read from the start."""
    return f"{PREFIX}:run-events:{run_id}"


RUNS_INDEX = f"{PREFIX}:runs"  # sorted set of run ids by creation time
# The finished runs among them, by creation time: the ones that may be forgotten, oldest first.
FINISHED_RUNS = f"{PREFIX}:runs:finished"
SESSIONS_INDEX = f"{PREFIX}:sessions"  # sorted set of session ids by last use
# Steps waiting for the person, member `{run id}:{step}`, scored by their deadline (unix ms); the
# gateway rejects those whose deadline passed (see `switchboard.runs.awaiting_member`).
AWAITING = f"{PREFIX}:awaiting"
# Standing grants: grant id → a serialized `switchboard.v1.Grant` (see `switchboard.grants`).
GRANTS = f"{PREFIX}:grants"


def contents_key(run_id: str) -> str:
    """The large results of a run's steps, kept once and referenced (field: StepResult.content_ref)."""
    return f"{PREFIX}:contents:{run_id}"


def trace_key(run_id: str) -> str:
    """The W3C traceparent of the gateway's span that took the run's turn, so that what a person decides
    later (in another request) is traced in the turn's trace."""
    return f"{PREFIX}:trace:{run_id}"


def run_keys(run_id: str) -> tuple[str, ...]:
    """Every key that holds something of one run."""
    return (
        run_key(run_id),
        run_events_key(run_id),
        done_key(run_id),
        calls_key(run_id),
        contents_key(run_id),
        trace_key(run_id),
    )


def session_key(session_id: str) -> str:
    """The planner's memory of a session: its recent turns and a summary of older ones."""
    return f"{PREFIX}:session:{session_id}"


def service_key(name: str, instance: str) -> str:
    """A service instance's heartbeat record; it expires when the instance stops refreshing it."""
    return f"{PREFIX}:service:{name}:{instance}"


SERVICE_PATTERN = f"{PREFIX}:service:*"

# What the stack's supervisor restarted: field `{service}` or `{service}#{replica}` → JSON
# `{"restarts": n, "last_exit": code, "last_exit_unix": t}` (see `switchboard.supervisor`).
RESTARTS = f"{PREFIX}:restarts"
