"""The gateway under overload and without Redis, against a real redis-server (or none): a full backlog
of turns is refused with 429 / RESOURCE_EXHAUSTED and when to come back, accepted again once the
planner drains it; a Redis that does not answer is 503 / UNAVAILABLE, never a 500; open event
streams are bounded."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
import redis.asyncio as aioredis

from services.gateway import core
from services.gateway.app import Gateway
from services.gateway.http import build_app
from services.gateway.limits import TokenBuckets
from services.gateway.openai_compat import build_openai_router
from services.gateway.server import GatewayServicer
from switchboard import auth, keys
from switchboard.auth import BearerAuth
from switchboard.envelope import Envelope
from switchboard.service import connect_redis
from switchboard.streams import Emit, StreamWorker, ensure_group
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc
from tests.conftest import free_port
from tests.gateway.test_decisions import KEY, ToolHostStandIn
from tests.gateway.test_openai_compat import FakeRanking

TOKEN = "the-api-token"
BOUND = 3


def serving(gateway: Gateway) -> httpx.AsyncClient:
    """The gateway's HTTP API, the OpenAI-compatible routes included."""
    app = build_app(
        gateway, TOKEN, routers=[build_openai_router(gateway, FakeRanking(), TOKEN)], buckets=TokenBuckets(1000, 8)
    )
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway", headers=headers)


@pytest.fixture
async def grpc_gateway() -> AsyncIterator[tuple[grpc.aio.Server, int]]:
    server = grpc.aio.server(interceptors=[BearerAuth([TOKEN], "present the API token")])
    port = server.add_insecure_port("127.0.0.1:0")
    yield server, port
    await server.stop(None)


async def stub_for(server: grpc.aio.Server, port: int, gateway: Gateway) -> pb_grpc.GatewayStub:
    pb_grpc.add_GatewayServicer_to_server(GatewayServicer(gateway), server)
    await server.start()
    return pb_grpc.GatewayStub(auth.channel(f"127.0.0.1:{port}", TOKEN))


async def drain(redis: aioredis.Redis) -> None:
    """What the planner does to the backlog: read every turn and finish it."""

    async def nothing(_env: Envelope) -> list[Emit]:
        return []

    planner = StreamWorker(redis, stream=keys.TURNS, group=keys.GROUP_PLANNER, consumer="planner", handler=nothing)
    await planner.run(burst=True)


async def test_a_full_backlog_is_429_with_retry_after_until_the_planner_drains_it(redis: aioredis.Redis) -> None:
    gateway = Gateway(redis, ToolHostStandIn(), KEY, max_backlog=BOUND)  # type: ignore[arg-type]
    async with serving(gateway) as http:
        for n in range(BOUND):
            assert (await http.post("/v1/turns", json={"text": f"list my files {n}"})).status_code == 202
        refused = await http.post("/v1/turns", json={"text": "one more"})
        assert refused.status_code == 429
        assert refused.json()["error"].startswith("busy, retry later: 3 requests wait for the planner")
        assert 1 <= int(refused.headers["retry-after"]) <= core.RETRY_AFTER_MAX_SECONDS
        assert await redis.xlen(keys.TURNS) == BOUND  # nothing of the refused turn was kept

        await drain(redis)
        assert (await http.post("/v1/turns", json={"text": "one more"})).status_code == 202


async def test_turns_read_but_not_finished_still_wait(redis: aioredis.Redis) -> None:
    gateway = Gateway(redis, ToolHostStandIn(), KEY, max_backlog=BOUND)  # type: ignore[arg-type]
    await ensure_group(redis, keys.TURNS, keys.GROUP_PLANNER)
    for n in range(BOUND):
        await gateway.submit(f"list my files {n}")
    reply = await redis.xreadgroup(keys.GROUP_PLANNER, "planner", {keys.TURNS: ">"}, count=2)
    assert await gateway.turns_waiting() == (BOUND, 2)  # one unread, two being handled
    with pytest.raises(core.Busy):
        await gateway.submit("one more")
    await redis.xack(keys.TURNS, keys.GROUP_PLANNER, reply[0][1][0][0])
    await gateway.submit("one more")


async def test_grpc_submit_past_the_backlog_is_resource_exhausted_with_retry_after(
    redis: aioredis.Redis, grpc_gateway: tuple[grpc.aio.Server, int]
) -> None:
    gateway = Gateway(redis, ToolHostStandIn(), KEY, max_backlog=1)  # type: ignore[arg-type]
    stub = await stub_for(*grpc_gateway, gateway)
    await stub.Submit(pb.SubmitRequest(text="list my files"))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.Submit(pb.SubmitRequest(text="one more"))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "busy, retry later" in (refused.value.details() or "")
    assert int(dict(refused.value.trailing_metadata() or ())["retry-after"]) >= 1


