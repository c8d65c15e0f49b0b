"""One trace per turn, as a collector sees it: a stack of its own exports its spans over OTLP/gRPC to a
receiver this test runs, which keeps every span in memory. A turn that reads a file and one that
changes a file once a person confirms it must each be one tree, rooted in the gateway, with every
service, every stream hop, every gRPC call and the MCP call in it."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span as OtlpSpan

from tests.conftest import free_port, redis_server
from tests.stack.harness import Stack

pytestmark = pytest.mark.stack

SERVER, CLIENT = OtlpSpan.SPAN_KIND_SERVER, OtlpSpan.SPAN_KIND_CLIENT
PRODUCER, CONSUMER = OtlpSpan.SPAN_KIND_PRODUCER, OtlpSpan.SPAN_KIND_CONSUMER
FINAL = ("answered", "failed", "refused", "needs_clarification")


@dataclass(frozen=True)
class Received:
    """One span as the collector got it."""

    service: str
    trace_id: str
    span_id: str
    parent_id: str
    name: str
    kind: int
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    return getattr(value, value.WhichOneof("value")) if value.WhichOneof("value") else None


class Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP/gRPC trace receiver that keeps every span it is sent."""

    def __init__(self) -> None:
        self.spans: list[Received] = []
        self.lock = threading.Lock()

    def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 - the protocol's name
        got = []
        for resource in request.resource_spans:
            attributes = {kv.key: _value(kv.value) for kv in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    got.append(
                        Received(
                            service=str(attributes.get("service.name", "")),
                            trace_id=span.trace_id.hex(),
                            span_id=span.span_id.hex(),
                            parent_id=span.parent_span_id.hex(),
                            name=span.name,
                            kind=span.kind,
                            attributes={kv.key: _value(kv.value) for kv in span.attributes},
                        )
                    )
        with self.lock:
            self.spans += got
        return trace_service_pb2.ExportTraceServiceResponse()

    def trace(self, trace_id: str) -> list[Received]:
        with self.lock:
            return [span for span in self.spans if span.trace_id == trace_id]


@pytest.fixture(scope="module")
def traced_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Collector, Path]]:
    workspace = tmp_path_factory.mktemp("traces-workspace")
    (workspace / "plan.txt").write_text("the plan, in a file\n")
    collector = Collector()
    receiver = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(collector, receiver)
    port = free_port()
    receiver.add_insecure_port(f"127.0.0.1:{port}")
    receiver.start()
    settings = {"SWITCHBOARD_OTLP_ENDPOINT": f"http://127.0.0.1:{port}", "OTEL_BSP_SCHEDULE_DELAY": "100"}
    try:
        with redis_server(tmp_path_factory.mktemp("traces-redis")) as url:
            stack = Stack(url, tmp_path_factory.mktemp("traces-state"), [workspace], settings)
            try:
                stack.start()
                yield stack, collector, workspace
            finally:
                stack.stop()
    finally:
        receiver.stop(grace=None)


def until(condition: Any, seconds: float, what: str) -> Any:
    """Wait for `condition()` to return something true, up to `seconds`; that value."""
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"waited {seconds:.0f}s for {what}"
        time.sleep(0.05)


def submit(stack: Stack, text: str) -> tuple[str, str]:
    """Submit a turn over HTTP: its run id, and the trace id the response's `traceresponse` names."""
    with stack.http() as http:
        answer = http.post("/v1/turns", json={"text": text})
    assert answer.status_code == 202, answer.text
    version, trace_id, _span, _flags = answer.headers["traceresponse"].split("-")
    assert version == "00" and len(trace_id) == 32
    return answer.json()["run_id"], trace_id


def run_of(stack: Stack, run_id: str) -> dict[str, Any]:
    with stack.http() as http:
        return dict(http.get(f"/v1/runs/{run_id}").json())


