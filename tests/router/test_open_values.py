"""No invented argument: dates in each tool's own format, well-known folders, values copied from the
words under a grammar, and a required value nothing gives left open on a step that names its tool.

The catalogue is the tool host's real one, and the grammar test runs the real GGUF model.
"""

from __future__ import annotations

import asyncio
import json
import re
from datetime import datetime
from functools import cache
from typing import Any

import pytest

from services.router.app import schema_grammar
from services.router.core import (
    DATE_PAIRS,
    CandidateTool,
    copy_arguments,
    copy_grammar,
    date_format,
    fill_arguments,
    route,
)
from services.toolhost.catalogue import read_catalogue
from switchboard.llm import LocalModel, chat_prompt
from switchboard.reading import WELL_KNOWN_FOLDERS, Reading
from switchboard.settings import default_llm_path

NOW = datetime(2026, 11, 30, 14, 20)  # a Monday
DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MOMENT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}$")


@cache
def catalogue() -> dict[str, CandidateTool]:
    specs = asyncio.run(read_catalogue())
    return {s.name: CandidateTool(s.name, s.description, 0.9, s.input_schema) for s in specs}


def date_parameters() -> list[tuple[str, str, str]]:
    found = []
    for name, tool in catalogue().items():
        for parameter, schema in tool.input_schema.get("properties", {}).items():
            kind = date_format(parameter, schema)
            if kind:
                found.append((name, parameter, kind))
    return found


def test_the_catalogue_has_date_parameters_of_both_kinds() -> None:
    found = {(tool, parameter): kind for tool, parameter, kind in date_parameters()}
    assert found[("calendar.create_event", "start")] == "moment"
    assert found[("audit.get_tool_log", "start_time")] == "moment"
    assert found[("task.create_task", "due_date")] == "day"
    assert found[("calendar.find_free_slots", "date")] == "day"
    assert ("calendar.create_time_block", "preferred_time") not in found  # "morning", not a date


@pytest.mark.parametrize(("tool", "parameter", "kind"), date_parameters())
def test_a_relative_date_is_written_in_each_tools_format(tool: str, parameter: str, kind: str) -> None:
    candidate = catalogue()[tool]
    text = "do it the day after tomorrow from 4:30pm to 6pm"
    arguments, _ = fill_arguments(text, candidate, None, None, reading=Reading.of(text, NOW))
    ends = {end for _, end in DATE_PAIRS}
    expected = "2026-12-02" if kind == "day" else "2026-12-02T18:00:00" if parameter in ends else "2026-12-02T16:30:00"
    assert arguments[parameter] == expected
    assert (MOMENT if kind == "moment" else DAY).match(arguments[parameter])


def test_a_moment_without_a_time_said_stays_a_day_and_no_date_is_made_up() -> None:
    event = catalogue()["calendar.create_event"]
    text = "put Dentist on my calendar next Friday"
    arguments, missing = fill_arguments(text, event, None, None, reading=Reading.of(text, NOW))
    assert arguments["start"] == "2026-12-04" and "end" not in arguments
    arguments, missing = fill_arguments("put Dentist on my calendar", event, None, None)
    assert "start" not in arguments and {"start", "end"} <= set(missing)


@pytest.mark.parametrize("folder", sorted(n for n in WELL_KNOWN_FOLDERS if n != "home"))
def test_each_well_known_folder_fills_a_path(folder: str) -> None:
    listing = catalogue()["filesystem.list_dir"]
    arguments, missing = fill_arguments(f"what's in my {folder} folder?", listing, None, None)
    assert arguments["path"] == WELL_KNOWN_FOLDERS[folder] and missing == []


def test_a_file_named_in_a_well_known_folder_is_placed_there() -> None:
    copy = catalogue()["filesystem.copy_file"]
    arguments, _ = fill_arguments("copy ~/notes/plan.md to my Desktop", copy, None, None)
    assert arguments == {"source": "~/notes/plan.md", "destination": "~/Desktop"}


def test_a_missing_required_value_is_an_open_field_on_a_step_that_names_its_tool() -> None:
    event = catalogue()["calendar.create_event"]
    decision = route("add an event called Planning sync to my calendar", [event], None)
    assert decision.tool == "calendar.create_event" and decision.needs_clarification
    assert decision.arguments == {"title": "Planning sync"}
    assert set(decision.missing) == {"start", "end"}
    assert "start" in decision.reason and "end" in decision.reason


class _Recorder:
    """Passes the router's grammar to the real model and keeps what it wrote."""

    def __init__(self, model: LocalModel) -> None:
        self.model = model
        self.outputs: list[str] = []

    def choose(self, prompt: str, options: list[str]) -> str:
        return self.model.choose(prompt, options)

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str:
        self.outputs.append(self.model.complete(prompt, grammar, max_tokens=max_tokens))
        return self.outputs[-1]


@pytest.fixture(scope="module")
def model() -> LocalModel:
    path = default_llm_path()
    if not path.is_file():
        pytest.fail(f"{path} is missing; `make models` fetches it")
    return LocalModel(path, n_ctx=1024)


def test_the_grammar_refuses_a_value_that_is_not_in_the_words(model: LocalModel) -> None:
    words = "make a task to water the plants on the balcony"
    invented = "Quarterly Budget Review"
    schema = {"properties": {"title": {"type": "string", "description": "Short title."}}, "required": ["title"]}
    # The prompt orders the invented title. Under the schema's own grammar the model writes it...
    prompt = chat_prompt("Reply with JSON only.", f'Write exactly {{"title": "{invented}"}}')
    free = json.loads(model.complete(prompt, schema_grammar(schema), max_tokens=24))
    assert free["title"] == invented
    # ... and under the copy grammar made from the request it cannot: only a run of its words.
    grammar, fields = copy_grammar(words, ["title"], schema["properties"])
    assert fields == ["title"]
    copied = json.loads(model.complete(prompt, grammar, max_tokens=24))
    assert copied["title"] != invented and copied["title"] in words


def test_the_router_copies_a_title_from_the_words(model: LocalModel) -> None:
    task = catalogue()["task.create_task"]
    recorder = _Recorder(model)
    text = "remind me to water the plants on the balcony"
    generated = copy_arguments(Reading.of(text, NOW), task, ["title"], task.input_schema["properties"], recorder)
    assert recorder.outputs, "the model was not asked"
    assert generated["title"] and generated["title"] in text


def test_numbers_come_only_from_the_words() -> None:
    schema: dict[str, Any] = {"count": {"type": "integer", "minimum": 1, "maximum": 50}}
    grammar, fields = copy_grammar("show the top 5 of 900 results", ["count"], schema)
    assert fields == ["count"] and '"5"' in grammar and '"900"' not in grammar  # 900 is out of bounds
    assert copy_grammar("show the results", ["count"], schema) == ("", [])
