"""The filesystem MCP server, called through the SDK's in-memory client on real temporary files."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp import Client
from mcp.types import CallToolResult
from watchdog.observers.api import BaseObserver

from services.toolhost.servers import META_CONFIRMATION_REQUIRED, META_DESTRUCTIVE, META_UNDO_SUPPORTED
from services.toolhost.servers.filesystem import MAX_LIST_ENTRIES, MAX_READ_BYTES, build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import stdio_parameters

# name: (parameters with their defaults, required parameters, confirmation_required, undo_supported, destructive)
CONTRACT: dict[str, tuple[dict[str, Any], set[str], bool, bool, bool]] = {
    "list_dir": ({"path": None, "recursive": False, "filter": None}, {"path"}, False, False, False),
    "read_file": ({"path": None, "encoding": "utf-8"}, {"path"}, False, False, False),
    "write_file": ({"path": None, "content": None, "encoding": "utf-8"}, {"path", "content"}, True, True, False),
    "move_file": (
        {"source": None, "destination": None, "create_dirs": True},
        {"source", "destination"},
        True,
        True,
        False,
    ),
    "copy_file": ({"source": None, "destination": None}, {"source", "destination"}, True, True, False),
    "delete_file": ({"path": None}, {"path"}, True, True, True),
    "search_files": (
        {"path": None, "pattern": None, "type": None, "max_results": 100},
        {"path", "pattern"},
        False,
        False,
        False,
    ),
    "get_metadata": ({"path": None}, {"path"}, False, False, False),
    "watch_folder": (
        {"path": None, "patterns": None, "callback_id": None},
        {"path", "callback_id"},
        True,
        False,
        False,
    ),
}


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = (tmp_path / "root").resolve()
    (folder / "docs" / "sub").mkdir(parents=True)
    (folder / "docs" / "b.txt").write_text("bee\n")
    (folder / "docs" / "a.txt").write_text("hello\n")
    (folder / "docs" / "sub" / "report.md").write_text("# report\n")
    (folder / "docs" / "sub" / "data.csv").write_text("x,y\n")
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = (tmp_path / "outside").resolve()
    folder.mkdir()
    (folder / "secret.txt").write_text("secret\n")
    return folder


@asynccontextmanager
async def connected(settings: ToolHostSettings) -> AsyncIterator[Client]:
    async with Client(build_server(settings)) as client:
        yield client


async def call(settings: ToolHostSettings, tool: str, **arguments: Any) -> CallToolResult:
    async with connected(settings) as client:
        return await client.call_tool(tool, arguments)


async def ok(settings: ToolHostSettings, tool: str, **arguments: Any) -> dict[str, Any]:
    """The structured result of a call that must succeed."""
    result = await call(settings, tool, **arguments)
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def refused(settings: ToolHostSettings, tool: str, **arguments: Any) -> str:
    """The error text of a call that must fail."""
    result = await call(settings, tool, **arguments)
    assert result.is_error, result.structured_content
    return " ".join(getattr(block, "text", "") for block in result.content)


def trash_entry(settings: ToolHostSettings, trash_id: str) -> tuple[dict[str, Any], Path]:
    folder = settings.trash_dir / trash_id
    manifest = json.loads((folder / "manifest.json").read_text())
    return manifest, folder / manifest["stored_as"]


# tools/list


async def test_tools_list_matches_the_contract(settings: ToolHostSettings) -> None:
    async with connected(settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert set(tools) == set(CONTRACT)
    for name, (params, required, confirm, undo, destructive) in CONTRACT.items():
        tool = tools[name]
        schema = tool.input_schema
        assert set(schema["properties"]) == set(params), name
        assert set(schema.get("required", [])) == required, name
        for param, default in params.items():
            assert schema["properties"][param]["description"], (name, param)
            if param not in required:
                assert schema["properties"][param]["default"] == default, (name, param)
        assert tool.description and len(tool.description) > 40, name
        assert tool.output_schema is not None and tool.output_schema["type"] == "object", name
        flags = {key: value for key, value in (tool.meta or {}).items() if isinstance(value, bool)}
        assert bool(tool.meta and tool.meta.get("switchboard/preview")) == confirm, name  # a change says what it does
        assert flags == {
            META_CONFIRMATION_REQUIRED: confirm,
            META_UNDO_SUPPORTED: undo,
            META_DESTRUCTIVE: destructive,
        }, name
        hints = tool.annotations
        assert hints is not None
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint), name
        assert hints.read_only_hint is not confirm, name
        # write_file keeps a replaced file in the trash and returns its undo: only deleting is destructive.
        assert hints.destructive_hint is destructive, name


# read-only tools


async def test_list_dir_lists_sorted_entries(settings: ToolHostSettings, root: Path) -> None:
    listing = await ok(settings, "list_dir", path=str(root / "docs"))
    assert [e["name"] for e in listing["entries"]] == ["a.txt", "b.txt", "sub"]
    first = listing["entries"][0]
    assert first == {**first, "path": str(root / "docs" / "a.txt"), "type": "file", "size": 6}
    assert "T" in first["modified"]
    assert listing["entries"][2]["type"] == "dir"
    assert listing["truncated"] is False


async def test_list_dir_recursive_with_filter(settings: ToolHostSettings, root: Path) -> None:
    listing = await ok(settings, "list_dir", path=str(root), recursive=True, filter="*.TXT")
    assert [e["path"] for e in listing["entries"]] == [str(root / "docs" / "a.txt"), str(root / "docs" / "b.txt")]
    everything = await ok(settings, "list_dir", path=str(root), recursive=True)
    assert str(root / "docs" / "sub" / "report.md") in [e["path"] for e in everything["entries"]]


async def test_list_dir_caps_the_entries(settings: ToolHostSettings, root: Path) -> None:
    many = root / "many"
    many.mkdir()
    for i in range(MAX_LIST_ENTRIES + 1):
        (many / f"f{i:05}").touch()
    listing = await ok(settings, "list_dir", path=str(many))
    assert len(listing["entries"]) == MAX_LIST_ENTRIES
    assert listing["truncated"] is True and "search_files" in listing["note"]


async def test_list_dir_shows_symlinks_as_links(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    (root / "docs" / "c_link").symlink_to(outside / "secret.txt")
    listing = await ok(settings, "list_dir", path=str(root / "docs"))
    assert {e["name"]: e["type"] for e in listing["entries"]}["c_link"] == "symlink"


async def test_list_dir_of_a_file_or_missing_folder_is_an_error(settings: ToolHostSettings, root: Path) -> None:
    assert "read_file" in await refused(settings, "list_dir", path=str(root / "docs" / "a.txt"))
    assert "does not exist" in await refused(settings, "list_dir", path=str(root / "nope"))


async def test_read_file_returns_content_and_size(settings: ToolHostSettings, root: Path) -> None:
    assert await ok(settings, "read_file", path=str(root / "docs" / "a.txt")) == {
        "path": str(root / "docs" / "a.txt"),
        "content": "hello\n",
        "size": 6,
        "encoding": "utf-8",
    }
    (root / "latin.txt").write_bytes("café".encode("latin-1"))
    assert (await ok(settings, "read_file", path=str(root / "latin.txt"), encoding="latin-1"))["content"] == "café"


async def test_read_file_refuses_binary_large_and_folders(settings: ToolHostSettings, root: Path) -> None:
    (root / "scan.pdf").write_bytes(b"%PDF-1.7\n\xff\xfe\x00\x01binary")
    assert "document.extract_text" in await refused(settings, "read_file", path=str(root / "scan.pdf"))
    (root / "nul.bin").write_bytes(b"abc\x00def")
    assert "binary" in await refused(settings, "read_file", path=str(root / "nul.bin"))
    (root / "big.txt").write_bytes(b"x" * (MAX_READ_BYTES + 1))
    assert "limit" in await refused(settings, "read_file", path=str(root / "big.txt"))
    assert "list_dir" in await refused(settings, "read_file", path=str(root / "docs"))
    assert "Unknown encoding" in await refused(settings, "read_file", path=str(root / "docs" / "a.txt"), encoding="x")


async def test_search_files_by_glob_regex_and_type(settings: ToolHostSettings, root: Path) -> None:
    found = await ok(settings, "search_files", path=str(root), pattern="*.md")
    assert [m["path"] for m in found["matches"]] == [str(root / "docs" / "sub" / "report.md")]
    assert found["truncated"] is False
    by_regex = await ok(settings, "search_files", path=str(root), pattern=r"^[ab]\.txt$")
    assert [m["name"] for m in by_regex["matches"]] == ["a.txt", "b.txt"]
    dirs = await ok(settings, "search_files", path=str(root), pattern="su", type="dir")
    assert [m["name"] for m in dirs["matches"]] == ["sub"]
    deep_glob = await ok(settings, "search_files", path=str(root), pattern="**/*.csv")
    assert [m["name"] for m in deep_glob["matches"]] == ["data.csv"]
    capped = await ok(settings, "search_files", path=str(root), pattern="*", type="file", max_results=2)
    assert len(capped["matches"]) == 2 and capped["truncated"] is True


async def test_search_files_rejects_an_unknown_type(settings: ToolHostSettings, root: Path) -> None:
    assert "type" in await refused(settings, "search_files", path=str(root), pattern="*", type="folder")


async def test_get_metadata(settings: ToolHostSettings, root: Path) -> None:
    file = root / "docs" / "a.txt"
    file.chmod(0o640)
    meta = await ok(settings, "get_metadata", path=str(file))
    assert meta["type"] == "file" and meta["size"] == 6
    assert meta["permissions"] == "rw-r-----"
    assert meta["mime_type"] == "text/plain"
    for key in ("created", "modified", "accessed"):
        assert meta[key][:4].isdigit() and "T" in meta[key], key
    assert (await ok(settings, "get_metadata", path=str(root / "docs")))["type"] == "dir"


# changing tools


async def test_write_file_creates_with_parents(settings: ToolHostSettings, root: Path) -> None:
    target = root / "new" / "deeper" / "note.txt"
    result = await ok(settings, "write_file", path=str(target), content="héllo")
    [undo] = result.pop("undo")
    assert undo["kind"] == "remove_created" and undo["path"] == str(target)
    assert undo["sha256"] == hashlib.sha256("héllo".encode()).hexdigest()
    assert result == {
        "success": True,
        "path": str(target),
        "size": len("héllo".encode()),
        "overwrote": False,
        "trash_id": None,
    }
    assert target.read_text() == "héllo"
    assert not settings.trash_dir.exists() or not any(settings.trash_dir.iterdir())


async def test_write_file_overwrite_keeps_the_old_content_in_the_trash(settings: ToolHostSettings, root: Path) -> None:
    target = root / "docs" / "a.txt"
    result = await ok(settings, "write_file", path=str(target), content="new text")
    assert result["overwrote"] is True and result["trash_id"]
    assert result["undo"] == [
        {
            "kind": "restore_trash",
            "path": str(target),
            "trash_id": result["trash_id"],
            "replace": True,
            "original_path": "",
            "sha256": "",
        }
    ]
    assert target.read_text() == "new text"
    manifest, kept = trash_entry(settings, result["trash_id"])
    assert kept.read_text() == "hello\n"
    assert manifest["original_path"] == str(target)
    assert manifest["sha256"] == hashlib.sha256(b"hello\n").hexdigest() and manifest["size"] == 6
    assert not [p for p in target.parent.iterdir() if p.name.endswith(".tmp")]


async def test_write_file_into_a_folder_path_is_an_error(settings: ToolHostSettings, root: Path) -> None:
    assert "folder" in await refused(settings, "write_file", path=str(root / "docs"), content="x")


async def test_move_file_renames_and_moves_into_folders(settings: ToolHostSettings, root: Path) -> None:
    source = root / "docs" / "a.txt"
    moved = await ok(settings, "move_file", source=str(source), destination=str(root / "archive" / "2024" / "a.txt"))
    assert moved == {
        "success": True,
        "original_path": str(source),
        "new_path": str(root / "archive" / "2024" / "a.txt"),
        "undo": [
            {
                "kind": "move_back",
                "path": str(root / "archive" / "2024" / "a.txt"),
                "original_path": str(source),
                "trash_id": "",
                "sha256": "",
                "replace": False,
            }
        ],
    }
    assert not source.exists() and (root / "archive" / "2024" / "a.txt").read_text() == "hello\n"
    into = await ok(settings, "move_file", source=str(root / "docs" / "b.txt"), destination=str(root / "archive"))
    assert into["new_path"] == str(root / "archive" / "b.txt")


async def test_move_file_refuses_to_overwrite_or_create_dirs_when_told_not_to(
    settings: ToolHostSettings, root: Path
) -> None:
    a, b = root / "docs" / "a.txt", root / "docs" / "b.txt"
    assert "already exists" in await refused(settings, "move_file", source=str(a), destination=str(b))
    assert a.read_text() == "hello\n" and b.read_text() == "bee\n"
    text = await refused(settings, "move_file", source=str(a), destination=str(root / "x" / "a.txt"), create_dirs=False)
    assert "create_dirs" in text and a.exists() and not (root / "x").exists()
    assert "does not exist" in await refused(settings, "move_file", source=str(root / "nope"), destination=str(b))
    assert "itself" in await refused(
        settings, "move_file", source=str(root / "docs"), destination=str(root / "docs" / "sub" / "d")
    )


async def test_copy_file_keeps_the_original(settings: ToolHostSettings, root: Path) -> None:
    source = root / "docs" / "a.txt"
    copied = await ok(settings, "copy_file", source=str(source), destination=str(root / "copy.txt"))
    [undo] = copied.pop("undo")
    assert undo["kind"] == "remove_created" and undo["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    assert copied == {"success": True, "source": str(source), "path": str(root / "copy.txt")}
    assert source.read_text() == (root / "copy.txt").read_text() == "hello\n"
    assert "already exists" in await refused(
        settings, "copy_file", source=str(source), destination=str(root / "docs" / "b.txt")
    )
    assert (root / "docs" / "b.txt").read_text() == "bee\n"
    assert "folder" in await refused(settings, "copy_file", source=str(root / "docs"), destination=str(root / "d2"))


async def test_delete_file_moves_it_to_the_trash_with_a_manifest(settings: ToolHostSettings, root: Path) -> None:
    target = root / "docs" / "a.txt"
    deleted = await ok(settings, "delete_file", path=str(target))
    assert deleted["success"] is True and deleted["path"] == str(target)
    assert not target.exists()
    manifest, kept = trash_entry(settings, deleted["trash_id"])
    assert kept == Path(deleted["trash_path"]) and kept.parent.parent == settings.trash_dir
    assert manifest["original_path"] == str(target)
    assert manifest["size"] == 6 and manifest["sha256"] == hashlib.sha256(b"hello\n").hexdigest()
    assert manifest["trashed_at"].endswith("+00:00")
    os.replace(kept, target)  # recoverable: putting it back restores the exact content
    assert target.read_text() == "hello\n"


async def test_delete_file_refuses_folders_and_missing_files(settings: ToolHostSettings, root: Path) -> None:
    assert "folder" in await refused(settings, "delete_file", path=str(root / "docs"))
    assert "does not exist" in await refused(settings, "delete_file", path=str(root / "nope.txt"))
    assert (root / "docs" / "a.txt").exists()


async def test_delete_of_a_symlink_trashes_the_link_not_its_target(
    settings: ToolHostSettings, root: Path, outside: Path
) -> None:
    link = root / "docs" / "secret_link"
    link.symlink_to(outside / "secret.txt")
    deleted = await ok(settings, "delete_file", path=str(link))
    assert not link.is_symlink() and (outside / "secret.txt").read_text() == "secret\n"
    assert Path(deleted["trash_path"]).is_symlink()


async def test_a_file_named_like_the_manifest_is_trashed_safely(settings: ToolHostSettings, root: Path) -> None:
    (root / "manifest.json").write_text("{}")
    deleted = await ok(settings, "delete_file", path=str(root / "manifest.json"))
    manifest, kept = trash_entry(settings, deleted["trash_id"])
    assert kept.read_text() == "{}" and manifest["original_path"] == str(root / "manifest.json")


# the sandbox, through the tools


async def test_escape_attempts_are_refused_and_name_the_roots(
    settings: ToolHostSettings, root: Path, outside: Path
) -> None:
    (root / "docs" / "out").symlink_to(outside)
    attempts = [
        ("read_file", {"path": str(outside / "secret.txt")}),
        ("read_file", {"path": str(root / ".." / "outside" / "secret.txt")}),
        ("read_file", {"path": str(root / "docs" / "out" / "secret.txt")}),
        ("list_dir", {"path": str(outside)}),
        ("write_file", {"path": str(outside / "new.txt"), "content": "x"}),
        ("copy_file", {"source": str(root / "docs" / "a.txt"), "destination": str(outside / "a.txt")}),
        ("move_file", {"source": str(root / "docs" / "a.txt"), "destination": str(root / "docs" / "out" / "a.txt")}),
        ("delete_file", {"path": str(outside / "secret.txt")}),
        ("search_files", {"path": str(outside), "pattern": "*"}),
        ("get_metadata", {"path": str(outside / "secret.txt")}),
    ]
    for tool, arguments in attempts:
        text = await refused(settings, tool, **arguments)
        assert "outside the allowed folders" in text and str(root) in text, (tool, text)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert (outside / "secret.txt").read_text() == "secret\n" and (root / "docs" / "a.txt").exists()


async def test_server_runs_over_stdio(settings: ToolHostSettings, root: Path) -> None:
    """`python -m services.toolhost.servers.filesystem`, launched the way the tool host launches it."""
    params = stdio_parameters("filesystem", settings)
    async with Client(params) as client:
        assert client.server_info is not None and client.server_info.name == "filesystem"
        result = await client.call_tool("read_file", {"path": str(root / "docs" / "a.txt")})
    assert not result.is_error and result.structured_content["content"] == "hello\n"


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    from tests.toolhost.mcp_helpers import assert_matches_contract

    await assert_matches_contract(build_server, settings, "filesystem")


# watch_folder


async def wait_for_events(events_file: Path, count: int) -> list[dict[str, Any]]:
    """The first `count` events of a watcher, waited for with a deadline (the observer runs in a thread)."""
    deadline = time.monotonic() + 10
    while True:
        lines = events_file.read_text().splitlines()
        if len(lines) >= count:
            return [json.loads(line) for line in lines]
        assert time.monotonic() < deadline, f"only {len(lines)} of {count} events arrived: {lines}"
        await anyio.sleep(0.01)


async def test_watch_folder_records_changes_as_json_lines(settings: ToolHostSettings, root: Path) -> None:
    async with connected(settings) as client:
        result = await client.call_tool("watch_folder", {"path": str(root / "docs"), "callback_id": "cb-1"})
        assert not result.is_error, result.content
        watch = result.structured_content
        assert isinstance(watch, dict)
        events_file = Path(watch["events_file"])
        assert events_file == settings.state_dir / "watchers" / f"{watch['watcher_id']}.jsonl"
        assert (watch["callback_id"], watch["path"], watch["patterns"]) == ("cb-1", str(root / "docs"), [])
        (root / "docs" / "sub" / "new.txt").write_text("fresh")
        created = (await wait_for_events(events_file, 1))[0]
        assert created["event"] == "created" and created["path"] == str(root / "docs" / "sub" / "new.txt")
        assert (created["watcher_id"], created["callback_id"]) == (watch["watcher_id"], "cb-1")
        assert created["is_dir"] is False and "T" in created["time"]
        os.rename(root / "docs" / "a.txt", root / "docs" / "c.txt")
        events = await wait_for_events(events_file, 2)
        while not any(e["event"] == "moved" for e in events):
            events = await wait_for_events(events_file, len(events) + 1)
        [moved] = [e for e in events if e["event"] == "moved"]
        assert (moved["path"], moved["dest_path"]) == (str(root / "docs" / "a.txt"), str(root / "docs" / "c.txt"))
    # The session is over: its watchers' observer thread has been stopped.
    assert not [t for t in threading.enumerate() if isinstance(t, BaseObserver)]


async def test_watching_a_folder_that_holds_the_state_dir_skips_its_own_events_file(tmp_path: Path) -> None:
    settings = ToolHostSettings(allowed_roots=str(tmp_path), state_dir=tmp_path / "state")
    async with connected(settings) as client:
        result = await client.call_tool("watch_folder", {"path": str(tmp_path), "callback_id": "all"})
        assert isinstance(result.structured_content, dict), result.content
        events_file = Path(result.structured_content["events_file"])
        (tmp_path / "one.txt").write_text("1")
        await wait_for_events(events_file, 1)
        (tmp_path / "two.txt").write_text("2")
        events = await wait_for_events(events_file, 2)
        while not any(e["path"].endswith("two.txt") for e in events):
            events = await wait_for_events(events_file, len(events) + 1)
    assert {e["path"] for e in events} <= {str(tmp_path / "one.txt"), str(tmp_path / "two.txt")}


async def test_watch_folder_only_records_matching_names(settings: ToolHostSettings, root: Path) -> None:
    async with connected(settings) as client:
        arguments = {"path": str(root), "callback_id": "pdfs", "patterns": ["*.PDF"]}
        result = await client.call_tool("watch_folder", arguments)
        assert not result.is_error, result.content
        assert isinstance(result.structured_content, dict)
        events_file = Path(result.structured_content["events_file"])
        (root / "skip.txt").write_text("not recorded")
        (root / "scan.pdf").write_bytes(b"%PDF-1.7\n")
        events = await wait_for_events(events_file, 1)
    assert {e["path"] for e in events} == {str(root / "scan.pdf")}


async def test_watch_folder_refusals(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    text = await refused(settings, "watch_folder", path=str(outside), callback_id="x")
    assert "outside the allowed folders" in text and str(root) in text
    assert "does not exist" in await refused(settings, "watch_folder", path=str(root / "nope"), callback_id="x")
    assert "not a folder" in await refused(settings, "watch_folder", path=str(root / "docs" / "a.txt"), callback_id="x")
    assert "callback_id is empty" in await refused(settings, "watch_folder", path=str(root), callback_id=" ")
    assert not (settings.state_dir / "watchers").exists()
