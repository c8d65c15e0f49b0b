"""The gateway's request limits: token, rate, body size and JSON depth, checked by one ASGI middleware
in front of a small FastAPI app, through httpx's in-process transport or raw ASGI calls."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.types import Message

from services.gateway.limits import (
    InvalidJson,
    JsonTooDeep,
    RequestLimits,
    TokenBuckets,
    json_depth_exceeds,
    parse_limited_json,
    token_key,
)

TOKEN = "the-api-token"
OTHER_TOKEN = "a-second-token"
AUTH = {"authorization": f"Bearer {TOKEN}"}
MIB = 1024 * 1024


class FakeClock:
    """Time that moves only when a test moves it."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def small_app(received: list[bytes]) -> FastAPI:
    """Open routes, API routes, an echo that records the body it got, and an SSE stream."""
    app = FastAPI()

    @app.get("/")
    async def page() -> PlainTextResponse:
        return PlainTextResponse("<html>the page</html>")

    @app.get("/static/app.js")
    async def script() -> PlainTextResponse:
        return PlainTextResponse("console.log('hi')")

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True}

    @app.get("/v1/runs")
    async def runs() -> dict:
        return {"runs": []}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": []}

    @app.post("/v1/chat/completions")
    async def completions() -> dict:
        return {"choices": []}

    @app.post("/v1/echo")
    async def echo(request: Request) -> Response:
        body = await request.body()
        received.append(body)
        return Response(body, media_type=request.headers.get("content-type", "application/octet-stream"))

    @app.post("/upload")
    async def upload(request: Request) -> JSONResponse:
        body = await request.body()
        received.append(body)
        return JSONResponse({"bytes": len(body)})

    return app


@pytest.fixture
def received() -> list[bytes]:
    return []


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://gateway")


