"""The gateway's HTTP API as a client meets it: the token, every error as JSON with a reason, the
limits, the OpenAPI document, and the same operations as gRPC (against a real redis-server)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import grpc
import httpx
import pytest
import redis.asyncio as aioredis

from services.gateway.app import Gateway
from services.gateway.http import build_app
from services.gateway.limits import GrpcLimits, TokenBuckets
from services.gateway.server import GatewayServicer
from switchboard import auth, keys
from switchboard.auth import BearerAuth
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc
from tests.gateway.test_decisions import KEY, ToolHostStandIn, waiting

TOKEN = "the-api-token"


@pytest.fixture
async def client(redis: aioredis.Redis) -> AsyncIterator[tuple[httpx.AsyncClient, Gateway, ToolHostStandIn]]:
    host = ToolHostStandIn()
    gateway = Gateway(redis, host, KEY)  # type: ignore[arg-type]
    app = build_app(gateway, TOKEN, buckets=TokenBuckets(1000, 8), max_body_bytes=4096, max_json_depth=8)
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(transport=transport, base_url="http://gateway", headers=headers) as http:
        yield http, gateway, host


async def test_every_error_is_json_with_a_reason(client) -> None:  # noqa: ANN001
    http, *_ = client
    cases = [
        (http.post("/v1/turns", json={"text": "  "}), 400, "text is empty"),
        (http.get("/v1/runs/nope"), 404, "no run 'nope'"),
        (http.post("/v1/turns", json={"txt": "hi"}), 422, "text: Field required"),
        (http.post("/v1/runs/r/steps/1/confirm", json={"scope": "forever"}), 422, "scope"),
        (http.post("/v1/turns", content=b'{"text": ', headers={"content-type": "application/json"}), 400, "JSON"),
        (http.post("/v1/turns", json={"text": "x" * 5000}), 413, ""),
        (http.post("/v1/turns", json={"text": "a", "deep": [[[[[[[[[[1]]]]]]]]]]}), 400, "deep"),
        (http.delete("/v1/grants/none"), 404, "no standing grant"),
        (http.get("/v1/runs", headers={"Authorization": "Bearer wrong"}), 401, "bearer token"),
    ]
    for request, status, said in cases:
        response = await request
        assert response.status_code == status, (status, response.text)
        assert said in response.json()["error"], response.text


async def test_the_openapi_document_needs_the_token_and_lists_every_route(client) -> None:  # noqa: ANN001
    http, *_ = client
    assert (await http.get("/openapi.json", headers={"Authorization": ""})).status_code == 401
    paths = (await http.get("/openapi.json")).json()["paths"]
    for path in ("/v1/turns", "/v1/runs/{run_id}/steps/{step}/confirm", "/v1/runs/{run_id}/steps/{step}/fill"):
        assert path in paths
    assert {"/v1/grants", "/v1/grants/{grant_id}", "/v1/audit"} <= set(paths)
    assert (await http.get("/docs")).status_code == 404  # no viewer that would load a CDN's scripts


async def test_decisions_over_http_match_the_grpc_operations(client) -> None:  # noqa: ANN001
    http, gateway, host = client
    run = await waiting(gateway, host, "filesystem.delete_file", {"path": "/d/b.txt"}, "s1")
    shown = (await http.get(f"/v1/runs/{run.run_id}")).json()["steps"][0]
    assert shown["preview"] == {
        "text": "Delete /d/b.txt (goes to the trash, can be undone)",
        "tier": "typed",
        "target": "b.txt",
    }
    wrong = await http.post(f"/v1/runs/{run.run_id}/steps/1/confirm", json={"approve": True, "typed": "c.txt"})
    assert wrong.status_code == 400 and "type 'b.txt'" in wrong.json()["error"]
    done = await http.post(f"/v1/runs/{run.run_id}/steps/1/confirm", json={"approve": True, "typed": "b.txt"})
    assert done.status_code == 200 and done.json()["steps"][0]["status"] == "approved"
    history = (await http.get("/v1/runs", params={"session_id": "s1"})).json()["runs"]
    assert [r["run_id"] for r in history] == [run.run_id]
    assert (await http.get("/v1/runs", params={"session_id": "other"})).json()["runs"] == []

    second = await waiting(gateway, host, "filesystem.write_file", {"path": "/d/n.txt", "content": "x"}, "s1")
    allowed = await http.post(f"/v1/runs/{second.run_id}/steps/1/confirm", json={"approve": True, "scope": "session"})
    assert allowed.status_code == 200
    [grant] = (await http.get("/v1/grants")).json()["grants"]
    assert (grant["tool"], grant["scope"], grant["session_id"]) == ("filesystem.write_file", "session", "s1")
    assert (await http.delete(f"/v1/grants/{grant['grant_id']}")).json() == {"revoked": True}
    assert (await http.get("/v1/grants")).json() == {"grants": []}


async def test_the_rate_limit_holds_across_grpc_too(redis: aioredis.Redis) -> None:
    buckets = TokenBuckets(2, 8)
    gateway = Gateway(redis, ToolHostStandIn(), KEY)  # type: ignore[arg-type]
    server = grpc.aio.server(interceptors=[BearerAuth([TOKEN], "the token"), GrpcLimits(buckets)])
    pb_grpc.add_GatewayServicer_to_server(GatewayServicer(gateway), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = auth.channel(f"127.0.0.1:{port}", TOKEN)
    stub = pb_grpc.GatewayStub(channel)
    try:
        app = build_app(gateway, TOKEN, buckets=buckets)
        headers = {"Authorization": f"Bearer {TOKEN}"}
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://g", headers=headers) as http:
            assert (await http.get("/v1/grants")).status_code == 200  # one of the two
        await stub.ListGrants(pb.ListGrantsRequest())  # the other
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.ListGrants(pb.ListGrantsRequest())
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(refused.value.trailing_metadata() or ())["retry-after"] == "30"
    finally:
        await channel.close()
        await server.stop(None)


async def test_json_inside_grpc_messages_is_held_to_the_same_depth(redis: aioredis.Redis) -> None:
    from switchboard.errors import InvalidRequest

    gateway = Gateway(redis, ToolHostStandIn(), KEY)  # type: ignore[arg-type]
    run = await gateway.submit("Put the demo in my calendar")
    deep = json.dumps({"start": json.loads("[" * 40 + "]" * 40)})
    with pytest.raises(InvalidRequest, match="nest deeper than 32"):
        await gateway.fill(run.run_id, 1, deep)


async def test_the_page_is_served_without_the_token_and_may_load_nothing_from_elsewhere(client) -> None:  # noqa: ANN001
    http, *_ = client
    page = await http.get("/", headers={"Authorization": ""})
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
    assert (await http.get("/static/app.js", headers={"Authorization": ""})).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # no CDN


async def test_a_turn_sent_again_under_its_idempotency_key_is_the_same_run(  # noqa: ANN001
    client, redis: aioredis.Redis
) -> None:
    http, _, _ = client
    first = await http.post("/v1/turns", json={"text": "List my notes"}, headers={"Idempotency-Key": "req-1"})
    again = await http.post("/v1/turns", json={"text": "List my notes"}, headers={"Idempotency-Key": "req-1"})
    assert first.status_code == again.status_code == 202, (first.text, again.text)
    assert first.json()["run_id"] == again.json()["run_id"]
    assert await redis.xlen(keys.TURNS) == 1  # published once
    other = await http.post("/v1/turns", json={"text": "Delete my notes"}, headers={"Idempotency-Key": "req-1"})
    assert other.status_code == 400 and "another request" in other.json()["error"]
    fresh = await http.post("/v1/turns", json={"text": "List my notes"}, headers={"Idempotency-Key": "req-2"})
    plain = await http.post("/v1/turns", json={"text": "List my notes"})
    assert len({first.json()["run_id"], fresh.json()["run_id"], plain.json()["run_id"]}) == 3
    assert await redis.xlen(keys.TURNS) == 3
