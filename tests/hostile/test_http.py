"""The gateway's HTTP API against hostile requests: every route, through the real app with its limits,
a real Gateway on real Redis and a real tool host behind it.

Hypothesis draws the method, the route (and odd paths beside them), the ids in the path, the query,
the body (any JSON, JSON of the route's own shape with hostile values, bytes that are not UTF-8), the
content type and the credential. Whatever comes: never a 500, never a stack trace; every error is JSON
with a reason; nothing under /v1/ is served without the token. Besides: a body of several megabytes, a
JSON text nested 10^5 deep, and a path that climbs out of the static folder, each answered at once.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard import runs
from switchboard.v1 import switchboard_pb2 as pb
from tests.gateway.test_decisions import waiting
from tests.hostile.harness import TOKEN, Edge, LoopThread
from tests.hostile.strategies import NASTY_STRINGS, REPEATABLE, json_values, nasty_text
from tests.hostile.world import World

EXAMPLES = 400
VALID = f"Bearer {TOKEN}"
CREDENTIALS = [
    VALID,
    f"bearer {TOKEN}",
    f"Bearer  {TOKEN} ",
    None,
    "",
    "Bearer",
    "Bearer wrong",
    f"Basic {TOKEN}",
    TOKEN,
    f"Bearer {TOKEN}x",
    f"Bearer {TOKEN[:-1]}",
]
CONTENT_TYPES = [
    None,
    "application/json",
    "application/json; charset=utf-16",
    "application/vnd.api+json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "garbage/;;;",
    "",
]
# Paths beside the routes: climbing out, doubled slashes, encoded bytes, the static folder's neighbours.
ODD_PATHS = [
    "/v1",
    "/v1/",
    "/v1//runs",
    "/v1/runs/",
    "/v1/runs/%00",
    "/v1/runs/..%2F..%2Fetc%2Fpasswd",
    "/v1/runs/x/steps/1/../../../turns",
    "/v1/runs/x/steps/-1/confirm",
    "/v1/runs/x/steps/99999999999999999999999/confirm",
    "/v1/runs/x/steps/1e3/fill",
    "/v1/unknown",
    "/openapi.json",
    "/static/../http.py",
    "/static/%2e%2e/http.py",
    "/static/..%2fhttp.py",
    "/static/%00",
    "/%ff%fe",
    "/" + "a" * 5000,
]
# Query strings the list routes parse.
QUERIES = [
    "",
    "?limit=-1",
    "?limit=0",
    "?limit=abc",
    "?limit=1e309",
    f"?limit={10**30}",
    "?session_id=%00&run_id=%ff",
    "?limit=5&limit=7",
]
# A string that JSON can carry but that is no character: half of a surrogate pair.
LONE_SURROGATE = "\udcff"


def body_shapes() -> st.SearchStrategy[Any]:
    """JSON values of the shapes the routes take, with hostile values in them."""
    text = st.one_of(nasty_text, st.just(LONE_SURROGATE), st.just("x" * 5000))
    anything = st.one_of(json_values, text)
    return st.one_of(
        st.fixed_dictionaries({"text": anything}, optional={"session_id": anything, "dry_run": anything}),
        st.fixed_dictionaries(
            {},
            optional={
                "approve": anything,
                "reason": anything,
                "scope": st.one_of(st.sampled_from(["once", "session", "always", "forever"]), anything),
                "arguments": st.one_of(st.dictionaries(text, anything, max_size=3), anything),
                "typed": anything,
            },
        ),
        st.fixed_dictionaries({"values": st.one_of(st.dictionaries(text, anything, max_size=3), anything)}),
        st.fixed_dictionaries(
            {"model": st.one_of(st.just("switchboard"), anything), "messages": anything},
            optional={
                "tools": st.one_of(
                    st.lists(
                        st.fixed_dictionaries(
                            {
                                "type": st.just("function"),
                                "function": st.fixed_dictionaries({"name": text}, optional={"parameters": anything}),
                            }
                        ),
                        max_size=3,
                    ),
                    anything,
                ),
                "tool_choice": anything,
                "stream": anything,
                "n": anything,
                "user": anything,
            },
        ),
        json_values,
    )


def encoded(value: Any) -> bytes:
    return json.dumps(value).encode()


bodies = st.one_of(
    st.none(),
    body_shapes().map(encoded),
    st.binary(max_size=64),
    st.sampled_from(
        [b"{", b"\xff\xfe{}", b'{"text": "\xff"}', b"null", b"[]", b"1" * 5000, b'{"a": 1' + b"1" * 5000 + b"}"]
    ),
)


@pytest.fixture(scope="module")
def known(background_loop: LoopThread, edge: Edge, world: World) -> dict[str, str]:
    """Runs the ids in the paths may name: one whose step waits for the person, one whose step waits
    for values."""

    async def make() -> dict[str, str]:
        arguments = {"path": str(world.root / "notes.md"), "content": "x"}
        host: Any = edge.gateway.toolhost  # the real tool host's client, where the helper takes a stand-in
        run = await waiting(edge.gateway, host, "filesystem.write_file", arguments)
        values = await edge.gateway.submit("make a pdf")
        call = pb.ToolCall(run_id=values.run_id, step=1, tool="document.create_pdf", arguments_json="{}")

        def hold(record: pb.Run) -> None:
            runs.apply_routed(record, call, "document", 1.0, [])
            runs.apply_proposal(record, call, ["content", "output_path"], pb.STEP_STATUS_NEEDS_CLARIFICATION, True)

        await edge.gateway.store.update(values.run_id, hold)
        return {"awaiting": run.run_id, "needs_values": values.run_id}

    return background_loop.run(make())


def routes(edge: Edge) -> list[tuple[str, str]]:
    """Every (method, path template) the app serves: its OpenAPI document's, and the page's."""
    documented = [
        (method.upper(), path) for path, operations in edge.app.openapi()["paths"].items() for method in operations
    ]
    return [*documented, ("GET", "/"), ("GET", "/static/app.js"), ("GET", "/openapi.json")]


@st.composite
def requests(
    draw: st.DrawFn, templates: list[tuple[str, str]], ids: list[str]
) -> tuple[str, str, dict[str, str], bytes | None]:
    method, template = draw(st.sampled_from(templates))
    method = draw(st.one_of(st.just(method), st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"])))
    path = template
    for name in ("run_id", "grant_id", "model_id"):
        if "{" + name + "}" in path:
            # A real run only outside the events route, whose stream would wait for the run to finish.
            choices = st.one_of(st.sampled_from(ids), nasty_text) if not path.endswith("/events") else nasty_text
            path = path.replace("{" + name + "}", quote(draw(choices), safe="") or "x")
    if "{step}" in path:
        path = path.replace(
            "{step}",
            draw(st.one_of(st.sampled_from(["1", "2", "0", "-1", "x", "1.5", str(2**63)]), st.integers().map(str))),
        )
    path = draw(st.one_of(st.just(path), st.just(path), st.sampled_from(ODD_PATHS)))
    path += draw(st.sampled_from(QUERIES))
    headers: dict[str, str] = {}
    credential = draw(st.sampled_from(CREDENTIALS))
    if credential is not None:
        headers["authorization"] = credential
    content_type = draw(st.sampled_from(CONTENT_TYPES))
    if content_type is not None:
        headers["content-type"] = content_type
    return method, path, headers, draw(bodies)


def check(response: httpx.Response, method: str, path: str, headers: dict[str, str]) -> None:
    """The properties every answer has (see the module's note)."""
    status, text = response.status_code, response.text
    assert status < 500, f"{method} {path} -> {status}: {text[:500]}"
    assert "Traceback" not in text and 'File "' not in text, text[:500]
    scheme, _, given = headers.get("authorization", "").partition(" ")
    token_given = scheme.lower() == "bearer" and given.strip() == TOKEN
    protected = path.startswith("/v1/") or path.split("?")[0] in ("/v1", "/openapi.json")
    if protected and not token_given:
        assert status == 401, f"{method} {path} without the token -> {status}: {text[:300]}"
    if status >= 400:
        error = response.json()["error"]
        reason = error["message"] if isinstance(error, dict) else error
        assert isinstance(reason, str) and reason.strip(), text


def test_every_route_answers_hostile_requests_with_a_json_error_and_never_fails(
    background_loop: LoopThread, edge: Edge, known: dict[str, str]
) -> None:
    templates = routes(edge)
    assert {"/v1/turns", "/v1/runs/{run_id}/steps/{step}/confirm", "/v1/chat/completions"} <= {p for _, p in templates}

    @settings(REPEATABLE, max_examples=EXAMPLES)
    @given(request=requests(templates, [*known.values(), "1"]))
    def answers(request: tuple[str, str, dict[str, str], bytes | None]) -> None:
        method, path, headers, body = request
        response = background_loop.run(edge.http.request(method, path, headers=headers, content=body))
        check(response, method, path, headers)

    answers()


def test_a_lone_surrogate_in_a_body_is_refused_as_invalid_json(background_loop: LoopThread, edge: Edge) -> None:
    """JSON can escape half of a surrogate pair, which no protobuf string or UTF-8 encoder takes: it
    failed a turn with a 500, and the tool host's session with its server, before the edge refused it."""
    for path, body in [
        ("/v1/turns", {"text": LONE_SURROGATE}),
        ("/v1/turns", {"text": "hi", "session_id": "a" + LONE_SURROGATE}),
        ("/v1/chat/completions", {"model": "switchboard", "messages": [{"role": "user", "content": LONE_SURROGATE}]}),
    ]:
        response = background_loop.run(edge.http.post(path, content=encoded(body), headers={"authorization": VALID}))
        assert response.status_code == 400, response.text
        assert "surrogate" in json.dumps(response.json())


def test_a_schema_with_an_unusable_dialect_is_refused_not_failed(background_loop: LoopThread, edge: Edge) -> None:
    """A `$schema` that is a list or an object failed the request with a 500 (jsonschema looks it up
    in a dict); an unknown one fell back to the latest dialect with a warning."""

    def asked(dialect: Any) -> httpx.Response:
        parameters = {"type": "object"} if dialect is None else {"$schema": dialect, "type": "object"}
        tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
        body = {"model": "switchboard", "messages": [{"role": "user", "content": "hi"}], "tools": [tool]}
        return background_loop.run(edge.http.post("/v1/chat/completions", json=body, headers={"authorization": VALID}))

    for dialect in [["a list"], {"an": "object"}, 7, "https://example.org/no-such-dialect"]:
        response = asked(dialect)
        assert response.status_code == 400, response.text
        assert "$schema" in response.json()["error"]["message"] or "dialect" in response.json()["error"]["message"]
    for dialect in [None, "https://json-schema.org/draft/2020-12/schema", "http://json-schema.org/draft-07/schema#"]:
        assert asked(dialect).status_code == 200, dialect


POST_ROUTES = ["/v1/turns", "/v1/runs/x/steps/1/confirm", "/v1/runs/x/steps/1/fill", "/v1/chat/completions"]


@pytest.mark.parametrize("path", POST_ROUTES)
def test_a_body_of_several_megabytes_is_refused_at_once(background_loop: LoopThread, edge: Edge, path: str) -> None:
    huge = encoded({"text": "x" * (6 * 1024 * 1024)})

    async def chunked() -> AsyncIterator[bytes]:
        for start in range(0, len(huge), 64 * 1024):
            yield huge[start : start + 64 * 1024]

    for content in (huge, chunked()):
        started = time.monotonic()
        response = background_loop.run(
            edge.http.post(path, content=content, headers={"authorization": VALID, "content-type": "application/json"})
        )
        assert response.status_code == 413, response.text[:300]
        assert time.monotonic() - started < 2
        error = response.json()["error"]
        assert "larger than" in (error["message"] if isinstance(error, dict) else error)


@pytest.mark.parametrize("path", POST_ROUTES)
@pytest.mark.parametrize("content_type", ["application/json", "text/plain", None])
def test_json_nested_a_hundred_thousand_deep_is_refused_at_once(
    background_loop: LoopThread, edge: Edge, path: str, content_type: str | None
) -> None:
    headers = {"authorization": VALID} | ({"content-type": content_type} if content_type else {})
    for deep in (
        b"[" * 100_000,
        b"[" * 100_000 + b"]" * 100_000,
        b'{"text": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    ):
        started = time.monotonic()
        response = background_loop.run(edge.http.post(path, content=deep, headers=headers))
        assert response.status_code in (400, 413, 422), response.text[:300]
        assert time.monotonic() - started < 2
        assert response.json()["error"]


def test_the_static_folder_serves_nothing_beside_it(background_loop: LoopThread, edge: Edge) -> None:
    for path in ("/static/../http.py", "/static/%2e%2e/http.py", "/static/..%2fhttp.py", "/static/%2e%2e%2fapp.py"):
        response = background_loop.run(edge.http.get(path))
        assert response.status_code == 404 and "def build_app" not in response.text, path


def test_nothing_is_created_without_the_token(background_loop: LoopThread, edge: Edge) -> None:
    async def count_runs() -> int:
        return len(await edge.gateway.list_runs(500))

    before = background_loop.run(count_runs())
    for credential in CREDENTIALS[3:]:
        headers = {"authorization": credential} if credential is not None else {}
        response = background_loop.run(edge.http.post("/v1/turns", json={"text": "Delete every file"}, headers=headers))
        assert response.status_code == 401
    assert background_loop.run(count_runs()) == before


@pytest.mark.parametrize("nasty", NASTY_STRINGS[:12])
def test_odd_ids_in_paths_are_not_found(background_loop: LoopThread, edge: Edge, nasty: str) -> None:
    for path in ("/v1/runs/{}", "/v1/runs/{}/events", "/v1/runs/{}/steps/1/undo"):
        response = background_loop.run(
            edge.http.request(
                "POST" if path.endswith("undo") else "GET",
                path.format(quote(nasty, safe="") or "%20"),
                headers={"authorization": VALID},
            )
        )
        assert response.status_code in (404, 405, 400), response.text
        assert response.json()["error"]
