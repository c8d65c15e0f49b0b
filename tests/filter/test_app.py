"""The files a trained encoder keeps beside it: its generated requests and their embeddings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from services.filter.app import GENERATED_REQUESTS, GENERATED_VECTORS, load_generated, merge_examples
from services.filter.core import dense_text
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
