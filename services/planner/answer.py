"""The answer to a run, built only from its step records, and checked before it is sent.

No model writes the answer, so it cannot invent a result. Tool output appears in it only inside
“quotes” or as the names a tool listed, so text inside a file ("I deleted X") never reads as the
answer's own claim. The answer's own claims of change are checked against what was executed: a step
of a tool that changes things is reported as a change only when it succeeded and its result confirms
it (names what it changed, or how to undo it); otherwise the line says the change cannot be confirmed.
Lines are produced step by step, so the worker can stream each to the person as soon as its step is
settled.
"""

from __future__ import annotations

from collections.abc import Iterable

from services.planner.context import mentioned_paths, result_text
from services.planner.core import format_arguments, summarise_content
from services.planner.state import Done, Finish, RunOutcome, RunState, StepOrder, StepOutcome, StepState

QUOTE_CHARS = 240


def executed_changes(state: RunState, mutating: Iterable[str]) -> set[int]:
    """The steps whose change really happened: a tool that changes things ran, succeeded, and its
    result confirms it (it does not say `success: false`, and it names what it changed or how to undo it)."""
    changing = set(mutating)
    verified: set[int] = set()
    for order in state.orders:
        outcome = state.outcomes.get(order.number)
        if outcome is None or outcome.state is not StepState.SUCCEEDED or outcome.tool not in changing:
            continue
        content = outcome.content
        if not isinstance(content, dict) or content.get("success") is False:
            continue
        if mentioned_paths(content) or content.get("undo") or any(k.endswith("id") for k in content):
            verified.add(order.number)
    return verified


def step_line(order: StepOrder, outcome: StepOutcome, mutating: Iterable[str]) -> str:
    """One plain sentence on what a step did (or why it did not)."""
    call = f"{outcome.tool}({format_arguments(outcome.arguments)})" if outcome.tool else "no tool"
    label = f"Step {order.number}"
    if order.attempt > 1:
        label += f" (a retry of “{order.intent}” with the tool host's correction)"
    if outcome.state is StepState.SUCCEEDED:
        if outcome.tool in set(mutating):
            return f"{label}: {call} — done (changed): {describe_change(outcome)}"
        return f"{label}: {call} — done (read): {describe_content(outcome)}"
    if outcome.state is StepState.SKIPPED:
        return f"{label}: would call {call}; dry run, nothing was executed."
    if outcome.state is StepState.REJECTED:
        return f"{label}: {call} was not run: {outcome.error or 'it was rejected'}."
    if outcome.state is StepState.NEEDS_CLARIFICATION:
        if outcome.tool:
            # The step is shown with its tool and what is known; the person gives the rest.
            return f"{label}: {call} is not complete: {outcome.error}. Reply with the missing value and I will go on."
        return f"{label} (“{order.intent}”) needs more to go on: {outcome.error}"
    return f"{label}: {call} failed: {outcome.error}"


def describe_change(outcome: StepOutcome) -> str:
    """What a changing step reports it changed: the paths its result names (how to undo it is for
    `sb undo`, not for the answer), or its result when it names none."""
    targets = mentioned_paths(outcome.content)
    if not targets:
        return summarise_content(outcome.content)
    replaced = isinstance(outcome.content, dict) and outcome.content.get("overwrote") is True
    return ", ".join(targets) + (" (the old file is in the trash)" if replaced else "") + "."


def describe_content(outcome: StepOutcome) -> str:
    """What came out of a step: the names it listed, the start of the text it read, or its result."""
    text = result_text(outcome.content)
    if text.strip():
        flat = " ".join(text.split())
        if len(flat) <= QUOTE_CHARS:
            return f"the text “{flat}”"
        return f"{len(flat)} characters of text, starting “{flat[: QUOTE_CHARS - 1]}…”"
    return summarise_content(outcome.content)


