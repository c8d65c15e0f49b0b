"""A GGUF chat model run in-process by llama.cpp, always under a grammar.

The default model (SmolLM2-135M-Instruct) is far too weak to be trusted with free text, so every
completion Switchboard asks of it is constrained by a GBNF grammar: a choice among names, JSON whose
free-text values can only be runs of the request's own words (`gbnf_runs`), or, in the router's
ablation, JSON that matches a schema. Planner and router each own one `LocalModel`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry.trace import SpanKind

from switchboard.errors import ConfigurationError
from switchboard.metrics import (
    FAILURE_MODES,
    MODEL_GENERATED_TOKENS,
    MODEL_GENERATION,
    MODEL_PROMPT_EVAL,
    MODEL_PROMPT_TOKENS,
    FailureMode,
    counted_as_waiting,
    start_failure_modes,
    start_series,
)
from switchboard.telemetry import tracer

log = logging.getLogger(__name__)


def gbnf_choice(options: list[str]) -> str:
    """A GBNF grammar whose only sentences are the given options."""
    if not options:
        raise ValueError("a choice needs at least one option")
    alternatives = " | ".join(gbnf_literal(option) for option in options)
    return f"root ::= {alternatives}\n"


def gbnf_literal(text: str) -> str:
    """`text` as a GBNF string literal."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def gbnf_runs(runs: list[list[str]], rule: str = "span") -> str:
    """GBNF rules named `rule` whose only sentences are spans of consecutive words of one of `runs`,
    joined by spaces.

    The model can start at any word and stop after any later one of the same run, but cannot write a
    word that is not there, skip one, or cross from one run into the next: what it gives is a span of
    the text the words came from. One rule per word keeps the grammar linear in the length of the text.
    Each word is written as the inside of a JSON string.
    """
    if not any(runs):
        raise ValueError("a span needs at least one word")
    starts: list[str] = []
    lines: list[str] = []
    index = 0
    for run in runs:
        for position, word in enumerate(run):
            literal = gbnf_literal(json.dumps(word)[1:-1])
            tail = f' | {literal} " " {rule}{index + 1}' if position + 1 < len(run) else ""
            lines.append(f"{rule}{index} ::= {literal}{tail}")
            starts.append(f"{rule}{index}")
            index += 1
    return "\n".join([f"{rule} ::= " + " | ".join(starts), *lines]) + "\n"


def chat_prompt(system: str, user: str, assistant_prefix: str = "") -> str:
    """A ChatML prompt (SmolLM2's template) ending where the assistant's reply begins."""
    return (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{user}<|im_end|>\n"
        f"<|im_start|>assistant\n{assistant_prefix}"
    )


@dataclass(frozen=True)
class Timings:
    """What one completion cost: tokens in the prompt and generated, and seconds spent evaluating the
    prompt (the part not already in the model's cache) and generating (the rest of the call: decoding
    each new token and sampling it under the grammar)."""

    prompt_tokens: int
    generated_tokens: int
    prompt_eval_seconds: float
    generation_seconds: float


def completion_timings(usage: dict[str, Any], prompt_eval_ms: float, elapsed_seconds: float) -> Timings:
    """The timings of a completion from its `usage`, llama.cpp's prompt evaluation time (its own perf
    counter, `t_p_eval_ms`) and the call's wall time; generation is what the prompt did not take."""
    prompt_eval = max(0.0, prompt_eval_ms / 1000)
    return Timings(
        prompt_tokens=int(usage.get("prompt_tokens", 0)),
        generated_tokens=int(usage.get("completion_tokens", 0)),
        prompt_eval_seconds=prompt_eval,
        generation_seconds=max(0.0, elapsed_seconds - prompt_eval),
    )


def observe_completion(stage: str, timings: Timings, text: str) -> None:
    """Count a completion in `stage`'s model metrics; an empty one is an empty reply (FM-2)."""
    MODEL_PROMPT_TOKENS.labels(stage=stage).observe(timings.prompt_tokens)
    MODEL_GENERATED_TOKENS.labels(stage=stage).observe(timings.generated_tokens)
    MODEL_PROMPT_EVAL.labels(stage=stage).observe(timings.prompt_eval_seconds)
    MODEL_GENERATION.labels(stage=stage).observe(timings.generation_seconds)
    if not text.strip():
        FAILURE_MODES.labels(stage=stage, mode=FailureMode.EMPTY_REPLY).inc()


