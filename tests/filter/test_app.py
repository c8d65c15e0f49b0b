"""The files a trained encoder keeps beside it: its generated requests and their embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import REGISTRY

from services.filter.app import GENERATED_REQUESTS, GENERATED_VECTORS, ToolFilter, load_generated, merge_examples
from services.filter.core import ToolEntry, ToolIndex, dense_text
from switchboard.errors import ConfigurationError


def test_generated_requests_load_by_tool_with_their_vectors(tmp_path: Path) -> None:
    texts = ["list ~/Documents please", "what's in my folder"]
    records = [{"text": text, "tool": "fs.list"} for text in texts]
    (tmp_path / GENERATED_REQUESTS).write_text(json.dumps({"requests": records}))
    np.save(tmp_path / GENERATED_VECTORS, np.eye(2, 4, dtype=np.float32))
    examples, vectors = load_generated(tmp_path)
    assert examples == {"fs.list": texts}
    # Keyed as the index looks them up: the text with its paths taken out.
    assert set(vectors) == {dense_text(t) for t in texts}


def test_an_encoder_without_generated_requests_has_none(tmp_path: Path) -> None:
    assert load_generated(tmp_path) == ({}, {})


def test_mismatched_files_are_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / GENERATED_REQUESTS).write_text(json.dumps({"requests": [{"text": "a", "tool": "t"}]}))
    np.save(tmp_path / GENERATED_VECTORS, np.zeros((2, 4), dtype=np.float32))
    with pytest.raises(ConfigurationError, match="make train"):
        load_generated(tmp_path)


def test_examples_merge_per_tool_in_order() -> None:
    assert merge_examples({"a": ["1"]}, {"a": ["2"], "b": ["3"]}) == {"a": ["1", "2"], "b": ["3"]}


# ---- what the filter's metrics say of a step ----

VOCAB = ["list", "folder", "files", "read", "file", "contents", "delete", "remove"]
TOOLS = [
    ToolEntry("filesystem.list_dir", "filesystem", "List the files in a folder."),
    ToolEntry("filesystem.read_file", "filesystem", "Read a file's contents."),
]


def bag_of_words(texts: list[str]) -> np.ndarray:
    return np.array([[text.lower().count(word) for word in VOCAB] for text in texts], dtype=np.float32) + 1e-3


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def indexed_filter(min_similarity: float) -> ToolFilter:
    tool_filter = ToolFilter(bag_of_words, None, k=2, min_similarity=min_similarity)  # type: ignore[arg-type]
    tool_filter.index = ToolIndex(bag_of_words, TOOLS)
    return tool_filter


async def test_a_ranked_step_counts_its_decision_score_margin_and_time() -> None:
    tool_filter = indexed_filter(min_similarity=0.1)
    # Series a dashboard shows exist from the start.
    assert REGISTRY.get_sample_value("switchboard_retrieval_decisions_total", {"decision": "no_tool_fits"}) is not None
    before = {
        "decided": sample("switchboard_retrieval_decisions_total", decision="candidates"),
        "top": sample("switchboard_retrieval_top_score_count"),
        "margin": sample("switchboard_retrieval_score_margin_count"),
        "margin_sum": sample("switchboard_retrieval_score_margin_sum"),
        "work": sample("switchboard_stage_work_seconds_count", stage="filter"),
        "wait": sample("switchboard_stage_wait_seconds_count", stage="filter", queue="rpc"),
    }
    assessment = await tool_filter.assess("list the files in my folder")
    first, second = sorted((r.score for r in assessment.ranked), reverse=True)
    assert sample("switchboard_retrieval_decisions_total", decision="candidates") == before["decided"] + 1
    assert sample("switchboard_retrieval_top_score_count") == before["top"] + 1
    assert sample("switchboard_retrieval_score_margin_count") == before["margin"] + 1
    assert sample("switchboard_retrieval_score_margin_sum") - before["margin_sum"] == pytest.approx(first - second)
    assert sample("switchboard_stage_work_seconds_count", stage="filter") == before["work"] + 1
    assert sample("switchboard_stage_wait_seconds_count", stage="filter", queue="rpc") == before["wait"] + 1


async def test_a_step_no_tool_fits_is_counted_as_such() -> None:
    tool_filter = indexed_filter(min_similarity=0.999)
    decided = sample("switchboard_retrieval_decisions_total", decision="no_tool_fits")
    caught = sample("switchboard_failure_modes_total", stage="filter", mode="no_tool_fits")
    assert (await tool_filter.assess("remove it")).ranked == []
    assert sample("switchboard_retrieval_decisions_total", decision="no_tool_fits") == decided + 1
    assert sample("switchboard_failure_modes_total", stage="filter", mode="no_tool_fits") == caught + 1
