"""Every tool's effects, declared once: its MCP annotations and Switchboard flags agree, and so does what it does.

The declaration (`kit.Effects`) is read back the way clients see it, from `tools/list` of each server
built in-process, and the way the tool host reads it, over stdio. Behaviour: every tool declared
undoable is called once on real files and must return undo actions; a tool not declared undoable has no
`undo` in its result schema, and `kit.tool` refuses one that returns undo actions anyway.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import Tool
from pydantic import BaseModel

from services.toolhost.audit import AuditLog
from services.toolhost.core import SERVER_MODULES
from services.toolhost.mcp_pool import spec_from_listed
from services.toolhost.servers import META_CONFIRMATION_REQUIRED, META_DESTRUCTIVE, META_UNDO_SUPPORTED
from services.toolhost.servers.kit import Effects, UndeclaredUndo, UndoAction, tool
from services.toolhost.settings import ToolHostSettings
from tests.files import text_pdf
from tests.toolhost.mcp_helpers import ok, supervised
from tests.toolhost.test_clipboard_server import running_xvfb
from tests.toolhost.test_document_server import form_pdf

TOOL_COUNT = 67

# What each tool's effects are, and why where it is not plain: the test of this table against the
# servers catches a declaration that changes without anyone deciding it should.
DESTRUCTIVE = {
    "filesystem.delete_file",  # its purpose is to remove a file (into the trash)
    "email.send_draft",  # a sent mail cannot be taken back
}
UNDOABLE = {
    "filesystem.write_file",
    "filesystem.move_file",
    "filesystem.copy_file",
    "filesystem.delete_file",
    "audit.export_audit_pdf",
    "data.write_csv",
    "data.write_sqlite",
    "document.convert_format",
    "document.create_pdf",
    "document.fill_pdf_form",
    "document.merge_pdfs",
    "document.create_docx",
    "meeting.generate_minutes",
    "security.encrypt_file",
    "security.decrypt_file",
    "system.take_screenshot",
}
CHANGES_WITHOUT_UNDO = {
    "filesystem.watch_folder",
    "calendar.create_event",
    "calendar.create_time_block",
    "clipboard.set_clipboard",
    "email.draft_email",
    "email.send_draft",
    "system.open_application",
    "system.open_file_with",
    "task.create_task",
    "task.update_task",
}


async def listed_tools(settings: ToolHostSettings) -> dict[str, tuple[str, Tool]]:
    """Every tool of every server as `tools/list` gives it, by full name, with its server."""
    tools: dict[str, tuple[str, Tool]] = {}
    for server, module in SERVER_MODULES.items():
        build = importlib.import_module(module).build_server
        async with Client(build(settings)) as client:
            for listed in (await client.list_tools()).tools:
                tools[f"{server}.{listed.name}"] = (server, listed)
    return tools


@pytest.fixture
async def catalogue(settings: ToolHostSettings) -> dict[str, tuple[str, Tool]]:
    return await listed_tools(settings)


# one declaration, two readings


async def test_every_tool_declares_all_its_hints_and_flags(catalogue: dict[str, tuple[str, Tool]]) -> None:
    assert len(catalogue) == TOOL_COUNT
    for name, (_, listed) in catalogue.items():
        meta = listed.meta or {}
        flags = [meta.get(key) for key in (META_CONFIRMATION_REQUIRED, META_UNDO_SUPPORTED, META_DESTRUCTIVE)]
        assert all(isinstance(flag, bool) for flag in flags), name
        hints = listed.annotations
        assert hints is not None, name
        assert None not in (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint), name
        assert hints.open_world_hint is not None, name


async def test_annotations_and_flags_agree(catalogue: dict[str, tuple[str, Tool]]) -> None:
    for name, (_, listed) in catalogue.items():
        meta, hints = listed.meta or {}, listed.annotations
        assert hints is not None
        assert meta[META_CONFIRMATION_REQUIRED] is not hints.read_only_hint, f"{name}: changes ⇔ confirmation"
        assert meta[META_DESTRUCTIVE] is hints.destructive_hint, f"{name}: destructiveHint ⇔ destructive"
        if hints.read_only_hint:
            assert not meta[META_DESTRUCTIVE] and not meta[META_UNDO_SUPPORTED], f"{name}: a reader changes nothing"


async def test_the_annotations_alone_give_the_same_policy(catalogue: dict[str, tuple[str, Tool]]) -> None:
    """A client that reads only MCP's annotations treats each tool as Switchboard does."""
    for name, (server, listed) in catalogue.items():
        declared = spec_from_listed(server, listed)
        from_hints = spec_from_listed(server, listed.model_copy(update={"meta": None}))
        assert from_hints.confirmation_required is declared.confirmation_required, name
        assert from_hints.destructive is declared.destructive, name


