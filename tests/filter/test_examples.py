"""The example requests the filter embeds per tool: one entry per benchmark tool, none shared."""

from pathlib import Path

import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parents[2] / "services" / "filter" / "examples.yaml"
CONTRACT = Path(__file__).resolve().parents[3] / "shared" / "tool-contract.yaml"
MIN_EXAMPLES = 6


@pytest.fixture(scope="module")
def examples() -> dict[str, list[str]]:
    loaded = yaml.safe_load(EXAMPLES.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def benchmark_tools() -> set[str]:
    tools = yaml.safe_load(CONTRACT.read_text(encoding="utf-8"))["tools"]
    return {name for name, spec in tools.items() if spec.get("in_benchmark_surface")}


def normalise(example: str) -> str:
    return " ".join(example.lower().split())


def test_covers_exactly_the_benchmark_surface(examples: dict[str, list[str]], benchmark_tools: set[str]) -> None:
    assert len(benchmark_tools) == 67
    assert set(examples) == benchmark_tools


def test_every_tool_has_enough_examples(examples: dict[str, list[str]]) -> None:
    too_few = {tool: len(items or []) for tool, items in examples.items() if len(items or []) < MIN_EXAMPLES}
    assert not too_few


def test_no_example_is_empty(examples: dict[str, list[str]]) -> None:
    for tool, items in examples.items():
        assert isinstance(items, list), tool
        for item in items:
            assert isinstance(item, str) and item.strip(), f"{tool}: {item!r}"


def test_no_example_is_shared(examples: dict[str, list[str]]) -> None:
    owner: dict[str, str] = {}
    clashes = []
    for tool, items in examples.items():
        for item in items:
            key = normalise(str(item))
            if key in owner:
                clashes.append((item, owner[key], tool))
            owner.setdefault(key, tool)
    assert not clashes
