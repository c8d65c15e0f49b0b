"""The `audit` MCP server: read the tool host's audit log, summarise a session, export a report.

The log itself is written by the tool host (see `services/toolhost/audit.py`); this server only opens
it read-only. A report can be exported as a PDF, optionally with a detached Ed25519 signature whose
private key stays in the state directory.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fpdf import FPDF
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    UndoAction,
    close_fonts,
    closest_choice,
    serve,
    sha256_of,
    tool,
)
from services.toolhost.settings import ToolHostSettings
from switchboard.errors import MalformedMessage
from switchboard.jsontext import DEFAULT_MAX_JSON_DEPTH, parse_limited_json
from switchboard.paths import printable
from switchboard.secrets import read_or_create_secret

SERVER_NAME = "audit"
MAX_ENTRIES = 500
# The most of one call's arguments an entry shows; the log keeps them whole.
MAX_ARGUMENT_CHARS = 4000
TEMPLATES = ("summary", "detailed")


class AuditEntry(BaseModel):
    id: int
    kind: str = Field(description="call, decision (a person rejected a call) or undo.")
    run_id: str
    step: int
    session_id: str
    tool: str
    arguments: Any
    confirmation: str = Field(description="not_required, confirmed, rejected or missing.")
    started_at: str
    finished_at: str | None
    outcome: str = Field(description="started, succeeded, failed or rejected.")
    error: str
    duration_ms: float | None
    files_read: list[dict[str, str]]
    files_written: list[dict[str, str]]


class ToolLog(BaseModel):
    entries: list[AuditEntry]
    truncated: bool = Field(description=f"True when more than {MAX_ENTRIES} entries matched.")


class FileHash(BaseModel):
    path: str
    sha256: str
    access: str = Field(description="read or written")


class ToolSummary(BaseModel):
    tool: str
    calls: int
    succeeded: int
    failed: int


class SessionSummary(BaseModel):
    session_id: str
    documents_touched: list[FileHash]
    tools_called: list[ToolSummary]
    confirmations: int = Field(description="Calls a person confirmed before they ran.")
    rejections: int = Field(description="Calls a person rejected.")
    undos: int = Field(description="Calls whose effect was undone.")


class AuditReport(BaseModel):
    session_id: str
    template: str
    report: str


class ExportedReport(BaseModel):
    path: str
    signed: bool
    signature_path: str | None = Field(None, description="Detached Ed25519 signature of the PDF's bytes.")
    public_key: str | None = Field(None, description="The verifying key (raw, hex) for the signature.")
    undo: list[UndoAction] = Field(default_factory=list)


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The audit server, reading `settings.audit_path`."""
    sandbox = settings.sandbox()
    server = MCPServer(SERVER_NAME, instructions="The record of every tool call Switchboard made, and reports on it.")

    @contextmanager
    def database() -> Iterator[sqlite3.Connection]:
        if not settings.audit_path.exists():
            raise ToolError("the audit log is empty: no tool has been called yet on this machine")
        db = sqlite3.connect(f"file:{settings.audit_path}?mode=ro", uri=True, timeout=10)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def entries(where: str = "", params: tuple[Any, ...] = (), limit: int = MAX_ENTRIES + 1) -> list[AuditEntry]:
        with database() as db:
            rows = db.execute(f"SELECT * FROM audit_log {where} ORDER BY id LIMIT ?", (*params, limit)).fetchall()
        return [
            AuditEntry(
                **{k: row[k] for k in row.keys() if k not in ("arguments_json", "files_read", "files_written")},
                arguments=_loads(row["arguments_json"]),
                files_read=json.loads(row["files_read"]),
                files_written=json.loads(row["files_written"]),
            )
            for row in rows
        ]

    def session_entries(session_id: str) -> list[AuditEntry]:
        found = entries("WHERE session_id = ?", (session_id,), limit=100_000)
        if not found:
            raise ToolError(
                f"no audit entries for session {session_id!r}; use audit.get_tool_log without a session to see "
                "which sessions exist",
                correction=Correction(f"no audit entries for session {session_id!r}", parameter="session_id"),
            )
        return found

    @tool(server, Effects.reads())
    def get_tool_log(
        session_id: Annotated[str | None, Field(description="Only calls of this session.")] = None,
        start_time: Annotated[str | None, Field(description="Only calls at or after this time (ISO 8601).")] = None,
        end_time: Annotated[str | None, Field(description="Only calls before this time (ISO 8601).")] = None,
        tool_name: Annotated[
            str | None, Field(description='Only calls of this tool, e.g. "filesystem.delete_file".')
        ] = None,
    ) -> ToolLog:
        """List the logged tool calls: what ran, with which arguments, confirmed or not, and the outcome.

        Filter by session, time range or tool. For totals per session use audit.get_session_summary;
        for a readable report use audit.generate_audit_report.
        """
        clauses, params = [], []
        if session_id:
            clauses.append("session_id = ?")
            params.append(session_id)
        for value, op in ((start_time, ">="), (end_time, "<")):
            if value:
                clauses.append(f"started_at {op} ?")
                params.append(_parse_time(value))
        if tool_name:
            clauses.append("(tool = ? OR tool LIKE ?)")
            params += [tool_name, f"%.{tool_name}"]
        found = entries("WHERE " + " AND ".join(clauses) if clauses else "", tuple(params))
        return ToolLog(entries=found[:MAX_ENTRIES], truncated=len(found) > MAX_ENTRIES)

    @tool(server, Effects.reads())
    def get_session_summary(
        session_id: Annotated[str, Field(description="The session to summarise (see audit.get_tool_log).")],
    ) -> SessionSummary:
        """Totals for one session: files read and written (with SHA-256), calls per tool, confirmations,
        rejections and undos. For the individual calls use audit.get_tool_log."""
        return _summarise(session_id, session_entries(session_id))

    @tool(server, Effects.reads())
    def generate_audit_report(
        session_id: Annotated[str, Field(description="The session to report on.")],
        template: Annotated[
            str | None, Field(description='"summary" (totals, the default) or "detailed" (every call as well).')
        ] = None,
    ) -> AuditReport:
        """Write a plain-text audit report of one session. To save it as a PDF use audit.export_audit_pdf."""
        chosen = template or "summary"
        if chosen not in TEMPLATES:
            raise ToolError(
                f"unknown template {template!r}; use one of: {', '.join(TEMPLATES)}",
                correction=Correction(
                    f"unknown template {template!r}",
                    parameter="template",
                    suggested_value=closest_choice(str(template), TEMPLATES),
                ),
            )
        return AuditReport(
            session_id=session_id, template=chosen, report=_report(session_id, chosen, session_entries(session_id))
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=False,
            preview="Save the audit report of session {session_id} as the PDF {output_path}",
        ),
    )
    def export_audit_pdf(
        session_id: Annotated[str, Field(description="The session to report on.")],
        output_path: Annotated[str, Field(description="Where to write the PDF, e.g. ~/Documents/audit.pdf.")],
        sign: Annotated[
            bool, Field(description="Also write a detached Ed25519 signature (<output>.sig) of the PDF.")
        ] = False,
    ) -> ExportedReport:
        """Save the detailed audit report of a session as a PDF file, optionally signed.

        Never overwrites: choose a new file name. For the text only use audit.generate_audit_report.
        """
        target = sandbox.resolve(output_path)
        if target.suffix.lower() != ".pdf":
            raise ToolError(
                f"{target} does not end in .pdf; give a PDF file name, e.g. {target.with_suffix('.pdf')}",
                correction=Correction(
                    f"{output_path!r} does not end in .pdf",
                    parameter="output_path",
                    suggested_value=str(target.with_suffix(".pdf")),
                ),
            )
        # The signature's own name is judged too: it is not the path given, and a link planted there
        # (even a dangling one, which `exists` does not see) must not lead the write out of the roots.
        signature = sandbox.resolve(str(target.with_name(target.name + ".sig")), follow_last=False)
        for path in (target, signature) if sign else (target,):
            if path.is_symlink() or path.exists():
                raise ToolError(
                    f"{path} already exists and will not be overwritten; choose another name",
                    correction=Correction(f"{path} already exists", parameter="output_path"),
                )
        report = _report(session_id, "detailed", session_entries(session_id))
        target.parent.mkdir(parents=True, exist_ok=True)
        _write_pdf(target, f"Switchboard audit report: session {session_id}", report)
        undo = [UndoAction(kind="remove_created", path=str(target), sha256=sha256_of(target))]
        if not sign:
            return ExportedReport(path=str(target), signed=False, undo=undo)
        key = _signing_key(settings)
        with signature.open("xb") as written:  # never through a link that appeared since the check
            written.write(key.sign(target.read_bytes()))
        undo.append(UndoAction(kind="remove_created", path=str(signature), sha256=sha256_of(signature)))
        public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return ExportedReport(
            path=str(target), signed=True, signature_path=str(signature), public_key=public.hex(), undo=undo
        )

    return server


