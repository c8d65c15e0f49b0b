#!/usr/bin/env python3
"""Retrieval alone, offline: how well the filter's index ranks the expected tool for each prompt.

    .venv/bin/python bench/retrieval.py --suite bench/suites/single-dev.json [--encoder DIR] [--k 15]

No stack is needed: the tool catalogue is read in-process from the MCP servers and the index is built
exactly as the filter builds it. For a single suite every prompt counts; for a chain suite every step
prompt does. Prints top-1 accuracy, the filter hit rate at K (the expected tool among the candidates the
router gets), the mean reciprocal rank of the fused ranking, and the same for dense scores alone.
`--dense-weight`, `--no-examples` and `--no-generated` are there for the ablations in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from services.filter.app import load_examples, load_generated, merge_examples  # noqa: E402
from services.filter.core import DENSE_WEIGHT, ToolEntry, ToolIndex, server_first_order  # noqa: E402
from services.filter.settings import FilterSettings  # noqa: E402
from services.toolhost.catalogue import read_catalogue  # noqa: E402


def prompts(suite: list[dict]) -> list[tuple[str, set[str]]]:
    out = []
    for case in suite:
        if "steps" in case:
            out.extend((step["prompt"], set(step["expectedTools"])) for step in case["steps"])
        else:
            out.append((case["prompt"], set(case.get("expectedTools") or [case.get("expectedTool", "")])))
    return out


def reciprocal_rank(order: list[int], names: list[str], expected: set[str]) -> float:
    for rank, i in enumerate(order, start=1):
        if names[i] in expected:
            return 1.0 / rank
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suite", type=Path, action="append", required=True)
    parser.add_argument("--encoder", type=Path, default=FilterSettings().embedding_model)
    parser.add_argument("--k", type=int, default=15)
    parser.add_argument("--dense-weight", type=float, default=DENSE_WEIGHT)
    parser.add_argument("--no-examples", action="store_true", help="leave out examples.yaml")
    parser.add_argument("--no-generated", action="store_true", help="leave out the encoder's generated requests")
    parser.add_argument("--generated-from", type=Path, help="take the generated requests of another encoder folder")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(args.encoder), device="cpu")

    def encode(texts: list[str]) -> np.ndarray:
        return model.encode(texts, convert_to_numpy=True, normalize_embeddings=True, show_progress_bar=False)

    tools = [ToolEntry(s.name, s.server, s.description) for s in asyncio.run(read_catalogue())]
    examples = {} if args.no_examples else load_examples(FilterSettings().filter_examples)
    generated, vectors = ({}, {}) if args.no_generated else load_generated(args.generated_from or args.encoder)
    if args.generated_from:
        vectors = {}  # embedded by the encoder under test, not by the one that made them
    index = ToolIndex(encode, tools, merge_examples(examples, generated), args.dense_weight, known_vectors=vectors)
    names = [t.name for t in tools]
    servers = [t.server for t in tools]
    cases = [p for suite in args.suite for p in prompts(json.loads(suite.read_text()))]
    top1 = hits = mrr = dense_top1 = dense_mrr = 0.0
    for text, expected in cases:
        fused, dense, _ = index.scores(text)
        order = [int(i) for i in np.argsort(-fused, kind="stable")]
        dense_order = [int(i) for i in np.argsort(-dense, kind="stable")]
        candidates = {names[i] for i in server_first_order(order, servers, args.k, index.server_first)}
        top1 += names[order[0]] in expected
        hits += bool(candidates & expected)
        mrr += reciprocal_rank(order, names, expected)
        dense_top1 += names[dense_order[0]] in expected
        dense_mrr += reciprocal_rank(dense_order, names, expected)
    n = max(1, len(cases))
    result = {
        "suites": [str(s) for s in args.suite],
        "encoder": str(args.encoder),
        "prompts": len(cases),
        "top1": round(top1 / n, 4),
        f"filter_at_{args.k}": round(hits / n, 4),
        "mrr": round(mrr / n, 4),
        "dense_top1": round(dense_top1 / n, 4),
        "dense_mrr": round(dense_mrr / n, 4),
    }
    print(json.dumps(result) if args.json else json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