@pytest.fixture
async def client(received: list[bytes], clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(RequestLimits(small_app(received), token=TOKEN, rate_per_minute=600, clock=clock)) as http:
        yield http


def nested(depth: int) -> bytes:
    """`depth` arrays inside one another, around one number."""
    return b"[" * depth + b"1" + b"]" * depth


# --- authentication ---------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/static/app.js", "/healthz"])
async def test_open_paths_need_no_token(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"authorization": "Bearer wrong-token"},
        {"authorization": f"Basic {TOKEN}"},
        {"authorization": "Bearer "},
        {"authorization": f"Bearer {TOKEN}x"},
        {"authorization": "Bearer t\u00e9".encode("latin-1")},  # not ASCII: refused, not a 500 from the comparison
    ],
)
async def test_api_paths_refuse_a_missing_or_wrong_token(client: httpx.AsyncClient, headers: dict) -> None:
    response = await client.get("/v1/runs", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json() == {"error": "missing or wrong bearer token (see the token file in the state directory)"}


async def test_api_paths_and_the_schema_answer_with_the_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/runs", headers=AUTH)).json() == {"runs": []}
    assert (await client.get("/v1/runs", headers={"authorization": f"bearer {TOKEN}"})).status_code == 200
    assert (await client.get("/openapi.json")).status_code == 401
    assert "paths" in (await client.get("/openapi.json", headers=AUTH)).json()


async def test_a_token_in_the_url_is_not_accepted(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/runs", params={"token": TOKEN})).status_code == 401


@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/v1/models"), ("GET", "/v1/models/some-model"), ("POST", "/v1/chat/completions")]
)
async def test_openai_routes_refuse_in_openai_shape(client: httpx.AsyncClient, method: str, path: str) -> None:
    response = await client.request(method, path, headers={"authorization": "Bearer wrong"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["code"] == "invalid_api_key"
    assert "bearer token" in error["message"]


async def test_openai_routes_answer_with_the_token(client: httpx.AsyncClient) -> None:
    assert (await client.get("/v1/models", headers=AUTH)).json() == {"object": "list", "data": []}


async def test_works_as_fastapi_middleware(received: list[bytes]) -> None:
    app = small_app(received)
    app.add_middleware(RequestLimits, token=TOKEN, max_body_bytes=10)
    async with client_for(app) as http:
        assert (await http.get("/v1/runs")).status_code == 401
        assert (await http.get("/v1/runs", headers=AUTH)).status_code == 200
        assert (await http.post("/upload", content=b"x" * 11)).status_code == 413


def test_an_empty_token_is_never_accepted() -> None:
    with pytest.raises(ValueError):
        RequestLimits(small_app([]), token="")
    with pytest.raises(ValueError):
        RequestLimits(small_app([]), token=[])


# --- body size --------------------------------------------------------------------------------------


async def test_a_body_at_the_limit_passes_unchanged(client: httpx.AsyncClient, received: list[bytes]) -> None:
    body = bytes(range(256)) * (MIB // 256)
    response = await client.post("/upload", content=body, headers={"content-type": "application/octet-stream"})
    assert response.json() == {"bytes": MIB}
    assert received == [body]


async def test_a_body_over_the_limit_by_its_length_is_refused(client: httpx.AsyncClient, received: list[bytes]) -> None:
    response = await client.post("/upload", content=b"x" * (MIB + 1))
    assert response.status_code == 413
    assert str(MIB) in response.json()["error"]
    assert received == []


async def test_a_declared_length_over_the_limit_is_refused_before_reading(received: list[bytes]) -> None:
    reads: list[str] = []

    async def receive() -> Message:
        reads.append("read")
        return {"type": "http.request", "body": b"", "more_body": True}

    sent = await call(
        RequestLimits(small_app(received), token=TOKEN),
        scope("POST", "/upload", [(b"content-length", str(MIB + 1).encode())]),
        receive,
    )
    assert sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"].startswith("the request body is larger than")
    assert reads == [] and received == []


@pytest.mark.parametrize("length", ["lots", "-1", "1e3", "\u00b2"])
async def test_a_content_length_that_is_not_a_number_is_refused(length: str) -> None:
    sent = await call(
        RequestLimits(small_app([]), token=TOKEN),
        scope("POST", "/upload", [(b"content-length", length.encode("latin-1"))]),
        one_body(b"x"),
    )
    assert sent[0]["status"] == 400
    assert "Content-Length" in json.loads(sent[1]["body"])["error"]


async def test_a_streamed_body_is_cut_off_at_the_limit(client: httpx.AsyncClient, received: list[bytes]) -> None:
    pulled = 0

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(100):
            pulled += 1
            yield b"x" * (64 * 1024)

    response = await client.post("/upload", content=chunks())
    assert response.status_code == 413
    assert received == []
    assert pulled <= 17  # 16 chunks make 1 MiB; the 17th is one too many, and nothing after it is read


async def test_a_streamed_body_that_lies_in_its_length_is_cut_off(received: list[bytes]) -> None:
    messages: list[Message] = [{"type": "http.request", "body": b"x" * 600_000, "more_body": True}] * 2

    async def receive() -> Message:
        return messages.pop(0)

    sent = await call(
        RequestLimits(small_app(received), token=TOKEN),
        scope("POST", "/upload", [(b"content-length", b"10")]),
        receive,
    )
    assert sent[0]["status"] == 413
    assert received == []


# --- JSON -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [b'{"text": ', b"[1, 2", b"{'single': 1}", b"\xff\xfe\xfd"])
async def test_invalid_json_is_refused(client: httpx.AsyncClient, received: list[bytes], body: bytes) -> None:
    response = await client.post("/v1/echo", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["error"].startswith("the body is not valid JSON: ")
    assert received == []


async def test_json_one_level_too_deep_is_refused(client: httpx.AsyncClient, received: list[bytes]) -> None:
    response = await client.post("/v1/echo", content=nested(33), headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    assert "more than 32 levels deep" in response.json()["error"]
    assert received == []


async def test_json_at_the_depth_limit_reaches_the_app_unchanged(
    client: httpx.AsyncClient, received: list[bytes]
) -> None:
    body = b'{"a": [' * 16 + b'"[[[[{{"' + b"]}" * 16
    assert json_depth_exceeds(body, 31)
    response = await client.post("/v1/echo", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 200
    assert response.content == body
    assert received == [body]


@pytest.mark.parametrize("body", [b"[" * 100_000, nested(100_000), b'{"a":' * 100_000])
async def test_very_deep_json_is_refused_cleanly_and_quickly(client: httpx.AsyncClient, body: bytes) -> None:
    started = time.perf_counter()
    response = await client.post("/v1/echo", content=body, headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 400
    assert "too deep" in response.json()["error"]
    assert time.perf_counter() - started < 2  # a scan that stops at level 33, not a parse of 100 000


@pytest.mark.parametrize("content_type", ["application/json; charset=utf-8", "application/merge-patch+json", None])
async def test_bodies_fastapi_would_parse_as_json_are_checked(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = dict(AUTH) if content_type is None else {**AUTH, "content-type": content_type}
    assert (await client.post("/v1/echo", content=nested(33), headers=headers)).status_code == 400


async def test_other_bodies_are_not_read_as_json(client: httpx.AsyncClient, received: list[bytes]) -> None:
    body = b"[" * 100
    response = await client.post("/v1/echo", content=body, headers={**AUTH, "content-type": "text/plain"})
    assert response.status_code == 200
    assert received == [body]


async def test_an_empty_json_request_reaches_the_app(client: httpx.AsyncClient, received: list[bytes]) -> None:
    response = await client.post("/v1/echo", headers={**AUTH, "content-type": "application/json"})
    assert response.status_code == 200
    assert received == [b""]


@pytest.mark.parametrize(
    ("text", "depth"),
    [
        ("1", 0),
        ('"[[[[[["', 0),
        ("[]", 1),
        ('[{"a": {}}]', 3),
        ('["\\"[[[[", ["]]"]]', 2),
        ('{"\\\\": [["\\\\\\""]]}', 3),
        (" [ [ ] , [ [ ] ] ] ", 3),
    ],
)
def test_depth_counts_only_brackets_outside_strings(text: str, depth: int) -> None:
    assert not json_depth_exceeds(text, depth)
    assert json_depth_exceeds(text, depth - 1) == (depth > 0)
    assert not json_depth_exceeds(text.encode("utf-16"), depth)
    assert parse_limited_json(text.encode(), depth) == json.loads(text)


def test_depth_of_a_million_levels_is_no_recursion() -> None:
    assert json_depth_exceeds("[" * 1_000_000, 32)
    assert json_depth_exceeds("{" + '"k":{' * 1_000_000, 32)


def test_an_unclosed_string_is_scanned_once() -> None:
    # every later quote is escaped, so the string never closes: the scan must stop there, not look for a
    # string at each of the 300 000 quotes (each look reading to the end)
    text = '["' + '\\"[' * 300_000
    started = time.perf_counter()
    assert not json_depth_exceeds(text, 32)
    with pytest.raises(InvalidJson):
        parse_limited_json(text, 32)
    assert time.perf_counter() - started < 2


def test_parse_limited_json_names_its_errors() -> None:
    with pytest.raises(JsonTooDeep):
        parse_limited_json(nested(4), 3)
    with pytest.raises(InvalidJson):
        parse_limited_json(b"[1,]", 3)
    assert parse_limited_json(b"\xef\xbb\xbf[1]", 3) == [1]  # as json.loads takes a BOM


# --- rate -------------------------------------------------------------------------------------------


async def test_a_token_over_its_rate_waits_then_passes_again(client: httpx.AsyncClient, clock: FakeClock) -> None:
    for _ in range(600):
        assert (await client.get("/v1/runs", headers=AUTH)).status_code == 200
    refused = await client.get("/v1/runs", headers=AUTH)
    assert refused.status_code == 429
    assert refused.headers["retry-after"] == "1"
    assert refused.json()["error"].startswith("too many requests: ")
    assert refused.json()["error"].endswith("retry after 1 s")
    clock.now += 1  # 10 requests' worth at 600 a minute
    for _ in range(10):
        assert (await client.get("/v1/runs", headers=AUTH)).status_code == 200
    assert (await client.get("/v1/runs", headers=AUTH)).status_code == 429
    clock.now += 60
    for _ in range(600):
        assert (await client.get("/v1/runs", headers=AUTH)).status_code == 200


async def test_retry_after_is_whole_seconds_until_the_next_request(received: list[bytes], clock: FakeClock) -> None:
    app = RequestLimits(small_app(received), token=TOKEN, rate_per_minute=2, clock=clock)
    async with client_for(app) as http:
        assert [(await http.get("/v1/runs", headers=AUTH)).status_code for _ in range(2)] == [200, 200]
        for advance, told in ((0, "30"), (10.5, "20"), (19, "1")):  # 19.5 s rounds up to 20, 0.5 s to 1
            clock.now += advance
            refused = await http.get("/v1/runs", headers=AUTH)
            assert (refused.status_code, refused.headers["retry-after"]) == (429, told)
        clock.now += 0.5
        assert (await http.get("/v1/runs", headers=AUTH)).status_code == 200


async def test_each_token_has_its_own_bucket(received: list[bytes], clock: FakeClock) -> None:
    app = RequestLimits(small_app(received), token=[TOKEN, OTHER_TOKEN], rate_per_minute=3, clock=clock)
    async with client_for(app) as http:
        for _ in range(3):
            assert (await http.get("/v1/runs", headers=AUTH)).status_code == 200
        assert (await http.get("/v1/runs", headers=AUTH)).status_code == 429
        other = {"authorization": f"Bearer {OTHER_TOKEN}"}
        assert [(await http.get("/v1/runs", headers=other)).status_code for _ in range(4)] == [200, 200, 200, 429]


async def test_open_paths_and_refused_tokens_are_not_limited(received: list[bytes], clock: FakeClock) -> None:
    app = RequestLimits(small_app(received), token=TOKEN, rate_per_minute=1, clock=clock)
    async with client_for(app) as http:
        for _ in range(5):
            assert (await http.get("/healthz")).status_code == 200
            assert (await http.get("/v1/runs", headers={"authorization": "Bearer wrong"})).status_code == 401
        assert (await http.get("/v1/runs", headers=AUTH)).status_code == 200
        assert (await http.get("/v1/runs", headers=AUTH)).status_code == 429


async def test_openai_routes_are_told_to_wait_in_openai_shape(received: list[bytes], clock: FakeClock) -> None:
    app = RequestLimits(small_app(received), token=TOKEN, rate_per_minute=1, clock=clock)
    async with client_for(app) as http:
        await http.get("/v1/models", headers=AUTH)
        refused = await http.get("/v1/models", headers=AUTH)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(refused.headers["retry-after"]) >= 1


def test_buckets_are_bounded_and_keyed_by_a_hash(clock: FakeClock) -> None:
    buckets = TokenBuckets(per_minute=1, max_keys=2, clock=clock)
    for token in ("a", "b", "a", "c"):  # "b" is then the least recently used
        buckets.take(token_key(token))
    assert len(buckets) == 2
    assert buckets.take(token_key("a")) > 0  # kept: its one request a minute is spent
    assert buckets.take(token_key("b")) == 0  # forgotten, so it starts again full
    assert token_key(TOKEN) == token_key(TOKEN) != TOKEN.encode()


# --- streaming --------------------------------------------------------------------------------------


def scope(method: str, path: str, headers: list[tuple[bytes, bytes]]) -> dict:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "client": ("127.0.0.1", 1234),
        "server": ("gateway", 80),
    }


def one_body(body: bytes) -> Any:
    """A `receive` that gives `body`, then waits for a disconnect that never comes."""
    given = False

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


async def call(app: Any, request_scope: dict, receive: Any) -> list[Message]:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    await asyncio.wait_for(app(request_scope, receive, send), timeout=10)
    return sent


async def test_server_sent_events_stream_through() -> None:
    """The second event is made only once the first has reached the client, so a middleware that held
    the response back until the end would never finish."""
    first_arrived = asyncio.Event()
    app = FastAPI()

    @app.get("/v1/runs/r1/events")
    async def events() -> StreamingResponse:
        async def stream() -> AsyncIterator[str]:
            yield "event: step\ndata: 1\n\n"
            await first_arrived.wait()
            yield "event: done\ndata: 2\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream")

    chunks: list[bytes] = []
    started: list[Message] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            started.append(message)
        elif message.get("body"):
            chunks.append(message["body"])
            first_arrived.set()

    limited = RequestLimits(app, token=TOKEN)
    request_scope = scope("GET", "/v1/runs/r1/events", [(b"authorization", f"Bearer {TOKEN}".encode())])
    await asyncio.wait_for(limited(request_scope, one_body(b""), send), timeout=10)
    assert started[0]["status"] == 200
    assert dict(started[0]["headers"])[b"content-type"].startswith(b"text/event-stream")
    assert chunks == [b"event: step\ndata: 1\n\n", b"event: done\ndata: 2\n\n"]


async def test_the_app_still_hears_the_client_leave() -> None:
    """After the replayed body, `receive` is the server's again, so a stream stops when the client goes."""
    heard: list[str] = []

    async def app(request_scope: Any, receive: Any, send: Any) -> None:
        heard.append((await receive())["type"])
        heard.append((await receive())["type"])

    messages: list[Message] = [{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}]

    async def receive() -> Message:
        return messages.pop(0)

    await call(RequestLimits(app, token=TOKEN), scope("GET", "/", []), receive)
    assert heard == ["http.request", "http.disconnect"]


async def test_lifespan_and_open_websockets_pass_through() -> None:
    seen: list[str] = []

    async def app(request_scope: Any, receive: Any, send: Any) -> None:
        seen.append(request_scope["type"])

    limited = RequestLimits(app, token=TOKEN)
    await call(limited, {"type": "lifespan", "asgi": {"version": "3.0"}}, one_body(b""))
    await call(limited, {**scope("GET", "/ws", []), "type": "websocket"}, one_body(b""))
    closed = await call(limited, {**scope("GET", "/v1/ws", []), "type": "websocket"}, one_body(b""))
    assert seen == ["lifespan", "websocket"]
    assert closed[0]["type"] == "websocket.close"
