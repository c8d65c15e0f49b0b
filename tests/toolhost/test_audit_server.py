"""The audit MCP server over a real audit log written by `AuditLog`."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pypdf import PdfReader

from services.toolhost.audit import AuditLog, FileHash
from services.toolhost.servers.audit import build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, ok, refused


@pytest.fixture
def settings(tmp_path: Path, root: Path) -> ToolHostSettings:
    settings = ToolHostSettings(allowed_roots=str(root), state_dir=tmp_path / "state")
    log = AuditLog(settings.audit_path)
    read = log.begin(
        kind="call",
        tool="filesystem.read_file",
        arguments_json='{"path": "/r/a.txt"}',
        confirmation="not_required",
        run_id="r1",
        step=1,
        session_id="s1",
    )
    log.finish(read, outcome="succeeded", duration_ms=3.5, files_read=[FileHash("/r/a.txt", "aa" * 32)])
    delete = log.begin(
        kind="call",
        tool="filesystem.delete_file",
        arguments_json='{"path": "/r/b.txt"}',
        confirmation="confirmed",
        run_id="r2",
        step=1,
        session_id="s1",
    )
    log.finish(delete, outcome="succeeded", duration_ms=5.0, files_read=[FileHash("/r/b.txt", "bb" * 32)])
    log.record_decision(
        run_id="r3", step=1, session_id="s1", tool="filesystem.move_file", arguments_json="{}", reason="not now"
    )
    undo = log.begin(
        kind="undo",
        tool="filesystem.delete_file",
        arguments_json="[]",
        confirmation="confirmed",
        run_id="r2",
        step=1,
        session_id="s1",
        undoes=delete,
    )
    log.finish(undo, outcome="succeeded", duration_ms=1.0)
    other = log.begin(
        kind="call", tool="system.list_processes", arguments_json="{}", confirmation="not_required", session_id="s2"
    )
    log.finish(other, outcome="failed", duration_ms=1.0, error="boom")
    return settings


async def test_matches_the_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "audit")


async def test_tool_log_filters(settings: ToolHostSettings) -> None:
    everything = await ok(build_server, settings, "get_tool_log")
    assert len(everything["entries"]) == 5 and not everything["truncated"]
    by_tool = await ok(build_server, settings, "get_tool_log", tool_name="delete_file")
    assert {e["kind"] for e in by_tool["entries"]} == {"call", "undo"}
    assert (await ok(build_server, settings, "get_tool_log", session_id="s2"))["entries"][0]["error"] == "boom"
    later = await ok(build_server, settings, "get_tool_log", start_time="2999-01-01T00:00:00Z")
    assert later["entries"] == []
    assert "ISO 8601" in await refused(build_server, settings, "get_tool_log", start_time="yesterday")


async def test_session_summary_counts_what_happened(settings: ToolHostSettings) -> None:
    summary = await ok(build_server, settings, "get_session_summary", session_id="s1")
    assert (summary["confirmations"], summary["rejections"], summary["undos"]) == (1, 1, 1)
    assert [t["tool"] for t in summary["tools_called"]] == ["filesystem.delete_file", "filesystem.read_file"]
    assert {d["path"] for d in summary["documents_touched"]} == {"/r/a.txt", "/r/b.txt"}
    assert "no audit entries" in await refused(build_server, settings, "get_session_summary", session_id="nope")


async def test_report_templates(settings: ToolHostSettings) -> None:
    short = await ok(build_server, settings, "generate_audit_report", session_id="s1")
    assert short["template"] == "summary" and "rejected: 1" in short["report"] and "Every entry" not in short["report"]
    long = await ok(build_server, settings, "generate_audit_report", session_id="s1", template="detailed")
    assert "not now" in long["report"]
    assert "summary, detailed" in await refused(
        build_server, settings, "generate_audit_report", session_id="s1", template="fancy"
    )


async def test_export_writes_a_real_signed_pdf(settings: ToolHostSettings, root: Path) -> None:
    target = root / "audit.pdf"
    exported = await ok(build_server, settings, "export_audit_pdf", session_id="s1", output_path=str(target), sign=True)
    text = "".join(page.extract_text() for page in PdfReader(target).pages)
    assert "session s1" in text and "filesystem.delete_file" in text
    signature = Path(exported["signature_path"]).read_bytes()
    Ed25519PublicKey.from_public_bytes(bytes.fromhex(exported["public_key"])).verify(signature, target.read_bytes())
    assert [u["kind"] for u in exported["undo"]] == ["remove_created", "remove_created"]
    assert "already exists" in await refused(
        build_server, settings, "export_audit_pdf", session_id="s1", output_path=str(target)
    )
    assert "allowed" in await refused(
        build_server, settings, "export_audit_pdf", session_id="s1", output_path="/etc/audit.pdf"
    )
    key = settings.state_dir / "audit-signing.key"  # the private key stays in the state directory, 0600
    assert key.stat().st_mode & 0o077 == 0 and not list(root.glob("*.key"))
