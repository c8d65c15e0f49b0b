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
from pathlib import Path

from switchboard.errors import ConfigurationError

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


class LocalModel:
    """One llama.cpp model; calls are serialised because a context is not thread-safe."""

    def __init__(self, path: Path, *, n_ctx: int = 2048, n_threads: int | None = None) -> None:
        if not path.is_file():
            raise ConfigurationError(f"model file {path} does not exist; run `make models` or set the model path")
        from llama_cpp import Llama

        self.path = path
        self._lock = threading.Lock()
        self._llm = Llama(
            model_path=str(path),
            n_ctx=n_ctx,
            n_threads=n_threads or max(1, (os.cpu_count() or 2)),
            verbose=False,
        )
        log.info("loaded %s", path.name)

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str:
        """Greedy completion of `prompt` that the GBNF `grammar` allows."""
        from llama_cpp import LlamaGrammar

        compiled = LlamaGrammar.from_string(grammar, verbose=False)
        with self._lock:
            out = self._llm.create_completion(prompt, grammar=compiled, max_tokens=max_tokens, temperature=0.0, top_k=1)
        return str(out["choices"][0]["text"])  # type: ignore[index]

    def choose(self, prompt: str, options: list[str]) -> str:
        """The option the model picks; always one of `options`."""
        text = self.complete(prompt, gbnf_choice(options), max_tokens=48).strip()
        if text in options:
            return text
        # A grammar cut short by max_tokens can leave a prefix; take the unique option it starts.
        matches = [option for option in options if option.startswith(text)]
        return matches[0] if matches else options[0]
