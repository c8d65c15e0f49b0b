"""The kinds of a run's events (what watchers of a run, SSE, `WatchRun` and `sb ask`, read in order).

They are appended with the changes they describe, by `switchboard.runs`.
"""

from __future__ import annotations

from switchboard.v1 import switchboard_pb2 as pb


def kind_name(kind: int) -> str:
    """An `EventKind` as the HTTP API names it: `EVENT_KIND_STEP_PLANNED` → `step_planned`."""
    return pb.EventKind.Name(kind).removeprefix("EVENT_KIND_").lower()


# The event each step status is announced with when a step settles.
KIND_OF_STEP_STATUS = {
    pb.STEP_STATUS_SUCCEEDED: pb.EVENT_KIND_SUCCEEDED,
    pb.STEP_STATUS_FAILED: pb.EVENT_KIND_FAILED,
    pb.STEP_STATUS_SKIPPED: pb.EVENT_KIND_SKIPPED,
    pb.STEP_STATUS_REJECTED: pb.EVENT_KIND_REJECTED,
    pb.STEP_STATUS_NEEDS_CLARIFICATION: pb.EVENT_KIND_NEEDS_CLARIFICATION,
    pb.STEP_STATUS_APPROVED: pb.EVENT_KIND_APPROVED,
    pb.STEP_STATUS_UNDONE: pb.EVENT_KIND_UNDONE,
}
