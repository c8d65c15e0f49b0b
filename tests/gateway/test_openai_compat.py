"""The OpenAI-compatible endpoint, with stand-ins for the filter, the router and the gateway's runs:
request checks, the shape of replies and chunks, and what each tool_choice does. The filter's ranking
of a caller's tools (which the endpoint relies on) is tested here too, with a small word encoder."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Sequence
from typing import Any

import grpc
import httpx
import numpy as np
import pytest
from fastapi import FastAPI

from services.filter.app import ToolFilter, caller_entries
from services.filter.core import EmbeddingCache, ToolEntry
from services.filter.server import FilterServicer
from services.gateway.openai_compat import (
    MODEL_ID,
    GrpcToolRanking,
    TurnFollower,
    build_openai_router,
)
from switchboard.auth import BearerAuth
from switchboard.errors import InvalidRequest, UpstreamUnavailable
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

TOKEN = "openai-side-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

FORECAST = {
    "type": "function",
    "function": {
        "name": "weather.forecast-v2",
        "description": "Tell the weather forecast for a town.",
        "parameters": {"type": "object", "properties": {"town": {"type": "string"}}, "required": ["town"]},
    },
}
TRANSFER = {
    "type": "function",
    "function": {
        "name": "bank_transfer",
        "description": "Move money between two bank accounts.",
        "parameters": {
            "type": "object",
            "properties": {"to_account": {"type": "string"}, "sum": {"type": "number"}},
            "required": ["to_account", "sum"],
        },
    },
}
ASKED = "Will it rain in Porto on Saturday?"


class FakeRanking:
    """The filter and the router, scripted: `ranked` names the tools the filter keeps, in order (none:
    nothing fits); the router picks the first candidate and fills `arguments`, or reports `missing`."""

    def __init__(
        self,
        ranked: Sequence[str] = (),
        arguments: dict[str, Any] | None = None,
        missing: Sequence[str] = (),
        down: bool = False,
    ) -> None:
        self.ranked = list(ranked)
        self.arguments = arguments or {}
        self.missing = list(missing)
        self.down = down
        self.ranked_for: list[tuple[str, list[str]]] = []
        self.routed: list[tuple[str, list[pb.Candidate]]] = []

    async def rank(self, text: str, tools: Sequence[pb.Candidate]) -> pb.RankResponse:
        if self.down:
            raise UpstreamUnavailable("the filter at 127.0.0.1:1 did not answer")
        self.ranked_for.append((text, [t.tool for t in tools]))
        by_name = {t.tool: t for t in tools}
        kept = [pb.Candidate(tool=n, score=0.9 - 0.1 * i) for i, n in enumerate(self.ranked)]
        for candidate in kept:
            candidate.description = by_name[candidate.tool].description
            candidate.input_schema_json = by_name[candidate.tool].input_schema_json
        return pb.RankResponse(candidates=kept)

    async def route(self, text: str, candidates: Sequence[pb.Candidate]) -> pb.ToolCall:
        self.routed.append((text, list(candidates)))
        chosen = candidates[0].tool
        if self.missing:
            return pb.ToolCall(
                tool=chosen,
                arguments_json=json.dumps(self.arguments),
                outcome=pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION,
                missing=self.missing,
                reason=f"{chosen} needs {', '.join(self.missing)}",
            )
        return pb.ToolCall(tool=chosen, arguments_json=json.dumps(self.arguments), outcome=pb.ROUTE_OUTCOME_ROUTED)


def event(kind: int, message: str = "", step: int = 0, status: int = pb.RUN_STATUS_RUNNING) -> pb.RunEvent:
    return pb.RunEvent(run_id="run-7", kind=kind, message=message, step=step, status=status)


ANSWERED = [
    event(pb.EVENT_KIND_SUBMITTED, "list it", status=pb.RUN_STATUS_PLANNING),
    event(pb.EVENT_KIND_ANSWER, "Step 1: the folder holds a.txt and b.txt.\n"),
    event(pb.EVENT_KIND_ANSWER, "Step 2: a.txt says hello.\n"),
    event(
        pb.EVENT_KIND_FINISHED,
        "Step 1: the folder holds a.txt and b.txt.\nStep 2: a.txt says hello.\nDone: 2 of 2 steps ran.",
        status=pb.RUN_STATUS_ANSWERED,
    ),
]


class FakeGateway:
    """Runs that follow a script of events; the last submitted turn is kept."""

    def __init__(self, events: Sequence[pb.RunEvent] = (), run: pb.Run | None = None) -> None:
        self.events = list(events)
        self.run = run or pb.Run(run_id="run-7", status=pb.RUN_STATUS_RUNNING)
        self.submitted: list[tuple[str, str]] = []

    async def submit(self, text: str, session_id: str = "", dry_run: bool = False, *, api: str) -> pb.Run:
        assert api == "openai", api
        self.submitted.append((text, session_id))
        return pb.Run(
            run_id="run-7", session_id=session_id or "fresh-session", text=text, status=pb.RUN_STATUS_PLANNING
        )

    async def watch(self, run_id: str) -> AsyncIterator[pb.RunEvent]:
        for item in self.events:
            yield item

    async def get_run(self, run_id: str) -> pb.Run:
        return self.run


def client(
    ranking: FakeRanking | None = None, gateway: FakeGateway | None = None, wait: float = 5.0
) -> httpx.AsyncClient:
    app = FastAPI()
    app.include_router(
        build_openai_router(gateway or FakeGateway(ANSWERED), ranking or FakeRanking(), TOKEN, turn_wait_seconds=wait)
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://switchboard")


def asking(text: str = ASKED, **fields: Any) -> dict[str, Any]:
    return {"model": MODEL_ID, "messages": [{"role": "user", "content": text}], **fields}


async def post(http: httpx.AsyncClient, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return await http.post("/v1/chat/completions", json=body, headers=AUTH if headers is None else headers)


def streamed(response: httpx.Response) -> list[Any]:
    """The data of each server-sent event, decoded (the final `[DONE]` as it is)."""
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text.endswith("data: [DONE]\n\n")
    items = [block.removeprefix("data: ") for block in response.text.split("\n\n") if block]
    return [item if item == "[DONE]" else json.loads(item) for item in items]


# ---- models and authentication ----


async def test_models_lists_switchboard_only() -> None:
    async with client() as http:
        listed = (await http.get("/v1/models", headers=AUTH)).json()
        one = await http.get(f"/v1/models/{MODEL_ID}", headers=AUTH)
        other = await http.get("/v1/models/gpt-5", headers=AUTH)
    assert listed["object"] == "list"
    assert [(m["id"], m["object"], m["owned_by"]) for m in listed["data"]] == [(MODEL_ID, "model", "switchboard")]
    assert isinstance(listed["data"][0]["created"], int)
    assert one.json()["id"] == MODEL_ID
    assert other.status_code == 404 and other.json()["error"]["code"] == "model_not_found"


@pytest.mark.parametrize("header", [None, "Bearer wrong", f"Basic {TOKEN}", f"Bearer {TOKEN}x"])
async def test_a_missing_or_wrong_token_is_401_in_openai_shape(header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    ranking = FakeRanking(["bank_transfer"])
    async with client(ranking) as http:
        completion = await post(http, asking(tools=[TRANSFER]), headers)
        models = await http.get("/v1/models", headers=headers)
    for refused in (completion, models):
        assert refused.status_code == 401
        assert refused.json()["error"]["type"] == "invalid_request_error"
        assert refused.json()["error"]["code"] == "invalid_api_key"
        assert TOKEN not in refused.text
    assert ranking.ranked_for == []


async def test_an_unknown_model_is_404() -> None:
    async with client() as http:
        refused = await post(http, {**asking(), "model": "gpt-4o"})
    assert refused.status_code == 404
    assert refused.json()["error"] == {
        "message": refused.json()["error"]["message"],
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert "gpt-4o" in refused.json()["error"]["message"]


# ---- request checks ----

BAD_REQUESTS = {
    "no messages": ({"model": MODEL_ID}, "messages"),
    "empty messages": ({"model": MODEL_ID, "messages": []}, "messages"),
    "unknown role": ({"model": MODEL_ID, "messages": [{"role": "robot", "content": "hi"}]}, "messages[0].role"),
    "image part": (
        {"model": MODEL_ID, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]},
        "messages[0].content",
    ),
    "no user words": ({"model": MODEL_ID, "messages": [{"role": "system", "content": "be brief"}]}, "messages"),
    "tool of another type": (asking(tools=[{"type": "retrieval", "function": FORECAST["function"]}]), "tools[0].type"),
    "tool without a name": (asking(tools=[{"type": "function", "function": {"name": " "}}]), "tools[0].function.name"),
    "parameters not a schema": (
        asking(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": 12}}}]),
        "tools[0].function.parameters",
    ),
    "parameters not an object": (
        asking(tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]),
        "tools[0].function.parameters",
    ),
    "two tools one name": (asking(tools=[FORECAST, FORECAST]), "tools"),
    "named tool not given": (
        asking(tools=[FORECAST], tool_choice={"type": "function", "function": {"name": "bank_transfer"}}),
        "tool_choice",
    ),
    "required without tools": (asking(tool_choice="required"), "tool_choice"),
    "unknown tool_choice": (asking(tools=[FORECAST], tool_choice="sometimes"), "tool_choice"),
    "several choices": (asking(n=3), "n"),
}


@pytest.mark.parametrize("case", BAD_REQUESTS)
async def test_bad_requests_are_400_naming_the_field(case: str) -> None:
    body, param = BAD_REQUESTS[case]
    gateway, ranking = FakeGateway(ANSWERED), FakeRanking(["weather.forecast-v2"])
    async with client(ranking, gateway) as http:
        refused = await post(http, body)
    assert refused.status_code == 400, refused.text
    error = refused.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert (error["param"] or "").startswith(param), error
    assert error["message"]
    assert gateway.submitted == [] and ranking.ranked_for == []


async def test_a_body_that_is_not_json_is_400() -> None:
    async with client() as http:
        refused = await http.post("/v1/chat/completions", content=b"{not json", headers=AUTH)
    assert refused.status_code == 400
    assert "not JSON" in refused.json()["error"]["message"]


# ---- with tools ----


async def test_auto_calls_the_best_ranked_tool_under_the_callers_exact_name() -> None:
    ranking = FakeRanking(["weather.forecast-v2", "bank_transfer"], {"town": "Porto"})
    async with client(ranking) as http:
        answered = await post(http, asking(tools=[TRANSFER, FORECAST]))
    assert answered.status_code == 200, answered.text
    body = answered.json()
    assert body["object"] == "chat.completion" and body["model"] == MODEL_ID and body["id"].startswith("chatcmpl-")
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] is None
    [call] = choice["message"]["tool_calls"]
    assert call["id"].startswith("call_") and call["type"] == "function"
    assert call["function"]["name"] == "weather.forecast-v2"
    assert json.loads(call["function"]["arguments"]) == {"town": "Porto"}
    # The filter ranked the caller's tools, as given, for the last user message; the router saw its ranking.
    assert ranking.ranked_for == [(ASKED, ["bank_transfer", "weather.forecast-v2"])]
    [(text, candidates)] = ranking.routed
    assert text == ASKED and [c.tool for c in candidates] == ["weather.forecast-v2", "bank_transfer"]
    assert json.loads(candidates[0].input_schema_json)["required"] == ["town"]
    assert body["switchboard"]["outcome"] == "tool_call"


async def test_auto_without_a_fitting_tool_answers_in_words_and_calls_nothing() -> None:
    ranking = FakeRanking([])
    async with client(ranking) as http:
        body = (await post(http, asking("Compose a limerick about otters", tools=[FORECAST, TRANSFER]))).json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert "tool_calls" not in choice["message"]
    assert "Compose a limerick about otters" in choice["message"]["content"]
    assert ranking.routed == []
    assert body["switchboard"]["outcome"] == "no_tool_fits"


async def test_auto_is_the_default_with_tools() -> None:
    ranking = FakeRanking(["bank_transfer"], {"to_account": "NL01", "sum": 40})
    async with client(ranking) as http:
        body = (await post(http, asking("Pay 40 into account NL01", tools=[TRANSFER]))).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "bank_transfer"
    assert body["switchboard"]["tool_choice"] == "auto"


async def test_required_calls_a_tool_even_when_none_fits_choosing_among_all() -> None:
    ranking = FakeRanking([], {"town": "Porto"})
    async with client(ranking) as http:
        body = (await post(http, asking(tools=[FORECAST, TRANSFER], tool_choice="required"))).json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "tool_calls"
    assert choice["message"]["tool_calls"][0]["function"]["name"] == "weather.forecast-v2"
    [(_, candidates)] = ranking.routed
    assert [c.tool for c in candidates] == ["weather.forecast-v2", "bank_transfer"]


async def test_required_takes_the_filters_best_when_one_fits() -> None:
    ranking = FakeRanking(["bank_transfer", "weather.forecast-v2"], {"to_account": "DE9", "sum": 3})
    async with client(ranking) as http:
        body = (await post(http, asking("Send 3 to DE9", tools=[FORECAST, TRANSFER], tool_choice="required"))).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "bank_transfer"


async def test_a_named_function_is_the_only_candidate_and_nothing_is_ranked() -> None:
    ranking = FakeRanking(["weather.forecast-v2"], {"to_account": "X1", "sum": 9})
    named = {"type": "function", "function": {"name": "bank_transfer"}}
    async with client(ranking) as http:
        body = (await post(http, asking("Send 9 to X1", tools=[FORECAST, TRANSFER], tool_choice=named))).json()
    assert body["choices"][0]["message"]["tool_calls"][0]["function"]["name"] == "bank_transfer"
    assert ranking.ranked_for == []
    [(_, candidates)] = ranking.routed
    assert [c.tool for c in candidates] == ["bank_transfer"]
    assert candidates[0].description == "Move money between two bank accounts."


async def test_none_runs_a_switchboard_turn_and_leaves_the_tools_alone() -> None:
    ranking, gateway = FakeRanking(["weather.forecast-v2"]), FakeGateway(ANSWERED)
    async with client(ranking, gateway) as http:
        body = (await post(http, asking("List my notes folder", tools=[FORECAST], tool_choice="none"))).json()
    assert ranking.ranked_for == [] and ranking.routed == []
    assert gateway.submitted == [("List my notes folder", "")]
    assert "tool_calls" not in body["choices"][0]["message"]
    assert body["choices"][0]["message"]["content"] == ANSWERED[-1].message


async def test_a_value_the_words_do_not_give_is_named_never_made_up() -> None:
    ranking = FakeRanking(["bank_transfer"], {"to_account": "NL01"}, missing=["sum"])
    async with client(ranking) as http:
        body = (await post(http, asking("Transfer money to NL01", tools=[TRANSFER]))).json()
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop" and "tool_calls" not in choice["message"]
    assert "bank_transfer" in choice["message"]["content"] and "sum" in choice["message"]["content"]
    assert body["switchboard"]["missing"] == ["sum"]


async def test_a_tool_result_is_answered_from_without_routing_again() -> None:
    ranking = FakeRanking(["weather.forecast-v2"], {"town": "Porto"})
    conversation = [
        {"role": "user", "content": ASKED},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_abc",
                    "type": "function",
                    "function": {"name": "weather.forecast-v2", "arguments": '{"town": "Porto"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_abc", "content": [{"type": "text", "text": "Showers, 14 °C"}]},
    ]
    async with client(ranking) as http:
        body = (await post(http, {"model": MODEL_ID, "messages": conversation, "tools": [FORECAST]})).json()
    assert ranking.ranked_for == [] and ranking.routed == []
    [choice] = body["choices"]
    assert choice["finish_reason"] == "stop"
    assert choice["message"]["content"] == "weather.forecast-v2 returned: Showers, 14 °C"


async def test_a_filter_that_does_not_answer_is_503() -> None:
    async with client(FakeRanking(down=True)) as http:
        failed = await post(http, asking(tools=[FORECAST]))
    assert failed.status_code == 503
    assert "filter" in failed.json()["error"]["message"]


async def test_a_tool_call_streams_as_role_call_and_finish_chunks() -> None:
    ranking = FakeRanking(["weather.forecast-v2"], {"town": "Porto"})
    async with client(ranking) as http:
        answered = await post(http, asking(tools=[FORECAST], stream=True))
    *chunks, done = streamed(answered)
    assert done == "[DONE]"
    assert [c["object"] for c in chunks] == ["chat.completion.chunk"] * 3
    assert len({c["id"] for c in chunks}) == 1
    role, call, end = (c["choices"][0] for c in chunks)
    assert role["delta"]["role"] == "assistant"
    [delta] = call["delta"]["tool_calls"]
    assert delta["index"] == 0 and delta["id"].startswith("call_")
    assert delta["function"] == {"name": "weather.forecast-v2", "arguments": '{"town": "Porto"}'}
    assert end["finish_reason"] == "tool_calls" and end["delta"] == {}


# ---- without tools: a Switchboard turn ----


async def test_a_turn_answers_with_the_runs_answer_and_names_the_run() -> None:
    gateway = FakeGateway(ANSWERED)
    async with client(FakeRanking(), gateway) as http:
        body = (await post(http, asking("List my notes folder, then read a.txt", user="sess-42"))).json()
    assert gateway.submitted == [("List my notes folder, then read a.txt", "sess-42")]
    [choice] = body["choices"]
    assert choice["message"]["content"] == ANSWERED[-1].message
    assert choice["finish_reason"] == "stop"
    assert body["switchboard"] == {"run_id": "run-7", "session_id": "sess-42", "status": "answered"}


async def test_a_session_id_field_takes_precedence_over_user() -> None:
    gateway = FakeGateway(ANSWERED)
    async with client(FakeRanking(), gateway) as http:
        await post(http, asking("What is in my notes folder?", user="someone", session_id="sess-9"))
    assert gateway.submitted == [("What is in my notes folder?", "sess-9")]


async def test_a_streamed_turn_sends_the_answer_as_it_comes_and_adds_up_to_it() -> None:
    async with client(FakeRanking(), FakeGateway(ANSWERED)) as http:
        answered = await post(http, asking("List my notes folder", stream=True))
    *chunks, done = streamed(answered)
    assert done == "[DONE]"
    deltas = [c["choices"][0]["delta"] for c in chunks]
    assert deltas[0]["role"] == "assistant"
    pieces = [d["content"] for d in deltas if d.get("content")]
    assert pieces[0] == "Step 1: the folder holds a.txt and b.txt."  # a line, before the run ended
    assert "".join(pieces) == ANSWERED[-1].message
    assert chunks[0]["switchboard"]["run_id"] == "run-7"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["switchboard"]["status"] == "answered"


async def test_a_step_waiting_for_confirmation_ends_the_reply_with_how_to_confirm() -> None:
    record = pb.StepRecord(
        number=2,
        tool="filesystem.move_file",
        arguments_json='{"source": "/w/a.txt", "destination": "/w/old/a.txt"}',
        status=pb.STEP_STATUS_AWAITING_CONFIRMATION,
    )
    run = pb.Run(run_id="run-7", status=pb.RUN_STATUS_AWAITING_CONFIRMATION, steps=[record])
    events = [
        event(pb.EVENT_KIND_ANSWER, "Step 1: found a.txt.\n"),
        event(pb.EVENT_KIND_STEP_PLANNED, "move it", step=2),
        event(
            pb.EVENT_KIND_AWAITING_CONFIRMATION,
            "filesystem.move_file {}",
            2,
            status=pb.RUN_STATUS_AWAITING_CONFIRMATION,
        ),
        # Never read: the reply ends at the waiting step.
        event(pb.EVENT_KIND_FINISHED, "should not appear", status=pb.RUN_STATUS_ANSWERED),
    ]
    async with client(FakeRanking(), FakeGateway(events, run)) as http:
        body = (await post(http, asking("Find a.txt and move it to old"))).json()
    content = body["choices"][0]["message"]["content"]
    assert content.startswith("Step 1: found a.txt.\nStep 2 waits for your confirmation")
    assert "filesystem.move_file" in content and "/w/old/a.txt" in content
    assert "POST /v1/runs/run-7/steps/2/confirm" in content
    assert "should not appear" not in content
    assert body["switchboard"] == {
        "run_id": "run-7",
        "session_id": "fresh-session",
        "status": "awaiting_confirmation",
        "awaiting_step": 2,
    }


async def test_a_run_still_going_after_the_wait_says_where_to_follow_it() -> None:
    async def never_ending(run_id: str) -> AsyncIterator[pb.RunEvent]:
        yield event(pb.EVENT_KIND_SUBMITTED, status=pb.RUN_STATUS_PLANNING)
        await asyncio.Event().wait()
        yield event(pb.EVENT_KIND_FINISHED)  # pragma: no cover - never reached

    gateway = FakeGateway(run=pb.Run(run_id="run-7", status=pb.RUN_STATUS_RUNNING))
    gateway.watch = never_ending  # type: ignore[method-assign]
    async with client(FakeRanking(), gateway, wait=0.2) as http:
        body = (await post(http, asking("Index every file I have"))).json()
    assert body["switchboard"]["status"] == "running"
    assert "GET /v1/runs/run-7" in body["choices"][0]["message"]["content"]


def test_the_follower_adds_what_the_end_of_the_run_says_beyond_the_lines_sent() -> None:
    follower = TurnFollower()
    assert follower.take(event(pb.EVENT_KIND_ANSWER, "one\n")) == "one"
    assert follower.take(event(pb.EVENT_KIND_ANSWER, "two\n")) == "\ntwo"
    assert not follower.done
    rest = follower.take(event(pb.EVENT_KIND_FINISHED, "one\ntwo\nDone.", status=pb.RUN_STATUS_ANSWERED))
    assert rest == "\nDone." and follower.done and follower.status == "answered"
    assert follower.content() == "one\ntwo\nDone."


def test_the_follower_sends_a_whole_answer_that_does_not_continue_the_lines() -> None:
    follower = TurnFollower()
    follower.take(event(pb.EVENT_KIND_ANSWER, "Step 1: a\n"))
    rest = follower.take(event(pb.EVENT_KIND_FINISHED, "The planner could not continue.", status=pb.RUN_STATUS_FAILED))
    assert rest == "\nThe planner could not continue."
    assert follower.content() == "The planner could not continue." and follower.status == "failed"


# ---- the filter's ranking of a caller's tools ----

VOCAB = ["weather", "rain", "forecast", "money", "transfer", "account", "town", "pay"]


class CountingEncoder:
    """Bag of words over `VOCAB`, and a constant so words outside it embed somewhere; counts the texts
    it was asked to embed."""

    def __init__(self) -> None:
        self.texts: list[str] = []

    def __call__(self, texts: list[str]) -> np.ndarray:
        self.texts.extend(texts)
        return np.array([[t.lower().count(w) for w in VOCAB] + [0.5] for t in texts], dtype=np.float32)


CALLER_TOOLS = [
    pb.Candidate(tool="weather.forecast-v2", description="Weather forecast and rain for a town."),
    pb.Candidate(tool="bank_transfer", description="Transfer money to an account."),
]


def caller_filter(encode: CountingEncoder, cached: int = 64) -> ToolFilter:
    """A filter whose catalogue threshold would turn every request away: a caller's tools have their own."""
    return ToolFilter(
        encode,
        None,  # type: ignore[arg-type]  # no catalogue: the caller's tools need none
        k=5,
        min_similarity=0.99,
        caller_tools_cached=cached,
        caller_min_similarity=0.4,
    )


