"""The tool host's MCP client side: one stdio server process per domain, kept open and restarted.

Each server runs in a supervising task that owns its client session (the SDK's context managers must
be entered and left in one task). A server that exits is started again after a backoff that doubles
up to a minute; calls made while it is down fail with a clear error instead of hanging.

A tool's failure arrives as `ToolCallFailed`: its text is the tool's message, and its `correction` the
structured correction the tool gave with it, if any. A server puts that in the error result's `_meta`
under `META_CORRECTION`, as an object with the string fields of `switchboard.v1.Correction`
(`kit.Correction.wire` writes it; `correction_from_meta` reads it back).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from contextlib import AsyncExitStack
from typing import Any, cast

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult, RequestParamsMeta, Tool
from opentelemetry import trace

from services.toolhost.core import ToolSpec, spec_from_mcp
from services.toolhost.servers import META_CALL_KEY, META_CORRECTION, META_INTERRUPTED
from switchboard.errors import UpstreamUnavailable
from switchboard.settings import PROJECT_ROOT
from switchboard.telemetry import failed, inject, tool_call_span
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 60.0
PING_EVERY_SECONDS = 2.0
PING_TIMEOUT_SECONDS = 10.0


CORRECTION_FIELDS = ("parameter", "problem", "suggested_value_json", "suggested_tool")


class ToolCallFailed(Exception):
    """The tool ran and reported an error. The message is the tool's own, saying how to correct the call;
    `correction` says the same as data when the tool gave one (else None)."""

    def __init__(self, message: str, correction: pb.Correction | None = None) -> None:
        super().__init__(message)
        self.correction = correction


class CallInterrupted(ToolCallFailed):
    """The server would not repeat a changing call whose earlier attempt stopped midway: whether it
    changed anything is unknown (`servers.journal`)."""


class MalformedCorrection(ValueError):
    """A tool's failure carried something under `META_CORRECTION` that is not a correction."""


def correction_from_meta(meta: dict[str, Any] | None) -> pb.Correction | None:
    """The correction in a failed call's result `_meta`, or None if there is none (or it is all empty).

    Raises `MalformedCorrection` when the key holds anything but an object of strings whose
    `suggested_value_json`, if set, is JSON.
    """
    raw = (meta or {}).get(META_CORRECTION)
    if raw is None:
        return None
    if not isinstance(raw, dict) or not all(isinstance(raw.get(key, ""), str) for key in CORRECTION_FIELDS):
        raise MalformedCorrection(f"a correction must be an object with the strings {CORRECTION_FIELDS}: {raw!r}")
    correction = pb.Correction(**{key: raw.get(key, "") for key in CORRECTION_FIELDS})
    if correction.suggested_value_json:
        try:
            json.loads(correction.suggested_value_json)
        except json.JSONDecodeError as exc:
            raise MalformedCorrection(f"a correction's suggested value is not JSON: {raw!r}") from exc
    return correction if any(raw.get(key) for key in CORRECTION_FIELDS) else None


def spec_from_listed(server: str, tool: Tool) -> ToolSpec:
    """The `ToolSpec` of a tool as `tools/list` gives it: its `_meta` flags, and its annotations for
    a tool without them."""
    hints = tool.annotations
    return spec_from_mcp(
        server,
        tool.name,
        tool.description or "",
        dict(tool.input_schema or {}),
        dict(tool.meta) if tool.meta else None,
        hints.destructive_hint if hints else None,
        read_only_hint=hints.read_only_hint if hints else None,
    )


# Settings of the tool host's own that its MCP servers are not given.
WITHHELD_FROM_SERVERS = frozenset({"SWITCHBOARD_REDIS_URL", "SWITCHBOARD_TOKEN"})


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
        # A tool server has no business with Redis: its address (and any password in it) is withheld.
        inherited = {k: v for k, v in os.environ.items() if k not in WITHHELD_FROM_SERVERS}
        env = {**inherited, **self.env, "PYTHONPATH": str(PROJECT_ROOT)}
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
        return [spec_from_listed(self.name, tool) for tool in listed.tools]

    async def read_json(self, uri: str, timeout: float) -> dict[str, Any]:
        """The JSON object a resource of this server holds; `UpstreamUnavailable` when it cannot be read."""
        session = self.session
        if session is None:
            raise UpstreamUnavailable(f"MCP server {self.name} is not running")
        try:
            result = await asyncio.wait_for(session.read_resource(uri), timeout)
            text = "".join(getattr(block, "text", "") for block in getattr(result, "contents", []))
            value = json.loads(text)
        except (TimeoutError, MCPError, ValueError) as exc:
            raise UpstreamUnavailable(f"{self.name} could not read {uri}: {exc}") from exc
        if not isinstance(value, dict):
            raise UpstreamUnavailable(f"{self.name}'s {uri} is not a JSON object")
        return value

    async def _send(
        self, session: ClientSession, span: trace.Span, tool: str, arguments: dict[str, Any], timeout: float, key: str
    ) -> Any:
        """Send one tools/call inside its CLIENT `span`, whose trace context goes in the request's `_meta`
        (MCP's way, so the server's span is its child); a failure the tool reports marks the span
        `tool_error`."""
        # An open map: keys beyond the protocol's own travel as they are.
        meta: dict[str, Any] = {META_CALL_KEY: key} if key else {}
        inject(meta, span)
        sent = cast(RequestParamsMeta, meta) if meta else None
        try:
            result = await asyncio.wait_for(session.call_tool(tool, arguments, meta=sent), timeout)
        except TimeoutError as exc:
            failed(span, exc)
            raise ToolCallFailed(f"{self.name}.{tool} took longer than {timeout:.0f}s and was abandoned") from exc
        if isinstance(result, CallToolResult) and result.is_error:
            failed(span, "tool_error")
        return result

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float, key: str = "") -> Any:
        """Call `tool` (its unprefixed name); returns the structured result or raises `ToolCallFailed`.

        A changing call is sent with `key`, the same each time the same call is sent: a server that
        carried it out before answers with that outcome instead of running it again."""
        session = self.session
        if session is None:
            raise UpstreamUnavailable(f"MCP server {self.name} is not running (restarts so far: {self.restarts})")
        with tool_call_span(
            trace.SpanKind.CLIENT, tool, protocol_version=str(getattr(session, "protocol_version", "") or "")
        ) as span:
            result = await self._send(session, span, tool, arguments, timeout, key)
        if not isinstance(result, CallToolResult):
            raise ToolCallFailed(f"{self.name}.{tool} asked for input mid-call, which the tool host does not support")
        text = "\n".join(getattr(block, "text", "") for block in result.content).strip()
        if result.is_error and (result.meta or {}).get(META_INTERRUPTED):
            raise CallInterrupted(text)
        if result.is_error:
            try:
                correction = correction_from_meta(result.meta)
            except MalformedCorrection as exc:
                # The failure itself still reaches the caller; only the server's broken correction is dropped.
                log.error("MCP server %s sent a malformed correction for %s: %s", self.name, tool, exc)
                correction = None
            raise ToolCallFailed(text or f"{self.name}.{tool} failed without saying why", correction)
        if result.structured_content is not None:
            return result.structured_content
        return {"text": text}
