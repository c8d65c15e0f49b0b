#!/usr/bin/env python3
"""Time the router's own kind of prompt on two GGUF files of the same model, and compare the choices.

    .venv/bin/python bench/quant_speed.py models/SmolLM2-135M-Instruct.Q4_1.gguf models/SmolLM2-135M-Instruct.Q4_0.gguf

Each request of the args dev half is put to each model as the router puts it when it copies a free-text
value (the copy grammar over the request's words); prints the median and 95th-percentile time per call
and how many answers the two models share.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

from services.router.core import CandidateTool, copy_grammar, first_sentence
from switchboard.llm import LocalModel, chat_prompt

SUITE = Path(__file__).with_name("suites") / "args-dev.json"
FIELD = {"title": {"type": "string", "description": "Short title of the item."}}


def prompts() -> list[tuple[str, str]]:
    tool = CandidateTool("task.create_task", "Create a task on the to-do list.", 1.0)
    out = []
    for case in json.loads(SUITE.read_text(encoding="utf-8")):
        text = case["prompt"]
        grammar, _ = copy_grammar(text, ["title"], FIELD)
        prompt = chat_prompt(
            "You copy the values of a tool call out of the user's request, word for word. Reply with JSON only.",
            f"Tool: {tool.name}: {first_sentence(tool.description)}\nFields:\n- title: Short title of the item\n"
            f"Request: {text}",
        )
        out.append((prompt, grammar))
    return out


def main() -> None:
    cases = prompts()
    answers: dict[str, list[str]] = {}
    for path in sys.argv[1:]:
        model = LocalModel(Path(path), n_ctx=1024)
        model.complete(*cases[0], max_tokens=48)  # warm up
        times, outs = [], []
        for prompt, grammar in cases:
            start = time.perf_counter()
            outs.append(model.complete(prompt, grammar, max_tokens=48))
            times.append((time.perf_counter() - start) * 1000)
        times.sort()
        p95 = times[int(0.95 * (len(times) - 1))]
        print(f"{Path(path).name}: {len(times)} calls, median {statistics.median(times):.0f} ms, p95 {p95:.0f} ms")
        answers[path] = outs
    if len(answers) == 2:
        first, second = answers.values()
        print(f"same answer: {sum(a == b for a, b in zip(first, second, strict=True))} of {len(first)}")


if __name__ == "__main__":
    main()
