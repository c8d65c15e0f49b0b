"""The router's adapters: carried-over inputs decoded from a request and passed to the core."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest

from services.router.app import ToolRouter, decode_inputs
from services.router.server import RouterServicer
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

COPY_SCHEMA = {
    "properties": {"source": {"type": "string"}, "destination": {"type": "string"}},
    "required": ["source", "destination"],
}
COPY = pb.Candidate(
    tool="filesystem.copy_file", description="Copy a file.", score=0.9, input_schema_json=json.dumps(COPY_SCHEMA)
)


class NoModel:
    """A model that must not be needed: the words and the inputs give every argument."""

    def choose(self, prompt: str, options: list[str]) -> str:
        raise AssertionError("a single candidate needs no choice")

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str:
        raise AssertionError("no argument is left for the model")


def test_empty_inputs_are_none() -> None:
    assert decode_inputs("") == {}
    assert decode_inputs("   ") == {}


def test_inputs_are_a_json_object() -> None:
    assert decode_inputs('{"paths": ["/a"], "base_dir": "/w"}') == {"paths": ["/a"], "base_dir": "/w"}


def test_malformed_inputs_are_logged_and_ignored(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="services.router.app"):
        assert decode_inputs('{"paths": [') == {}
        assert decode_inputs('["/a"]') == {}
    assert len(caplog.records) == 2


async def test_a_step_routes_with_its_inputs() -> None:
    router = ToolRouter(NoModel())
    inputs = json.dumps({"paths": ["/home/ana/a.pdf"]})
    call = await router.route("copy that to ~/Desktop", [COPY], inputs_json=inputs)
    assert call.outcome == pb.ROUTE_OUTCOME_ROUTED and call.compute_ms > 0
    assert json.loads(call.arguments_json) == {"source": "/home/ana/a.pdf", "destination": "~/Desktop"}


async def test_a_step_with_malformed_inputs_is_routed_on_its_words() -> None:
    router = ToolRouter(NoModel())
    call = await router.route("copy that to ~/Desktop", [COPY], inputs_json="{not json")
    assert call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION
    assert json.loads(call.arguments_json) == {"destination": "~/Desktop"}
    assert "source" in call.reason


@pytest.fixture
async def router_stub() -> AsyncIterator[pb_grpc.RouterStub]:
    server = grpc.aio.server()
    pb_grpc.add_RouterServicer_to_server(RouterServicer(ToolRouter(NoModel())), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield pb_grpc.RouterStub(channel)
    finally:
        await channel.close()
        await server.stop(None)


async def test_route_request_carries_inputs(router_stub: pb_grpc.RouterStub) -> None:
    request = pb.RouteRequest(
        text="copy that to ~/Desktop", candidates=[COPY], inputs_json=json.dumps({"paths": ["/home/ana/a.pdf"]})
    )
    call = await router_stub.Route(request)
    assert json.loads(call.arguments_json) == {"source": "/home/ana/a.pdf", "destination": "~/Desktop"}