def settled(stack: Stack, run_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    return dict(
        until(lambda: (run := run_of(stack, run_id))["status"] in statuses and run, 120, f"{run_id} {statuses}")
    )


def whole_tree(collector: Collector, trace_id: str, tool: str) -> list[Received]:
    """The trace's spans once its tree is whole: the tool server's span is in, every span's parent is in,
    and the planner has finished with the step's result."""

    def complete() -> list[Received] | None:
        spans = collector.trace(trace_id)
        ids = {span.span_id for span in spans}
        tool_served = any(s.name == f"tools/call {tool}" and s.kind == SERVER for s in spans)
        results_done = any(s.name == "process sb:results" and s.service == "switchboard-planner" for s in spans)
        parents_in = all(span.parent_id in ids for span in spans if span.parent_id)
        return spans if tool_served and results_done and parents_in else None

    return list(until(complete, 30, f"the whole tree of trace {trace_id}"))


def children(spans: list[Received], parent: Received) -> list[Received]:
    return [span for span in spans if span.parent_id == parent.span_id]


def show(spans: list[Received]) -> str:
    """The tree, indented, for a failure's message and for the record."""
    lines: list[str] = []

    def walk(span: Received, depth: int) -> None:
        lines.append(f"{'  ' * depth}{span.name} [{OtlpSpan.SpanKind.Name(span.kind)[10:]}] {span.service}")
        for child in children(spans, span):
            walk(child, depth + 1)

    for root in (span for span in spans if not span.parent_id):
        walk(root, 0)
    return "\n".join(lines)


def check_one_tree(spans: list[Received], tool: str) -> None:
    tree = show(spans)
    roots = [span for span in spans if not span.parent_id]
    assert len(roots) == 1, tree
    root = roots[0]
    assert [span.name for span in spans if span.kind == SERVER and span.service == "switchboard-gateway"] == [
        "POST /v1/turns"
    ], tree  # one HTTP server span: the libraries' own are switched off
    assert (root.service, root.name, root.kind) == ("switchboard-gateway", "POST /v1/turns", SERVER), tree
    assert root.attributes["http.request.method"] == "POST" and root.attributes["http.route"] == "/v1/turns"
    assert root.attributes["url.path"] == "/v1/turns" and root.attributes["http.response.status_code"] == 202

    services = {span.service for span in spans}
    expected = {"gateway", "planner", "filter", "router", "toolhost", "tool-filesystem"}
    assert {f"switchboard-{name}" for name in expected} <= services, tree

    by_id = {span.span_id: span for span in spans}
    # Every stream hop: a producer span and its consumer child, in different services or stages.
    hops = [span for span in spans if span.kind == CONSUMER]
    assert {span.name for span in hops} >= {"process sb:turns", "process sb:approved", "process sb:results"}, tree
    for consumed in hops:
        stream = consumed.name.removeprefix("process ")
        sent = by_id[consumed.parent_id]
        assert (sent.name, sent.kind) == (f"send {stream}", PRODUCER), tree
        assert sent.attributes["messaging.system"] == "redis" == consumed.attributes["messaging.system"]
        assert (
            sent.attributes["messaging.destination.name"] == stream == consumed.attributes["messaging.destination.name"]
        )
        assert sent.attributes["messaging.operation.type"] == "send"
        assert consumed.attributes["messaging.operation.type"] == "process"
        assert consumed.attributes["messaging.consumer.group.name"]
        assert consumed.attributes["messaging.message.id"]
        assert consumed.attributes["switchboard.run.id"] == sent.attributes["switchboard.run.id"]
        assert "switchboard.step" in consumed.attributes

    # Every gRPC call: a client span in the caller and the callee's server span as its child.
    calls = [span for span in spans if span.kind == CLIENT and "rpc.system" in span.attributes]
    assert {span.name for span in calls} >= {"switchboard.v1.Filter/Rank", "switchboard.v1.Router/Route"}, tree
    for call in calls:
        served = [child for child in children(spans, call) if child.kind == SERVER]
        assert [child.name for child in served] == [call.name], tree
        assert served[0].service != call.service
        service, method = call.name.split("/")
        for span in (call, served[0]):
            assert span.attributes["rpc.system"] == "grpc"
            assert (span.attributes["rpc.service"], span.attributes["rpc.method"]) == (service, method)
            assert span.attributes["rpc.grpc.status_code"] == 0
        assert call.attributes["server.address"] == "127.0.0.1" and call.attributes["server.port"] > 0

    # The MCP call: the tool host's client span, the tool server's span its child.
    mcp_client = [s for s in spans if s.name == f"tools/call {tool}" and s.kind == CLIENT]
    assert len(mcp_client) == 1 and mcp_client[0].service == "switchboard-toolhost", tree
    mcp_server = children(spans, mcp_client[0])
    assert [(s.name, s.kind, s.service) for s in mcp_server] == [
        (f"tools/call {tool}", SERVER, "switchboard-tool-filesystem")
    ], tree
    for span in (mcp_client[0], mcp_server[0]):
        assert span.attributes["mcp.method.name"] == "tools/call"
        assert span.attributes["gen_ai.operation.name"] == "execute_tool"
        assert span.attributes["gen_ai.tool.name"] == tool
        assert span.attributes["network.transport"] == "pipe"
        assert "error.type" not in span.attributes
    assert mcp_server[0].attributes["jsonrpc.request.id"]


def test_a_turn_that_reads_is_one_tree_from_the_gateway_to_the_tool_server(
    traced_stack: tuple[Stack, Collector, Path],
) -> None:
    stack, collector, workspace = traced_stack
    run_id, trace_id = submit(stack, f"Read the file {workspace / 'plan.txt'}")
    run = settled(stack, run_id, FINAL)
    assert run["status"] == "answered", run
    tool = run["steps"][0]["tool"].split(".", 1)[1]
    spans = whole_tree(collector, trace_id, tool)
    print(f"\nthe span tree of a turn that reads ({len(spans)} spans):\n{show(spans)}")
    check_one_tree(spans, tool)
    # What the file holds and where it is are no span's business.
    assert not any("plan.txt" in str(value) for span in spans for value in span.attributes.values())


def test_a_confirmed_change_stays_in_its_turns_trace(traced_stack: tuple[Stack, Collector, Path]) -> None:
    stack, collector, workspace = traced_stack
    source, copy = workspace / "plan.txt", workspace / "plan-copy.txt"
    run_id, trace_id = submit(stack, f"Copy the file {source} to {copy}")
    waiting = settled(stack, run_id, ("awaiting_confirmation", *FINAL))
    assert waiting["status"] == "awaiting_confirmation", waiting
    assert waiting["steps"][0]["tool"] == "filesystem.copy_file"
    with stack.http() as http:
        confirmed = http.post(f"/v1/runs/{run_id}/steps/1/confirm", json={"approve": True})
    assert confirmed.status_code == 200, confirmed.text
    confirm_trace = confirmed.headers["traceresponse"].split("-")[1]
    assert settled(stack, run_id, FINAL)["status"] == "answered"
    assert copy.read_text() == source.read_text()

    spans = whole_tree(collector, trace_id, "copy_file")
    print(f"\nthe span tree of a confirmed change ({len(spans)} spans):\n{show(spans)}")
    check_one_tree(spans, "copy_file")
    # The person's decision joins the turn's trace; the request that carried it has a trace of its own.
    decided = [span for span in spans if span.name == "decide step"]
    assert len(decided) == 1 and decided[0].service == "switchboard-gateway"
    assert decided[0].attributes["switchboard.decision"] == "approved"
    assert any(span.name == "send sb:approved" for span in children(spans, decided[0]))
    assert confirm_trace != trace_id
    confirm_request = until(
        lambda: [s for s in collector.trace(confirm_trace) if s.kind == SERVER and not s.parent_id], 30, "the confirm"
    )
    assert confirm_request[0].name == "POST /v1/runs/{run_id}/steps/{step}/confirm"
