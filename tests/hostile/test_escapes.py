"""Ways out of the sandbox, tried one by one through the real MCP servers: symlinks and hard links that
lead outside, a dangling link where a tool writes a file of its own, names no tool expects on disk (a
newline, bytes that are not UTF-8), a FIFO, and a 100 MB file where text is expected."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.hostile.harness import Answer, ToolServers
from tests.hostile.world import AUDITED_SESSION, LINKED_MARKER, MARKER, World, restore_traps, snapshot, untouchable

OUTSIDE_THE_FOLDERS = "outside the allowed folders"


@pytest.fixture
def world_kept(world: World) -> Iterator[World]:
    """The world with its traps in place, and the proof, after the test, that nothing outside the
    root changed."""
    restore_traps(world)
    before = untouchable(world)
    yield world
    assert untouchable(world) == before


def refused(servers: ToolServers, tool: str, said: str = "", **arguments: Any) -> str:
    answer = servers.call(tool, arguments)
    assert answer.is_error, f"{tool} {arguments} was not refused: {answer.text()[:300]}"
    assert said in answer.text(), answer.text()
    assert MARKER not in answer.everything()
    return answer.text()


def succeeded(servers: ToolServers, tool: str, **arguments: Any) -> dict[str, Any]:
    answer = servers.call(tool, arguments)
    assert not answer.is_error, f"{tool} {arguments}: {answer.text()[:500]}"
    assert answer.result is not None and isinstance(answer.result.structured_content, dict)
    assert MARKER not in answer.everything()
    return answer.result.structured_content


# --- symlinks ---------------------------------------------------------------------------------------


def symlink_escapes(world: World) -> list[tuple[str, dict[str, Any]]]:
    """Each file operation pointed through a link out of the root: a link to a file, a link to a
    folder, and a dangling link whose target would be created outside."""
    root = world.root
    inside = str(root / "notes.md")
    return [
        ("filesystem.read_file", {"path": f"{root}/link-secret"}),
        ("filesystem.read_file", {"path": f"{root}/link-out/secret.txt"}),
        ("filesystem.get_metadata", {"path": f"{root}/link-out/secret.txt"}),
        ("filesystem.list_dir", {"path": f"{root}/link-out"}),
        ("filesystem.search_files", {"path": f"{root}/link-out", "pattern": "*"}),
        ("filesystem.write_file", {"path": f"{root}/link-secret", "content": "owned"}),
        ("filesystem.write_file", {"path": f"{root}/link-out/new-file.txt", "content": "owned"}),
        ("filesystem.write_file", {"path": f"{root}/dangling", "content": "owned"}),
        ("filesystem.copy_file", {"source": f"{root}/link-secret", "destination": f"{root}/copied.txt"}),
        ("filesystem.copy_file", {"source": inside, "destination": f"{root}/link-out"}),
        ("filesystem.copy_file", {"source": inside, "destination": f"{root}/dangling"}),
        ("filesystem.move_file", {"source": inside, "destination": f"{root}/link-out/moved.txt"}),
        ("filesystem.move_file", {"source": f"{root}/link-out/secret.txt", "destination": f"{root}/got.txt"}),
        ("filesystem.delete_file", {"path": f"{root}/link-out/secret.txt"}),
        ("document.extract_text", {"path": f"{root}/link-secret"}),
        ("document.create_pdf", {"content": "owned", "output_path": f"{root}/link-out/new.pdf"}),
        ("data.write_csv", {"data": [{"a": 1}], "output_path": f"{root}/dangling"}),
        ("security.encrypt_file", {"path": inside, "output_path": f"{root}/dangling"}),
        ("meeting.extract_action_items", {"transcript": f"{root}/link-secret"}),
    ]


def test_a_symlink_out_of_the_root_leads_nowhere(servers: ToolServers, world_kept: World) -> None:
    for tool, arguments in symlink_escapes(world_kept):
        refused(servers, tool, OUTSIDE_THE_FOLDERS, **arguments)
    assert not (world_kept.outside / "planted.txt").exists()


def test_moving_or_deleting_a_symlink_acts_on_the_link_not_on_what_it_points_to(
    servers: ToolServers, world_kept: World
) -> None:
    root = world_kept.root
    moved = succeeded(servers, "filesystem.move_file", source=f"{root}/link-secret", destination=f"{root}/moved-link")
    assert moved["new_path"] == f"{root}/moved-link" and (root / "moved-link").is_symlink()
    deleted = succeeded(servers, "filesystem.delete_file", path=f"{root}/moved-link")
    assert Path(deleted["trash_path"]).is_symlink() and not (root / "moved-link").exists()
    (world_kept.root / "link-out").unlink()  # a link to a folder outside, deleted: only the link goes
    assert (world_kept.outside / "secret.txt").is_file()


def test_a_signature_beside_an_audit_report_cannot_be_planted_outside_through_a_dangling_link(
    servers: ToolServers, world_kept: World
) -> None:
    """`export_audit_pdf` writes `<output>.sig` beside the report; `audit.pdf.sig` in the root is a
    dangling link to a file outside."""
    refused(
        servers,
        "audit.export_audit_pdf",
        "audit.pdf.sig",
        session_id=AUDITED_SESSION,
        output_path=f"{world_kept.root}/audit.pdf",
        sign=True,
    )
    assert not (world_kept.outside / "planted.sig").exists()
    assert not (world_kept.root / "audit.pdf").exists()


# --- hard links ---------------------------------------------------------------------------------------


def test_writing_over_a_hard_link_replaces_the_name_inside_and_leaves_the_file_outside_as_it_was(
    servers: ToolServers, world_kept: World
) -> None:
    root = world_kept.root
    written = succeeded(servers, "filesystem.write_file", path=f"{root}/hard-secret.txt", content="new text\n")
    assert written["overwrote"] and (root / "hard-secret.txt").read_text() == "new text\n"
    assert (world_kept.outside / "hard.txt").read_text().startswith(LINKED_MARKER)
    assert (root / "hard-secret.txt").stat().st_ino != (world_kept.outside / "hard.txt").stat().st_ino


def test_a_database_with_a_second_name_is_not_changed_in_place(servers: ToolServers, world_kept: World) -> None:
    before = snapshot(world_kept.outside)["ledger.sqlite"]
    said = refused(
        servers,
        "data.write_sqlite",
        "hard links",
        data=[{"item": "owned", "total": 1}],
        table="extra",
        db_path=f"{world_kept.root}/hard-ledger.sqlite",
    )
    assert "copy" in said
    assert snapshot(world_kept.outside)["ledger.sqlite"] == before
    # A database with one name is still changed as asked.
    succeeded(
        servers,
        "data.write_sqlite",
        data=[{"item": "tea"}],
        table=f"t{time.monotonic_ns()}",
        db_path=f"{world_kept.root}/data.sqlite",
    )


# --- names and special files ---------------------------------------------------------------------------


def test_names_with_a_newline_or_bytes_that_are_not_utf8_are_listed_and_read(
    servers: ToolServers, world_kept: World
) -> None:
    root = world_kept.root
    listed = succeeded(servers, "filesystem.list_dir", path=str(root))
    names = {entry["name"] for entry in listed["entries"]}
    assert "new\nline.txt" in names
    assert "bad-\ufffd-name.txt" in names  # the byte that is not UTF-8, shown as U+FFFD
    found = succeeded(servers, "filesystem.search_files", path=str(root), pattern="*name*")
    assert "bad-\ufffd-name.txt" in {entry["name"] for entry in found["matches"]}
    assert succeeded(servers, "filesystem.read_file", path=f"{root}/new\nline.txt")["content"].startswith("a name")
    for tool, arguments in [
        ("security.scan_for_secrets", {"path": str(root)}),
        ("security.scan_for_pii", {"path": str(root)}),
        ("security.find_duplicates", {"path": str(root)}),
        ("knowledge.index_folder", {"path": str(root)}),
    ]:
        succeeded(servers, tool, **arguments)


def test_a_fifo_is_refused_at_once_by_every_tool_that_would_open_it(servers: ToolServers, world_kept: World) -> None:
    pipe = f"{world_kept.root}/pipe"
    calls: list[tuple[str, dict[str, Any]]] = [
        ("filesystem.read_file", {"path": pipe}),
        ("filesystem.write_file", {"path": pipe, "content": "x"}),
        ("filesystem.copy_file", {"source": pipe, "destination": f"{world_kept.root}/pipe-copy"}),
        ("filesystem.delete_file", {"path": pipe}),
        ("document.extract_text", {"path": pipe}),
        ("data.write_csv", {"data": [{"a": 1}], "output_path": pipe}),
        ("meeting.extract_action_items", {"transcript": pipe}),
        ("security.encrypt_file", {"path": pipe}),
    ]
    for tool, arguments in calls:
        started = time.monotonic()
        refused(servers, tool, "named pipe", **arguments)
        assert time.monotonic() - started < 5, tool
    assert Path(pipe).is_fifo()


# --- a 100 MB file where text is expected --------------------------------------------------------------

BIG_BYTES = 100 * 1024 * 1024


@pytest.fixture
def big_files(world_kept: World) -> Iterator[dict[str, Path]]:
    """100 MB of text (and of would-be ciphertext) in the root, written in a few large blocks."""
    folder = world_kept.root / "big"
    folder.mkdir(exist_ok=True)
    block = (b"The quarterly figures are attached. Call Ana on Friday about the budget.\n" * 14_000)[: 1 << 20]
    files = {"txt": folder / "huge.txt", "csv": folder / "huge.csv", "enc": folder / "huge.txt.enc"}
    for path in files.values():
        with path.open("wb") as f:
            for _ in range(BIG_BYTES // len(block)):
                f.write(block)
    try:
        yield files
    finally:
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()


def peak_memory_mb(servers: ToolServers, server: str) -> float:
    """The most memory (resident) the server's process has held since it started."""
    module = servers.servers[server].module
    [process] = [child for child in psutil.Process().children(recursive=True) if module in " ".join(child.cmdline())]
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc")


