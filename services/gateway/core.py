"""The gateway's pure logic: the confirmation policy and how events change a run's record.

Run records are `switchboard.v1.Run` messages; every function here takes a record and returns nothing
but changes it, so the Redis-backed store can apply them inside an optimistic transaction.
"""

from __future__ import annotations

import json
import time
from enum import Enum

from switchboard.failures import REPEATED_CALL
from switchboard.paths import PathPolicy, PathVerdict, named_paths
from switchboard.v1 import switchboard_pb2 as pb

MAX_TEXT_CHARS = 4000

FINAL_STATUSES = frozenset(
    {pb.RUN_STATUS_ANSWERED, pb.RUN_STATUS_NEEDS_CLARIFICATION, pb.RUN_STATUS_REFUSED, pb.RUN_STATUS_FAILED}
)


class Policy(Enum):
    """What the gateway does with a routed call."""

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
) -> tuple[pb.StepStatus, str, str]:
    """What becomes of a routed call: its step status, the event kind, and the reason to record ('' to
    keep the router's). In order: the router could not fill it; the planner holds it for a question to
    the person; it names a path no tool may touch; it repeats an earlier step with nothing changed since
    (a read reuses that step's result, anything else fails); a dry run; a change that waits for a
    person; a read that runs at once."""
    if call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION:
        return pb.STEP_STATUS_NEEDS_CLARIFICATION, "needs_clarification", ""
    if call.held:  # the person is asked first; the call is shown, not put forward
        return pb.STEP_STATUS_NEEDS_CLARIFICATION, "needs_clarification", call.held
    refusal = refused_paths(call.arguments_json, paths) if call.tool else ""
    if refusal:
        return pb.STEP_STATUS_REJECTED, "refused", f"Refused: {refusal}"
    repeat = repeated_call(run, call, changes) if call.tool else 0
    if repeat:
        earlier = step_record(run, repeat)
        if call.tool not in changes and earlier.status in (pb.STEP_STATUS_SUCCEEDED, pb.STEP_STATUS_SKIPPED):
            # The same read with nothing changed since has the same answer: the step takes the earlier
            # step's result instead of running the tool again ("read X, then show me X").
            return earlier.status, "reused_result", f"the same call as step {repeat}: its result is reused"
        reason = (
            f"{REPEATED_CALL}: step {repeat} already called {call.tool} with the same arguments and nothing has "
            "changed since, so it was not run again"
        )
        return pb.STEP_STATUS_FAILED, "repeated_call", reason
    if call.dry_run:
        return pb.STEP_STATUS_SKIPPED, "routed_dry_run", ""
    if needs_confirmation:
        return pb.STEP_STATUS_AWAITING_CONFIRMATION, "awaiting_confirmation", ""
    return pb.STEP_STATUS_APPROVED, "approved", ""


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


def reused_result(run: pb.Run, step: pb.StepRecord) -> str:
    """The result a step that repeats an earlier read takes over: that step's result ('' if none).

    Only a step judged `reused_result` settles as succeeded without running, so a succeeded step that
    reaches this has its twin among the earlier steps."""
    if step.status != pb.STEP_STATUS_SUCCEEDED:
        return ""
    wanted = _canonical(step.arguments_json)
    for record in sorted(run.steps, key=lambda r: r.number, reverse=True):
        if (
            record.number < step.number
            and record.tool == step.tool
            and record.status == pb.STEP_STATUS_SUCCEEDED
            and _canonical(record.arguments_json) == wanted
        ):
            return record.result_json
    return ""


def _canonical(arguments_json: str) -> str:
    try:
        return json.dumps(json.loads(arguments_json or "{}"), sort_keys=True)
    except json.JSONDecodeError:
        return arguments_json


def now_ms() -> int:
    return int(time.time() * 1000)


def status_name(status: int) -> str:
    """`RUN_STATUS_ANSWERED` → `answered`."""
    return pb.RunStatus.Name(status).removeprefix("RUN_STATUS_").lower()


