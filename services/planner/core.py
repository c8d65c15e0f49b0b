"""Turning a request into steps, deciding what comes next, and answering from what really happened.

Pure logic: the model that guesses a step's server is passed in as a function. The answer is never
written by the model; it is built from the step records, so it can only claim what the tools did.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

MAX_TEXT_CHARS = 4000
MAX_NAMES_LISTED = 50
MAX_RESULT_CHARS = 600


class StepState(StrEnum):
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    REJECTED = "rejected"
    NEEDS_CLARIFICATION = "needs_clarification"


class RunOutcome(StrEnum):
    ANSWERED = "answered"
    NEEDS_CLARIFICATION = "needs_clarification"
    REFUSED = "refused"
    FAILED = "failed"


@dataclass(frozen=True)
class PlannedStep:
    number: int
    intent: str
    server: str = ""


@dataclass(frozen=True)
class StepOutcome:
    """A step's result as the planner sees it."""

    number: int
    tool: str
    state: StepState
    arguments: dict[str, Any] = field(default_factory=dict)
    content: Any = None
    error: str = ""


@dataclass(frozen=True)
class Finish:
    outcome: RunOutcome
    answer: str


def plan_turn(text: str, guess_server: Callable[[str], str] | None = None) -> list[PlannedStep]:
    """The steps for a request. For now one step per request; decomposition comes with sessions."""
    intent = " ".join(text.split())
    if not intent:
        return []
    server = guess_server(intent) if guess_server is not None else ""
    return [PlannedStep(1, intent, server)]


def next_step(plan: list[PlannedStep], outcomes: dict[int, StepOutcome]) -> PlannedStep | Finish:
    """The next step to emit, or how the run ends. A step that did not succeed ends the run."""
    for step in plan:
        outcome = outcomes.get(step.number)
        if outcome is None:
            return step
        if outcome.state is not StepState.SUCCEEDED and outcome.state is not StepState.SKIPPED:
            break
    return synthesize(plan, outcomes)


def synthesize(plan: list[PlannedStep], outcomes: dict[int, StepOutcome]) -> Finish:
    """The answer, built only from step records."""
    if not plan:
        return Finish(RunOutcome.NEEDS_CLARIFICATION, "The request is empty: say what you want done.")
    lines: list[str] = []
    outcome = RunOutcome.ANSWERED
    for step in plan:
        record = outcomes.get(step.number)
        if record is None:
            lines.append(f"Step {step.number} ({step.intent}) did not run.")
            continue
        lines.append(describe(record))
        if record.state is StepState.FAILED:
            outcome = RunOutcome.FAILED
        elif record.state is StepState.REJECTED and outcome is RunOutcome.ANSWERED:
            outcome = RunOutcome.REFUSED
        elif record.state is StepState.NEEDS_CLARIFICATION and outcome is RunOutcome.ANSWERED:
            outcome = RunOutcome.NEEDS_CLARIFICATION
    return Finish(outcome, "\n".join(lines))


def describe(record: StepOutcome) -> str:
    """One plain sentence on what a step did."""
    call = f"{record.tool}({format_arguments(record.arguments)})" if record.tool else "no tool"
    if record.state is StepState.SUCCEEDED:
        return f"{call}: {summarise_content(record.content)}"
    if record.state is StepState.SKIPPED:
        return f"Dry run: would call {call}; nothing was executed."
    if record.state is StepState.REJECTED:
        return f"Not done: {call} was rejected. {record.error}".strip()
    if record.state is StepState.NEEDS_CLARIFICATION:
        return f"I need more to go on: {record.error}"
    return f"{call} failed: {record.error}"


def format_arguments(arguments: dict[str, Any]) -> str:
    return ", ".join(f"{key}={json.dumps(value)}" for key, value in arguments.items())


def summarise_content(content: Any) -> str:
    """A short, faithful account of a tool's output: names when it lists things, else compact JSON."""
    names = _listed_names(content)
    if names is not None:
        if not names:
            return "found nothing."
        shown = ", ".join(names[:MAX_NAMES_LISTED])
        more = f" and {len(names) - MAX_NAMES_LISTED} more" if len(names) > MAX_NAMES_LISTED else ""
        return f"{len(names)} found: {shown}{more}."
    text = json.dumps(content, ensure_ascii=False, default=str)
    return text if len(text) <= MAX_RESULT_CHARS else text[: MAX_RESULT_CHARS - 1] + "…"


def _listed_names(content: Any) -> list[str] | None:
    """The names in the first list of named items in `content`, if it has one."""
    if isinstance(content, list) and all(isinstance(item, dict) and "name" in item for item in content):
        return [str(item["name"]) for item in content]
    if isinstance(content, dict):
        for value in content.values():
            names = _listed_names(value)
            if names is not None:
                return names
    return None


def server_prompt(text: str, servers: dict[str, list[str]]) -> str:
    """The prompt for guessing which server a step belongs to: each server with its tools' names."""
    from switchboard.llm import chat_prompt

    lines = "\n".join(f"- {server}: {', '.join(sorted(names))}" for server, names in sorted(servers.items()))
    system = "You name the tool server that can carry out the user's request. Reply with the server name only."
    return chat_prompt(system, f"Servers and their tools:\n{lines}\n\nRequest: {text}")
