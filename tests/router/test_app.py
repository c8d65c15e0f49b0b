"""The router's adapters: carried-over inputs decoded from a request and passed to the core."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator

import grpc
import pytest
from prometheus_client import REGISTRY

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
    deflections = {"stage": "router", "mode": "deflection"}
    before = REGISTRY.get_sample_value("switchboard_failure_modes_total", deflections)
    call = await router.route("copy that to ~/Desktop", [COPY], inputs_json="{not json")
    assert call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION
    # Asking the person back is counted as such (FM-3), from a series that existed at 0.
    assert REGISTRY.get_sample_value("switchboard_failure_modes_total", deflections) == (before or 0) + 1
    assert before is not None
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


# ---- what the router's metrics say of a step ----

NAME_SCHEMA = {"properties": {"codename": {"type": "string"}}, "required": ["codename"]}
NAMED = pb.Candidate(
    tool="project.start_project", description="Start a project.", score=0.9, input_schema_json=json.dumps(NAME_SCHEMA)
)


class WritingModel:
    """A model that writes `said` whenever it is asked for arguments."""

    def __init__(self, said: str) -> None:
        self.said = said

    def choose(self, prompt: str, options: list[str]) -> str:
        return options[0]

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str:
        return self.said


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def caught(mode: str) -> float:
    return sample("switchboard_failure_modes_total", stage="router", mode=mode)


async def test_a_routed_step_is_timed_as_the_routers_work_and_wait() -> None:
    work = sample("switchboard_stage_work_seconds_count", stage="router")
    wait = sample("switchboard_stage_wait_seconds_count", stage="router", queue="rpc")
    await ToolRouter(NoModel()).route("copy /a/b.txt to ~/Desktop", [COPY])
    assert sample("switchboard_stage_work_seconds_count", stage="router") == work + 1
    assert sample("switchboard_stage_wait_seconds_count", stage="router", queue="rpc") == wait + 1


async def test_a_placeholder_the_model_wrote_is_an_invented_argument_and_left_open() -> None:
    router = ToolRouter(WritingModel('{"codename": "your_project_name"}'))
    before = caught("invented_argument")
    call = await router.route("start the bluebird project", [NAMED])
    assert call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION and list(call.missing) == ["codename"]
    assert caught("invented_argument") == before + 1


async def test_half_a_json_object_is_a_malformed_call_and_nothing_of_it_is_used() -> None:
    router = ToolRouter(WritingModel('{"codename": "blue'))
    before = caught("malformed_call")
    call = await router.route("start the bluebird project", [NAMED])
    assert call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION and json.loads(call.arguments_json) == {}
    assert caught("malformed_call") == before + 1


async def test_a_value_the_model_copied_is_no_failure() -> None:
    router = ToolRouter(WritingModel('{"codename": "bluebird"}'))
    before = (caught("malformed_call"), caught("invented_argument"))
    call = await router.route("start the bluebird project", [NAMED])
    assert json.loads(call.arguments_json) == {"codename": "bluebird"}
    assert (caught("malformed_call"), caught("invented_argument")) == before


def test_a_router_with_a_model_starts_the_series_it_can_count() -> None:
    ToolRouter(WritingModel("{}"))
    for mode in ("malformed_call", "invented_argument", "unknown_tool_resolved", "unknown_tool_unresolved"):
        assert (
            REGISTRY.get_sample_value("switchboard_failure_modes_total", {"stage": "router", "mode": mode}) is not None
        )
