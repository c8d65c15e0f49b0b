"""Ranking with a small deterministic encoder (bag of words): tests the index, not the model."""

import numpy as np
import pytest

from services.filter.core import (
    Bm25,
    Ranked,
    ToolEntry,
    ToolIndex,
    catalogue_digest,
    no_tool_fits,
    server_first_order,
    tokens,
)

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


def test_examples_pull_a_tool_up() -> None:
    tools = [*TOOLS, ToolEntry("calendar.list_events", "calendar", "Show calendar entries.")]
    plain = ToolIndex(bag_of_words, tools).rank("list folder", k=4)
    assert plain[0].tool.name == "filesystem.list_dir"
    taught = ToolIndex(bag_of_words, tools, {"calendar.list_events": ["list folder of meetings"]})
    assert taught.rank("list folder of meetings", k=1)[0].tool.name == "calendar.list_events"


def test_lexical_scores_reward_rare_matching_words() -> None:
    bm25 = Bm25([tokens("delete remove file"), tokens("read file contents"), tokens("list folder files")])
    scores = bm25.scores(tokens("delete it"))
    assert scores[0] > 0 and scores[1] == scores[2] == 0


def test_tokens_drop_stopwords_and_strip_suffixes() -> None:
    assert tokens("Listing the files in my folders") == ["list", "file", "folder"]


def test_server_first_makes_room_for_the_likely_servers_tools() -> None:
    order = [0, 1, 2, 3, 4]
    servers = ["fs", "cal", "cal", "fs", "fs"]
    assert server_first_order(order, servers, k=3, top_servers=1) == [0, 3, 4]
    assert server_first_order(order, servers, k=3, top_servers=2) == [0, 1, 2]


def test_no_tool_fits_when_every_tool_is_far_from_the_request() -> None:
    tool = ToolEntry("fs.list_dir", "fs", "List a folder.")
    near, far = Ranked(tool, 0.9, dense=0.62), Ranked(tool, 0.9, dense=0.21)
    assert no_tool_fits([far], 0.4) and not no_tool_fits([far, near], 0.4)
    assert no_tool_fits([], 0.4)
    assert not no_tool_fits([far], -1.0)  # the check switched off


def test_known_vectors_are_used_instead_of_encoding_again() -> None:
    asked: list[str] = []

    def counting(texts: list[str]) -> np.ndarray:
        asked.extend(texts)
        return bag_of_words(texts)

    examples = {"filesystem.delete_file": ["remove the file please"]}
    known = {"remove the file please": bag_of_words(["remove the file please"])[0]}
    index = ToolIndex(counting, TOOLS, examples, known_vectors=known)
    assert "remove the file please" not in asked and len(asked) == len(TOOLS)
    assert index.rank("remove the file please", k=1)[0].tool.name == "filesystem.delete_file"


def test_the_change_probe_learns_which_requests_ask_for_a_change() -> None:
    tools = [
        ToolEntry("filesystem.list_dir", "filesystem", "List the files in a folder."),
        ToolEntry("filesystem.delete_file", "filesystem", "Delete (remove) a file.", changes=True),
    ]
    examples = {
        "filesystem.list_dir": ["list my folder", "list the files", "list folder contents"],
        "filesystem.delete_file": ["delete the file", "remove that file", "delete it, remove it"],
    }
    index = ToolIndex(bag_of_words, tools, examples)
    assert index.assess("remove the old file", k=2).change_intent > 0.5
    assert index.assess("list what the folder holds", k=2).change_intent < 0.5


def test_a_catalogue_of_reads_only_never_asks_for_a_change() -> None:
    index = ToolIndex(bag_of_words, TOOLS)  # none of TOOLS is marked as changing
    assert index.assess("delete the file", k=1).change_intent == 0.0
