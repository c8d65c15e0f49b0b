"""The tool host's settings: which folders tools may touch, and how long a call may take."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from switchboard.settings import CommonSettings


class ToolHostSettings(CommonSettings):
    """`SWITCHBOARD_ALLOWED_ROOTS` is an os.pathsep-separated list of folders; every path a tool is
    given must resolve inside one of them. Empty means `<state dir>/workspace`, never the home folder."""

    allowed_roots: str = Field("", description="Folders tools may read and change (os.pathsep-separated).")
    call_timeout_seconds: float = Field(60.0, gt=0, description="Longest a single tool call may run.")

    def roots(self) -> list[Path]:
        """The allowed roots, resolved (symlinks followed), created if it is the default workspace."""
        if not self.allowed_roots.strip():
            workspace = self.state_dir / "workspace"
            workspace.mkdir(parents=True, exist_ok=True)
            return [workspace.resolve()]
        return [Path(p).expanduser().resolve() for p in self.allowed_roots.split(os.pathsep) if p.strip()]

    @property
    def audit_path(self) -> Path:
        """The append-only audit log (SQLite), read by the `audit` server's tools."""
        return self.state_dir / "audit.db"

    @property
    def trash_dir(self) -> Path:
        """Where deleted files go, each with a manifest that says where it came from."""
        return self.state_dir / "trash"
