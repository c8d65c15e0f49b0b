"""The held-out check: no test-half prompt may be seen while building.

A test half (`bench/suites/*-test.json`) measures how Switchboard does on words nobody here wrote. Once
any run of six of its words stands in code, examples, training data or tests, it measures how well that
sentence was fitted instead. This test fails on such a run and names where it stands (not what it
says: whoever mends it should write new words, not read the test half).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SUITES = ROOT / "bench" / "suites"
RUN = 6
SCANNED = (".py", ".yaml", ".yml", ".json", ".jsonl", ".txt", ".md", ".toml", ".cfg")
# Not scanned: the suites themselves, results and the docs that report them, and what is installed
# or generated.
SKIPPED = {"bench/suites", "bench/results", "docs", ".git", ".venv", "models", "build", "node_modules"}

# The requests `make train` generated and trained the filter's encoder on (services/filter/train.py).
GENERATED = ROOT / "models" / "filter-encoder" / "generated-requests.json"

_WORD = re.compile(r"[a-z0-9']+")


def word_runs(text: str, n: int = RUN) -> set[str]:
    words = _WORD.findall(text.lower())
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


def held_out_prompts() -> Iterator[str]:
    for path in sorted(SUITES.glob("**/*test*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            if "prompt" in case:  # a compound case has one prompt and steps without prompts
                yield case["prompt"]
            yield from (step["prompt"] for step in case.get("steps", []) if "prompt" in step)
            yield from case.get("context", [])


def scanned_files() -> Iterator[Path]:
    for folder, dirs, files in os.walk(ROOT):
        relative = Path(folder).relative_to(ROOT).as_posix()
        dirs[:] = [
            d
            for d in dirs
            if (f"{relative}/{d}" if relative != "." else d) not in SKIPPED and not d.startswith((".", "__"))
        ]
        for name in files:
            if name.endswith(SCANNED):
                yield Path(folder) / name


def test_word_runs_are_six_words_long() -> None:
    assert word_runs("Please list the files in my Downloads folder") == {
        "please list the files in my",
        "list the files in my downloads",
        "the files in my downloads folder",
    }


def test_the_suites_have_test_halves() -> None:
    assert sum(1 for _ in held_out_prompts()) >= 300


def test_no_test_half_prompt_appears_outside_the_suites() -> None:
    held_out = set()
    for prompt in held_out_prompts():
        held_out |= word_runs(prompt)
    leaks = []
    # The requests the build generates from the templates are training data too.
    generated = [GENERATED] if GENERATED.is_file() else []
    for path in [*scanned_files(), *generated]:
        runs = word_runs(path.read_text(encoding="utf-8", errors="ignore"))
        shared = len(runs & held_out)
        if shared:
            leaks.append(f"{path.relative_to(ROOT)}: {shared} six-word run(s) of test-half prompts")
    assert not leaks, "test-half wording outside the suites:\n" + "\n".join(leaks)
