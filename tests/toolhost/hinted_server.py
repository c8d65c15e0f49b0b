"""A small MCP server for the tool host's tests, run over stdio with `python -m tests.toolhost.hinted_server`.

Its first tools say what they do only in MCP annotations (no Switchboard `_meta`), as a server from
elsewhere would; the tool host must read those. The last ones fail: with a correction, without one,
and with a correction that breaks the documented form.
"""

from __future__ import annotations

from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel

from services.toolhost.servers import META_CORRECTION
from services.toolhost.servers.kit import Correction, Effects, ToolError, tool

MISSPELT = "notes.txtt"
FOUND = "notes.txt"


class Found(BaseModel):
    name: str


def build_server() -> MCPServer:
    server = MCPServer("hinted")

    @server.tool(annotations=ToolAnnotations(read_only_hint=True))
    def look(name: str) -> str:
        """Only reads."""
        return name

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=True))
    def shred(name: str) -> str:
        """Destroys."""
        return name

    @server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
    def append(name: str) -> str:
        """Adds, never removes."""
        return name

    @server.tool()
    def unsaid(name: str) -> str:
        """Says nothing about its effects."""
        return name

    @tool(server, Effects.reads())
    def find(name: str) -> Found:
        """Fails with a correction for `name`."""
        raise ToolError(
            f"No file named {name!r}. Did you mean {FOUND!r}?",
            correction=Correction(f"no file named {name!r}", suggested_value=FOUND, rejected=name),
        )

    @tool(server, Effects.reads())
    def fail(name: str) -> Found:
        """Fails without a correction."""
        raise ToolError(f"{name} cannot be found today.")

    @server.tool()
    def garble(name: str) -> CallToolResult:
        """Fails with a correction that is not in the documented form."""
        return CallToolResult(
            content=[TextContent(type="text", text=f"{name} failed")],
            is_error=True,
            _meta={META_CORRECTION: {"parameter": 3, "problem": "numbers are not strings"}},
        )

    return server


if __name__ == "__main__":
    build_server().run("stdio")
