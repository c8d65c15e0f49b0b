"""Traces across each kind of hop, caught by an in-memory exporter: gRPC calls through real in-process
servers and channels, a stream message through a real redis-server, and an MCP tools/call through the
SDK's in-memory session to a real tool server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest
import redis.asyncio as aioredis
from mcp import Client
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.toolhost.mcp_pool import McpServer, ToolCallFailed
from services.toolhost.servers import filesystem
from services.toolhost.settings import ToolHostSettings
from switchboard import auth
from switchboard.auth import BearerAuth
from switchboard.envelope import Envelope
from switchboard.rpc_tracing import ServerTracing, target_attributes
from switchboard.streams import Emit, StreamWorker, emit, publish
from switchboard.telemetry import tracer
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc
from tests.conftest import free_port

KEY = "internal-key-that-must-never-be-recorded"
_exporter = InMemorySpanExporter()


@pytest.fixture(scope="module", autouse=True)
def _catching() -> None:
    provider = trace.get_tracer_provider()
    assert isinstance(provider, TracerProvider), "tests/conftest.py installs a real provider"
    provider.add_span_processor(SimpleSpanProcessor(_exporter))


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    _exporter.clear()
    yield _exporter
    _exporter.clear()


def named(finished: tuple[ReadableSpan, ...], name: str, kind: trace.SpanKind) -> ReadableSpan:
    found = [span for span in finished if span.name == name and span.kind == kind]
    assert len(found) == 1, [(span.name, span.kind) for span in finished]
    return found[0]


def parent_of(span: ReadableSpan) -> int:
    assert span.parent is not None, f"{span.name} has no parent"
    return span.parent.span_id


def no_secret_in(finished: tuple[ReadableSpan, ...], secret: str) -> None:
    for span in finished:
        assert not any(secret in str(value) for value in (span.attributes or {}).values()), span.name


# ---- gRPC ----


class Router(pb_grpc.RouterServicer):
    async def Route(self, request: pb.RouteRequest, context: grpc.aio.ServicerContext) -> pb.ToolCall:  # noqa: N802
        if request.text == "unknown":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")
        if request.text == "broken":
            raise RuntimeError("the router broke")
        return pb.ToolCall(tool="filesystem.read_file")


class Filter(pb_grpc.FilterServicer):
    """Ranks by asking the router: a handler whose own call must join the caller's trace."""

    def __init__(self, router_addr: str) -> None:
        self.router = pb_grpc.RouterStub(auth.channel(router_addr, KEY))

    async def Rank(self, request: pb.RankRequest, context: grpc.aio.ServicerContext) -> pb.RankResponse:  # noqa: N802
        call = await self.router.Route(pb.RouteRequest(text=request.text))
        return pb.RankResponse(candidates=[pb.Candidate(tool=call.tool)])


class Gateway(pb_grpc.GatewayServicer):
    async def WatchRun(
        self, request: pb.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunEvent]:  # noqa: N802
        for step in (1, 2):
            yield pb.RunEvent(run_id=request.run_id, step=step)


