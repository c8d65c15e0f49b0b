"""Driving the real asynchronous components (MCP sessions, the gateway, gRPC servers) from synchronous
hypothesis tests: an event loop in a thread of its own, and the tool host's MCP servers over stdio in it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import grpc
import httpx
import redis.asyncio as aioredis
from fastapi import FastAPI
from mcp import StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.types import CallToolResult

from services.gateway.app import Gateway
from services.gateway.http import build_app
from services.gateway.limits import DEFAULT_MAX_BODY_BYTES, GrpcLimits, TokenBuckets
from services.gateway.openai_compat import build_openai_router
from services.gateway.server import GatewayServicer
from services.toolhost.app import ToolHost
from services.toolhost.audit import AuditLog
from services.toolhost.core import SERVER_MODULES, ToolSpec
from services.toolhost.mcp_pool import McpServer
from services.toolhost.sandbox import Sandbox
from services.toolhost.server import ToolHostServicer
from services.toolhost.servers.kit import Trash
from switchboard.auth import BearerAuth
from switchboard.decoding import RefuseUndecodable
from switchboard.rpc import ToolHostClient
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc
from tests.hostile.world import World

T = TypeVar("T")

# How long every server may take to start and list its tools, on a busy two-core machine.
READY_SECONDS = 120.0


class LoopThread:
    """An asyncio loop running in a daemon thread; `run` waits for a coroutine's result from any other
    thread, and cancels it when it takes longer than `timeout`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="hostile-loop", daemon=True)
        self.thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise

    def close(self) -> None:
        async def drain() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        self.run(drain(), timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


class Answer:
    """What a tool call came back with: the tool's result, or the error the protocol answered with."""

    def __init__(self, result: CallToolResult | None = None, protocol_error: str | None = None) -> None:
        self.result = result
        self.protocol_error = protocol_error

    @property
    def is_error(self) -> bool:
        return self.result is None or self.result.is_error

    def text(self) -> str:
        if self.result is None:
            return self.protocol_error or ""
        return "\n".join(getattr(block, "text", "") for block in self.result.content)

    def everything(self) -> str:
        """All the answer says, text and structured content, for looking for what must not be there."""
        structured = "" if self.result is None else repr(self.result.structured_content)
        return self.text() + structured


class _McpServerIn(McpServer):
    """`McpServer`, its process started in `cwd`: a relative path a tool fails to refuse lands there,
    where the tests can see it, rather than in the project."""

    def __init__(self, cwd: Path, name: str, module: str, env: dict[str, str]) -> None:
        super().__init__(name, module, env)
        self.cwd = cwd

    def parameters(self) -> StdioServerParameters:
        return super().parameters().model_copy(update={"cwd": str(self.cwd)})


class ToolServers:
    """The tool host's MCP servers as separate processes over stdio, supervised the way the tool host
    supervises them (`McpServer`), in `loop`; each sees `world.root` as its one allowed folder."""

    def __init__(self, loop: LoopThread, world: World, names: tuple[str, ...] = tuple(SERVER_MODULES)) -> None:
        self.loop = loop
        env = {
            "SWITCHBOARD_ALLOWED_ROOTS": str(world.root),
            "SWITCHBOARD_STATE_DIR": str(world.state),
            "SWITCHBOARD_USER_HOME": str(world.home),
            # No desktop and no mail server: open_application, open_file_with and send_draft must never
            # start a real program or send real mail while being fuzzed.
            "DISPLAY": "",
            "WAYLAND_DISPLAY": "",
            "SWITCHBOARD_SMTP_HOST": "",
            "SWITCHBOARD_MAILBOX": "",
        }
        self.servers = {name: _McpServerIn(world.cwd, name, SERVER_MODULES[name], env) for name in names}
        self._stop: asyncio.Event | None = None
        self._supervisors: list[asyncio.Task[None]] = []

    def start(self) -> None:
        self.loop.run(self._start(), timeout=READY_SECONDS + 10)

    def ping(self, server: str) -> None:
        """Ask `server` whether it is still there; raises when it is not."""
        session = self.servers[server].session
        assert session is not None, f"the {server} server is not running"
        self.loop.run(session.send_ping(), timeout=10)

    async def _start(self) -> None:
        self._stop = asyncio.Event()
        self._supervisors = [asyncio.create_task(s.supervise(self._stop)) for s in self.servers.values()]
        await asyncio.wait_for(asyncio.gather(*(s.ready.wait() for s in self.servers.values())), timeout=READY_SECONDS)

    def stop(self) -> None:
        async def stop() -> None:
            if self._stop is not None:
                self._stop.set()
            await asyncio.gather(*self._supervisors, return_exceptions=True)

        self.loop.run(stop(), timeout=60)

    def tools(self) -> dict[str, ToolSpec]:
        return {spec.name: spec for server in self.servers.values() for spec in server.tools}

    def restarts(self) -> dict[str, int]:
        """How often each server was started again: more than none means one died or hung."""
        return {name: server.restarts for name, server in self.servers.items()}

    def call(self, tool: str, arguments: Any, timeout: float = 30.0) -> Answer:
        """Call `tool` (`server.name`) with `arguments` as they are, unchecked, through its session."""
        spec = self.tools()[tool]
        session = self.servers[spec.server].session
        assert session is not None, f"the {spec.server} server is not running"
        try:
            result = self.loop.run(session.call_tool(spec.short_name, arguments), timeout)
        except MCPError as exc:
            return Answer(protocol_error=str(exc))
        return Answer(result)


# The edge's credentials in these tests: the person's API token, the services' key, and the keys a
# person's and the policy's approvals are signed with.
TOKEN = "hostile-api-token"
INTERNAL_KEY = "hostile-internal-key"
APPROVAL_KEY = "hostile-approval-key"
POLICY_KEY = "hostile-policy-key"


class FirstToolRanking:
    """The filter and the router for the OpenAI-compatible endpoint's own tools, as a stand-in (the real
    ones load models): every tool given fits, in the order given, and the router calls the first with
    no arguments. The endpoint's handling of a hostile request is what is under test, not the ranking."""

    async def rank(self, text: str, tools: Sequence[pb.Candidate]) -> pb.RankResponse:
        return pb.RankResponse(candidates=[pb.Candidate(tool=t.tool, score=1.0) for t in tools])

    async def route(self, text: str, candidates: Sequence[pb.Candidate]) -> pb.ToolCall:
        return pb.ToolCall(tool=candidates[0].tool if candidates else "", arguments_json="{}")


@dataclass
class Edge:
    """The gateway as a client meets it (HTTP, through the real app and its limits; gRPC, on a port),
    in front of a real tool host (gRPC, with the internal key) whose MCP servers are `ToolServers`',
    with real Redis underneath. Everything lives in the loop thread."""

    redis: aioredis.Redis
    host: ToolHost
    toolhost_addr: str
    gateway: Gateway
    gateway_addr: str
    app: FastAPI
    http: httpx.AsyncClient
    closing: list[Callable[[], Awaitable[Any]]]

    async def close(self) -> None:
        for close in reversed(self.closing):
            await close()


async def open_edge(servers: ToolServers, world: World, redis_url: str) -> Edge:
    """Build and start the edge (see `Edge`); its Redis database is emptied first."""
    redis = aioredis.Redis.from_url(redis_url.rsplit("/", 1)[0] + "/3")
    await redis.flushdb()
    closing: list[Callable[[], Awaitable[Any]]] = [redis.aclose]
    host = ToolHost(
        redis,
        list(servers.servers.values()),
        {pb.GRANT_KIND_PERSON: APPROVAL_KEY, pb.GRANT_KIND_POLICY: POLICY_KEY, pb.GRANT_KIND_STANDING: POLICY_KEY},
        30.0,
        AuditLog(world.state / "audit.db"),
        Sandbox([world.root], world.home),
        Trash(world.state / "trash"),
    )
    # Built as `ServiceRuntime.serve` builds every service's server: the credential first, the
    # service's own interceptors, then the refusal of requests that do not decode.
    toolhost_server = grpc.aio.server(
        interceptors=[BearerAuth([INTERNAL_KEY], "this API is for Switchboard's own services"), RefuseUndecodable()]
    )
    pb_grpc.add_ToolHostServicer_to_server(ToolHostServicer(host), toolhost_server)
    toolhost_addr = f"127.0.0.1:{toolhost_server.add_insecure_port('127.0.0.1:0')}"
    await toolhost_server.start()
    closing.append(lambda: toolhost_server.stop(None))

    client = ToolHostClient(toolhost_addr, INTERNAL_KEY)
    closing.append(client.close)
    gateway = Gateway(redis, client, APPROVAL_KEY)
    buckets = TokenBuckets(1_000_000, 64)
    gateway_server = grpc.aio.server(
        interceptors=[BearerAuth([TOKEN], "present the API token"), GrpcLimits(buckets), RefuseUndecodable()],
        options=[("grpc.max_receive_message_length", DEFAULT_MAX_BODY_BYTES)],
    )
    pb_grpc.add_GatewayServicer_to_server(GatewayServicer(gateway), gateway_server)
    gateway_addr = f"127.0.0.1:{gateway_server.add_insecure_port('127.0.0.1:0')}"
    await gateway_server.start()
    closing.append(lambda: gateway_server.stop(None))

    openai = build_openai_router(gateway, FirstToolRanking(), TOKEN, turn_wait_seconds=0.2)
    app = build_app(gateway, TOKEN, routers=[openai], buckets=buckets)
    http = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", timeout=30)
    closing.append(http.aclose)
    return Edge(redis, host, toolhost_addr, gateway, gateway_addr, app, http, closing)
