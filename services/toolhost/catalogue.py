"""The tool catalogue read in-process, without starting the servers over stdio.

For build steps that need every tool's name and description (training the filter's encoder) on a
machine where no stack runs. Each server is built as the tool host would build it, with its state kept
in a throw-away folder, and asked for `tools/list` over the SDK's in-memory client.
"""

from __future__ import annotations

import importlib
import tempfile
from pathlib import Path

from mcp import Client

from services.toolhost.core import SERVER_MODULES, ToolSpec, spec_from_mcp
from services.toolhost.settings import ToolHostSettings


async def read_catalogue() -> list[ToolSpec]:
    """Every tool of every server, in server order, as the tool host would list them."""
    specs: list[ToolSpec] = []
    with tempfile.TemporaryDirectory(prefix="sb-catalogue-") as scratch:
        settings = ToolHostSettings(state_dir=Path(scratch), allowed_roots=scratch)
        for server, module in SERVER_MODULES.items():
            build = importlib.import_module(module).build_server
            async with Client(build(settings)) as client:
                listed = await client.list_tools()
            for tool in listed.tools:
                annotations = tool.annotations
                specs.append(
                    spec_from_mcp(
                        server,
                        tool.name,
                        tool.description or "",
                        dict(tool.input_schema or {}),
                        dict(tool.meta) if tool.meta else None,
                        annotations.destructive_hint if annotations else None,
                        read_only_hint=annotations.read_only_hint if annotations else None,
                    )
                )
    return specs
