"""Turning a request into steps and deciding, result by result, what comes next.

Pure logic: the model is passed in as a function, Redis is the worker's business.

A plan is made twice and cross-checked: the model writes one under a grammar (each line a server and
an intent made only of the request's own words), and a deterministic splitter cuts the request at its
connectives. The model's plan is kept only when it has more steps than the splitter found and every
step reads like an instruction; a model that under-decomposes (the study's failure) loses to the
splitter. A run then moves one step at a time: the next step is emitted only when the previous result
is in, with that result summarised as context and any path or text it produced handed on as inputs.
A step "for each" item expands into one step per item once the list is known. A failed step is retried
once with the tool host's correction; a second failure, a rejection or a request for clarification ends
the run, and so does the step limit, so a run can never loop.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import replace
from typing import Any

from services.planner.context import (
    CARRIED_TEXT_TOKENS,
    STEP_CONTEXT_TOKENS,
    SessionMemory,
    clip_to_tokens,
    common_folder,
    first_sentences,
    fit_lines,
    lines_left_out,
    listed_paths,
    mentioned_paths,
    result_text,
)
from services.planner.split import Segment, split_request
from services.planner.state import (
    Done,
    PlannedStep,
    RunOutcome,
    RunState,
    StepOrder,
    StepOutcome,
    StepState,
)
from services.planner.structure import split_by_structure
from switchboard.extract import extract_paths
from switchboard.llm import chat_prompt, gbnf_literal
from switchboard.paths import is_path_key

MAX_STEPS = 12
MAX_RESULT_CHARS = 600
_WORD = re.compile(r"[a-z][a-z0-9]+")


# ---- plans ----


# How a request is cut into steps: by its parse (the default), or by the older word rules (an ablation).
SPLITTERS = ("parse", "rules")


def plan_request(
    text: str,
    verbs: Iterable[str] = (),
    server_words: dict[str, set[str]] | None = None,
    model_plan: Callable[[str], list[tuple[str, str]]] | None = None,
    splitter: str = "parse",
) -> list[PlannedStep]:
    """The steps for a request: the splitter's, or the model's when it found more real steps."""
    if splitter not in SPLITTERS:
        raise ValueError(f"unknown splitter {splitter!r}; one of {', '.join(SPLITTERS)}")
    verbs = set(verbs)
    if splitter == "parse":
        # List lines keep their breaks: they are structure the parse splitter reads.
        intent = "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
        segments = split_by_structure(intent) if intent else []
        intent = " ".join(intent.split())
    else:
        intent = " ".join(text.split())
        segments = split_request(intent, verbs) if intent else []
    if not intent:
        return []
    segments = segments or [Segment(intent, False, False)]
    if len(segments) == 1:
        # A request that is one step is routed exactly as written: its punctuation ("…?") is part of
        # what the filter's embedding reads.
        segments = [Segment(intent, segments[0].for_each, segments[0].refers_back)]
    proposed = model_plan(intent) if model_plan is not None else []
    servers = server_words or {}
    if len(proposed) > len(segments) and plausible_model_plan(proposed, verbs):
        chosen = [Segment(step_intent, *_reference_flags(step_intent)) for _, step_intent in proposed]
        hinted = [server for server, _ in proposed]
    else:
        chosen = segments
        hinted = [_aligned_server(segment.text, proposed) for segment in segments]
    steps = []
    for number, (segment, hint) in enumerate(zip(chosen, hinted, strict=True), start=1):
        server = hint or guess_server(segment.text, servers)
        steps.append(PlannedStep(number, segment.text, server, segment.for_each, segment.refers_back))
    # Not cut to `max_steps` here: the run stops at the limit and its answer names what was left.
    return steps


def _reference_flags(intent: str) -> tuple[bool, bool]:
    segment = split_request(intent)
    return (segment[0].for_each, segment[0].refers_back) if segment else (False, False)


def plausible_model_plan(steps: list[tuple[str, str]], verbs: set[str]) -> bool:
    """Whether a model's plan reads as distinct instructions (each starts with a verb, none repeats)."""
    intents = [intent.lower() for _, intent in steps]
    if len(set(intents)) != len(intents):
        return False
    return all(len(i.split()) >= 2 and i.split()[0] in verbs for i in intents)