async def test_the_effects_are_the_ones_decided(catalogue: dict[str, tuple[str, Tool]]) -> None:
    changing = {name for name, (_, listed) in catalogue.items() if (listed.meta or {})[META_CONFIRMATION_REQUIRED]}
    assert changing == UNDOABLE | CHANGES_WITHOUT_UNDO
    assert {name for name, (_, listed) in catalogue.items() if (listed.meta or {})[META_DESTRUCTIVE]} == DESTRUCTIVE
    assert {name for name, (_, listed) in catalogue.items() if (listed.meta or {})[META_UNDO_SUPPORTED]} == UNDOABLE


async def test_undoable_exactly_when_the_result_can_hold_undo_actions(catalogue: dict[str, tuple[str, Tool]]) -> None:
    for name, (_, listed) in catalogue.items():
        assert listed.output_schema is not None, name
        has_undo = "undo" in listed.output_schema.get("properties", {})
        assert has_undo is (listed.meta or {})[META_UNDO_SUPPORTED], name


@pytest.mark.parametrize("server", ["filesystem", "email"])
async def test_the_tool_host_reads_the_declaration_over_stdio(
    server: str, settings: ToolHostSettings, catalogue: dict[str, tuple[str, Tool]]
) -> None:
    async with supervised(server, settings) as running:
        specs = {spec.name: spec for spec in running.tools}
    expected = {name: listed for name, (owner, listed) in catalogue.items() if owner == server}
    assert set(specs) == set(expected)
    for name, listed in expected.items():
        meta = listed.meta or {}
        assert specs[name].confirmation_required is meta[META_CONFIRMATION_REQUIRED], name
        assert specs[name].destructive is meta[META_DESTRUCTIVE], name
        assert specs[name].undo_supported is meta[META_UNDO_SUPPORTED], name


# behaviour: undo actions come from exactly the tools declared undoable


@dataclass
class Scene:
    """What a call needs: the settings, the allowed root, and a stack for anything kept open meanwhile."""

    settings: ToolHostSettings
    root: Path
    stack: ExitStack
    monkeypatch: pytest.MonkeyPatch

    def file(self, name: str, text: str = "some text\n") -> str:
        path = self.root / name
        path.write_text(text)
        return str(path)


Arrange = Callable[[Scene], Awaitable[dict[str, Any]]]


async def _write_file(scene: Scene) -> dict[str, Any]:
    return {"path": scene.file("notes.txt"), "content": "new text\n"}


async def _move_file(scene: Scene) -> dict[str, Any]:
    return {"source": scene.file("a.txt"), "destination": str(scene.root / "b.txt")}


async def _copy_file(scene: Scene) -> dict[str, Any]:
    return {"source": scene.file("a.txt"), "destination": str(scene.root / "copy.txt")}


async def _delete_file(scene: Scene) -> dict[str, Any]:
    return {"path": scene.file("old.txt")}


async def _export_audit_pdf(scene: Scene) -> dict[str, Any]:
    log = AuditLog(scene.settings.audit_path)
    row = log.begin(
        kind="call",
        tool="filesystem.list_dir",
        arguments_json="{}",
        confirmation="not_required",
        run_id="r1",
        step=1,
        session_id="s1",
    )
    log.finish(row, outcome="succeeded", duration_ms=1.0)
    return {"session_id": "s1", "output_path": str(scene.root / "audit.pdf"), "sign": True}


async def _write_csv(scene: Scene) -> dict[str, Any]:
    return {"data": [{"name": "Ada", "year": 1815}], "output_path": scene.file("people.csv", "old,csv\n")}


async def _write_sqlite(scene: Scene) -> dict[str, Any]:
    return {"data": [{"name": "Ada"}], "table": "people", "db_path": str(scene.root / "people.sqlite")}


async def _convert_format(scene: Scene) -> dict[str, Any]:
    return {"path": scene.file("plan.md", "# Plan\n\nShip it.\n"), "target_format": "html"}


async def _create_pdf(scene: Scene) -> dict[str, Any]:
    return {"content": "# Title\n\nBody.", "output_path": str(scene.root / "new.pdf")}


async def _fill_pdf_form(scene: Scene) -> dict[str, Any]:
    form = form_pdf(scene.root / "form.pdf")
    return {"path": str(form), "fields": {"name": "Ada"}, "output_path": str(scene.root / "filled.pdf")}


async def _merge_pdfs(scene: Scene) -> dict[str, Any]:
    paths = [str(text_pdf(scene.root / name, name)) for name in ("a.pdf", "b.pdf")]
    return {"paths": paths, "output_path": str(scene.root / "ab.pdf")}


async def _create_docx(scene: Scene) -> dict[str, Any]:
    return {"content": "# Title\n\nBody.", "output_path": str(scene.root / "new.docx")}


async def _generate_minutes(scene: Scene) -> dict[str, Any]:
    transcript = "Alice: We decided to ship on Friday.\nBob: I will write the release notes by Thursday.\n"
    return {"transcript": transcript, "output_path": str(scene.root / "minutes.md")}


async def _encrypt_file(scene: Scene) -> dict[str, Any]:
    return {"path": scene.file("secret.txt")}


async def _decrypt_file(scene: Scene) -> dict[str, Any]:
    build = importlib.import_module(SERVER_MODULES["security"]).build_server
    encrypted = await ok(build, scene.settings, "encrypt_file", path=scene.file("secret.txt"))
    (scene.root / "secret.txt").unlink()
    return {"path": encrypted["path"]}