def _summarise(session_id: str, found: list[AuditEntry]) -> SessionSummary:
    files: dict[tuple[str, str], FileHash] = {}
    for entry in found:
        for access, hashes in (("read", entry.files_read), ("written", entry.files_written)):
            for item in hashes:
                files[(item["path"], access)] = FileHash(path=item["path"], sha256=item["sha256"], access=access)
    calls = [e for e in found if e.kind == "call"]
    per_tool: Counter[str] = Counter(e.tool for e in calls)
    return SessionSummary(
        session_id=session_id,
        documents_touched=sorted(files.values(), key=lambda f: (f.path, f.access)),
        tools_called=[
            ToolSummary(
                tool=tool,
                calls=count,
                succeeded=sum(1 for e in calls if e.tool == tool and e.outcome == "succeeded"),
                failed=sum(1 for e in calls if e.tool == tool and e.outcome == "failed"),
            )
            for tool, count in sorted(per_tool.items())
        ],
        confirmations=sum(1 for e in calls if e.confirmation == "confirmed"),
        rejections=sum(1 for e in found if e.kind == "decision" and e.outcome == "rejected"),
        undos=sum(1 for e in found if e.kind == "undo" and e.outcome == "succeeded"),
    )


def _report(session_id: str, template: str, found: list[AuditEntry]) -> str:
    summary = _summarise(session_id, found)
    lines = [
        f"Audit report for session {session_id}",
        f"Period: {found[0].started_at} to {found[-1].finished_at or found[-1].started_at}",
        f"Tool calls: {sum(t.calls for t in summary.tools_called)}; confirmed by a person: {summary.confirmations}; "
        f"rejected: {summary.rejections}; undone: {summary.undos}",
        "",
        "Calls per tool:",
        *(f"  {t.tool}: {t.calls} ({t.succeeded} succeeded, {t.failed} failed)" for t in summary.tools_called),
        "",
        "Files touched:",
        *(f"  {f.access:<7} {f.path}  sha256 {f.sha256}" for f in summary.documents_touched),
    ]
    if not summary.documents_touched:
        lines.append("  none")
    if template == "detailed":
        lines += ["", "Every entry:"]
        for e in found:
            what = f"{e.kind} {e.tool} {json.dumps(e.arguments, ensure_ascii=False)}"
            lines.append(
                f"  #{e.id} {e.started_at} {what} -> {e.outcome} ({e.confirmation}){' ' + e.error if e.error else ''}"
            )
    return "\n".join(lines)


