"""Helpers for testing the tool host's MCP servers through the SDK's in-memory client.

`assert_matches_contract` checks a server's `tools/list` against `../shared/tool-contract.yaml` (the
tools marked `in_benchmark_surface`): the same tool names, parameter names, required parameters and
confirmation flags, undo wherever the contract has it, a description on every tool and parameter and
structured output.

The contract's flags are the reference registry's. Where a tool here does more than the reference, the
difference is deliberate and listed: `ASKS_FIRST_BEYOND_CONTRACT` (tools that change something of the
person's, so a person confirms them, which the reference does not ask for); a tool here may also return
undo actions where the reference could not undo (each such tool keeps the replaced file in the trash
or can remove the file it created).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from services.toolhost.core import SERVER_MODULES
from services.toolhost.mcp_pool import McpServer
from services.toolhost.servers import META_CONFIRMATION_REQUIRED, META_DESTRUCTIVE, META_UNDO_SUPPORTED
from services.toolhost.settings import ToolHostSettings

CONTRACT_PATH = Path(__file__).resolve().parents[3] / "shared" / "tool-contract.yaml"

# Tools that need a person's confirmation here though the contract lets them run at once, and why.
ASKS_FIRST_BEYOND_CONTRACT = {
    "clipboard.set_clipboard": "replaces what the person had copied, which is gone afterwards",
    "system.take_screenshot": "writes a new file of whatever is on the screen into the person's folder",
}

BuildServer = Callable[[ToolHostSettings], MCPServer]


def contract(server: str) -> dict[str, dict[str, Any]]:
    """The contract's benchmark-surface tools of one server, by unprefixed name."""
    tools = yaml.safe_load(CONTRACT_PATH.read_text())["tools"]
    return {
        name.split(".", 1)[1]: spec
        for name, spec in tools.items()
        if spec["server"] == server and spec.get("in_benchmark_surface")
    }


@asynccontextmanager
async def connected(build: BuildServer, settings: ToolHostSettings) -> AsyncIterator[Client]:
    async with Client(build(settings)) as client:
        yield client


async def call(build: BuildServer, settings: ToolHostSettings, tool: str, **arguments: Any) -> CallToolResult:
    async with connected(build, settings) as client:
        return await client.call_tool(tool, arguments)


async def ok(build: BuildServer, settings: ToolHostSettings, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured result of a call that must succeed."""
    result = await call(build, settings, tool, **arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(build: BuildServer, settings: ToolHostSettings, tool: str, **arguments: Any) -> str:
    """The error text of a call that must fail."""
    result = await call(build, settings, tool, **arguments)
    assert result.is_error, result.structured_content
    return " ".join(getattr(block, "text", "") for block in result.content)


async def assert_matches_contract(build: BuildServer, settings: ToolHostSettings, server: str) -> None:
    """The server lists exactly the contract's tools, parameters, required parameters and flags."""
    expected = contract(server)
    async with connected(build, settings) as client:
        listed = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(listed) == set(expected), f"{server}: tools differ from the contract"
    for name, spec in expected.items():
        tool = listed[name]
        params = spec.get("params") or {}
        schema = tool.input_schema
        assert set(schema.get("properties", {})) == set(params), f"{server}.{name}: parameters"
        required = {p for p, about in params.items() if about.get("required")}
        assert set(schema.get("required", [])) == required, f"{server}.{name}: required parameters"
        for param in params:
            assert schema["properties"][param].get("description"), f"{server}.{name}.{param}: no description"
        assert tool.description and len(tool.description) > 40, f"{server}.{name}: description too short"
        assert tool.output_schema is not None, f"{server}.{name}: no structured output"
        meta = tool.meta or {}
        confirmation = spec["confirmation_required"] or f"{server}.{name}" in ASKS_FIRST_BEYOND_CONTRACT
        assert meta.get(META_CONFIRMATION_REQUIRED) is confirmation, f"{server}.{name}: confirmation"
        assert isinstance(meta.get(META_UNDO_SUPPORTED), bool), f"{server}.{name}: undo flag"
        if spec["undo_supported"]:
            assert meta[META_UNDO_SUPPORTED] is True, f"{server}.{name}: the contract can undo it, this cannot"
        assert isinstance(meta.get(META_DESTRUCTIVE), bool), f"{server}.{name}: destructive flag"
        hints = tool.annotations
        assert hints is not None and None not in (hints.read_only_hint, hints.destructive_hint), f"{server}.{name}"


def stdio_parameters(server: str, settings: ToolHostSettings, extra_env: dict[str, str] | None = None) -> Any:
    """How the tool host launches a server over stdio, pointed at `settings`' roots and state."""
    from mcp import StdioServerParameters

    project = Path(__file__).resolve().parents[2]
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", f"services.toolhost.servers.{server}"],
        env={
            "SWITCHBOARD_ALLOWED_ROOTS": settings.allowed_roots,
            "SWITCHBOARD_STATE_DIR": str(settings.state_dir),
            "PYTHONPATH": str(project),
            **(extra_env or {}),
        },
        cwd=project,
    )


# How long a supervised server may take to list its tools.
READY_SECONDS = 60.0


@asynccontextmanager
async def supervised(name: str, settings: ToolHostSettings, module: str = "") -> AsyncIterator[McpServer]:
    """A real server process over stdio (`module`, by default the tool host's server `name`), supervised
    as the tool host does, until the block ends."""
    env = {"SWITCHBOARD_ALLOWED_ROOTS": settings.allowed_roots, "SWITCHBOARD_STATE_DIR": str(settings.state_dir)}
    server = McpServer(name, module or SERVER_MODULES[name], env)
    stop = asyncio.Event()
    supervisor = asyncio.create_task(server.supervise(stop))
    try:
        await asyncio.wait_for(server.ready.wait(), READY_SECONDS)
        yield server
    finally:
        stop.set()
        await supervisor