async def _take_screenshot(scene: Scene) -> dict[str, Any]:
    scene.monkeypatch.setenv("DISPLAY", scene.stack.enter_context(running_xvfb()))
    scene.monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return {}


# One real call of every undoable tool; the test below fails when a tool becomes undoable without one.
UNDO_CALLS: dict[str, Arrange] = {
    "filesystem.write_file": _write_file,
    "filesystem.move_file": _move_file,
    "filesystem.copy_file": _copy_file,
    "filesystem.delete_file": _delete_file,
    "audit.export_audit_pdf": _export_audit_pdf,
    "data.write_csv": _write_csv,
    "data.write_sqlite": _write_sqlite,
    "document.convert_format": _convert_format,
    "document.create_pdf": _create_pdf,
    "document.fill_pdf_form": _fill_pdf_form,
    "document.merge_pdfs": _merge_pdfs,
    "document.create_docx": _create_docx,
    "meeting.generate_minutes": _generate_minutes,
    "security.encrypt_file": _encrypt_file,
    "security.decrypt_file": _decrypt_file,
    "system.take_screenshot": _take_screenshot,
}


async def test_every_undoable_tool_has_a_call_below(catalogue: dict[str, tuple[str, Tool]]) -> None:
    declared = {name for name, (_, listed) in catalogue.items() if (listed.meta or {})[META_UNDO_SUPPORTED]}
    assert set(UNDO_CALLS) == declared


@pytest.mark.parametrize("name", sorted(UNDO_CALLS))
async def test_an_undoable_tool_returns_undo_actions(
    name: str, settings: ToolHostSettings, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, short = name.split(".")
    build = importlib.import_module(SERVER_MODULES[server]).build_server
    with ExitStack() as stack:
        arguments = await UNDO_CALLS[name](Scene(settings, root, stack, monkeypatch))
        result = await ok(build, settings, short, **arguments)
    actions = [UndoAction.model_validate(action) for action in result["undo"]]
    assert actions, f"{name} changed something and returned no undo action"
    for action in actions:
        assert os.path.isabs(action.path) and Path(action.path).is_relative_to(root), (name, action)


# the registration helper holds every tool to its declaration


class Written(BaseModel):
    path: str
    undo: list[UndoAction] = []


class Said(BaseModel):
    text: str


def test_a_declaration_that_does_not_fit_the_result_type_is_refused_at_registration() -> None:
    server = MCPServer("test")

    def write(path: str) -> Written:
        """Write a file."""
        return Written(path=path)

    def say(text: str) -> Said:
        """Say something."""
        return Said(text=text)

    with pytest.raises(TypeError, match="undoable=False"):
        tool(server, Effects.changes(destructive=False, undoable=False, idempotent=True, preview="Change it"))(write)
    with pytest.raises(TypeError, match="undoable=True"):
        tool(server, Effects.changes(destructive=False, undoable=True, idempotent=True, preview="Change it"))(say)


def test_a_reader_cannot_be_declared_destructive_or_undoable() -> None:
    with pytest.raises(ValueError, match="only reads"):
        Effects(read_only=True, destructive=True, undoable=False, idempotent=True, open_world=False)
    with pytest.raises(ValueError, match="only reads"):
        Effects(read_only=True, destructive=False, undoable=True, idempotent=True, open_world=False)


async def test_undo_actions_from_a_tool_not_declared_undoable_fail_the_call(caplog: pytest.LogCaptureFixture) -> None:
    """A tool returning a plain dict passes the result type check; the check of every result catches it."""
    server = MCPServer("test")

    @tool(server, Effects.changes(destructive=False, undoable=False, idempotent=True, preview="Change it"))
    def sneaky(path: str) -> dict[str, Any]:
        """Write a file and claim an undo."""
        return {"path": path, "undo": [{"kind": "remove_created", "path": path}]}

    @tool(server, Effects.changes(destructive=False, undoable=False, idempotent=True, preview="Change it"))
    def honest(path: str) -> dict[str, Any]:
        """Write a file."""
        return {"path": path, "undo": []}

    async with Client(server) as client:
        refused = await client.call_tool("sneaky", {"path": "/tmp/x"})
        allowed = await client.call_tool("honest", {"path": "/tmp/x"})
    assert refused.is_error and not allowed.is_error
    causes = [cause for record in caplog.records if record.exc_info for cause in _chain(record.exc_info[1])]
    assert any(isinstance(cause, UndeclaredUndo) and "sneaky returned undo actions" in str(cause) for cause in causes)


def _chain(exc: BaseException | None) -> list[BaseException]:
    found = []
    while exc is not None:
        found.append(exc)
        exc = exc.__cause__
    return found


def test_registration_returns_the_function_unchanged() -> None:
    server = MCPServer("test")

    def read(path: str) -> Said:
        """Read a file."""
        return Said(text=path)

    assert tool(server, Effects.reads())(read) is read
