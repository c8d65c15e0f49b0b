"""The tool host's MCP client side: one stdio server process per domain, kept open and restarted.

Each server runs in a supervising task that owns its client session (the SDK's context managers must
be entered and left in one task). A server that exits is started again after a backoff that doubles
up to a minute; calls made while it is down fail with a clear error instead of hanging.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from contextlib import AsyncExitStack
from typing import Any

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.types import CallToolResult

from services.toolhost.core import ToolSpec, spec_from_mcp
from switchboard.errors import UpstreamUnavailable
from switchboard.settings import PROJECT_ROOT

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0
PING_EVERY_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 10.0


class ToolCallFailed(Exception):
    """The tool ran and reported an error (its message says how to correct the call)."""


class McpServer:
    """One MCP server process and its open session."""

    def __init__(self, name: str, module: str, env: dict[str, str]) -> None:
        self.name = name
        self.module = module
        self.env = env
        self.session: ClientSession | None = None
        self.tools: list[ToolSpec] = []
        self.ready = asyncio.Event()
        self.restarts = 0

    def parameters(self) -> StdioServerParameters:
        env = {**os.environ, **self.env, "PYTHONPATH": str(PROJECT_ROOT)}
        return StdioServerParameters(command=sys.executable, args=["-m", self.module], env=env, cwd=str(PROJECT_ROOT))

    async def supervise(self, stop: asyncio.Event) -> None:
        """Keep the server running until `stop` is set."""
        backoff = 0.5
        while not stop.is_set():
            try:
                async with AsyncExitStack() as stack:
                    read, write = await stack.enter_async_context(stdio_client(self.parameters()))
                    session = await stack.enter_async_context(ClientSession(read, write))
                    await session.initialize()
                    self.tools = await self._list(session)
                    self.session = session
                    self.ready.set()
                    backoff = 0.5
                    log.info("MCP server %s up with %d tools", self.name, len(self.tools))
                    await self._watch(session, stop)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - any failure of a server process means: restart it
                log.error("MCP server %s stopped: %r; restarting in %.1fs", self.name, exc, backoff)
            finally:
                self.session = None
                self.ready.clear()
            if stop.is_set():
                return
            self.restarts += 1
            try:
                await asyncio.wait_for(stop.wait(), backoff)
            except TimeoutError:
                pass
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def _watch(self, session: ClientSession, stop: asyncio.Event) -> None:
        """Return when `stop` is set; raise when the server stops answering pings (it died or hung)."""
        while True:
            try:
                await asyncio.wait_for(stop.wait(), PING_EVERY_SECONDS)
                return
            except TimeoutError:
                pass
            try:
                await asyncio.wait_for(session.send_ping(), PING_TIMEOUT_SECONDS)
            except TimeoutError as exc:
                raise ConnectionError(f"no answer to a ping within {PING_TIMEOUT_SECONDS:.0f}s") from exc

    async def _list(self, session: ClientSession) -> list[ToolSpec]:
        listed = await session.list_tools()
        specs = []
        for tool in listed.tools:
            annotations = tool.annotations
            specs.append(
                spec_from_mcp(
                    self.name,
                    tool.name,
                    tool.description or "",
                    dict(tool.input_schema or {}),
                    dict(tool.meta) if tool.meta else None,
                    getattr(annotations, "destructiveHint", None) if annotations else None,
                )
            )
        return specs

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> Any:
        """Call `tool` (its unprefixed name); returns the structured result or raises `ToolCallFailed`."""
        session = self.session
        if session is None:
            raise UpstreamUnavailable(f"MCP server {self.name} is not running (restarts so far: {self.restarts})")
        try:
            result = await asyncio.wait_for(session.call_tool(tool, arguments), timeout)
        except TimeoutError as exc:
            raise ToolCallFailed(f"{self.name}.{tool} took longer than {timeout:.0f}s and was abandoned") from exc
        if not isinstance(result, CallToolResult):
            raise ToolCallFailed(f"{self.name}.{tool} asked for input mid-call, which the tool host does not support")
        text = "\n".join(getattr(block, "text", "") for block in result.content).strip()
        if result.is_error:
            raise ToolCallFailed(text or f"{self.name}.{tool} failed without saying why")
        if result.structured_content is not None:
            return result.structured_content
        return {"text": text}