def test_a_100_mb_file_where_text_is_expected_gets_a_bounded_answer_quickly(
    servers: ToolServers, big_files: dict[str, Path]
) -> None:
    calls = [
        ("filesystem.read_file", {"path": str(big_files["txt"])}),
        ("document.extract_text", {"path": str(big_files["txt"])}),
        ("document.read_spreadsheet", {"path": str(big_files["csv"])}),
        ("document.diff_documents", {"path_a": str(big_files["txt"]), "path_b": str(big_files["csv"])}),
        ("meeting.extract_action_items", {"transcript": str(big_files["txt"])}),
        (
            "meeting.generate_minutes",
            {"transcript": str(big_files["txt"]), "output_path": str(big_files["txt"]) + ".md"},
        ),
        ("security.scan_for_pii", {"path": str(big_files["txt"])}),
        ("security.scan_for_secrets", {"path": str(big_files["txt"].parent)}),
        ("security.decrypt_file", {"path": str(big_files["enc"]), "output_path": str(big_files["txt"]) + ".out"}),
        ("knowledge.index_folder", {"path": str(big_files["txt"].parent)}),
    ]
    servers_used = {tool.split(".")[0] for tool, _ in calls}
    before = {server: peak_memory_mb(servers, server) for server in servers_used}
    for tool, arguments in calls:
        started = time.monotonic()
        answer: Answer = servers.call(tool, arguments, timeout=30)
        took = time.monotonic() - started
        assert took < 10, f"{tool} took {took:.1f}s over a 100 MB file"
        assert len(answer.everything()) < 2 * 1024 * 1024, f"{tool} answered with {len(answer.everything())} characters"
        if answer.is_error:
            assert answer.text().strip(), tool
    for server in servers_used:
        grew = peak_memory_mb(servers, server) - before[server]
        assert grew < 60, f"the {server} server took {grew:.0f} MB more memory for a 100 MB file"
    assert not os.path.exists(str(big_files["txt"]) + ".out")