async def serving(register: Any) -> tuple[grpc.aio.Server, str]:
    server = grpc.aio.server(interceptors=[ServerTracing(), BearerAuth([KEY], "tests")])
    register(server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture
async def filter_addr() -> AsyncIterator[str]:
    router, router_addr = await serving(lambda s: pb_grpc.add_RouterServicer_to_server(Router(), s))
    servicer = Filter(router_addr)
    ranker, addr = await serving(lambda s: pb_grpc.add_FilterServicer_to_server(servicer, s))
    yield addr
    await ranker.stop(None)
    await router.stop(None)


async def test_a_call_and_the_call_its_handler_makes_are_one_trace(
    filter_addr: str, spans: InMemorySpanExporter
) -> None:
    async with auth.channel(filter_addr, KEY) as channel:
        with tracer().start_as_current_span("caller") as caller:
            ranked = await pb_grpc.FilterStub(channel).Rank(pb.RankRequest(text="read it"))
    assert ranked.candidates[0].tool == "filesystem.read_file"

    finished = spans.get_finished_spans()
    rank_client = named(finished, "switchboard.v1.Filter/Rank", trace.SpanKind.CLIENT)
    rank_server = named(finished, "switchboard.v1.Filter/Rank", trace.SpanKind.SERVER)
    route_client = named(finished, "switchboard.v1.Router/Route", trace.SpanKind.CLIENT)
    route_server = named(finished, "switchboard.v1.Router/Route", trace.SpanKind.SERVER)
    assert {span.context.trace_id for span in finished} == {caller.get_span_context().trace_id}
    assert parent_of(rank_client) == caller.get_span_context().span_id
    assert parent_of(rank_server) == rank_client.context.span_id
    assert parent_of(route_client) == rank_server.context.span_id
    assert parent_of(route_server) == route_client.context.span_id
    assert rank_server.parent is not None and rank_server.parent.is_remote

    host, port = filter_addr.split(":")
    assert dict(rank_client.attributes or {}) == {
        "rpc.system": "grpc",
        "rpc.system.name": "grpc",
        "rpc.service": "switchboard.v1.Filter",
        "rpc.method": "Rank",
        "server.address": host,
        "server.port": int(port),
        "rpc.grpc.status_code": 0,
        "rpc.response.status_code": "OK",
    }
    assert rank_server.attributes is not None and rank_server.attributes["rpc.grpc.status_code"] == 0
    assert rank_server.status.status_code == trace.StatusCode.UNSET
    no_secret_in(finished, KEY)


async def test_failed_calls_are_marked_on_the_side_whose_fault_they_are(
    filter_addr: str, spans: InMemorySpanExporter
) -> None:
    # The filter's own call to the router is what fails: the router refuses it.
    async with auth.channel(filter_addr, KEY) as channel:
        stub = pb_grpc.FilterStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Rank(pb.RankRequest(text="unknown"))
    assert refused.value.code() == grpc.StatusCode.UNKNOWN  # the filter did not expect its router to refuse

    finished = spans.get_finished_spans()
    route_client = named(finished, "switchboard.v1.Router/Route", trace.SpanKind.CLIENT)
    route_server = named(finished, "switchboard.v1.Router/Route", trace.SpanKind.SERVER)
    # NOT_FOUND is the caller's problem: an error for the client, not for the server.
    assert route_client.attributes is not None and route_client.attributes["error.type"] == "NOT_FOUND"
    assert route_client.status.status_code == trace.StatusCode.ERROR
    assert route_server.attributes is not None and route_server.attributes["rpc.grpc.status_code"] == 5
    assert "error.type" not in route_server.attributes
    rank_server = named(finished, "switchboard.v1.Filter/Rank", trace.SpanKind.SERVER)
    assert rank_server.attributes is not None and rank_server.attributes["error.type"] == "UNKNOWN"
    assert rank_server.status.status_code == trace.StatusCode.ERROR


async def test_a_refused_credential_is_traced_as_such(filter_addr: str, spans: InMemorySpanExporter) -> None:
    async with auth.channel(filter_addr, "wrong") as channel:
        with pytest.raises(grpc.aio.AioRpcError):
            await pb_grpc.FilterStub(channel).Rank(pb.RankRequest(text="read it"))
    finished = spans.get_finished_spans()
    server = named(finished, "switchboard.v1.Filter/Rank", trace.SpanKind.SERVER)
    assert server.attributes is not None and server.attributes["rpc.response.status_code"] == "UNAUTHENTICATED"
    assert not [span for span in finished if span.name.startswith("switchboard.v1.Router")]
    no_secret_in(finished, "wrong")


async def test_a_server_stream_is_one_span_each_side_until_it_ends(spans: InMemorySpanExporter) -> None:
    server, addr = await serving(lambda s: pb_grpc.add_GatewayServicer_to_server(Gateway(), s))
    try:
        async with auth.channel(addr, KEY) as channel:
            with tracer().start_as_current_span("watcher") as watcher:
                events = [
                    event async for event in pb_grpc.GatewayStub(channel).WatchRun(pb.WatchRunRequest(run_id="r1"))
                ]
            assert [event.step for event in events] == [1, 2]
            # The client's span ends when the call is done, which a callback of its own records.
            for _ in range(100):
                if any(span.kind == trace.SpanKind.CLIENT for span in spans.get_finished_spans()):
                    break
                await asyncio.sleep(0.01)
    finally:
        await server.stop(None)
    finished = spans.get_finished_spans()
    client = named(finished, "switchboard.v1.Gateway/WatchRun", trace.SpanKind.CLIENT)
    served = named(finished, "switchboard.v1.Gateway/WatchRun", trace.SpanKind.SERVER)
    assert parent_of(client) == watcher.get_span_context().span_id
    assert parent_of(served) == client.context.span_id
    assert client.attributes is not None and client.attributes["rpc.grpc.status_code"] == 0
    assert served.attributes is not None and served.attributes["rpc.grpc.status_code"] == 0


def test_server_address_and_port_come_from_the_target() -> None:
    assert target_attributes("127.0.0.1:50051") == {"server.address": "127.0.0.1", "server.port": 50051}
    assert target_attributes("dns:///filter:7002") == {"server.address": "filter", "server.port": 7002}
    assert target_attributes("[::1]:80") == {"server.address": "::1", "server.port": 80}
    assert target_attributes("unix:/run/sb.sock") == {"server.address": "unix:/run/sb.sock"}


# ---- streams ----


async def test_a_stream_hop_is_a_producer_span_and_its_consumer_child(
    redis: aioredis.Redis, spans: InMemorySpanExporter
) -> None:
    with tracer().start_as_current_span("gateway") as root:
        await publish(redis, [emit("test:turns", "run7", 0, "run7:0:gateway", b"turn")])

    async def plan(env: Envelope) -> list[Emit]:
        return [emit("test:steps", env.run_id, 1, "run7:1:planner", b"step")]

    await StreamWorker(redis, stream="test:turns", group="planner", consumer="c1", handler=plan, block_ms=10).run(
        burst=True
    )

    finished = spans.get_finished_spans()
    sent = named(finished, "send test:turns", trace.SpanKind.PRODUCER)
    processed = named(finished, "process test:turns", trace.SpanKind.CONSUMER)
    onward = named(finished, "send test:steps", trace.SpanKind.PRODUCER)
    assert parent_of(sent) == root.get_span_context().span_id
    assert parent_of(processed) == sent.context.span_id  # a parent, not only a link: one tree
    assert parent_of(onward) == processed.context.span_id
    assert {span.context.trace_id for span in finished} == {root.get_span_context().trace_id}

    message_id = (await redis.xrange("test:turns"))[0][0].decode()
    assert dict(sent.attributes or {}) == {
        "messaging.system": "redis",
        "messaging.destination.name": "test:turns",
        "messaging.operation.type": "send",
        "switchboard.run.id": "run7",
        "switchboard.step": 0,
    }
    assert dict(processed.attributes or {}) == {
        "messaging.system": "redis",
        "messaging.destination.name": "test:turns",
        "messaging.operation.type": "process",
        "messaging.consumer.group.name": "planner",
        "messaging.message.id": message_id,
        "switchboard.run.id": "run7",
        "switchboard.step": 0,
    }
    envelope = Envelope.from_fields((await redis.xrange("test:turns"))[0][1])
    assert envelope.traceparent.split("-")[2] == format(sent.context.span_id, "016x")


# ---- MCP ----


@asynccontextmanager
async def filesystem_server(tmp_path: Path) -> AsyncIterator[McpServer]:
    """The tool host's client of a real filesystem server, over the SDK's in-memory session (entered
    and left in the test's own task, as the SDK's task groups require)."""
    root = (tmp_path / "root").resolve()
    root.mkdir()
    (root / "notes.txt").write_text("private words\n")
    settings = ToolHostSettings(allowed_roots=str(root), state_dir=tmp_path / "state")
    server = McpServer("filesystem", "services.toolhost.servers.filesystem", {})
    async with Client(filesystem.build_server(settings)) as client:
        server.session = client.session
        yield server


async def test_a_tool_call_carries_its_trace_in_meta_to_the_server(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    path = str(tmp_path / "root" / "notes.txt")
    async with filesystem_server(tmp_path) as tools:
        with tracer().start_as_current_span("toolhost") as host:
            result = await tools.call("read_file", {"path": path}, timeout=30)
    assert "private words" in str(result)

    finished = spans.get_finished_spans()
    client = named(finished, "tools/call read_file", trace.SpanKind.CLIENT)
    server = named(finished, "tools/call read_file", trace.SpanKind.SERVER)
    assert parent_of(client) == host.get_span_context().span_id
    assert parent_of(server) == client.context.span_id
    assert server.parent is not None and server.parent.is_remote  # from `_meta`, not from this process's context
    # The SDK's own spans (its pings, its partial tools/call spans) are switched off.
    assert {span.instrumentation_scope.name for span in finished if span.instrumentation_scope} == {"switchboard"}
    for span in (client, server):
        attributes = dict(span.attributes or {})
        assert attributes["mcp.method.name"] == "tools/call"
        assert attributes["gen_ai.operation.name"] == "execute_tool"
        assert attributes["gen_ai.tool.name"] == "read_file"
        assert attributes["network.transport"] == "pipe"
        assert "error.type" not in attributes
    server_attributes = dict(server.attributes or {})
    assert server_attributes["jsonrpc.request.id"]
    assert server_attributes["mcp.protocol.version"]
    # Arguments may be personal: neither the path nor what the file holds is recorded.
    no_secret_in(finished, "notes.txt")
    no_secret_in(finished, "private words")


async def test_a_failed_tool_call_is_a_tool_error_on_both_sides(tmp_path: Path, spans: InMemorySpanExporter) -> None:
    async with filesystem_server(tmp_path) as tools:
        with pytest.raises(ToolCallFailed):
            await tools.call("read_file", {"path": str(tmp_path / "root" / "missing.txt")}, timeout=30)
    finished = spans.get_finished_spans()
    for kind in (trace.SpanKind.CLIENT, trace.SpanKind.SERVER):
        span = named(finished, "tools/call read_file", kind)
        assert span.attributes is not None and span.attributes["error.type"] == "tool_error"
        assert span.status.status_code == trace.StatusCode.ERROR
