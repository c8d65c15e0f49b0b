"""One test for each tool failure the hostile-input tests found, with the input that found it, so each
stays fixed even where the drawn examples would no longer reach it. Each failed with an error that said
nothing ("Error executing tool NAME"), or took the log with it."""

from __future__ import annotations

import json
from typing import Any

from services.toolhost.audit import AuditLog
from tests.hostile.harness import ToolServers
from tests.hostile.world import World


def said(servers: ToolServers, tool: str, **arguments: Any) -> str:
    """The error a call must end with; it says what was wrong."""
    answer = servers.call(tool, arguments)
    assert answer.is_error, answer.text()[:300]
    reason = answer.text().removeprefix(f"Error executing tool {tool.split('.', 1)[1]}").lstrip(": ")
    assert reason.strip(), f"{tool} failed without saying why"
    return reason


def test_a_task_id_beyond_what_sqlite_holds_is_refused_with_its_range(servers: ToolServers) -> None:
    assert "greater than or equal to 1" in said(servers, "task.update_task", task_id=-(2**127), updates={})
    assert "less than or equal" in said(servers, "task.update_task", task_id=2**64, updates={"status": "completed"})


def test_a_date_at_the_edge_of_the_calendar_is_refused_with_a_reason(servers: ToolServers) -> None:
    for start in ("0001-01-01", "0001-01-01T00:00"):
        assert "too close to the first or last day" in said(
            servers, "calendar.create_event", title="t", start=start, end="2026-01-01"
        )


def test_an_encoding_name_no_codec_can_have_is_refused(servers: ToolServers, world: World) -> None:
    for encoding in ("utf-8\0", "\0"):
        assert "Unknown encoding" in said(
            servers, "filesystem.read_file", path=str(world.root / "notes.md"), encoding=encoding
        )
        assert "Unknown encoding" in said(
            servers, "filesystem.write_file", path=str(world.root / "new.txt"), content="x", encoding=encoding
        )
    assert not (world.root / "new.txt").exists()


def test_a_decoding_that_makes_half_a_character_is_refused(servers: ToolServers, world: World) -> None:
    escaped = world.root / "escaped.txt"
    escaped.write_text("\\udcff is half a character\n")
    try:
        assert "not valid Unicode" in said(
            servers, "filesystem.read_file", path=str(escaped), encoding="unicode_escape"
        )
    finally:
        escaped.unlink()


def test_the_audit_tools_read_a_log_holding_the_arguments_of_refused_hostile_calls(
    servers: ToolServers, world: World
) -> None:
    """A call refused for its arguments is logged with them as they came; reading them back failed every
    audit tool (a recursion error, a character no answer can carry) or made a report of megabytes."""
    session = "hostile-arguments"
    audit = AuditLog(world.state / "audit.db")
    for arguments_json in (
        "[" * 100_000,
        '{"path": "\\udcff"}',
        '{"a": ' + "1" * 5000 + "}",
        json.dumps({"c": "x" * 500_000}),
    ):
        row = audit.begin(
            kind="call",
            tool="filesystem.read_file",
            arguments_json=arguments_json,
            confirmation="refused_missing",
            session_id=session,
        )
        audit.finish(row, outcome="failed", duration_ms=0.0, error="not run: no approval")
    for tool in ("audit.get_tool_log", "audit.get_session_summary", "audit.generate_audit_report"):
        answer = servers.call(tool, {"session_id": session})
        assert not answer.is_error, answer.text()[:300]
        assert len(answer.everything()) < 200_000, f"{tool} answered with {len(answer.everything())} characters"
    logged = servers.call("audit.get_tool_log", {"session_id": session})
    assert logged.result is not None and logged.result.structured_content is not None
    shown = [entry["arguments"] for entry in logged.result.structured_content["entries"]]
    assert any(isinstance(a, str) and a.startswith("[[[") for a in shown)
    assert any(isinstance(a, str) and "more characters" in a for a in shown)
