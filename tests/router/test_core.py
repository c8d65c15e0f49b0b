"""The router's decisions with a scripted stand-in for the model (pure logic only)."""

from __future__ import annotations

import json

from services.router.core import CandidateTool, fuse, route

LIST = CandidateTool(
    "filesystem.list_dir",
    "List what a folder contains.",
    0.61,
    {"properties": {"path": {"type": "string"}, "recursive": {"type": "boolean"}}, "required": ["path"]},
)
SEARCH = CandidateTool(
    "filesystem.search_files",
    "Find files by name pattern.",
    0.55,
    {"properties": {"path": {"type": "string"}, "pattern": {"type": "string"}}, "required": ["path", "pattern"]},
)
OTHERS = [CandidateTool(f"x.t{i}", "other", 0.1 - i / 100) for i in range(4)]


class ScriptedModel:
    """Answers `choose` with a fixed pick and `complete` with fixed JSON; records what it was asked."""

    def __init__(self, pick: str, completion: dict | None = None) -> None:
        self.pick = pick
        self.completion = completion or {}
        self.prompts: list[str] = []

    def choose(self, prompt: str, options: list[str]) -> str:
        self.prompts.append(prompt)
        assert self.pick in options or self.pick == "", "the router must only offer candidates"
        return self.pick

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str:
        return json.dumps(self.completion)


def test_path_comes_from_the_words_not_the_model() -> None:
    model = ScriptedModel("filesystem.list_dir", {"path": "/path/to/dir"})
    decision = route("List the files in /srv/reports", [LIST, SEARCH], model, schema_grammar=lambda s: "")
    assert decision.tool == "filesystem.list_dir"
    assert decision.arguments == {"path": "/srv/reports"}
    assert not decision.needs_clarification


def test_missing_required_argument_asks_for_clarification() -> None:
    decision = route("list my files", [LIST], ScriptedModel("filesystem.list_dir"), schema_grammar=None)
    assert decision.needs_clarification
    assert "path" in decision.reason


def test_placeholder_from_the_model_is_not_accepted() -> None:
    model = ScriptedModel("filesystem.search_files", {"pattern": "<pattern>"})
    decision = route("search /srv for it", [SEARCH, LIST], model, schema_grammar=lambda s: "")
    assert decision.needs_clarification
    assert "pattern" in decision.reason


def test_model_fills_a_non_path_argument() -> None:
    model = ScriptedModel("filesystem.search_files", {"pattern": "*.pdf"})
    decision = route("find pdfs under /srv", [SEARCH, LIST], model, schema_grammar=lambda s: "")
    assert decision.arguments == {"path": "/srv", "pattern": "*.pdf"}


def test_fusion_overrules_a_pick_ranked_too_low() -> None:
    shortlist = [LIST, SEARCH, *OTHERS]
    assert fuse("filesystem.search_files", shortlist) is SEARCH
    assert fuse("x.t3", shortlist) is LIST


def test_no_candidates_means_clarification() -> None:
    decision = route("do the thing", [], ScriptedModel(""))
    assert decision.needs_clarification and decision.tool == ""
