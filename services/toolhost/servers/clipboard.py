"""The `clipboard` MCP server: read and set the X clipboard with `xclip`, and recall what passed through.

It needs an X display (`DISPLAY`) and the `xclip` program. `xclip -i` leaves a small background process
that owns the clipboard until something else is copied; that is how X clipboards work. The history
is Switchboard's own: the texts set or read through this server, kept in SQLite at
`<state_dir>/clipboard.db`; copies made in other programs appear there only once they have been read
here. Run over stdio with `python -m services.toolhost.servers.clipboard`; logs go to stderr.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field

from services.toolhost.servers.kit import Correction, Effects, ToolError, serve, tool
from services.toolhost.settings import ToolHostSettings

log = logging.getLogger("services.toolhost.servers.clipboard")

SERVER_NAME = "clipboard"
XCLIP_TIMEOUT_SECONDS = 5.0
# xclip hands the clipboard to a child it forks; reading back waits this long for the child to own it.
SET_CONFIRM_SECONDS = 3.0
MAX_CONTENT_CHARS = 1_000_000
MAX_HISTORY = 500
TEXT_TARGETS = ("UTF8_STRING", "text/plain;charset=utf-8", "STRING", "TEXT", "text/plain")
NO_DISPLAY = "no display: set DISPLAY to a running X server (e.g. DISPLAY=:0) before starting the tool host"
NO_XCLIP = "xclip is not installed: apt-get install xclip"

Source = Literal["set", "read"]


class ClipboardContent(BaseModel):
    content: str = Field(description="The text on the clipboard; empty when it holds no text.")
    type: str = Field(description='"text", "empty", or the data type the clipboard holds instead, e.g. "image/png".')
    truncated: bool = Field(description=f"True when the text was longer than {MAX_CONTENT_CHARS} characters.")
    note: str | None = None


class ClipboardSet(BaseModel):
    success: bool
    characters: int = Field(description="Length of the text now on the clipboard.")
    note: str


class ClipboardEntry(BaseModel):
    content: str
    source: Source = Field(description='"set" when Switchboard copied it, "read" when Switchboard read it.')
    at: str = Field(description="When, ISO 8601 with UTC offset.")


class ClipboardHistory(BaseModel):
    entries: list[ClipboardEntry] = Field(description="Newest first.")
    database: str = Field(description="The SQLite file that keeps this history.")
    note: str


class ClipboardLog:
    """Texts that passed through this server, newest last, in `<state_dir>/clipboard.db`."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with closing(sqlite3.connect(self.path)) as conn:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS entries ("
                " id INTEGER PRIMARY KEY AUTOINCREMENT, content TEXT NOT NULL, source TEXT NOT NULL, at TEXT NOT NULL)"
            )
            with conn:
                yield conn

    def add(self, content: str, source: Source, *, skip_if_latest: bool = False) -> None:
        """Record one text; with `skip_if_latest`, not when it equals the newest entry (a re-read)."""
        with self._connect() as conn:
            if skip_if_latest:
                latest = conn.execute("SELECT content FROM entries ORDER BY id DESC LIMIT 1").fetchone()
                if latest is not None and latest[0] == content:
                    return
            at = datetime.now().astimezone().isoformat(timespec="seconds")
            conn.execute("INSERT INTO entries (content, source, at) VALUES (?, ?, ?)", (content, source, at))

    def recent(self, limit: int) -> list[ClipboardEntry]:
        with self._connect() as conn:
            rows = conn.execute("SELECT content, source, at FROM entries ORDER BY id DESC LIMIT ?", (limit,))
            return [ClipboardEntry(content=c, source=s, at=a) for c, s, a in rows]


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The clipboard server, using the X display in $DISPLAY and keeping its history under `state_dir`."""
    history = ClipboardLog(settings.state_dir / "clipboard.db")
    server = MCPServer(
        SERVER_NAME,
        instructions="The desktop clipboard (X11, through xclip) and the texts Switchboard copied or read.",
    )

    @tool(server, Effects.reads())
    def get_clipboard() -> ClipboardContent:
        """Read the text that is on the clipboard now (what the user last copied).

        Use clipboard.set_clipboard to put text on it, and clipboard.clipboard_history for earlier texts.
        If the clipboard holds an image or other non-text data, its type is returned with no content.
        """
        targets = _targets()
        if not targets:
            return ClipboardContent(content="", type="empty", truncated=False, note="Nothing has been copied.")
        text_target = next((t for t in TEXT_TARGETS if t in targets), None)
        if text_target is None:
            kind = next((t for t in targets if "/" in t), targets[0])
            return ClipboardContent(
                content="",
                type=kind,
                truncated=False,
                note=f"The clipboard holds {kind} data, not text; this tool only returns text.",
            )
        text = _xclip(["-o", "-t", text_target]).decode("utf-8", errors="replace")
        history.add(text, "read", skip_if_latest=True)
        truncated = len(text) > MAX_CONTENT_CHARS
        return ClipboardContent(content=text[:MAX_CONTENT_CHARS], type="text", truncated=truncated)

    @tool(
        server,
        Effects.changes(
            destructive=False, undoable=False, idempotent=True, preview="Replace the clipboard with {content}"
        ),
    )
    def set_clipboard(
        content: Annotated[
            str, Field(description="The exact text to copy to the clipboard, ready for the user to paste.")
        ],
    ) -> ClipboardSet:
        """Copy text to the clipboard so the user can paste it anywhere, replacing what was there.

        Use clipboard.get_clipboard to read what is on it. To save text in a file use filesystem.write_file.
        """
        if len(content) > MAX_CONTENT_CHARS:
            raise ToolError(
                f"The text has {len(content)} characters, more than {MAX_CONTENT_CHARS}. Save it to a file.",
                correction=Correction(f"more than {MAX_CONTENT_CHARS} characters", parameter="content"),
            )
        _xclip(["-i", "-t", "UTF8_STRING"], data=content.encode("utf-8"))
        _wait_until_owned(content)
        history.add(content, "set")
        log.info("set the clipboard (%d characters)", len(content))
        return ClipboardSet(
            success=True,
            characters=len(content),
            note="The text is on the clipboard until something else is copied.",
        )

    @tool(server, Effects.reads())
    def clipboard_history(
        limit: Annotated[int, Field(ge=1, le=MAX_HISTORY, description="How many recent entries to return.")] = 20,
    ) -> ClipboardHistory:
        """List recent clipboard texts, newest first, with when they were set or read.

        Only knows what passed through Switchboard: texts copied with clipboard.set_clipboard or read with
        clipboard.get_clipboard; copies made in other programs that were never read here are not in it.
        For the clipboard's current text use clipboard.get_clipboard.
        """
        return ClipboardHistory(
            entries=history.recent(limit),
            database=str(history.path),
            note="Only texts Switchboard set or read are recorded.",
        )

    return server


def _xclip(args: list[str], data: bytes | None = None) -> bytes:
    """Run xclip on the CLIPBOARD selection of $DISPLAY; its stdout, or a tool error saying what is wrong."""
    display = os.environ.get("DISPLAY", "").strip()
    if not display:
        raise ToolError(NO_DISPLAY)
    executable = shutil.which("xclip")
    if executable is None:
        raise ToolError(NO_XCLIP)
    # `xclip -i` forks a child that keeps running and inherits stdout and stderr: pipes would never
    # reach end-of-file, so its output goes to temporary files instead.
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            finished = subprocess.run(
                [executable, "-selection", "clipboard", *args],
                input=data if data is not None else b"",
                stdout=out,
                stderr=err,
                timeout=XCLIP_TIMEOUT_SECONDS,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise ToolError(
                f"xclip did not answer within {XCLIP_TIMEOUT_SECONDS:.0f} s on display {display}: the program "
                "holding the clipboard is not responding. Copy something again and retry."
            ) from exc
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read().decode("utf-8", errors="replace").strip()
    if finished.returncode != 0:
        if "Can't open display" in stderr:
            raise ToolError(f"cannot open X display {display!r}: no X server is running there. {NO_DISPLAY}")
        raise _XclipFailed(stderr or f"xclip exited with status {finished.returncode}")
    return stdout


class _XclipFailed(ToolError):
    """xclip ran but refused, e.g. because the clipboard has no data of the asked type."""


def _targets() -> list[str]:
    """The data types the clipboard offers; empty when nothing owns the clipboard."""
    try:
        listed = _xclip(["-o", "-t", "TARGETS"]).decode("utf-8", errors="replace")
    except _XclipFailed as exc:
        if "not available" in str(exc) or "no owner" in str(exc).lower():
            return []
        raise
    return [t for t in listed.split() if t not in ("TARGETS", "MULTIPLE", "TIMESTAMP", "SAVE_TARGETS")]


def _wait_until_owned(content: str) -> None:
    """Read the clipboard back until it holds `content`, so success means the text really is there."""
    deadline = time.monotonic() + SET_CONFIRM_SECONDS
    while True:
        try:
            if _xclip(["-o", "-t", "UTF8_STRING"]).decode("utf-8", errors="replace") == content:
                return
        except _XclipFailed:
            pass  # the forked xclip has not taken the clipboard yet
        if time.monotonic() > deadline:
            raise ToolError(
                f"xclip did not take the clipboard within {SET_CONFIRM_SECONDS:.0f} s; another program may be "
                "holding it. Try again."
            )
        time.sleep(0.02)


def main() -> None:
    """Serve the clipboard tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
