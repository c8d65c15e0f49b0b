"""The OpenAI-compatible endpoint on the whole stack, through the official `openai` client: the
filter ranks the client's own tools, the router fills them from the words, and a request without
tools runs as a Switchboard turn."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest

from tests.stack.harness import Stack

pytestmark = pytest.mark.stack

WEATHER: Any = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather (temperature, rain, wind) for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "Name of the city"}},
            "required": ["city"],
        },
    },
}
INVOICE: Any = {
    "type": "function",
    "function": {
        "name": "send_invoice",
        "description": "Send a customer an invoice for an amount of money.",
        "parameters": {
            "type": "object",
            "properties": {
                "customer": {"type": "string", "description": "Who the invoice goes to"},
                "amount": {"type": "number", "description": "How much to bill"},
            },
            "required": ["customer", "amount"],
        },
    },
}
TOOLS = [WEATHER, INVOICE]


@pytest.fixture
def client(stack: Stack) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(
        base_url=f"http://127.0.0.1:{stack.http_port}/v1", api_key=stack.token, max_retries=0, timeout=300
    ) as made:
        yield made


def user(text: str) -> list[Any]:
    return [{"role": "user", "content": text}]


def the_call(reply: Any) -> tuple[str, dict[str, Any]]:
    """The one tool call of a reply: its function's name and decoded arguments."""
    [choice] = reply.choices
    assert choice.finish_reason == "tool_calls", choice.message.content
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    return call.function.name, json.loads(call.function.arguments)


def test_models_lists_switchboard_and_no_other(client: openai.OpenAI) -> None:
    assert [model.id for model in client.models.list()] == ["switchboard"]
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o-mini", messages=user("hello"))


def test_a_wrong_key_is_refused(stack: Stack) -> None:
    with openai.OpenAI(base_url=f"http://127.0.0.1:{stack.http_port}/v1", api_key="nope", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="switchboard", messages=user("hello"), tools=TOOLS)


def test_auto_calls_the_weather_tool_with_the_city_from_the_words(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="switchboard", messages=user("What's the weather forecast for the city of Lisbon today?"), tools=TOOLS
    )
    assert the_call(reply) == ("get_weather", {"city": "Lisbon"})


def test_required_calls_the_invoice_tool_with_both_values(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="switchboard",
        messages=user("Bill customer Northwind-Traders 480 for the consulting work"),
        tools=TOOLS,
        tool_choice="required",
    )
    name, arguments = the_call(reply)
    assert name == "send_invoice"
    assert arguments["customer"] == "Northwind-Traders"
    assert arguments["amount"] == 480


def test_a_named_function_is_called_even_where_another_might_rank_first(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="switchboard",
        messages=user("How windy will it be in the city of Bergen?"),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
    )
    assert the_call(reply) == ("get_weather", {"city": "Bergen"})


def test_auto_makes_no_call_when_no_tool_fits(client: openai.OpenAI) -> None:
    asked = "Translate the phrase good morning into Japanese"
    reply = client.chat.completions.create(model="switchboard", messages=user(asked), tools=TOOLS)
    [choice] = reply.choices
    assert choice.finish_reason == "stop"
    assert not choice.message.tool_calls
    assert asked in (choice.message.content or "")


def test_a_missing_amount_is_asked_for_not_invented(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(
        model="switchboard", messages=user("Send customer Northwind-Traders an invoice for the repairs"), tools=TOOLS
    )
    [choice] = reply.choices
    assert choice.finish_reason == "stop" and not choice.message.tool_calls
    assert "send_invoice" in (choice.message.content or "") and "amount" in (choice.message.content or "")


def test_a_tool_result_sent_back_is_answered_from(client: openai.OpenAI) -> None:
    first = client.chat.completions.create(
        model="switchboard", messages=user("Is it freezing in the city of Tallinn?"), tools=TOOLS
    )
    [call] = first.choices[0].message.tool_calls or []
    conversation: list[Any] = [
        *user("Is it freezing in the city of Tallinn?"),
        first.choices[0].message.model_dump(exclude_none=True),
        {"role": "tool", "tool_call_id": call.id, "content": "-4 °C, light snow"},
    ]
    reply = client.chat.completions.create(model="switchboard", messages=conversation, tools=TOOLS)
    assert reply.choices[0].finish_reason == "stop"
    assert reply.choices[0].message.content == "get_weather returned: -4 °C, light snow"


def test_none_runs_a_switchboard_turn_on_its_own_tools(client: openai.OpenAI, workspace: Path) -> None:
    reply = client.chat.completions.create(
        model="switchboard",
        messages=user(f"Which files are sitting in {workspace / 'papers'}?"),
        tools=TOOLS,
        tool_choice="none",
    )
    [choice] = reply.choices
    assert not choice.message.tool_calls
    assert "solar.pdf" in (choice.message.content or "") and "wind.pdf" in (choice.message.content or "")
    assert (reply.model_extra or {})["switchboard"]["status"] == "answered"


def test_a_streamed_turn_adds_up_to_the_runs_answer(client: openai.OpenAI, stack: Stack, workspace: Path) -> None:
    stream = client.chat.completions.create(
        model="switchboard", messages=user(f"Show me what {workspace / 'single'} contains"), stream=True
    )
    chunks = list(stream)
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert chunks[-1].choices[0].finish_reason == "stop"
    run_id = (chunks[0].model_extra or {})["switchboard"]["run_id"]
    with stack.http() as http:
        run = http.get(f"/v1/runs/{run_id}").json()
    assert run["status"] == "answered", run
    assert "report.pdf" in run["answer"]
    assert "".join(pieces) == run["answer"]


def test_a_streamed_tool_call_comes_as_chunks(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model="switchboard",
        messages=user("What's the temperature in the city of Valparaiso?"),
        tools=TOOLS,
        stream=True,
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    calls = [call for c in chunks for call in (c.choices[0].delta.tool_calls or [])]
    assert [(call.function.name, json.loads(call.function.arguments)) for call in calls] == [
        ("get_weather", {"city": "Valparaiso"})
    ]
    assert chunks[-1].choices[0].finish_reason == "tool_calls"


def test_a_change_in_a_turn_waits_and_the_reply_says_how_to_confirm(
    client: openai.OpenAI, stack: Stack, workspace: Path
) -> None:
    copy = workspace / "drafts" / "notes-from-openai.md"
    reply = client.chat.completions.create(
        model="switchboard", messages=user(f"Duplicate {workspace / 'notes.md'} as {copy}")
    )
    account = (reply.model_extra or {})["switchboard"]
    run_id, step = account["run_id"], account.get("awaiting_step")
    content = reply.choices[0].message.content or ""
    assert account["status"] == "awaiting_confirmation", content
    assert f"POST /v1/runs/{run_id}/steps/{step}/confirm" in content
    assert not copy.exists()
    with stack.http() as http:
        rejected = http.post(f"/v1/runs/{run_id}/steps/{step}/confirm", json={"approve": False, "reason": "test"})
    assert rejected.status_code == 200, rejected.text
