"""Latency of the OpenAI-compatible endpoint choosing among a caller's own tools, against a running stack.

    .venv/bin/python bench/openai_tools.py [--rounds N]

Each round sends every request below once per `tool_choice` mode with the official `openai` client
and times the whole HTTP exchange (the filter ranking the caller's tools, the router filling the
call). The first round warms the caller tools' embeddings and is not counted. This measures speed
only: the requests are a handful written here to exercise the path, not an accuracy suite.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from openai import OpenAI
from overhead import percentile

from switchboard.settings import CommonSettings


def function(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    schema = {"type": "object", "properties": properties, "required": required}
    return {"type": "function", "function": {"name": name, "description": description, "parameters": schema}}


TEXT = {"type": "string"}
TOOLS = [
    function("get_weather", "Current weather conditions for a city.", {"city": TEXT}, ["city"]),
    function("convert_currency", "Convert an amount from one currency to another.",
             {"amount": {"type": "number"}, "source": TEXT, "target": TEXT}, ["amount", "source", "target"]),
    function("book_table", "Reserve a table at a restaurant for a number of guests.",
             {"restaurant": TEXT, "guests": {"type": "integer"}}, ["restaurant", "guests"]),
    function("translate_text", "Translate a piece of text into another language.",
             {"text": TEXT, "language": TEXT}, ["text", "language"]),
    function("lookup_flight", "Status of a flight by its flight number.", {"flight": TEXT}, ["flight"]),
    function("add_contact", "Save a person's name and phone number to the address book.",
             {"name": TEXT, "phone": TEXT}, ["name", "phone"]),
    function("play_song", "Play a song by its title on the speakers.", {"title": TEXT}, ["title"]),
    function("stock_price", "Latest share price of a company by its ticker symbol.", {"ticker": TEXT}, ["ticker"]),
]  # fmt: skip
REQUESTS = [
    "Is it raining in Oslo right now?",
    "What is the status of flight KL1234?",
    "How much is AAPL trading at?",
    "Put on the song Blue Monday",
    "Reserve a table at Casa Lina for 4 people",
]
MODES: dict[str, Any] = {"auto": "auto", "required": "required"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10, help="timed rounds (after one to warm up)")
    args = parser.parse_args()
    settings = CommonSettings()
    token = settings.token_path.read_text().strip()
    client = OpenAI(base_url=f"http://127.0.0.1:{settings.http_port}/v1", api_key=token, timeout=120)
    for mode, choice in MODES.items():
        times: list[float] = []
        calls = 0
        for round_number in range(args.rounds + 1):
            for text in REQUESTS:
                start = time.perf_counter()
                reply = client.chat.completions.create(
                    model="switchboard", tools=TOOLS, tool_choice=choice, messages=[{"role": "user", "content": text}]
                )
                elapsed = (time.perf_counter() - start) * 1000
                if round_number:
                    times.append(elapsed)
                    calls += bool(reply.choices[0].message.tool_calls)
        print(
            f"tool_choice={mode:<9}: p50 {statistics.median(times):6.1f} ms  p95 {percentile(times, 0.95):6.1f} ms"
            f"  ({len(times)} requests, {calls} answered with a call)"
        )


if __name__ == "__main__":
    main()