async def test_the_filter_ranks_a_callers_tools_and_embeds_each_once() -> None:
    encode = CountingEncoder()
    tool_filter = caller_filter(encode)
    first = await tool_filter.assess_tools("Will there be rain in my town?", caller_entries(CALLER_TOOLS))
    assert [r.tool.name for r in first.ranked] == ["weather.forecast-v2", "bank_transfer"]
    embedded = len(encode.texts)
    again = await tool_filter.assess_tools("Transfer money to my account", caller_entries(CALLER_TOOLS))
    assert again.ranked[0].tool.name == "bank_transfer"
    assert len(encode.texts) == embedded + 1  # only the new request: the tools came from the cache


async def test_the_filter_says_no_caller_tool_fits_words_far_from_all() -> None:
    tool_filter = caller_filter(CountingEncoder())
    assert (await tool_filter.assess_tools("Compose a limerick", caller_entries(CALLER_TOOLS))).ranked == []


def test_the_embedding_cache_is_bounded_and_keyed_by_name_and_description() -> None:
    encode = CountingEncoder()
    cache = EmbeddingCache(size=2)
    tools = [ToolEntry(f"tool_{i}", "", f"weather {i}") for i in range(3)]
    cache.vectors(encode, tools)
    assert len(cache) == 2
    cache.vectors(encode, [ToolEntry("tool_2", "", "weather 2")])
    assert len(encode.texts) == 3  # tool_2 was kept
    cache.vectors(encode, [ToolEntry("tool_2", "", "weather, described anew")])
    assert len(encode.texts) == 4
    with pytest.raises(ValueError):
        EmbeddingCache(size=0)


