"""The encoder's training data: templates that cover every tool, slots that fill, a seeded generator."""

from __future__ import annotations

import random
import re

import pytest

from services.filter import train
from services.toolhost.catalogue import read_catalogue
from switchboard.errors import ConfigurationError

SLOTS = {"folder": ["~/Documents", "my Downloads folder"], "pdf": ["a.pdf"], "ref": ["it"]}


def test_fill_replaces_every_slot_from_its_pool() -> None:
    text = train.fill("merge {pdf} into {folder}", SLOTS, random.Random(1))
    assert text.startswith("merge a.pdf into ") and text.split(" into ")[1] in SLOTS["folder"]


def test_an_unknown_slot_is_a_clear_error() -> None:
    with pytest.raises(ConfigurationError, match=r"\{person\}"):
        train.fill("ask {person}", SLOTS, random.Random(1))


def test_framing_lowers_a_capitalised_first_word_only() -> None:
    assert train.decapitalise("Show me the files") == "show me the files"
    assert train.decapitalise("OCR this scan") == "OCR this scan"
    assert train.decapitalise("~/notes first") == "~/notes first"


def test_generation_is_seeded_and_keeps_held_out_templates_apart() -> None:
    templates = {f"s.tool{i}": [f"do thing {j} for {{folder}}" for j in range(40)] for i in range(3)}
    first = train.generate(templates, ["tell me a joke"], {}, SLOTS, ["please {r}"], seed=7)
    again = train.generate(templates, ["tell me a joke"], {}, SLOTS, ["please {r}"], seed=7)
    assert first == again
    trained, held = first
    assert held and trained
    # A held-out request comes from a template no training request came from.
    stem = re.compile(r"do thing (\d+)")
    held_templates = {(e.tool, stem.search(e.text).group(1)) for e in held if e.tool}  # type: ignore[union-attr]
    trained_templates = {(e.tool, stem.search(e.text).group(1)) for e in trained if e.tool}  # type: ignore[union-attr]
    assert not held_templates & trained_templates


async def test_the_templates_cover_every_tool_and_use_only_known_slots() -> None:
    templates = train.load_templates()
    slots = train.load_yaml(train.TRAINING_DIR / "slots.yaml")
    tools = {spec.name for spec in await read_catalogue()}
    assert set(templates) == tools
    for tool, texts in templates.items():
        assert len(texts) >= 25, tool
        for text in texts:
            assert set(re.findall(r"\{([a-z]+)\}", text)) <= set(slots), (tool, text)


def test_requests_no_tool_serves_are_there_to_calibrate_against() -> None:
    assert len(train.load_yaml(train.TRAINING_DIR / "no-tool.yaml")["requests"]) >= 100
