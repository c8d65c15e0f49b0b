"""The project's own benchmark suites in bench/suites: well formed, and routed over the real tool surface.

The suites were written by people who saw only the tool contract and the suite formats, then split into a
dev half (to build with) and a frozen test half by `bench/split_suite.py`. Together the halves must meet
the minimum sizes, name only the 67 benchmark tools of the shared contract, and give every one of those
tools at least two single-step prompts; both halves must cover every server and every category. These
tests check the form of the cases only; what the test half says is read by `sb bench` alone.
"""

from __future__ import annotations

import json
from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "bench" / "suites"
CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "tool-contract.yaml"

KINDS = ("single", "chain", "edge", "args", "compound")
HALVES = ("dev", "test")
FILES = [f"{kind}-{half}.json" for kind in KINDS for half in HALVES]
MINIMUM = {"single": 300, "chain": 80, "edge": 60, "args": 100, "compound": 80}
BEHAVIORS = {"clarify", "refuse", "fallback", "suggest_alternative"}
DIFFICULTIES = {"easy", "medium", "hard"}

REQUIRED = {
    "single": {"id", "category", "prompt", "expectedTools"},
    "chain": {"id", "category", "scenario", "steps"},
    "edge": {"id", "category", "prompt", "expectedBehavior"},
    "args": {"id", "category", "prompt", "expectedTool", "expectedParams"},
    "compound": {"id", "category", "prompt", "steps"},
}
ALLOWED = {
    "single": REQUIRED["single"] | {"context", "expectedParamKeys", "difficulty"},
    "chain": REQUIRED["chain"] | {"difficulty"},
    "edge": REQUIRED["edge"] | {"expectedTools"},
    "args": REQUIRED["args"],
    "compound": REQUIRED["compound"],
}


@cache
def contract_params() -> dict[str, frozenset[str]]:
    """The benchmark tools of the shared contract, each with its parameter names."""
    tools = yaml.safe_load(CONTRACT.read_text())["tools"]
    return {
        name: frozenset((spec.get("params") or {}).keys())
        for name, spec in tools.items()
        if spec.get("in_benchmark_surface")
    }


@cache
def load(name: str) -> list[dict[str, Any]]:
    return json.loads((SUITES / name).read_text())


def suite(kind: str) -> list[dict[str, Any]]:
    return [row for half in HALVES for row in load(f"{kind}-{half}.json")]


def tools_of(kind: str, row: dict[str, Any]) -> list[str]:
    if kind in ("chain", "compound"):
        return [tool for step in row["steps"] for tool in step["expectedTools"]]
    return list(row.get("expectedTools", []))


def is_text(value: Any) -> bool:
    return isinstance(value, str) and value.strip() != ""


def test_contract_has_67_benchmark_tools_on_13_servers() -> None:
    tools = contract_params()
    assert len(tools) == 67
    assert len({name.split(".")[0] for name in tools}) == 13


@pytest.mark.parametrize("name", FILES)
def test_file_parses_as_a_list_of_objects(name: str) -> None:
    rows = load(name)
    assert isinstance(rows, list) and rows
    assert all(isinstance(row, dict) for row in rows)


@pytest.mark.parametrize("name", FILES)
def test_rows_have_the_required_keys_and_no_others(name: str) -> None:
    kind = name.split("-")[0]
    for row in load(name):
        assert REQUIRED[kind] <= row.keys(), (row.get("id"), REQUIRED[kind] - row.keys())
        assert row.keys() <= ALLOWED[kind], (row["id"], row.keys() - ALLOWED[kind])
        assert is_text(row["id"]) and is_text(row["category"])
        if "difficulty" in row:
            assert row["difficulty"] in DIFFICULTIES, row["id"]