def settled_lines(state: RunState, mutating: Iterable[str]) -> list[str]:
    """A line for every step whose result is in, in order, each checked (see `check_claims`)."""
    changing = set(mutating)
    verified = executed_changes(state, changing)
    lines = []
    for order in state.orders:
        outcome = state.outcomes.get(order.number)
        if outcome is not None:
            lines.append(check_claims(step_line(order, outcome, changing), verified, order, outcome, changing))
    return lines


def compose(state: RunState, done: Done, mutating: Iterable[str]) -> Finish:
    """The whole answer: a line per step, what was skipped or not reached, and how the run ended."""
    if not state.plan:
        return Finish(RunOutcome.NEEDS_CLARIFICATION, "The request is empty: say what you want done.")
    lines = settled_lines(state, mutating)
    lines.extend(state.notes)
    started = {o.plan_number for o in state.orders}
    not_reached = [s for s in state.plan[state.cursor :] if s.number not in started]
    if not_reached and done.outcome is not RunOutcome.ANSWERED:
        listed = "; ".join(f"“{s.intent}”" for s in not_reached)
        lines.append(f"Not run, because the run stopped: {listed}.")
    lines.append(closing_line(state, done))
    return Finish(done.outcome, "\n".join(lines))


def held(state: RunState) -> Finish:
    """The answer of a run the policy held for the person: its question, and the call the request would
    make as far as it is known (routed, not run)."""
    lines = [state.held]
    for order in state.orders:
        outcome = state.outcomes.get(order.number)
        if outcome is None or not outcome.tool:
            continue
        call = f"{outcome.tool}({format_arguments(outcome.arguments)})"
        open_values = outcome.state is StepState.NEEDS_CLARIFICATION and outcome.error not in ("", state.held)
        still = f" ({outcome.error})" if open_values else ""
        lines.append(
            f"Step {order.number} would call {call}{still}; nothing was run. Say what you meant and I will go on."
        )
    return Finish(RunOutcome.NEEDS_CLARIFICATION, "\n".join(lines))


def closing_line(state: RunState, done: Done) -> str:
    ran = sum(1 for o in state.outcomes.values() if o.state is StepState.SUCCEEDED)
    total = len(state.orders)
    if done.outcome is RunOutcome.ANSWERED:
        if state.dry_run:
            return f"Dry run: {total} step{'s' * (total != 1)} planned and routed; nothing was executed."
        retried = sum(1 for o in state.orders if o.attempt > 1)
        again = f" ({retried} after a retry)" if retried else ""
        return f"Done: {ran} of {total} step{'s' * (total != 1)} ran{again}."
    if done.outcome is RunOutcome.FAILED:
        return f"Failed: {ran} of {total} steps ran before a step failed; see the reason above."
    if done.outcome is RunOutcome.NEEDS_CLARIFICATION:
        return "I need more information before I can go on; see above for what is missing."
    return "Stopped: a step was refused, so nothing after it was run."


def unconfirmed_change(verified: set[int], order: StepOrder, outcome: StepOutcome, mutating: set[str]) -> bool:
    """Whether the step's line would claim a change its result does not confirm (a confabulated claim,
    which `check_claims` replaces)."""
    return outcome.state is StepState.SUCCEEDED and outcome.tool in mutating and order.number not in verified


def claim_caught(state: RunState, number: int, mutating: Iterable[str]) -> bool:
    """Whether the answer's line for step `number` (its result in) had a claim of change taken back
    because the result does not confirm it."""
    order, outcome = state.order(number), state.outcomes.get(number)
    if order is None or outcome is None:
        return False
    changing = set(mutating)
    return unconfirmed_change(executed_changes(state, changing), order, outcome, changing)


def check_claims(line: str, verified: set[int], order: StepOrder, outcome: StepOutcome, mutating: set[str]) -> str:
    """`line`, unless it claims a change the run did not verifiably execute; then a line that says so."""
    if not unconfirmed_change(verified, order, outcome, mutating):
        return line
    return (
        f"Step {order.number}: {outcome.tool}({format_arguments(outcome.arguments)}) reported success, but its "
        "result does not show that anything changed, so I cannot say it did."
    )
