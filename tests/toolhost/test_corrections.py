"""Structured corrections: a tool's failure says what to change as data, beside the same human message.

A server puts the correction in the error result's `_meta` (`kit.Correction.wire`); the tool host's
`mcp_pool` reads it back into `ToolCallFailed.correction`, a `switchboard.v1.Correction`. Tested at
each step: the kit's pieces, real tools through the in-memory client, and real processes over stdio.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

from services.toolhost.mcp_pool import MalformedCorrection, ToolCallFailed, correction_from_meta
from services.toolhost.servers import (
    META_CORRECTION,
    audit,
    calendar,
    data,
    document,
    email,
    filesystem,
    meeting,
    ocr,
    security,
    task,
)
from services.toolhost.servers.kit import Correction, Effects, ToolError, closest_choice, tool
from services.toolhost.settings import ToolHostSettings
from switchboard.v1 import switchboard_pb2 as pb
from tests.files import text_pdf
from tests.toolhost.hinted_server import FOUND, MISSPELT
from tests.toolhost.mcp_helpers import BuildServer, call, ok, supervised


def text_of(result: CallToolResult) -> str:
    return " ".join(getattr(block, "text", "") for block in result.content)


async def corrected(build: BuildServer, settings: ToolHostSettings, name: str, **arguments: Any) -> dict[str, Any]:
    """The correction of a call that must fail with one, with its suggested value decoded."""
    result = await call(build, settings, name, **arguments)
    assert result.is_error, result.structured_content
    wire = (result.meta or {}).get(META_CORRECTION)
    assert wire is not None, f"{name} failed without a correction: {text_of(result)}"
    assert set(wire) == {"parameter", "problem", "suggested_value_json", "suggested_tool"}
    assert all(isinstance(value, str) for value in wire.values())
    value_json = wire.pop("suggested_value_json")
    return {**wire, "suggested_value": json.loads(value_json) if value_json else None, "text": text_of(result)}


# the kit


def test_a_rejected_value_names_its_parameter() -> None:
    correction = Correction("'b.tx' does not exist", suggested_value="b.txt", rejected="b.tx")
    assert correction.named_for({"source": "a.txt", "destination": "b.tx"}).parameter == "destination"
    in_a_list = correction.named_for({"paths": ["a.pdf", "b.tx"], "output_path": "c.pdf"})
    assert (in_a_list.parameter, in_a_list.suggested_value) == ("paths", ["a.pdf", "b.txt"])
    assert correction.named_for({"path": "elsewhere"}).parameter == ""
    named = Correction("wrong", parameter="path", rejected="x")
    assert named.named_for({"other": "x"}).parameter == "path"


def test_the_wire_form_is_the_protos_fields_with_json_values() -> None:
    assert Correction("empty", parameter="title").wire() == {
        "parameter": "title",
        "problem": "empty",
        "suggested_value_json": "",
        "suggested_tool": "",
    }
    assert Correction("p", parameter="create_dirs", suggested_value=True).wire()["suggested_value_json"] == "true"
    assert Correction("p", parameter="pages", suggested_value=[1, 2]).wire()["suggested_value_json"] == "[1, 2]"
    wire = Correction("p", suggested_tool="ocr.extract_text_from_pdf").wire()
    assert pb.Correction(**wire).suggested_tool == "ocr.extract_text_from_pdf"


def test_the_closest_choice_must_be_close() -> None:
    assert closest_choice("Sumary", ("summary", "detailed")) == "summary"
    assert closest_choice("banana", ("summary", "detailed")) is None


def test_effects_make_both_declarations() -> None:
    delete = Effects.changes(destructive=True, undoable=True, idempotent=False, preview="Delete {path}", target="path")
    hints = delete.annotations()
    assert (hints.read_only_hint, hints.destructive_hint, hints.idempotent_hint, hints.open_world_hint) == (
        False,
        True,
        False,
        False,
    )
    assert delete.meta() == {
        "switchboard/confirmation_required": True,
        "switchboard/undo_supported": True,
        "switchboard/destructive": True,
        "switchboard/preview": "Delete {path}",
        "switchboard/target": "path",
    }
    with pytest.raises(ValueError, match="typed confirmation"):
        Effects.changes(destructive=True, undoable=False, idempotent=False, preview="Send {to}")
    flags = ("switchboard/confirmation_required", "switchboard/undo_supported", "switchboard/destructive")
    assert Effects.reads().meta() == dict.fromkeys(flags, False)  # a read has no preview to show


async def test_a_corrected_failure_reads_as_the_sdk_words_any_other() -> None:
    """The human message is the same whether or not a correction travels with it."""
    server = MCPServer("test")

    @tool(server, Effects.reads())
    def pick(choice: str, corrected: bool) -> dict[str, str]:
        """Fail, with or without a correction."""
        raise ToolError("no such choice", correction=Correction("no such choice") if corrected else None)

    async with Client(server) as client:
        plain = await client.call_tool("pick", {"choice": "x", "corrected": False})
        with_correction = await client.call_tool("pick", {"choice": "x", "corrected": True})
    assert plain.is_error and with_correction.is_error
    assert text_of(plain) == text_of(with_correction) == "Error executing tool pick: no such choice"
    assert META_CORRECTION not in (plain.meta or {})


# real tools, through the in-memory client


async def test_a_misspelt_path_gets_the_real_one(settings: ToolHostSettings, root: Path) -> None:
    (root / "notes.txt").write_text("hi\n")
    raw = str(root / "notes.tx")
    found = await corrected(filesystem.build_server, settings, "read_file", path=raw)
    suggestion = str(root / "notes.txt")
    assert (found["parameter"], found["suggested_value"], found["suggested_tool"]) == ("path", suggestion, "")
    assert found["problem"] == f"{raw!r} does not exist"
    # The message is the one the tool always gave.
    assert (
        found["text"] == f"Error executing tool read_file: {raw!r} does not exist ({raw}). Did you mean {suggestion!r}?"
    )


async def test_call_again_with_a_flag(settings: ToolHostSettings, root: Path) -> None:
    (root / "a.txt").write_text("a\n")
    found = await corrected(
        filesystem.build_server,
        settings,
        "move_file",
        source=str(root / "a.txt"),
        destination=str(root / "new" / "a.txt"),
        create_dirs=False,
    )
    assert (found["parameter"], found["suggested_value"]) == ("create_dirs", True)
    assert "Call again with create_dirs true." in found["text"]


async def test_a_path_outside_the_roots_names_its_parameter(settings: ToolHostSettings, outside: Path) -> None:
    found = await corrected(filesystem.build_server, settings, "read_file", path=str(outside / "x.txt"))
    assert (found["parameter"], found["suggested_value"]) == ("path", None)
    assert "is outside the allowed folders" in found["text"]


async def test_a_misspelt_path_in_a_list_corrects_the_list(settings: ToolHostSettings, root: Path) -> None:
    first = str(text_pdf(root / "a.pdf", "A"))
    second = str(text_pdf(root / "b.pdf", "B"))
    typo = str(root / "bb.pdf")
    found = await corrected(
        document.build_server, settings, "merge_pdfs", paths=[first, typo], output_path=str(root / "ab.pdf")
    )
    assert (found["parameter"], found["suggested_value"]) == ("paths", [first, second])


async def test_the_closest_allowed_choice(settings: ToolHostSettings, root: Path) -> None:
    (root / "plan.md").write_text("# Plan\n")
    found = await corrected(
        document.build_server, settings, "convert_format", path=str(root / "plan.md"), target_format="docs"
    )
    assert (found["parameter"], found["suggested_value"]) == ("target_format", "docx")
    found = await corrected(audit.build_server, settings, "generate_audit_report", session_id="s", template="sumary")
    assert (found["parameter"], found["suggested_value"]) == ("template", "summary")
    found = await corrected(
        calendar.build_server,
        settings,
        "create_time_block",
        title="Focus",
        date="tomorrow",
        duration_minutes=30,
        preferred_time="mornin",
    )
    assert (found["parameter"], found["suggested_value"]) == ("preferred_time", "morning")


async def test_another_tool_that_would_do_it(settings: ToolHostSettings, root: Path) -> None:
    (root / "scan.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    found = await corrected(document.build_server, settings, "extract_text", path=str(root / "scan.png"))
    assert (found["parameter"], found["suggested_tool"]) == ("", "ocr.extract_text_from_image")
    (root / "secret.txt").write_text("s\n")
    encrypted = await ok(security.build_server, settings, "encrypt_file", path=str(root / "secret.txt"))
    found = await corrected(security.build_server, settings, "encrypt_file", path=encrypted["path"])
    assert found["suggested_tool"] == "security.decrypt_file"


async def test_a_misspelt_table_gets_the_query_with_the_real_one(settings: ToolHostSettings, root: Path) -> None:
    db = root / "shop.sqlite"
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE orders (id INTEGER, total REAL)")
    found = await corrected(
        data.build_server, settings, "query_sqlite", query="SELECT total FROM ordrs WHERE id = 1", db_path=str(db)
    )
    assert (found["parameter"], found["suggested_value"]) == ("query", "SELECT total FROM orders WHERE id = 1")


async def test_values_inside_an_object_argument_are_corrected_in_place(settings: ToolHostSettings) -> None:
    created = await ok(task.build_server, settings, "create_task", title="Send the invoice")
    found = await corrected(
        task.build_server, settings, "update_task", task_id=created["task_id"], updates={"status": "compleeted"}
    )
    assert (found["parameter"], found["suggested_value"]) == ("updates", {"status": "completed"})
    found = await corrected(
        task.build_server, settings, "update_task", task_id=created["task_id"], updates={"priorty": 1}
    )
    assert (found["parameter"], found["suggested_value"]) == ("updates", {"priority": 1})
    found = await corrected(
        data.build_server, settings, "deduplicate_records", data=[{"email": "a@x"}], match_fields=["emial"]
    )
    assert (found["parameter"], found["suggested_value"]) == ("match_fields", ["email"])


async def test_a_value_made_from_the_callers_own(settings: ToolHostSettings, root: Path) -> None:
    found = await corrected(
        document.build_server, settings, "create_pdf", content="# Hi", output_path=str(root / "report.docx")
    )
    assert (found["parameter"], found["suggested_value"]) == ("output_path", str(root / "report.pdf"))
    found = await corrected(
        email.build_server, settings, "draft_email", to=["a@example.com"], subject="Hi\nthere", body="b"
    )
    assert (found["parameter"], found["suggested_value"]) == ("subject", "Hi there")
    pdf = text_pdf(root / "two.pdf", "one", "two")
    found = await corrected(ocr.build_server, settings, "extract_text_from_pdf", path=str(pdf), pages=[2, 5])
    assert (found["parameter"], found["suggested_value"]) == ("pages", [2])
    (root / "talk.wav").write_bytes(b"RIFF")
    found = await corrected(
        meeting.build_server, settings, "transcribe_audio", path=str(root / "talk.wav"), diarize=True
    )
    assert (found["parameter"], found["suggested_value"]) == ("diarize", False)


async def test_a_wrong_parameter_without_a_value_to_suggest(settings: ToolHostSettings, root: Path) -> None:
    """Examples in a message ('e.g. notes.txt') are not suggestions: a retry would use a made-up name."""
    found = await corrected(filesystem.build_server, settings, "write_file", path=str(root), content="x")
    assert (found["parameter"], found["suggested_value"], found["suggested_tool"]) == ("path", None, "")
    assert "e.g." in found["text"]


# over stdio: what the tool host's pool makes of it


async def test_the_pool_turns_a_correction_into_the_proto(settings: ToolHostSettings) -> None:
    async with supervised("hinted", settings, "tests.toolhost.hinted_server") as server:
        with pytest.raises(ToolCallFailed) as failed:
            await server.call("find", {"name": MISSPELT}, timeout=30)
        with pytest.raises(ToolCallFailed) as plain:
            await server.call("fail", {"name": "x"}, timeout=30)
    assert str(failed.value) == f"Error executing tool find: No file named {MISSPELT!r}. Did you mean {FOUND!r}?"
    assert failed.value.correction == pb.Correction(
        parameter="name", problem=f"no file named {MISSPELT!r}", suggested_value_json=json.dumps(FOUND)
    )
    assert str(plain.value) == "Error executing tool fail: x cannot be found today."
    assert plain.value.correction is None


async def test_a_malformed_correction_is_logged_and_the_failure_still_reported(
    settings: ToolHostSettings, caplog: pytest.LogCaptureFixture
) -> None:
    async with supervised("hinted", settings, "tests.toolhost.hinted_server") as server:
        with caplog.at_level(logging.ERROR, logger="services.toolhost.mcp_pool"):
            with pytest.raises(ToolCallFailed) as failed:
                await server.call("garble", {"name": "x"}, timeout=30)
    assert str(failed.value) == "x failed" and failed.value.correction is None
    assert "malformed correction" in caplog.text


async def test_a_real_server_over_stdio_gives_its_correction(settings: ToolHostSettings, root: Path) -> None:
    (root / "report.txt").write_text("numbers\n")
    async with supervised("filesystem", settings) as server:
        with pytest.raises(ToolCallFailed) as failed:
            await server.call("read_file", {"path": str(root / "reprot.txt")}, timeout=30)
    assert "Did you mean" in str(failed.value)
    correction = failed.value.correction
    assert correction is not None and correction.parameter == "path"
    assert json.loads(correction.suggested_value_json) == str(root / "report.txt")


async def test_a_tool_without_switchboard_flags_is_read_from_its_annotations(settings: ToolHostSettings) -> None:
    """Regression: the pool read `destructiveHint`, which the SDK's ToolAnnotations does not have."""
    async with supervised("hinted", settings, "tests.toolhost.hinted_server") as server:
        specs = {spec.short_name: spec for spec in server.tools}
    flags = {name: (spec.confirmation_required, spec.destructive, spec.undo_supported) for name, spec in specs.items()}
    assert flags["look"] == (False, False, False)
    assert flags["shred"] == (True, True, False)
    assert flags["append"] == (True, False, False)
    # No hints at all: MCP's defaults, not read-only and destructive; so the most care.
    assert flags["unsaid"] == (True, True, False)


def test_correction_from_meta_reads_only_the_documented_form() -> None:
    assert correction_from_meta(None) is None
    assert correction_from_meta({"other": 1}) is None
    assert correction_from_meta({META_CORRECTION: {"parameter": "", "problem": ""}}) is None
    read = correction_from_meta(
        {META_CORRECTION: {"parameter": "path", "problem": "gone", "suggested_value_json": "1"}}
    )
    assert read == pb.Correction(parameter="path", problem="gone", suggested_value_json="1")
    for broken in ("text", {"parameter": 3}, {"problem": "p", "suggested_value_json": "not json"}):
        with pytest.raises(MalformedCorrection):
            correction_from_meta({META_CORRECTION: broken})