def step_status_name(status: int) -> str:
    return pb.StepStatus.Name(status).removeprefix("STEP_STATUS_").lower()


def new_run(run_id: str, session_id: str, text: str, dry_run: bool) -> pb.Run:
    at = now_ms()
    return pb.Run(
        run_id=run_id,
        session_id=session_id,
        text=text,
        dry_run=dry_run,
        status=pb.RUN_STATUS_PLANNING,
        created_unix_ms=at,
        updated_unix_ms=at,
    )


def step_record(run: pb.Run, number: int) -> pb.StepRecord:
    """The record of step `number`, created if this is the first we hear of it."""
    for record in run.steps:
        if record.number == number:
            return record
    record = run.steps.add(number=number, status=pb.STEP_STATUS_PLANNED)
    return record


def _add_hops(record: pb.StepRecord, hops: list[str]) -> None:
    for hop in hops:
        if hop not in record.hops:
            record.hops.append(hop)


def apply_step(run: pb.Run, step: pb.Step, hops: list[str]) -> None:
    """The planner emitted a step."""
    record = step_record(run, step.number)
    record.intent = step.intent
    record.server = step.server
    _add_hops(record, hops)
    if run.status not in FINAL_STATUSES:
        run.status = pb.RUN_STATUS_RUNNING
    run.updated_unix_ms = now_ms()


def apply_proposal(
    run: pb.Run, call: pb.ToolCall, hops: list[str], status: pb.StepStatus, needs_confirmation: bool
) -> None:
    """The router proposed a call and the policy gave it `status`."""
    record = step_record(run, call.step)
    record.tool = call.tool
    record.arguments_json = call.arguments_json
    del record.candidates[:]
    record.candidates.extend(call.candidates)
    record.confirmation_required = needs_confirmation
    record.status = status
    if status in (pb.STEP_STATUS_NEEDS_CLARIFICATION, pb.STEP_STATUS_REJECTED, pb.STEP_STATUS_FAILED):
        record.error = call.reason
    del record.missing[:]
    if status == pb.STEP_STATUS_NEEDS_CLARIFICATION:
        record.missing.extend(call.missing)
    _add_hops(record, hops)
    if status == pb.STEP_STATUS_AWAITING_CONFIRMATION:
        run.status = pb.RUN_STATUS_AWAITING_CONFIRMATION
    elif run.status not in FINAL_STATUSES:
        run.status = pb.RUN_STATUS_RUNNING
    run.updated_unix_ms = now_ms()


def apply_decision(run: pb.Run, step: int, approved: bool, arguments_json: str, reason: str) -> pb.StepRecord:
    """A person approved or rejected a waiting step."""
    record = step_record(run, step)
    record.arguments_json = arguments_json
    record.status = pb.STEP_STATUS_APPROVED if approved else pb.STEP_STATUS_REJECTED
    if not approved:
        record.error = reason or "rejected by the person"
    run.status = pb.RUN_STATUS_RUNNING
    run.updated_unix_ms = now_ms()
    return record


def apply_result(run: pb.Run, result: pb.StepResult, hops: list[str]) -> None:
    """A step finished (or was settled without running)."""
    record = step_record(run, result.step)
    record.status = result.status
    record.result_json = result.content_json
    if result.error:
        record.error = result.error
    record.duration_ms = result.duration_ms
    _add_hops(record, list(result.hops) + hops)
    run.updated_unix_ms = now_ms()


def apply_undone(run: pb.Run, step: int) -> None:
    """A person undid what a step did."""
    step_record(run, step).status = pb.STEP_STATUS_UNDONE
    run.updated_unix_ms = now_ms()


def apply_finished(run: pb.Run, finished: pb.RunFinished) -> None:
    """The planner gave the answer."""
    run.status = finished.status
    run.answer = finished.answer
    run.updated_unix_ms = now_ms()
