"""Every Redis stream, consumer group and key name Switchboard uses, defined once.

A message travels gateway → planner → filter → router → gateway → toolhost → planner → gateway, one
stream per hop. Each stage reads a stream through its own consumer group, so replicas of a stage share
the work and a message unacknowledged by a crashed replica is claimed by another.
"""

from __future__ import annotations

PREFIX = "sb"

# One stream per hop.
TURNS = f"{PREFIX}:turns"  # gateway → planner: a new request
STEPS = f"{PREFIX}:steps"  # planner → filter: a step to take
RANKED = f"{PREFIX}:ranked"  # filter → router: the step with its candidates
PROPOSED = f"{PREFIX}:proposed"  # router → gateway: the tool call the router chose
APPROVED = f"{PREFIX}:approved"  # gateway → toolhost: a call the policy let through
RESULTS = f"{PREFIX}:results"  # toolhost (or gateway, for a call that did not run) → planner, gateway
FINISHED = f"{PREFIX}:finished"  # planner → gateway: the run's answer

ALL_STREAMS = (TURNS, STEPS, RANKED, PROPOSED, APPROVED, RESULTS, FINISHED)

# Messages a stage gave up on after repeated failures, with the error; nothing reads it automatically.
DEAD_LETTERS = f"{PREFIX}:dead-letters"

# Consumer groups: one per stage.
GROUP_GATEWAY = "gateway"
GROUP_PLANNER = "planner"
GROUP_FILTER = "filter"
GROUP_ROUTER = "router"
GROUP_TOOLHOST = "toolhost"

# Which group reads which stream (for status and pending-count metrics).
STREAM_GROUPS: dict[str, tuple[str, ...]] = {
    TURNS: (GROUP_PLANNER,),
    STEPS: (GROUP_FILTER, GROUP_GATEWAY),
    RANKED: (GROUP_ROUTER,),
    PROPOSED: (GROUP_GATEWAY,),
    APPROVED: (GROUP_TOOLHOST,),
    RESULTS: (GROUP_PLANNER, GROUP_GATEWAY, GROUP_TOOLHOST),
    FINISHED: (GROUP_GATEWAY,),
}

# How long processed-message markers and run records are kept.
DONE_TTL_SECONDS = 7 * 24 * 3600
RUN_TTL_SECONDS = 30 * 24 * 3600
SERVICE_TTL_SECONDS = 15


def done_key(group: str, idempotency_key: str) -> str:
    """Marker that `group` has finished the message with this idempotency key."""
    return f"{PREFIX}:done:{group}:{idempotency_key}"


def claim_key(group: str, idempotency_key: str) -> str:
    """Marker that `group` has started a side effect for this key (the tool host's calls)."""
    return f"{PREFIX}:claim:{group}:{idempotency_key}"


def outcome_key(group: str, idempotency_key: str) -> str:
    """Where a side effect's outcome is kept until its output is published."""
    return f"{PREFIX}:outcome:{group}:{idempotency_key}"


def run_key(run_id: str) -> str:
    """The gateway's record of a run (a serialized `switchboard.v1.Run`)."""
    return f"{PREFIX}:run:{run_id}"


def run_events_key(run_id: str) -> str:
    """A per-run stream of `RunEvent`s that watchers read from the start."""
    return f"{PREFIX}:run-events:{run_id}"


RUNS_INDEX = f"{PREFIX}:runs"  # sorted set of run ids by creation time


def planner_state_key(run_id: str) -> str:
    """The planner's working state for a run (its plan and the results so far)."""
    return f"{PREFIX}:planner:{run_id}"


def session_key(session_id: str) -> str:
    """The planner's memory of a session: its recent turns and a summary of older ones."""
    return f"{PREFIX}:session:{session_id}"


def service_key(name: str, instance: str) -> str:
    """A service instance's heartbeat record; it expires when the instance stops refreshing it."""
    return f"{PREFIX}:service:{name}:{instance}"


SERVICE_PATTERN = f"{PREFIX}:service:*"