def _aligned_server(text: str, proposed: list[tuple[str, str]]) -> str:
    """The server the model gave the step whose words overlap `text` most (none without overlap)."""
    words = set(_WORD.findall(text.lower()))
    best, best_overlap = "", 0
    for server, intent in proposed:
        overlap = len(words & set(_WORD.findall(intent.lower())))
        if overlap > best_overlap:
            best, best_overlap = server, overlap
    return best


def guess_server(text: str, server_words: dict[str, set[str]]) -> str:
    """The server whose tools' names and descriptions share the rarest words with `text` ('' if none)."""
    words = set(_WORD.findall(text.lower()))
    if not words or not server_words:
        return ""
    counts: dict[str, int] = {}
    for vocabulary in server_words.values():
        for word in vocabulary:
            counts[word] = counts.get(word, 0) + 1
    total = len(server_words)
    scores = {
        server: sum(math.log(1 + total / counts[w]) for w in words & vocabulary)
        for server, vocabulary in server_words.items()
    }
    best = max(scores, key=lambda s: scores[s])
    return best if scores[best] > 0 else ""


def vocabulary(tools: Iterable[tuple[str, str, str]]) -> tuple[dict[str, set[str]], set[str]]:
    """Per server, the words of its tools' names and descriptions; and the verbs tool names start with.

    `tools` holds (server, short name, description) triples.
    """
    words: dict[str, set[str]] = {}
    verbs: set[str] = set()
    for server, name, description in tools:
        words.setdefault(server, set()).update(_WORD.findall(f"{name.replace('_', ' ')} {description}".lower()))
        verbs.add(name.split("_", 1)[0].lower())
    return words, verbs


def plan_prompt(text: str, servers: Iterable[str]) -> str:
    """The prompt for the model's plan."""
    system = (
        "You split a request into the smallest ordered steps, one tool call each. "
        "Write one line per step: the server, a colon, then the step in the request's own words."
    )
    return chat_prompt(system, f"Servers: {', '.join(sorted(servers))}\n\nRequest: {text}")


def plan_grammar(text: str, servers: Iterable[str], max_steps: int = MAX_STEPS) -> str:
    """GBNF for a plan: up to `max_steps` lines `server: intent`, intents made of the request's words."""
    words = sorted({w.strip(",;:") for w in text.split() if w.strip(",;:")})
    server_rule = " | ".join(gbnf_literal(s) for s in sorted(servers)) or '"none"'
    word_rule = " | ".join(gbnf_literal(w) for w in words) or '"step"'
    return (
        f'root ::= step ("\\n" step){{0,{max(0, max_steps - 1)}}}\n'
        f'step ::= server ": " word (" " word){{0,24}}\n'
        f"server ::= {server_rule}\n"
        f"word ::= {word_rule}\n"
    )


def parse_model_plan(raw: str, servers: Iterable[str]) -> list[tuple[str, str]]:
    """`(server, intent)` pairs from the model's plan text; lines that do not parse are dropped."""
    known = set(servers)
    steps = []
    for line in raw.splitlines():
        server, _, intent = line.partition(": ")
        if server.strip() in known and intent.strip():
            steps.append((server.strip(), intent.strip()))
    return steps


# ---- running ----


def start_run(text: str, session_id: str, dry_run: bool, plan: list[PlannedStep], history: SessionMemory) -> RunState:
    return RunState(text=text, session_id=session_id, dry_run=dry_run, plan=plan, history=history)


def record(state: RunState, outcome: StepOutcome) -> None:
    """Keep a step's result; a second copy of the same result changes nothing."""
    state.outcomes.setdefault(outcome.number, outcome)


