"""Every tool of the tool surface against hostile arguments, through the real MCP servers over stdio.

For each of the contract's tools, hypothesis draws arguments that fit the tool's input schema with
hostile values (paths out of the root, traps inside it, nasty strings), arguments that break the schema
(a required field dropped, a value of the wrong type, a field it does not have), and JSON objects of any
shape. Whatever comes, the tool answers (a result, or an error that says what was wrong), its server
keeps running, nothing outside the root changes, and no answer carries the content of a file outside it.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
import yaml
from hypothesis import example, given, settings

from tests.hostile.harness import Answer, ToolServers
from tests.hostile.strategies import WITHOUT_SHRINKING, arguments_for, path_parameters, with_path
from tests.hostile.world import MARKER, World, restore_traps, untouchable
from tests.toolhost.mcp_helpers import CONTRACT_PATH

EXAMPLES_PER_TOOL = 25
# The longest any one call may take: every tool answers a hostile call at once, or fails it.
CALL_SECONDS = 20.0

CONTRACT_TOOLS = sorted(
    name for name, spec in yaml.safe_load(CONTRACT_PATH.read_text())["tools"].items() if spec["in_benchmark_surface"]
)


def test_the_servers_offer_every_tool_of_the_contract(servers: ToolServers) -> None:
    assert len(CONTRACT_TOOLS) == 67
    assert set(CONTRACT_TOOLS) <= set(servers.tools())


def check_answer(tool: str, answer: Answer) -> None:
    """An error says what was wrong, in words, without a stack trace; nothing from outside leaks."""
    said = answer.text()
    assert MARKER not in answer.everything(), f"{tool} handed back the content of a file outside the root"
    if answer.is_error:
        # The SDK words a failure "Error executing tool NAME: reason"; a crash inside a tool comes back
        # as that sentence with no reason.
        reason = said.strip().removeprefix(f"Error executing tool {tool.split('.', 1)[1]}").lstrip(": ")
        assert reason, f"{tool} failed without saying why: {said!r}"
        assert "Traceback" not in said, said


@pytest.mark.parametrize("tool", CONTRACT_TOOLS)
def test_a_tool_answers_hostile_arguments_and_touches_nothing_outside_the_root(
    servers: ToolServers, world: World, tool: str
) -> None:
    spec = servers.tools()[tool]
    before = untouchable(world)
    restarts = servers.restarts()

    @settings(WITHOUT_SHRINKING, max_examples=EXAMPLES_PER_TOOL)
    @given(arguments=arguments_for(spec.input_schema, world.hostile_paths()))
    def answers(arguments: dict[str, Any]) -> None:
        restore_traps(world)
        started = time.monotonic()
        answer = servers.call(tool, arguments, timeout=CALL_SECONDS)
        check_answer(tool, answer)
        assert untouchable(world) == before, f"{tool} changed something outside the root"
        servers.ping(spec.server)
        assert servers.restarts() == restarts, f"{tool} brought its server down"
        assert time.monotonic() - started < CALL_SECONDS

    # Besides the drawn examples: every way out of the root, in every parameter that takes a path,
    # the call's other arguments ordinary.
    for parameter in path_parameters(spec.input_schema):
        for path in world.escapes():
            arguments = with_path(spec.input_schema, parameter, path, ordinary=str(world.root / "notes.md"))
            answers = example(arguments=arguments)(answers)
    answers()