def _write_pdf(target: Path, title: str, body: str) -> None:
    pdf = FPDF()
    try:
        pdf.set_auto_page_break(auto=True, margin=15)
        pdf.add_page()
        font = Path("/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf")
        if font.exists():
            pdf.add_font("mono", fname=str(font))
            family = "mono"
        else:  # core font: text outside Latin-1 is replaced rather than failing the export
            family = "Courier"
            body = body.encode("latin-1", "replace").decode("latin-1")
            title = title.encode("latin-1", "replace").decode("latin-1")
        pdf.set_font(family, size=12)
        pdf.multi_cell(0, 7, title, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(2)
        pdf.set_font(family, size=8)
        for line in body.splitlines() or [""]:
            pdf.multi_cell(0, 4.5, line or " ", new_x="LMARGIN", new_y="NEXT")
        pdf.output(str(target))
    finally:
        close_fonts(pdf)


def _signing_key(settings: ToolHostSettings) -> Ed25519PrivateKey:
    """The audit signing key, made on first use and kept (0600) in the state directory."""
    seed = read_or_create_secret(settings.state_dir / "audit-signing.key")
    digest = hashlib.sha256(seed.encode()).digest()
    return Ed25519PrivateKey.from_private_bytes(digest)


def _parse_time(value: str) -> str:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ToolError(
            f"{value!r} is not an ISO 8601 time; write it like 2026-11-22T09:30:00+00:00",
            correction=Correction(f"{value!r} is not an ISO 8601 time", rejected=value),
        ) from exc
    if parsed.tzinfo is None:
        parsed = parsed.astimezone()
    return parsed.astimezone(UTC).isoformat(timespec="milliseconds")


def _loads(raw: str) -> Any:
    """A logged JSON column as its value, or as the text it is when it is no JSON an answer can carry: a
    call refused for its arguments is logged with them as they came (not JSON, nested too deep,
    numbers too long to read, half a surrogate pair), and one such row must not make the log unreadable.
    Arguments longer than `MAX_ARGUMENT_CHARS` are shown cut, as text: a report lists many calls."""
    if len(raw) > MAX_ARGUMENT_CHARS:
        return printable(raw[:MAX_ARGUMENT_CHARS]) + f"… ({len(raw) - MAX_ARGUMENT_CHARS} more characters)"
    try:
        return parse_limited_json(raw, DEFAULT_MAX_JSON_DEPTH)
    except MalformedMessage:
        return printable(raw)


def main() -> None:
    """Serve the audit tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
