"""The confirmation policy: what becomes of a routed call, judged against its run's record.

Pure logic: nothing here reads or writes Redis, and nothing here can let a change run. The planner
applies it to each call it routes, inside the record's transaction; a call the policy lets through
at once (one that only reads) gets an approval the tool host honours for reads only, and a call that
waits for the person runs only with the approval the gateway grants when the person confirms it.
"""

from __future__ import annotations

import json
from enum import Enum

from switchboard.failures import REPEATED_CALL
from switchboard.paths import PathPolicy, PathVerdict, named_paths
from switchboard.runs import step_record
from switchboard.v1 import switchboard_pb2 as pb


class Policy(Enum):
    """What becomes of a routed call."""

    RUN_NOW = "run_now"
    ASK_PERSON = "ask_person"


def decide(tool: pb.ToolInfo | None) -> Policy:
    """Read-only tools run at once; anything that changes something, or is unknown, waits for a person."""
    if tool is None or tool.confirmation_required or tool.destructive:
        return Policy.ASK_PERSON
    return Policy.RUN_NOW


# At this change intent (the filter's probe: how much a request reads like one for a change) a call
# of a tool that only reads waits for the person too: the request asked for something the tool will
# not do ("kill whatever is eating my CPU" lands on the process list), and the person should see the
# stand-in before it runs. Set on the dev halves: 4 of 110 requests for reads rose to it.
CHANGE_INTENT_HOLD = 0.5
HELD_FOR_INTENT = "the request asks for a change this tool does not make; it only reads, shown here as what can be done"


def decide_call(tool: pb.ToolInfo | None, change_intent: float) -> Policy:
    """`decide`, and a read-only call for a request that asks for a change waits for a person too."""
    if decide(tool) is Policy.ASK_PERSON or change_intent >= CHANGE_INTENT_HOLD:
        return Policy.ASK_PERSON
    return Policy.RUN_NOW


# Step states after which a call has been dealt with (ran, or was settled without running).
SETTLED_STEP_STATUSES = frozenset(
    {pb.STEP_STATUS_SUCCEEDED, pb.STEP_STATUS_FAILED, pb.STEP_STATUS_SKIPPED, pb.STEP_STATUS_APPROVED}
)


def refused_paths(arguments_json: str, paths: PathPolicy) -> str:
    """Why a call may not be proposed to a person at all ('' if it may): a path it names is outside the
    allowed folders, a system location or a secret. The tool host would refuse it too; refusing here
    means no person is ever asked to approve it."""
    try:
        arguments = json.loads(arguments_json) if arguments_json else {}
    except json.JSONDecodeError:
        return ""
    if not isinstance(arguments, dict):
        return ""
    for raw in named_paths(arguments):
        if paths.classify(raw) is not PathVerdict.INSIDE:
            return paths.explain(raw)
    return ""


def judge_proposal(
    run: pb.Run, call: pb.ToolCall, needs_confirmation: bool, changes: frozenset[str], paths: PathPolicy
) -> tuple[pb.StepStatus, pb.EventKind, str]:
    """What becomes of a routed call: its step status, the event kind, and the reason to record ('' to
    keep the router's). In order: the router could not fill it; the planner holds it for a question to
    the person; it names a path no tool may touch; it repeats an earlier step with nothing changed since
    (a read reuses that step's result, anything else fails); a dry run; a change that waits for a
    person; a read that runs at once."""
    if call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION:
        return pb.STEP_STATUS_NEEDS_CLARIFICATION, pb.EVENT_KIND_NEEDS_CLARIFICATION, ""
    if call.held:  # the person is asked first; the call is shown, not put forward
        return pb.STEP_STATUS_NEEDS_CLARIFICATION, pb.EVENT_KIND_NEEDS_CLARIFICATION, call.held
    refusal = refused_paths(call.arguments_json, paths) if call.tool else ""
    if refusal:
        return pb.STEP_STATUS_REJECTED, pb.EVENT_KIND_REFUSED, f"Refused: {refusal}"
    repeat = repeated_call(run, call, changes) if call.tool else 0
    if repeat:
        earlier = step_record(run, repeat)
        if call.tool not in changes and earlier.status in (pb.STEP_STATUS_SUCCEEDED, pb.STEP_STATUS_SKIPPED):
            # The same read with nothing changed since has the same answer: the step takes the earlier
            # step's result instead of running the tool again ("read X, then show me X").
            return earlier.status, pb.EVENT_KIND_REUSED_RESULT, f"the same call as step {repeat}: its result is reused"
        reason = (
            f"{REPEATED_CALL}: step {repeat} already called {call.tool} with the same arguments and nothing has "
            "changed since, so it was not run again"
        )
        return pb.STEP_STATUS_FAILED, pb.EVENT_KIND_REPEATED_CALL, reason
    if call.dry_run:
        return pb.STEP_STATUS_SKIPPED, pb.EVENT_KIND_ROUTED_DRY_RUN, ""
    if needs_confirmation:
        return pb.STEP_STATUS_AWAITING_CONFIRMATION, pb.EVENT_KIND_AWAITING_CONFIRMATION, ""
    return pb.STEP_STATUS_APPROVED, pb.EVENT_KIND_APPROVED, ""


def repeated_call(run: pb.Run, call: pb.ToolCall, changes: frozenset[str]) -> int:
    """The earlier step of `run` that made exactly this call with nothing changed since (0 if none).

    `changes` are the tools that change things: after one of them ran, the same read may rightly be
    made again (list a folder, delete a file, list it again)."""
    wanted = _canonical(call.arguments_json)
    repeat = 0
    for record in sorted(run.steps, key=lambda r: r.number):
        if record.number >= call.step:
            break
        if record.status == pb.STEP_STATUS_SUCCEEDED and record.tool in changes:
            repeat = 0
        if (
            record.tool == call.tool
            and record.status in SETTLED_STEP_STATUSES
            and _canonical(record.arguments_json) == wanted
        ):
            repeat = record.number
    return repeat


def reused_result(run: pb.Run, step: pb.StepRecord) -> pb.StepRecord | None:
    """The earlier step whose result a step that repeats its read takes over (None if none).

    Only a step judged `reused_result` settles as succeeded without running, so a succeeded step that
    reaches this has its twin among the earlier steps."""
    if step.status != pb.STEP_STATUS_SUCCEEDED:
        return None
    wanted = _canonical(step.arguments_json)
    for record in sorted(run.steps, key=lambda r: r.number, reverse=True):
        if (
            record.number < step.number
            and record.tool == step.tool
            and record.status == pb.STEP_STATUS_SUCCEEDED
            and _canonical(record.arguments_json) == wanted
        ):
            return record
    return None


def _canonical(arguments_json: str) -> str:
    try:
        return json.dumps(json.loads(arguments_json or "{}"), sort_keys=True)
    except json.JSONDecodeError:
        return arguments_json