def advance(state: RunState, max_steps: int = MAX_STEPS) -> StepOrder | Done | None:
    """The next step to emit, that the run is done, or None while the last step's result is not in."""
    if not state.plan:
        return finish(state)
    if state.orders:
        last = state.orders[-1]
        outcome = state.outcomes.get(last.number)
        if outcome is None:
            return None
        if outcome.state is StepState.FAILED:
            if last.attempt == 1 and outcome.failure not in NOT_RETRIED:
                return _emit(state, retry_order(state, last, outcome), max_steps)
            return finish(state)
        if outcome.state is StepState.REJECTED:
            return finish(state)
        if outcome.state is StepState.NEEDS_CLARIFICATION and not state.dry_run:
            # A dry run is a preview of the whole plan: it goes on, so it shows every step that would
            # need more from the person. A real run cannot: later steps may depend on this one.
            return finish(state)
    while True:
        if state.pending:
            return _emit(state, state.pending.pop(0), max_steps)
        if state.cursor >= len(state.plan):
            return finish(state)
        step = state.plan[state.cursor]
        state.cursor += 1
        order = StepOrder(0, step.number, step.intent, step.server)
        if not step.for_each:
            return _emit(state, order, max_steps)
        items = latest_items(state)
        if items is None:  # nothing listed items (a dry run, or no list came back): one step as planned
            return _emit(state, order, max_steps)
        if not items:
            state.notes.append(f"Skipped “{step.intent}”: the step before it found nothing to apply it to.")
            continue
        state.pending = [StepOrder(0, step.number, step.intent, step.server, item=item) for item in items]


def _emit(state: RunState, order: StepOrder, max_steps: int) -> StepOrder | Done:
    if len(state.orders) >= max_steps:
        left = len(state.pending) + 1 + sum(1 for _ in state.plan[state.cursor :])
        state.notes.append(
            f"Stopped after {max_steps} steps, the most one request may take; {left} more were not run. "
            "Ask again for the rest."
        )
        state.pending.clear()
        state.cursor = len(state.plan)
        return replace(finish(state), cut_short=left)
    order.number = len(state.orders) + 1
    order.context = order.context or step_context(state, order)
    order.inputs = order.inputs or step_inputs(state, order)
    state.orders.append(order)
    return order


# Failures a second attempt cannot mend: the same call again with nothing changed; a refused approval.
NOT_RETRIED = frozenset({"repeated_call", "approval_refused", "interrupted"})


def retry_order(state: RunState, failed: StepOrder, outcome: StepOutcome) -> StepOrder:
    """The failed step again, corrected with the tool's structured correction: a path it suggests
    replaces the one that failed (in the words too), another value it suggests is set on the call, and
    its words go into the context."""
    intent = failed.intent
    inputs = dict(failed.inputs)
    parameter = outcome.correction.get("parameter", "")
    value = outcome.correction.get("suggested_value")
    if parameter and value is not None:
        if is_path_key(parameter) and isinstance(value, str):
            wrong = [p for p in mentioned_paths(outcome.arguments) if p != value]
            replaced = next((p for p in wrong if p in intent), None)
            if replaced:
                intent = intent.replace(replaced, value)
            inputs["paths"] = [value, *[p for p in inputs.get("paths", []) if p != value]]
        else:
            inputs["arguments"] = {**outcome.arguments, parameter: value}
    correction = f"Correction: {outcome.tool or 'the call'} failed: {outcome.error}"
    return StepOrder(
        0,
        failed.plan_number,
        intent,
        failed.server,
        item=failed.item,
        attempt=failed.attempt + 1,
        context=fit_lines([correction, failed.context], STEP_CONTEXT_TOKENS),
        inputs=inputs,
    )


def latest_items(state: RunState) -> list[str] | None:
    """The paths the latest step that listed things found, or None if no step listed anything."""
    for order in reversed(state.orders):
        outcome = state.outcomes.get(order.number)
        if outcome is None or outcome.state is not StepState.SUCCEEDED:
            continue
        if _lists_things(outcome.content):
            return listed_paths(outcome.content)
    return None


def _lists_things(content: Any) -> bool:
    if isinstance(content, list):
        return all(isinstance(item, dict) for item in content)
    if isinstance(content, dict):
        return any(isinstance(v, list) and all(isinstance(i, dict) for i in v) for v in content.values())
    return False


def step_context(state: RunState, order: StepOrder) -> str:
    """Earlier results this step may depend on, latest first, then the session's history, in budget."""
    return fit_lines(step_context_lines(state, order), STEP_CONTEXT_TOKENS)


def step_context_lines(state: RunState, order: StepOrder) -> list[str]:
    """Everything a step's context could hold, most relevant first (`step_context` keeps what fits)."""
    lines = []
    if order.item:
        lines.append(f"This step is about {order.item}.")
    for earlier in reversed(state.orders):
        outcome = state.outcomes.get(earlier.number)
        if outcome is not None:
            lines.append(f"Step {earlier.number} ({earlier.intent}): {summarise_step(outcome)}")
    lines.extend(state.history.context_lines())
    return lines


