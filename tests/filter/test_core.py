"""Ranking with a small deterministic encoder (bag of words): tests the index, not the model."""

import numpy as np
import pytest

from services.filter.core import ToolEntry, ToolIndex, catalogue_digest

VOCAB = ["list", "folder", "files", "read", "file", "contents", "delete", "remove"]


def bag_of_words(texts: list[str]) -> np.ndarray:
    return np.array([[text.lower().count(word) for word in VOCAB] for text in texts], dtype=np.float32) + 1e-3


TOOLS = [
    ToolEntry("filesystem.list_dir", "filesystem", "List the files in a folder."),
    ToolEntry("filesystem.read_file", "filesystem", "Read a file's contents."),
    ToolEntry("filesystem.delete_file", "filesystem", "Delete (remove) a file."),
]


def test_rank_orders_by_similarity() -> None:
    index = ToolIndex(bag_of_words, TOOLS)
    ranked = index.rank("remove that file", k=2)
    assert [r.tool.name for r in ranked] == ["filesystem.delete_file", "filesystem.read_file"]
    assert ranked[0].score >= ranked[1].score


def test_digest_changes_with_the_catalogue() -> None:
    assert catalogue_digest(TOOLS) == catalogue_digest(list(reversed(TOOLS)))
    assert catalogue_digest(TOOLS) != catalogue_digest(TOOLS[:2])


def test_empty_catalogue_is_refused() -> None:
    with pytest.raises(ValueError):
        ToolIndex(bag_of_words, [])
