"""The tool host's settings: which folders tools may touch, and how long a call may take."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from services.toolhost.sandbox import Sandbox
from switchboard.settings import CommonSettings


class ToolHostSettings(CommonSettings):
    """Every path a tool is given must resolve inside one of `roots()` (see `CommonSettings`)."""

    call_timeout_seconds: float = Field(60.0, gt=0, description="Longest a single tool call may run.")

    def sandbox(self) -> Sandbox:
        """The sandbox every tool path goes through: these roots, `~` meaning this home folder."""
        return Sandbox(self.roots(), self.home())

    @property
    def audit_path(self) -> Path:
        """The append-only audit log (SQLite), read by the `audit` server's tools."""
        return self.state_dir / "audit.db"

    @property
    def calls_journal_path(self) -> Path:
        """The tool servers' record of the changes they carried out, by the tool host's key for each
        call (`servers.journal`)."""
        return self.state_dir / "toolhost" / "calls.db"

    @property
    def trash_dir(self) -> Path:
        """Where deleted files go, each with a manifest that says where it came from."""
        return self.state_dir / "trash"