def context_left_out(state: RunState, order: StepOrder) -> int:
    """How many lines of earlier work (results, the session's turns) `step_context` left out of the
    step's context to keep it within budget (FM-12: context eviction); 0 for a retry, whose context is
    the correction and the failed attempt's."""
    if order.attempt > 1:
        return 0
    return lines_left_out(step_context_lines(state, order), STEP_CONTEXT_TOKENS)


def step_inputs(state: RunState, order: StepOrder) -> dict[str, Any]:
    """Values from earlier results the router may use for arguments the step's words do not give."""
    paths: list[str] = [order.item] if order.item else []
    for earlier in reversed(state.orders):
        outcome = state.outcomes.get(earlier.number)
        if outcome is None or outcome.state not in (StepState.SUCCEEDED, StepState.SKIPPED):
            continue
        found = listed_paths(outcome.content) or mentioned_paths(outcome.content) or mentioned_paths(outcome.arguments)
        paths.extend(p for p in found if p not in paths)
    paths.extend(p for p in state.history.subjects() if p not in paths)
    inputs: dict[str, Any] = {}
    if paths:
        inputs["paths"] = paths[:20]
    text = carried_text(state)
    if text:
        inputs["text"] = text
    folder = common_folder(extract_paths(state.text)) or common_folder(paths[:1])
    if folder:
        inputs["base_dir"] = folder
    return inputs


def carried_text(state: RunState) -> str:
    """A digest of the text earlier steps produced, for a step that saves or sends it: for each
    result with text, where it came from and its first sentences."""
    parts = []
    for order in state.orders:
        outcome = state.outcomes.get(order.number)
        if outcome is None or outcome.state is not StepState.SUCCEEDED:
            continue
        text = result_text(outcome.content)
        if not text.strip():
            continue
        source = (mentioned_paths(outcome.content) or mentioned_paths(outcome.arguments) or [outcome.tool])[0]
        parts.append(f"## {source.rsplit('/', 1)[-1]}\n\n{first_sentences(text, 400)}")
    if not parts and state.history.latest_text():
        parts.append(state.history.latest_text())
    if not parts:
        return ""
    return clip_to_tokens("# Summary\n\n" + "\n\n".join(parts) + "\n", CARRIED_TEXT_TOKENS)


def summarise_step(outcome: StepOutcome) -> str:
    """One line on what a step did, for the next step's context. Tool names are left out: a small
    model choosing the next tool copies a name it sees in its prompt."""
    given = format_arguments(outcome.arguments)
    if outcome.state is StepState.SUCCEEDED:
        return f"given {given or 'nothing'} → {summarise_content(outcome.content)}"
    if outcome.state is StepState.SKIPPED:
        return f"given {given or 'nothing'} (dry run, not executed)"
    return f"{outcome.state.value}: {outcome.error}"


def format_arguments(arguments: dict[str, Any]) -> str:
    shown = []
    for key, value in arguments.items():
        text = json.dumps(value, ensure_ascii=False)
        shown.append(f"{key}={text if len(text) <= 80 else text[:77] + '…'}")
    return ", ".join(shown)


def summarise_content(content: Any) -> str:
    """A short, faithful account of a tool's output: names when it lists things, else compact JSON."""
    names = _listed_names(content)
    if names is not None:
        if not names:
            return "found nothing."
        shown = ", ".join(names[:50])
        more = f" and {len(names) - 50} more" if len(names) > 50 else ""
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


def finish(state: RunState) -> Done:
    """How the run ends, judged from its records: the last step decides a failure; a step that
    needs more, or one a person rejected, decides the rest."""
    if not state.plan:
        return Done(RunOutcome.NEEDS_CLARIFICATION)
    states = [state.outcomes[o.number].state for o in state.orders if o.number in state.outcomes]
    if states and states[-1] is StepState.FAILED:
        return Done(RunOutcome.FAILED)
    if StepState.NEEDS_CLARIFICATION in states:
        return Done(RunOutcome.NEEDS_CLARIFICATION)
    if StepState.REJECTED in states:
        return Done(RunOutcome.REFUSED)
    return Done(RunOutcome.ANSWERED)