def chosen_option(stage: str, text: str, options: list[str]) -> str:
    """The option a model's answer `text` names: itself, or, for an answer that is none of them (a
    grammar cut short by max_tokens leaves a prefix), the first option it starts; failing that the
    first option. Options are tool names (the router's choice), so an answer that is none is a wrong
    tool name (FM-8), counted as resolved or not."""
    if text in options:
        return text
    matches = [option for option in options if option.startswith(text)] if text else []
    if text:  # an empty answer is counted as an empty reply already
        mode = FailureMode.UNKNOWN_TOOL_RESOLVED if matches else FailureMode.UNKNOWN_TOOL_UNRESOLVED
        FAILURE_MODES.labels(stage=stage, mode=mode).inc()
    return matches[0] if matches else options[0]


class LocalModel:
    """One llama.cpp model; calls are serialised because a context is not thread-safe.

    `stage` names the service calling it in the model metrics (`switchboard_model_*{stage}`), and its
    failure modes. Each call is a `text_completion` client span with the OpenTelemetry GenAI
    attributes."""

    def __init__(self, path: Path, *, n_ctx: int = 2048, n_threads: int | None = None, stage: str = "local") -> None:
        if not path.is_file():
            raise ConfigurationError(f"model file {path} does not exist; run `make models` or set the model path")
        from llama_cpp import Llama

        self.path = path
        self.stage = stage
        self._lock = threading.Lock()
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or max(1, (os.cpu_count() or 2)),
            verbose=False,
        )
        start_failure_modes(stage, [FailureMode.EMPTY_REPLY])
        for timing in (MODEL_PROMPT_TOKENS, MODEL_GENERATED_TOKENS, MODEL_PROMPT_EVAL, MODEL_GENERATION):
            start_series(timing, [{"stage": stage}])
        log.info("loaded %s", path.name)

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str:
        """Greedy completion of `prompt` that the GBNF `grammar` allows."""
        import llama_cpp
        from llama_cpp import LlamaGrammar

        compiled = LlamaGrammar.from_string(grammar, verbose=False)
        temperature = 0.0
        with tracer().start_as_current_span(f"text_completion {self.path.stem}", kind=SpanKind.CLIENT) as span:
            span.set_attribute("gen_ai.operation.name", "text_completion")
            span.set_attribute("gen_ai.provider.name", "llama.cpp")
            span.set_attribute("gen_ai.system", "llama.cpp")
            span.set_attribute("gen_ai.request.model", self.path.stem)
            span.set_attribute("gen_ai.request.max_tokens", max_tokens)
            span.set_attribute("gen_ai.request.temperature", temperature)
            with counted_as_waiting():  # another call has the model: this one waits, it does not work
                self._lock.acquire()
            try:
                # llama.cpp's own counters, reset for this call, tell prompt evaluation from the rest.
                llama_cpp.llama_perf_context_reset(self._llm.ctx)
                start = time.perf_counter()
                out: Any = self._llm.create_completion(
                    prompt, grammar=compiled, max_tokens=max_tokens, temperature=temperature, top_k=1
                )
                elapsed = time.perf_counter() - start
                perf = llama_cpp.llama_perf_context(self._llm.ctx)
            finally:
                self._lock.release()
            text = str(out["choices"][0]["text"])
            timings = completion_timings(dict(out.get("usage") or {}), float(perf.t_p_eval_ms), elapsed)
            span.set_attribute("gen_ai.usage.input_tokens", timings.prompt_tokens)
            span.set_attribute("gen_ai.usage.output_tokens", timings.generated_tokens)
        observe_completion(self.stage, timings, text)
        return text

    def choose(self, prompt: str, options: list[str]) -> str:
        """The option the model picks; always one of `options`."""
        text = self.complete(prompt, gbnf_choice(options), max_tokens=48).strip()
        return chosen_option(self.stage, text, options)
