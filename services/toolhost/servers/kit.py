"""What every MCP server of the tool host shares: annotations, error reporting, the trash, undo records.

A server module builds an `MCPServer` in `build_server(settings)` and runs it with `serve(build_server,
name)`. Tools raise `ToolError` (or a `switchboard.errors.InvalidRequest`, or let an `OSError` out)
with a message that says what went wrong and how to correct the call; `report_expected_failures`
turns the latter two into tool errors. A tool that changes files returns `undo` actions in its
structured output; the tool host stores them and carries them out on `sb undo`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, ParamSpec, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.types import ToolAnnotations
from pydantic import BaseModel, Field

from services.toolhost.settings import ToolHostSettings
from switchboard.errors import InvalidRequest
from switchboard.telemetry import setup_logging

__all__ = [
    "ToolError",
    "Trash",
    "TrashEntry",
    "UndoAction",
    "changes",
    "existing_dir",
    "existing_file",
    "iso",
    "missing",
    "read_only",
    "report_expected_failures",
    "serve",
    "sha256_of",
    "sqlite_transaction",
    "write_atomically",
]

MANIFEST_NAME = "manifest.json"

_P = ParamSpec("_P")
_R = TypeVar("_R")


def read_only() -> ToolAnnotations:
    """Annotations of a tool that only reads."""
    return ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True, open_world_hint=False)


def changes(*, destructive: bool, idempotent: bool, open_world: bool = False) -> ToolAnnotations:
    """Annotations of a tool that changes something."""
    return ToolAnnotations(
        read_only_hint=False, destructive_hint=destructive, idempotent_hint=idempotent, open_world_hint=open_world
    )


def report_expected_failures(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn refusals and OS errors into tool errors, whose text the model reads and can act on."""

    @functools.wraps(fn)
    def tool(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except InvalidRequest as exc:
            raise ToolError(str(exc)) from exc
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise ToolError(f"{exc.strerror or exc}{where}. Check the path and permissions, then try again.") from exc

    return tool


def missing(path: Path, raw: str) -> str:
    """Why `raw` cannot be used: it does not exist; with the closest name in its folder, if one is close.

    The suggestion is the correction a retry can use ("Did you mean '…'?"), written the way the caller
    wrote the path, so it stays inside the same folder and the same sandbox check applies to it.
    """
    message = f"{raw!r} does not exist ({path})."
    try:
        siblings = [entry.name for entry in path.parent.iterdir()] if path.parent.is_dir() else []
    except OSError:
        siblings = []
    close = difflib.get_close_matches(path.name, siblings, n=1, cutoff=0.75)
    if close:
        folder = raw.rstrip("/").rsplit("/", 1)[0] if "/" in raw.rstrip("/") else ""
        suggestion = f"{folder}/{close[0]}" if folder else close[0]
        return f"{message} Did you mean {suggestion!r}?"
    return f"{message} Check the name with filesystem.list_dir or filesystem.search_files."


def existing_dir(path: Path, raw: str) -> Path:
    """`path` if it is a folder, else a tool error that says what it is instead."""
    if not path.exists():
        raise ToolError(missing(path, raw))
    if not path.is_dir():
        raise ToolError(
            f"{path} is a file, not a folder. Give the folder that contains it, or use filesystem.read_file "
            "or filesystem.get_metadata for the file itself."
        )
    return path


def existing_file(path: Path, raw: str) -> Path:
    """`path` if it is a file, else a tool error that says what it is instead."""
    if not path.exists():
        raise ToolError(missing(path, raw))
    if path.is_dir():
        raise ToolError(f"{path} is a folder, not a file. Use filesystem.list_dir to see what is inside.")
    return path


def iso(timestamp: float) -> str:
    """A POSIX timestamp as ISO 8601 with the local UTC offset."""
    return datetime.fromtimestamp(timestamp).astimezone().isoformat(timespec="seconds")


def sha256_of(path: Path) -> str:
    """Of the content; of the link text for a symlink, which is what the trash keeps."""
    if path.is_symlink():
        return hashlib.sha256(os.fsencode(os.readlink(path))).hexdigest()
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomically(target: Path, data: bytes) -> None:
    """Readers see the old file or the new one, never half of it."""
    fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        if target.exists():
            shutil.copymode(target, temp)
        os.replace(temp, target)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


class UndoAction(BaseModel):
    """One step of undoing a tool call; the tool host carries these out in reverse order.

    - `restore_trash`: put the file kept in trash entry `trash_id` back where it was; with `replace`,
      whatever is there now goes to the trash first.
    - `move_back`: move `path` back to `original_path` (which must be free).
    - `remove_created`: move the file the call created at `path` to the trash, if its SHA-256 is still
      `sha256` (a file changed since is left alone, and the undo says so).
    """

    kind: Literal["restore_trash", "move_back", "remove_created"]
    path: str = Field("", description="The file the action works on.")
    original_path: str = Field("", description="Where a moved file came from.")
    trash_id: str = Field("", description="The trash entry to restore.")
    sha256: str = Field("", description="Content hash the created file must still have.")
    replace: bool = Field(False, description="Trash what is at the original path before restoring.")


@dataclass(frozen=True)
class TrashEntry:
    """Where a trashed file now lives."""

    trash_id: str
    stored_path: Path


class Trash:
    """Deleted and overwritten files, each in `<root>/<uuid>/` with a `manifest.json` beside it."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def keep(self, path: Path, *, move: bool, reason: str) -> TrashEntry:
        """Move (or copy) `path` into a new trash entry, its manifest written first.

        Manifest first: a failure can leave a manifest without its file, never a file no manifest
        accounts for.
        """
        trash_id = str(uuid.uuid4())
        folder = self.root / trash_id
        folder.mkdir(parents=True)
        # The file keeps its name unless that name is the manifest's.
        stored = folder / (path.name if path.name != MANIFEST_NAME else f"_{path.name}")
        manifest = {
            "original_path": str(path),
            "trashed_at": datetime.now(UTC).isoformat(),
            "sha256": sha256_of(path),
            "size": path.lstat().st_size,
            "reason": reason,
            "stored_as": stored.name,
        }
        try:
            (folder / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            if move:
                shutil.move(path, stored)
            else:
                shutil.copy2(path, stored, follow_symlinks=False)
        except OSError:
            shutil.rmtree(folder, ignore_errors=True)
            raise
        return TrashEntry(trash_id=trash_id, stored_path=stored)

    def manifest(self, trash_id: str) -> dict[str, str]:
        """The manifest of a trash entry; `InvalidRequest` if there is no such entry."""
        try:
            uuid.UUID(trash_id)
            return dict(json.loads((self.root / trash_id / MANIFEST_NAME).read_text(encoding="utf-8")))
        except (ValueError, FileNotFoundError) as exc:
            raise InvalidRequest(f"no trash entry {trash_id!r}") from exc

    def stored_path(self, trash_id: str) -> Path:
        return self.root / trash_id / self.manifest(trash_id)["stored_as"]

    def restore(self, trash_id: str) -> Path:
        """Move a trashed file back to its original path (which must be free); return that path."""
        manifest = self.manifest(trash_id)
        original = Path(manifest["original_path"])
        if original.is_symlink() or original.exists():
            raise InvalidRequest(f"cannot restore {original}: something is there now; move it away first")
        original.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(self.stored_path(trash_id), original)
        shutil.rmtree(self.root / trash_id, ignore_errors=True)
        return original


@contextmanager
def sqlite_transaction(path: Path, schema: str, *, foreign_keys: bool = False) -> Iterator[sqlite3.Connection]:
    """A connection to a server's own SQLite file inside one transaction: committed when the block
    ends, rolled back on error. The file and its schema (idempotent DDL) are created on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    conn = sqlite3.connect(path, timeout=10)
    try:
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL keeps the database consistent through a crash and skips an fsync per commit.
        conn.execute("PRAGMA synchronous=NORMAL")
        if foreign_keys:
            conn.execute("PRAGMA foreign_keys=ON")
        conn.executescript(schema)
        with conn:
            yield conn
    finally:
        conn.close()


def serve(build_server: Callable[[ToolHostSettings], MCPServer], name: str) -> None:
    """Run a server over stdio with the tool host's settings; logs go to stderr."""
    settings = ToolHostSettings()
    setup_logging(f"toolhost.{name}", settings.log_level)
    build_server(settings).run("stdio")
