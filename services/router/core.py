"""Choosing one tool and its arguments for a step. Pure logic: the model is passed in.

Order of work, each stage narrowing what the model is trusted with:
1. The filter's candidates, best first, are cut to a shortlist.
2. The model picks one name from the shortlist under a grammar, so it cannot invent a tool.
3. The pick is fused with retrieval: a pick retrieval ranks far below its top candidate is overruled,
   so a weak model never does worse than retrieval alone.
4. Arguments the words give (paths) are taken from the words; the model fills only the remaining
   required ones, under a grammar built from the tool's JSON schema.
5. A required argument that is still missing, or a value that looks copied from an example, turns the
   decision into "needs clarification" — the router never answers in prose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from switchboard.extract import extract_paths, looks_like_placeholder
from switchboard.llm import chat_prompt

SHORTLIST = 5
# A model pick must be within this many retrieval places of the top candidate to overrule it.
MAX_OVERRULE_RANK = 3
PATH_PARAMS = ("path", "source", "destination", "directory", "folder", "file", "file_path", "output_path")


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
    model: ChoiceModel,
    schema_grammar: Any = None,
    context: str = "",
) -> RouteDecision:
    """Decide the tool call for `text` among `candidates` (ranked best first).

    `schema_grammar(schema) -> str` turns a JSON schema into GBNF; without it the model fills no
    arguments and only what the words give is used.
    """
    if not candidates:
        return RouteDecision("", {}, True, "no tool matches this request; say what you want done", 0.0)
    shortlist = candidates[:SHORTLIST]
    names = [c.name for c in shortlist]
    picked = model.choose(selection_prompt(text, shortlist, context), names)
    chosen = fuse(picked, shortlist)
    arguments, missing = fill_arguments(text, chosen, model, schema_grammar, context)
    confidence = round(float(chosen.score), 4)
    if missing:
        what = ", ".join(missing)
        return RouteDecision(
            chosen.name, arguments, True, f"{chosen.name} needs {what}; the request does not say it", confidence
        )
    return RouteDecision(chosen.name, arguments, False, f"model picked {picked}", confidence)


def selection_prompt(text: str, shortlist: list[CandidateTool], context: str = "") -> str:
    """The prompt for picking a tool: the request and one line per candidate."""
    lines = "\n".join(f"- {c.name}: {first_sentence(c.description)}" for c in shortlist)
    system = "You pick the single tool that carries out the user's request. Reply with the tool name only."
    user = f"Tools:\n{lines}\n\nRequest: {text}"
    if context:
        user = f"Earlier results:\n{context}\n\n{user}"
    return chat_prompt(system, user)


def fuse(picked: str, shortlist: list[CandidateTool]) -> CandidateTool:
    """The model's pick unless retrieval ranks it too far below its own top candidate."""
    for rank, candidate in enumerate(shortlist):
        if candidate.name == picked:
            return candidate if rank < MAX_OVERRULE_RANK else shortlist[0]
    return shortlist[0]


def fill_arguments(
    text: str, tool: CandidateTool, model: ChoiceModel, schema_grammar: Any, context: str = ""
) -> tuple[dict[str, Any], list[str]]:
    """Arguments for `tool`, and the required parameters still without a trustworthy value."""
    properties: dict[str, Any] = tool.input_schema.get("properties", {})
    required: list[str] = list(tool.input_schema.get("required", []))
    arguments: dict[str, Any] = {}

    paths = iter(extract_paths(text))
    for name in properties:
        if name in PATH_PARAMS:
            value = next(paths, None)
            if value is not None:
                arguments[name] = value

    unfilled = [name for name in required if name not in arguments and name not in PATH_PARAMS]
    if unfilled and schema_grammar is not None:
        schema = {
            "type": "object",
            "properties": {name: properties[name] for name in unfilled},
            "required": unfilled,
        }
        prompt = chat_prompt(
            "You fill in the arguments of a tool call from the user's request. Reply with JSON only.",
            f"Tool: {tool.name}: {first_sentence(tool.description)}\nRequest: {text}",
        )
        try:
            generated = json.loads(model.complete(prompt, schema_grammar(schema), max_tokens=160))
        except json.JSONDecodeError:
            generated = {}
        for name in unfilled:
            if name in generated and not looks_like_placeholder(generated[name]):
                arguments[name] = generated[name]

    missing = [name for name in required if name not in arguments]
    return arguments, missing


def first_sentence(description: str) -> str:
    """The first sentence of a description: what a tool does, without the fine print."""
    head = description.strip().split("\n", 1)[0]
    return head.split(". ", 1)[0].rstrip(".")