class ScriptedRouter(pb_grpc.RouterServicer):
    async def Route(self, request: pb.RouteRequest, context: grpc.aio.ServicerContext) -> pb.ToolCall:
        return pb.ToolCall(tool=request.candidates[0].tool, arguments_json='{"town": "Porto"}')


async def test_the_grpc_ranking_reaches_a_real_filter_servicer_with_the_internal_key() -> None:
    key = "internal-key"
    server = grpc.aio.server(interceptors=[BearerAuth([key], "services only")])
    pb_grpc.add_FilterServicer_to_server(FilterServicer(caller_filter(CountingEncoder())), server)
    pb_grpc.add_RouterServicer_to_server(ScriptedRouter(), server)
    addr = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    await server.start()
    ranking = GrpcToolRanking(addr, addr, key, timeout=10)
    refused = GrpcToolRanking(addr, addr, "not-the-key", timeout=10)
    try:
        ranked = await ranking.rank("Any rain forecast for my town?", CALLER_TOOLS)
        assert [c.tool for c in ranked.candidates] == ["weather.forecast-v2", "bank_transfer"]
        assert ranked.candidates[0].description == CALLER_TOOLS[0].description
        call = await ranking.route("Any rain forecast for my town?", list(ranked.candidates))
        assert call.tool == "weather.forecast-v2"
        with pytest.raises(UpstreamUnavailable, match="filter"):
            await refused.rank("rain?", CALLER_TOOLS)
        twice = [CALLER_TOOLS[0], CALLER_TOOLS[0]]
        with pytest.raises(InvalidRequest, match="same name"):
            await ranking.rank("rain?", twice)
    finally:
        await ranking.close()
        await refused.close()
        await server.stop(None)
