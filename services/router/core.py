"""Choosing one tool and its arguments for a step. Pure logic: the model is passed in.

Order of work, each stage narrowing what the model is trusted with:
1. The filter's fused ranking decides when it is clear: if the best candidate leads the next by at
   least `CONFIDENT_MARGIN`, it is chosen without asking the model (fast, and never worse than retrieval).
2. Otherwise the model picks among the near-tied candidates only, under a grammar over their names, so
   it cannot invent a tool and cannot pick one retrieval ranked far below.
3. Arguments the words give (paths, e-mail addresses, dates, quoted text, file types) are taken from
   the words; the model fills only the remaining required ones, under a grammar built from the tool's
   JSON schema, and a value that looks copied from an example is rejected.
4. A required argument that is still missing turns the decision into "needs clarification" — the
   router never answers in prose.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard.extract import (
    extract_dates,
    extract_emails,
    extract_file_pattern,
    extract_paths,
    extract_quoted,
    looks_like_placeholder,
)
from switchboard.llm import chat_prompt

log = logging.getLogger(__name__)

# The lead over the runner-up at which retrieval decides alone (fused scores, 0..1).
CONFIDENT_MARGIN = 0.04
# At most this many near-tied candidates are put to the model.
TIE_SET = 3
# Without fusion (an ablation), the model picks among this many of the best candidates.
SHORTLIST = 5
PATH_PARAMS = ("path", "source", "destination", "directory", "folder", "file", "file_path", "output_path", "input_path")
EMAIL_PARAMS = ("to", "recipients", "recipient", "email", "attendees", "cc", "bcc")
DATE_PARAMS = ("date", "start", "end", "start_date", "end_date", "due_date", "start_time", "end_time", "when")
TEXT_PARAMS = ("title", "subject", "content", "text", "body", "name", "description", "query", "question")
QUERY_PARAMS = ("query", "question")


class ChoiceModel(Protocol):
    """What the router needs from a language model."""

    def choose(self, prompt: str, options: list[str]) -> str: ...

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str: ...


@dataclass(frozen=True)
class CandidateTool:
    """A tool the filter proposed for this step."""

    name: str
    description: str
    score: float
    input_schema: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RouteDecision:
    """The router's output: a tool with arguments, or why none can be called yet."""

    tool: str
    arguments: dict[str, Any]
    needs_clarification: bool
    reason: str
    confidence: float


def route(
    text: str,
    candidates: list[CandidateTool],
    model: ChoiceModel | None,
    schema_grammar: Any = None,
    context: str = "",
    fusion: bool = True,
) -> RouteDecision:
    """Decide the tool call for `text` among `candidates` (ranked best first).

    With `model` None the router is retrieval alone; with `fusion` off the model picks among the best
    `SHORTLIST` candidates whatever retrieval's margin (both for ablations). `schema_grammar(schema)`
    turns a JSON schema into GBNF; without it the model fills no arguments.
    """
    if not candidates:
        return RouteDecision("", {}, True, "no tool matches this request; say what you want done", 0.0)
    chosen, how = choose_tool(text, candidates, model, context, fusion)
    arguments, missing = fill_arguments(text, chosen, model, schema_grammar, context)
    confidence = round(float(chosen.score), 4)
    if missing:
        what = ", ".join(missing)
        return RouteDecision(
            chosen.name, arguments, True, f"{chosen.name} needs {what}; the request does not say it", confidence
        )
    return RouteDecision(chosen.name, arguments, False, how, confidence)


def tie_set(candidates: list[CandidateTool]) -> list[CandidateTool]:
    """The candidates within `CONFIDENT_MARGIN` of the best one (the best first), at most `TIE_SET`."""
    top = candidates[0].score
    return [c for c in candidates[:TIE_SET] if top - c.score < CONFIDENT_MARGIN]


def choose_tool(
    text: str, candidates: list[CandidateTool], model: ChoiceModel | None, context: str = "", fusion: bool = True
) -> tuple[CandidateTool, str]:
    """The tool to call, and how it was decided."""
    close = tie_set(candidates) if fusion else candidates[:SHORTLIST]
    if len(close) == 1 or model is None:
        return candidates[0], "retrieval"
    picked = model.choose(selection_prompt(text, close, context), [c.name for c in close])
    chosen = next((c for c in close if c.name == picked), close[0])
    return chosen, f"model, among {len(close)} near-tied candidates"