async def test_an_openai_turn_past_the_backlog_is_429_in_openai_shape(redis: aioredis.Redis) -> None:
    gateway = Gateway(redis, ToolHostStandIn(), KEY, max_backlog=1)  # type: ignore[arg-type]
    await gateway.submit("list my files")
    asked = {"model": "switchboard", "messages": [{"role": "user", "content": "list my files"}]}
    async with serving(gateway) as http:
        refused = await http.post("/v1/chat/completions", json=asked)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "server_busy"
    assert int(refused.headers["retry-after"]) >= 1


async def test_without_redis_the_api_answers_503_and_unavailable_with_retry_after(
    grpc_gateway: tuple[grpc.aio.Server, int],
) -> None:
    nowhere = connect_redis(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    gateway = Gateway(nowhere, ToolHostStandIn(), KEY)  # type: ignore[arg-type]
    asked = {"model": "switchboard", "messages": [{"role": "user", "content": "list my files"}]}
    async with serving(gateway) as http:
        for answer in (
            await http.post("/v1/turns", json={"text": "list my files"}),
            await http.get("/v1/runs/r1"),
            await http.get("/v1/runs"),
            await http.get("/v1/runs/r1/events"),
        ):
            assert answer.status_code == 503, answer.text
            assert answer.json() == {"error": core.REDIS_AWAY}
            assert answer.headers["retry-after"] == str(core.REDIS_AWAY_RETRY_SECONDS)
        openai = await http.post("/v1/chat/completions", json=asked)
        assert openai.status_code == 503 and openai.json()["error"]["message"] == core.REDIS_AWAY
        assert openai.headers["retry-after"] == str(core.REDIS_AWAY_RETRY_SECONDS)

    stub = await stub_for(*grpc_gateway, gateway)
    for call in (stub.Submit(pb.SubmitRequest(text="list my files")), stub.GetRun(pb.GetRunRequest(run_id="r1"))):
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert refused.value.details() == core.REDIS_AWAY
        assert dict(refused.value.trailing_metadata() or ())["retry-after"] == str(core.REDIS_AWAY_RETRY_SECONDS)
    await nowhere.aclose()


async def test_open_event_streams_are_bounded(redis: aioredis.Redis) -> None:
    gateway = Gateway(redis, ToolHostStandIn(), KEY, max_watchers=1)  # type: ignore[arg-type]
    run = await gateway.submit("list my files")
    first = gateway.watch(run.run_id)
    assert (await anext(first)).kind == pb.EVENT_KIND_SUBMITTED
    with pytest.raises(core.Busy, match="1 event streams are open"):
        gateway.watch(run.run_id)
    await first.aclose()  # type: ignore[attr-defined]
    second = gateway.watch(run.run_id)
    assert (await anext(second)).kind == pb.EVENT_KIND_SUBMITTED
    await second.aclose()  # type: ignore[attr-defined]


def test_retry_after_is_the_time_to_drain_below_the_bound() -> None:
    assert core.retry_after_seconds(300, 256, 10.0) == 5  # 45 turns over, 10 a second
    assert core.retry_after_seconds(256, 256, 100.0) == 1
    assert core.retry_after_seconds(10_000, 256, 1.0) == core.RETRY_AFTER_MAX_SECONDS
    assert core.retry_after_seconds(300, 256, None) == core.RETRY_AFTER_UNKNOWN_SECONDS
    assert core.retry_after_seconds(300, 256, 0.0) == core.RETRY_AFTER_MAX_SECONDS


def test_the_drain_rate_is_measured_over_a_window_of_readings() -> None:
    now = [0.0]
    rate = core.DrainRate(window_seconds=10, every_seconds=0.5, clock=lambda: now[0])
    rate.observe(100)
    assert rate.per_second() is None  # one reading says nothing
    for _ in range(40):  # 2 turns a second, read every quarter second (half the readings kept)
        now[0] += 0.25
        rate.observe(100 + int(now[0] * 2))
    assert rate.per_second() == pytest.approx(2.0)
    now[0] += 100  # long quiet: the old readings leave the window
    rate.observe(120)
    assert rate.per_second() is None
    rate.observe(5)  # the group was made again: counting starts over
    now[0] += 2
    rate.observe(9)
    assert rate.per_second() == pytest.approx(2.0)