def test_ids_are_unique_across_all_files() -> None:
    counts = Counter(row["id"] for name in FILES for row in load(name))
    assert [i for i, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("kind", KINDS)
def test_ids_use_the_kind_prefix(kind: str) -> None:
    prefixes = {"single": ("sa-", "sb-"), "chain": ("ch-",), "edge": ("ed-",), "args": ("ar-",), "compound": ("cp-",)}[
        kind
    ]
    assert all(row["id"].startswith(prefixes) for row in suite(kind))


@pytest.mark.parametrize("kind", KINDS)
def test_suite_meets_its_minimum_size(kind: str) -> None:
    assert len(suite(kind)) >= MINIMUM[kind]


@pytest.mark.parametrize("kind", KINDS)
def test_every_expected_tool_is_a_contract_tool(kind: str) -> None:
    known = contract_params()
    unknown = {(row["id"], tool) for row in suite(kind) for tool in tools_of(kind, row) if tool not in known}
    assert unknown == set()


def test_single_rows_are_well_formed() -> None:
    for row in suite("single"):
        assert is_text(row["prompt"]), row["id"]
        tools = row["expectedTools"]
        assert isinstance(tools, list) and tools and len(set(tools)) == len(tools), row["id"]
        if "context" in row:
            context = row["context"]
            assert isinstance(context, list) and context, row["id"]
            assert all(is_text(line) for line in context), row["id"]


def test_every_contract_tool_has_at_least_two_single_step_prompts() -> None:
    counts = Counter(tool for row in suite("single") for tool in row["expectedTools"])
    assert {tool: counts[tool] for tool in contract_params() if counts[tool] < 2} == {}


def test_expected_param_keys_are_real_params_of_expected_tools() -> None:
    params = contract_params()
    with_keys = 0
    for row in suite("single"):
        if "expectedParamKeys" not in row:
            continue
        with_keys += 1
        keys = row["expectedParamKeys"]
        assert isinstance(keys, dict) and keys, row["id"]
        for tool, names in keys.items():
            assert tool in row["expectedTools"], (row["id"], tool)
            assert isinstance(names, list), (row["id"], tool)  # empty for a tool that takes nothing
            assert len(set(names)) == len(names), (row["id"], tool)
            assert set(names) <= params[tool], (row["id"], tool, set(names) - params[tool])
    assert with_keys >= 60


def test_context_dependent_and_sibling_prompts_are_present() -> None:
    rows = suite("single")
    assert sum("context" in row for row in rows) >= 20
    for tool in (
        "filesystem.move_file",
        "filesystem.copy_file",
        "calendar.list_events",
        "calendar.find_free_slots",
        "email.draft_email",
        "email.send_draft",
        "security.scan_for_pii",
        "security.scan_for_secrets",
        "document.extract_text",
        "ocr.extract_text_from_pdf",
        "filesystem.read_file",
    ):
        assert any(row["expectedTools"] == [tool] for row in rows), tool


def test_chains_have_three_to_seven_well_formed_steps() -> None:
    for row in suite("chain"):
        assert is_text(row["scenario"]), row["id"]
        steps = row["steps"]
        assert isinstance(steps, list) and 3 <= len(steps) <= 7, row["id"]
        for step in steps:
            assert {"prompt", "expectedTools"} <= step.keys() <= {"description", "prompt", "expectedTools"}, row["id"]
            assert is_text(step["prompt"]), row["id"]
            assert isinstance(step["expectedTools"], list) and step["expectedTools"], row["id"]


def test_compound_requests_are_one_prompt_of_two_to_four_steps() -> None:
    for row in suite("compound"):
        assert is_text(row["prompt"]), row["id"]
        steps = row["steps"]
        assert isinstance(steps, list) and 2 <= len(steps) <= 4, row["id"]
        for step in steps:
            assert {"expectedTools"} <= step.keys() <= {"description", "expectedTools"}, row["id"]
            assert isinstance(step["expectedTools"], list) and step["expectedTools"], row["id"]


def test_chains_cross_servers() -> None:
    crossing = [row for row in suite("chain") if len({t.split(".")[0] for t in tools_of("chain", row)}) >= 2]
    assert len(crossing) >= len(suite("chain")) * 3 // 4


def test_edge_behaviors_are_valid_and_all_used() -> None:
    rows = suite("edge")
    for row in rows:
        assert is_text(row["prompt"]), row["id"]
        assert row["expectedBehavior"] in BEHAVIORS, row["id"]
        if "expectedTools" in row:
            assert isinstance(row["expectedTools"], list) and row["expectedTools"], row["id"]
        if row["expectedBehavior"] == "fallback":
            assert row.get("expectedTools"), row["id"]
    assert {row["expectedBehavior"] for row in rows} == BEHAVIORS


@pytest.mark.parametrize("kind", KINDS)
def test_halves_cover_every_category_and_are_balanced(kind: str) -> None:
    dev, test = (load(f"{kind}-{half}.json") for half in HALVES)
    assert {row["category"] for row in dev} == {row["category"] for row in test}
    assert abs(len(dev) - len(test)) <= max(2, (len(dev) + len(test)) // 10)


@pytest.mark.parametrize("kind", ("single", "chain"))
@pytest.mark.parametrize("half", HALVES)
def test_each_half_covers_all_13_servers(kind: str, half: str) -> None:
    servers = {tool.split(".")[0] for row in load(f"{kind}-{half}.json") for tool in tools_of(kind, row)}
    assert servers == {tool.split(".")[0] for tool in contract_params()}


def test_argument_cases_name_real_parameters_with_values() -> None:
    params = contract_params()
    for row in suite("args"):
        assert row["expectedTool"] in params, row["id"]
        expected = row["expectedParams"]
        assert isinstance(expected, dict) and expected, row["id"]
        assert set(expected) <= params[row["expectedTool"]], (row["id"], set(expected) - params[row["expectedTool"]])
        assert all(isinstance(v, str | int | float | bool | list | dict) for v in expected.values()), row["id"]


@pytest.mark.parametrize("half", HALVES)
def test_each_edge_half_uses_every_behavior(half: str) -> None:
    assert {row["expectedBehavior"] for row in load(f"edge-{half}.json")} == BEHAVIORS


def test_standalone_prompts_are_not_repeated() -> None:
    """Single and edge prompts are all distinct (chains may reuse short follow-ups such as "Send it.")."""
    counts = Counter(row["prompt"].strip().lower() for kind in ("single", "edge") for row in suite(kind))
    assert [prompt for prompt, n in counts.items() if n > 1] == []