def selection_prompt(text: str, shortlist: list[CandidateTool], context: str = "") -> str:
    """The prompt for picking a tool: the request and one line per candidate."""
    lines = "\n".join(f"- {c.name}: {first_sentence(c.description)}" for c in shortlist)
    system = "You pick the single tool that carries out the user's request. Reply with the tool name only."
    user = f"Tools:\n{lines}\n\nRequest: {text}"
    if context:
        user = f"Earlier results:\n{context}\n\n{user}"
    return chat_prompt(system, user)


def fill_arguments(
    text: str, tool: CandidateTool, model: ChoiceModel | None, schema_grammar: Any, context: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """Arguments for `tool`, and the required parameters still without a trustworthy value."""
    properties: dict[str, Any] = tool.input_schema.get("properties", {})
    required: list[str] = list(tool.input_schema.get("required", []))
    arguments: dict[str, Any] = {}
    # Paths from the request first; a step that refers back ("encrypt it") finds them in the context.
    paths = extract_paths(text) or extract_paths(context)
    emails, dates, quoted = extract_emails(text), extract_dates(text), extract_quoted(text)
    pattern = extract_file_pattern(text)

    path_names = [name for name in properties if is_path_param(name, properties[name])]
    for name, value in zip(path_names, paths, strict=False):
        arguments[name] = value
    for name, schema in properties.items():
        if name in arguments:
            continue
        if name in EMAIL_PARAMS and emails:
            arguments[name] = emails if schema.get("type") == "array" else emails[0]
        elif name in DATE_PARAMS and dates:
            arguments[name] = dates.pop(0)
        elif name == "pattern" and pattern:
            arguments[name] = pattern
        elif name in TEXT_PARAMS and quoted:
            arguments[name] = quoted.pop(0)
        elif name in QUERY_PARAMS and name in required:
            arguments[name] = text

    unfilled = [name for name in required if name not in arguments and name not in path_names]
    if unfilled and model is not None and schema_grammar is not None:
        generated = generate_arguments(text, tool, unfilled, properties, model, schema_grammar)
        for name in unfilled:
            if name in generated and not looks_like_placeholder(generated[name]):
                arguments[name] = generated[name]

    missing = [name for name in required if name not in arguments]
    return arguments, missing


def generate_arguments(
    text: str,
    tool: CandidateTool,
    names: list[str],
    properties: dict[str, Any],
    model: ChoiceModel,
    schema_grammar: Any,
) -> dict[str, Any]:
    """The model's values for `names`, under a grammar that only admits JSON of the right shape."""
    schema: dict[str, Any] = {
        "type": "object",
        "properties": {name: properties[name] for name in names},
        "required": names,
    }
    for definitions in ("$defs", "definitions"):  # parameters may refer to shared definitions
        if definitions in tool.input_schema:
            schema[definitions] = tool.input_schema[definitions]
    prompt = chat_prompt(
        "You fill in the arguments of a tool call from the user's request. Reply with JSON only.",
        f"Tool: {tool.name}: {first_sentence(tool.description)}\nRequest: {text}",
    )
    try:
        grammar = schema_grammar(schema)
    except (AssertionError, ValueError, KeyError) as exc:  # llama.cpp's converter rejects some schemas
        log.warning("no argument grammar for %s: %s", tool.name, exc)
        return {}
    try:
        generated = json.loads(model.complete(prompt, grammar, max_tokens=96))
    except json.JSONDecodeError:
        return {}
    return generated if isinstance(generated, dict) else {}


def is_path_param(name: str, schema: dict[str, Any]) -> bool:
    """True for a parameter that names a file or folder."""
    return schema.get("type", "string") == "string" and (name in PATH_PARAMS or name.endswith("_path"))


def first_sentence(description: str) -> str:
    """The first sentence of a description: what a tool does, without the fine print."""
    head = description.strip().split("\n", 1)[0]
    return head.split(". ", 1)[0].rstrip(".")
