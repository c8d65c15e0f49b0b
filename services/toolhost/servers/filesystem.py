"""The `filesystem` MCP server: list, read, write, move, copy, delete (to the trash) and find files.

Every path goes through the `Sandbox`, so a tool only ever touches the allowed roots. Nothing is lost:
`delete_file` moves the file into the trash, and `write_file` copies the file it overwrites there first;
each trash entry is `<trash_dir>/<uuid>/` holding the file and a `manifest.json` saying where it came
from. Run over stdio with `python -m services.toolhost.servers.filesystem`; logs go to stderr.

`watch_folder` keeps a watchdog observer in this process; each watcher appends the changes it sees as
JSON lines to `<state_dir>/watchers/<watcher_id>.jsonl`, until the server stops.
"""

from __future__ import annotations

import codecs
import fnmatch
import json
import logging
import mimetypes
import os
import re
import shutil
import stat
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field
from watchdog.events import (
    EVENT_TYPE_CREATED,
    EVENT_TYPE_DELETED,
    EVENT_TYPE_MODIFIED,
    EVENT_TYPE_MOVED,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver

from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    Trash,
    UndoAction,
    existing_dir,
    existing_file,
    iso,
    missing,
    serve,
    sha256_of,
    tool,
    write_atomically,
)
from services.toolhost.settings import ToolHostSettings
from switchboard.paths import printable

log = logging.getLogger("services.toolhost.servers.filesystem")  # not "__main__" under `python -m`

SERVER_NAME = "filesystem"
MAX_LIST_ENTRIES = 1000
MAX_READ_BYTES = 1024 * 1024
MANIFEST_NAME = "manifest.json"
# Each watcher holds inotify watches on every subfolder; the kernel's per-user budget is finite.
MAX_WATCHERS = 32
WATCHED_EVENTS = (EVENT_TYPE_CREATED, EVENT_TYPE_MODIFIED, EVENT_TYPE_DELETED, EVENT_TYPE_MOVED)

EntryType = Literal["file", "dir", "symlink", "other"]

_P = ParamSpec("_P")
_R = TypeVar("_R")


class FileInfo(BaseModel):
    """One file, folder or link."""

    name: str
    path: str
    type: EntryType
    size: int = Field(description="Bytes; for a folder, the size of its directory entry.")
    modified: str = Field(description="Last modification, ISO 8601 with the local UTC offset.")


class DirListing(BaseModel):
    path: str
    entries: list[FileInfo]
    truncated: bool = Field(description="True when there were more entries than were returned.")
    note: str | None = None


class FileContent(BaseModel):
    path: str
    content: str
    size: int = Field(description="Size of the file in bytes.")
    encoding: str


class WriteResult(BaseModel):
    success: bool
    path: str
    size: int = Field(description="Bytes written.")
    overwrote: bool = Field(description="True when an existing file was replaced.")
    trash_id: str | None = Field(None, description="Trash entry holding the replaced content, if any.")
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


class MoveResult(BaseModel):
    success: bool
    original_path: str
    new_path: str
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


class CopyResult(BaseModel):
    success: bool
    source: str
    path: str = Field(description="Where the copy was written.")
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


class DeleteResult(BaseModel):
    success: bool
    path: str
    trash_id: str = Field(description="Trash entry the file was moved into; it can be restored from there.")
    trash_path: str
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


class SearchResult(BaseModel):
    path: str
    pattern: str
    matches: list[FileInfo]
    truncated: bool = Field(description="True when more entries matched than max_results.")


class Metadata(BaseModel):
    name: str
    path: str
    type: EntryType
    size: int
    created: str = Field(description="Creation time where recorded, else last status change (ISO 8601).")
    modified: str
    accessed: str
    permissions: str = Field(description='Owner, group, other, like "rw-r--r--".')
    mime_type: str | None = Field(description="Guessed from the file name; null when unknown.")


class WatchResult(BaseModel):
    watcher_id: str
    callback_id: str
    path: str = Field(description="The folder being watched, subfolders included.")
    patterns: list[str] = Field(description="Name globs an event must match; empty means every file.")
    events_file: str = Field(description="JSON-lines file each event is appended to, one object per line.")
    note: str


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The filesystem server, confined to `settings.roots()`, trashing into `settings.trash_dir`."""
    sandbox = settings.sandbox()
    trash = Trash(settings.trash_dir)
    watchers = FolderWatchers(settings.state_dir / "watchers")
    roots = ", ".join(str(r) for r in sandbox.roots)

    @asynccontextmanager
    async def stop_watchers_at_exit(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        try:
            yield {}
        finally:
            await anyio.to_thread.run_sync(watchers.stop_all)

    server = MCPServer(
        SERVER_NAME,
        instructions=f"Files and folders on this computer, limited to: {roots}. Deleted files go to a trash.",
        lifespan=stop_watchers_at_exit,
    )

    resolve = sandbox.resolve

    @tool(server, Effects.reads())
    def list_dir(
        path: Annotated[str, Field(description="Absolute path of the folder to list, e.g. ~/Documents.")],
        recursive: Annotated[bool, Field(description="Also list everything in subfolders.")] = False,
        filter: Annotated[
            str | None, Field(description='Glob on entry names, e.g. "*.pdf". Omit to list everything.')
        ] = None,
    ) -> DirListing:
        """List what is inside one folder: names, paths, type (file, dir, symlink), size and date.

        Use this when you know the folder. To find files by name anywhere below a folder, use
        search_files instead. To read a file's text, use read_file.
        """
        folder = existing_dir(resolve(path), path)
        entries, truncated = _take(
            (e for e in _walk(folder, recursive) if filter is None or _glob(filter, e.name)), MAX_LIST_ENTRIES
        )
        note = None
        if truncated:
            note = f"Only the first {MAX_LIST_ENTRIES} entries are shown; use filter or search_files to narrow."
        return DirListing(path=str(folder), entries=entries, truncated=truncated, note=note)

    @tool(server, Effects.reads())
    def read_file(
        path: Annotated[str, Field(description="Absolute path of the text file to read.")],
        encoding: Annotated[str, Field(description='Text encoding of the file, e.g. "utf-8" or "latin-1".')] = "utf-8",
    ) -> FileContent:
        """Read a plain text file (notes, code, CSV, JSON, Markdown, logs) and return its text.

        Only for text up to 1 MiB. For PDF, DOCX or HTML use document.extract_text; for images
        use ocr.extract_text_from_image. To see size and dates without reading, use get_metadata.
        """
        file = existing_file(resolve(path), path)
        size = file.stat().st_size
        if size > MAX_READ_BYTES:
            raise ToolError(
                f"{file} is {size} bytes, more than read_file's limit of {MAX_READ_BYTES} bytes (1 MiB). "
                "Use get_metadata for its details, or document.extract_text for a large document.",
                correction=Correction(
                    f"the file is larger than read_file's {MAX_READ_BYTES} bytes",
                    suggested_tool="document.extract_text",
                ),
            )
        _known_encoding(encoding, "Use utf-8, or latin-1 for older files.")
        data = file.read_bytes()
        try:
            text = data.decode(encoding)
        except LookupError as exc:
            raise ToolError(
                f"Unknown encoding {encoding!r}. Use utf-8, or latin-1 for older files.",
                correction=_utf8(f"unknown encoding {encoding!r}"),
            ) from exc
        except UnicodeDecodeError as exc:
            raise _not_text(file, f"it is not valid {encoding}", try_latin1=encoding.lower() != "latin-1") from exc
        if "\0" in text:
            raise _not_text(file, "it holds binary data", try_latin1=False)
        if _SURROGATE.search(text):
            # Codecs such as unicode_escape can decode to halves of characters, which no answer can carry.
            raise _not_text(file, f"reading it as {encoding} gives text that is not valid Unicode", try_latin1=False)
        return FileContent(path=str(file), content=text, size=size, encoding=encoding)

    @tool(
        server,
        Effects.changes(
            destructive=False, undoable=True, idempotent=True, preview="Write {path}", overwrites=("path",)
        ),
    )
    def write_file(
        path: Annotated[str, Field(description="Absolute path of the file to create or replace.")],
        content: Annotated[str, Field(description="The complete text to put in the file.")],
        encoding: Annotated[str, Field(description='Text encoding to write, e.g. "utf-8".')] = "utf-8",
    ) -> WriteResult:
        """Create a text file, or replace the whole content of an existing one.

        Missing parent folders are created. A replaced file's old content is kept in the trash.
        To put a file somewhere else use move_file or copy_file, not write_file.
        """
        target = resolve(path)
        if target.is_dir():
            raise ToolError(
                f"{target} is a folder. Give a file path inside it, e.g. {target / 'notes.txt'}.",
                correction=Correction(f"{path!r} is a folder, not a file", parameter="path"),
            )
        _known_encoding(encoding, "Use utf-8.")
        try:
            data = content.encode(encoding)
        except LookupError as exc:
            raise ToolError(
                f"Unknown encoding {encoding!r}. Use utf-8.", correction=_utf8(f"unknown encoding {encoding!r}")
            ) from exc
        except UnicodeEncodeError as exc:
            raise ToolError(
                f"The content cannot be written as {encoding}: {exc.reason}. Use utf-8.",
                correction=_utf8(f"the content cannot be written as {encoding}"),
            ) from exc
        trash_id = None
        if target.exists():
            trash_id = trash.keep(target, move=False, reason="overwritten by write_file").trash_id
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)
        log.info("wrote %s (%d bytes, previous content in trash %s)", target, len(data), trash_id)
        if trash_id is not None:
            undo = UndoAction(kind="restore_trash", path=str(target), trash_id=trash_id, replace=True)
        else:
            undo = UndoAction(kind="remove_created", path=str(target), sha256=sha256_of(target))
        return WriteResult(
            success=True,
            path=str(target),
            size=len(data),
            overwrote=trash_id is not None,
            trash_id=trash_id,
            undo=[undo],
        )

    @tool(
        server,
        Effects.changes(destructive=False, undoable=True, idempotent=False, preview="Move {source} → {destination}"),
    )
    def move_file(
        source: Annotated[str, Field(description="Absolute path of the file or folder to move.")],
        destination: Annotated[str, Field(description="Absolute new path, or an existing folder to move it into.")],
        create_dirs: Annotated[bool, Field(description="Create missing parent folders of the destination.")] = True,
    ) -> MoveResult:
        """Move or rename a file (or folder). Never overwrites: the destination must not exist yet.

        Use this to rename, or to move files into another folder. To leave the original in
        place, use copy_file. To get rid of a file, use delete_file.
        """
        src = resolve(source, follow_last=False)
        if not src.is_symlink() and not src.exists():
            raise missing(src, source)
        dst = _into_folder(resolve(destination, follow_last=False), src.name)
        if src.is_dir() and not src.is_symlink() and dst.is_relative_to(src):
            raise ToolError(
                f"Cannot move {src} into itself. Choose a destination outside it.",
                correction=Correction("the destination is inside the folder being moved", parameter="destination"),
            )
        _refuse_existing(dst)
        if not dst.parent.is_dir():
            if not create_dirs:
                raise ToolError(
                    f"Folder {dst.parent} does not exist. Call again with create_dirs true.",
                    correction=Correction(
                        f"folder {dst.parent} does not exist", parameter="create_dirs", suggested_value=True
                    ),
                )
            dst.parent.mkdir(parents=True)
        shutil.move(src, dst)
        log.info("moved %s to %s", src, dst)
        return MoveResult(
            success=True,
            original_path=str(src),
            new_path=str(dst),
            undo=[UndoAction(kind="move_back", path=str(dst), original_path=str(src))],
        )

    @tool(
        server,
        Effects.changes(destructive=False, undoable=True, idempotent=False, preview="Copy {source} → {destination}"),
    )
    def copy_file(
        source: Annotated[str, Field(description="Absolute path of the file to copy.")],
        destination: Annotated[str, Field(description="Absolute path of the new copy, or a folder to copy it into.")],
    ) -> CopyResult:
        """Copy one file to a new place, keeping the original. Never overwrites an existing file.

        Use move_file instead to move or rename. Copies single files, not folders.
        """
        src = existing_file(resolve(source), source)
        dst = _into_folder(resolve(destination), src.name)
        _refuse_existing(dst)
        dst.parent.mkdir(parents=True, exist_ok=True)
        # "x" mode: if something appears at dst meanwhile, fail rather than overwrite it.
        with src.open("rb") as reader, dst.open("xb") as writer:
            shutil.copyfileobj(reader, writer)
        shutil.copystat(src, dst)
        log.info("copied %s to %s", src, dst)
        return CopyResult(
            success=True,
            source=str(src),
            path=str(dst),
            undo=[UndoAction(kind="remove_created", path=str(dst), sha256=sha256_of(dst))],
        )

    @tool(
        server,
        Effects.changes(
            destructive=True,
            undoable=True,
            idempotent=False,
            preview="Delete {path} (goes to the trash, can be undone)",
            target="path",
        ),
    )
    def delete_file(
        path: Annotated[str, Field(description="Absolute path of the file to delete.")],
    ) -> DeleteResult:
        """Delete one file by moving it to the trash, where it can be restored. Refuses folders.

        Use move_file to move a file elsewhere instead. To delete several files, find them with
        search_files, then delete each one.
        """
        target = resolve(path, follow_last=False)
        if not target.is_symlink():
            if not target.exists():
                raise missing(target, path)
            if target.is_dir():
                raise ToolError(
                    f"{target} is a folder; delete_file only deletes files. Delete the files inside it.",
                    correction=Correction(f"{path!r} is a folder, not a file", parameter="path"),
                )
        entry = trash.keep(target, move=True, reason="deleted by delete_file")
        log.info("trashed %s as %s", target, entry.trash_id)
        return DeleteResult(
            success=True,
            path=str(target),
            trash_id=entry.trash_id,
            trash_path=str(entry.stored_path),
            undo=[UndoAction(kind="restore_trash", path=str(target), trash_id=entry.trash_id)],
        )

    @tool(server, Effects.reads())
    def search_files(
        path: Annotated[str, Field(description="Absolute path of the folder to search in, subfolders included.")],
        pattern: Annotated[
            str, Field(description='Name to look for: a glob like "*.pdf" or "report*", or a regular expression.')
        ],
        type: Annotated[
            Literal["file", "dir", "symlink"] | None, Field(description="Only return this kind of entry.")
        ] = None,
        max_results: Annotated[int, Field(ge=1, le=MAX_LIST_ENTRIES, description="Most matches to return.")] = 100,
    ) -> SearchResult:
        """Find files or folders by name anywhere below a folder (searches all subfolders).

        Use this when you know part of a name but not where it is. To see one folder's contents,
        use list_dir. This matches names only, not the text inside files.
        """
        folder = existing_dir(resolve(path), path)
        matches_name = _name_matcher(pattern)
        found, truncated = _take(
            (e for e in _walk(folder, True) if (type is None or e.type == type) and matches_name(e.name)),
            max_results,
        )
        return SearchResult(path=str(folder), pattern=pattern, matches=found, truncated=truncated)

    @tool(server, Effects.reads())
    def get_metadata(
        path: Annotated[str, Field(description="Absolute path of the file or folder.")],
    ) -> Metadata:
        """Details of one file or folder: size, created, modified and accessed dates, permissions, type.

        Does not read the content; use read_file for that. To see many files at once, use list_dir.
        """
        target = resolve(path, follow_last=False)
        if not target.is_symlink() and not target.exists():
            raise missing(target, path)
        info = target.lstat()
        return Metadata(
            name=target.name,
            path=str(target),
            type=_entry_type(info.st_mode),
            size=info.st_size,
            created=iso(getattr(info, "st_birthtime", info.st_ctime)),
            modified=iso(info.st_mtime),
            accessed=iso(info.st_atime),
            permissions=stat.filemode(info.st_mode)[1:],
            mime_type=mimetypes.guess_type(target.name)[0],
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=False,
            idempotent=False,
            preview="Watch {path} for changes[ to {patterns}], reported as {callback_id}",
        ),
    )
    def watch_folder(
        path: Annotated[str, Field(description="Absolute path of the folder to watch; its subfolders are included.")],
        callback_id: Annotated[
            str, Field(description="Your own label for this watcher; it is written into every event it records.")
        ],
        patterns: Annotated[
            list[str] | None,
            Field(description='Only record files whose names match one of these globs, e.g. ["*.pdf"]. Omit for all.'),
        ] = None,
    ) -> WatchResult:
        """Start watching a folder for changes: files created, modified, deleted or moved (renamed).

        Each change is appended, with its path and time, as one JSON line to
        <state_dir>/watchers/<watcher_id>.jsonl (the result gives that file and the callback_id). The
        watcher runs as long as this server does. To see what is in a folder now use list_dir.
        """
        folder = existing_dir(resolve(path), path)
        if not callback_id.strip():
            raise ToolError(
                "callback_id is empty. Give a short label for this watcher, e.g. 'downloads-pdf'.",
                correction=Correction("callback_id is empty", parameter="callback_id"),
            )
        globs = patterns or []
        if any(not g.strip() for g in globs):
            raise ToolError(
                'patterns holds an empty glob. Give name globs like "*.pdf", or omit patterns.',
                correction=Correction("patterns holds an empty glob", parameter="patterns"),
            )
        watcher_id, events = watchers.add(folder, globs, callback_id)
        log.info("watching %s as %s (callback %s, patterns %s)", folder, watcher_id, callback_id, globs)
        return WatchResult(
            watcher_id=watcher_id,
            callback_id=callback_id,
            path=str(folder),
            patterns=globs,
            events_file=str(events),
            note=(
                "Each change is appended to events_file as a JSON object with watcher_id, callback_id, event "
                "(created, modified, deleted, moved), path, dest_path for moves, is_dir and time."
            ),
        )

    return server


class _EventRecorder(FileSystemEventHandler):
    """Appends one JSON line per matching change to a watcher's events file (runs in the observer thread)."""

    def __init__(self, events: Path, watcher_id: str, callback_id: str, patterns: list[str]) -> None:
        self.events = events
        self.watcher_id = watcher_id
        self.callback_id = callback_id
        self.patterns = patterns

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in WATCHED_EVENTS:
            return
        if event.is_directory and event.event_type == EVENT_TYPE_MODIFIED:
            return  # a folder "changes" whenever a file in it does: the file's own event says more
        paths = [os.fsdecode(event.src_path)] + ([os.fsdecode(event.dest_path)] if event.dest_path else [])
        # Never record our own writes, or watching a folder that holds the state dir would loop forever.
        if any(Path(p).is_relative_to(self.events.parent) for p in paths):
            return
        if self.patterns and not any(_glob(g, os.path.basename(p)) for g in self.patterns for p in paths):
            return
        record = {
            "watcher_id": self.watcher_id,
            "callback_id": self.callback_id,
            "event": event.event_type,
            "path": paths[0],
            "dest_path": paths[1] if len(paths) > 1 else None,
            "is_dir": event.is_directory,
            "time": datetime.now().astimezone().isoformat(timespec="milliseconds"),
        }
        try:
            with self.events.open("a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as exc:
            # Raising here would kill the observer thread and with it every other watcher.
            log.warning("watcher %s could not record %s: %s", self.watcher_id, record["path"], exc)


class FolderWatchers:
    """The folders watch_folder watches: one watchdog observer thread, one events file per watcher."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._lock = threading.Lock()
        self._observer: BaseObserver | None = None
        self._count = 0

    def add(self, path: Path, patterns: list[str], callback_id: str) -> tuple[str, Path]:
        """Start recording changes below `path`; the new watcher's id and events file."""
        watcher_id = uuid.uuid4().hex
        events = self.folder / f"{watcher_id}.jsonl"
        with self._lock:
            if self._count >= MAX_WATCHERS:
                raise ToolError(f"{MAX_WATCHERS} folders are watched already, the most this server keeps.")
            self.folder.mkdir(parents=True, exist_ok=True)
            events.touch()
            if self._observer is None:
                self._observer = Observer()
                self._observer.start()
            self._observer.schedule(
                _EventRecorder(events, watcher_id, callback_id, patterns), str(path), recursive=True
            )
            self._count += 1
        return watcher_id, events

    def stop_all(self) -> None:
        """Stop every watcher (when the server shuts down); their events files stay."""
        with self._lock:
            observer, self._observer, self._count = self._observer, None, 0
        if observer is not None:
            observer.stop()
            observer.join(timeout=5)


def _into_folder(destination: Path, name: str) -> Path:
    """`mv a dir/` semantics: an existing folder as destination means "inside it, same name"."""
    return destination / name if destination.is_dir() and not destination.is_symlink() else destination


def _refuse_existing(destination: Path) -> None:
    if destination.is_symlink() or destination.exists():
        raise ToolError(
            f"{destination} already exists and will not be overwritten. Choose another name, "
            "or delete_file it first (it goes to the trash).",
            correction=Correction(f"{destination} already exists", parameter="destination"),
        )


# Half of a UTF-16 surrogate pair: text holding one cannot be encoded as UTF-8, so no answer can carry it.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _known_encoding(encoding: str, advice: str) -> None:
    """A tool error unless Python has a codec called `encoding`."""
    try:
        codecs.lookup(encoding)
    except (LookupError, ValueError) as exc:  # ValueError: a name no codec could have (a NUL in it)
        raise ToolError(
            f"Unknown encoding {encoding!r}. {advice}", correction=_utf8(f"unknown encoding {encoding!r}")
        ) from exc


def _utf8(problem: str) -> Correction:
    return Correction(problem, parameter="encoding", suggested_value="utf-8")


# Files read_file cannot read as text, and the tool that reads each kind.
_READ_BY_SUFFIX = {
    **dict.fromkeys((".pdf", ".docx", ".html", ".htm", ".xlsx"), "document.extract_text"),
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"), "ocr.extract_text_from_image"),
}


def _not_text(path: Path, why: str, *, try_latin1: bool) -> ToolError:
    """The error for a file that is not text; its correction names the tool for the file's kind, or
    latin-1 for a text file that is not valid in the encoding tried."""
    problem = f"{path.name} is not a text file ({why})"
    correction: Correction | None
    reader = _READ_BY_SUFFIX.get(path.suffix.lower())
    if reader is not None:
        correction = Correction(problem, suggested_tool=reader)
    elif try_latin1:
        correction = Correction(problem, parameter="encoding", suggested_value="latin-1")
    else:
        correction = None
    return ToolError(
        f"{path} is not a text file ({why}). For PDF, DOCX or HTML use document.extract_text; for images "
        "use ocr.extract_text_from_image; for an older text file try encoding latin-1.",
        correction=correction,
    )


def _walk(folder: Path, recursive: bool) -> Iterator[FileInfo]:
    """Entries sorted by name, each subfolder's contents right after it; links are not followed."""
    try:
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)
    except PermissionError:
        if recursive:
            return  # an unreadable subfolder is skipped rather than failing the whole listing
        raise
    for entry in entries:
        try:
            info = entry.stat(follow_symlinks=False)
        except FileNotFoundError:
            continue  # removed while we were listing
        kind = _entry_type(info.st_mode)
        yield FileInfo(
            name=printable(entry.name),
            path=printable(entry.path),
            type=kind,
            size=info.st_size,
            modified=iso(info.st_mtime),
        )
        if recursive and kind == "dir":
            yield from _walk(Path(entry.path), True)


def _take(items: Iterator[FileInfo], limit: int) -> tuple[list[FileInfo], bool]:
    """Up to `limit` items, and whether there were more."""
    taken: list[FileInfo] = []
    for item in items:
        if len(taken) == limit:
            return taken, True
        taken.append(item)
    return taken, False


def _glob(pattern: str, name: str) -> bool:
    # Case-insensitive: "*.PDF" and "*.pdf" mean the same to a person.
    return fnmatch.fnmatchcase(name.lower(), pattern.lower())


def _name_matcher(pattern: str) -> Callable[[str], bool]:
    """A regex if it uses regex-only syntax and compiles, else a glob if it has glob characters,
    else a regex if it compiles, else a plain substring. Case-insensitive throughout."""
    try:
        regex: re.Pattern[str] | None = re.compile(pattern, re.IGNORECASE)
    except re.error:
        regex = None
    if regex is not None and any(c in pattern for c in "^$\\+(){}|"):
        return _searcher(regex)
    if any(c in pattern for c in "*?["):
        # Names hold no "/": "**/*.py" means "*.py" here.
        name_glob = pattern.rsplit("/", 1)[-1]
        return lambda name: _glob(name_glob, name)
    if regex is not None:
        return _searcher(regex)
    needle = pattern.lower()
    return lambda name: needle in name.lower()


def _searcher(regex: re.Pattern[str]) -> Callable[[str], bool]:
    return lambda name: regex.search(name) is not None


def _entry_type(mode: int) -> EntryType:
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def main() -> None:
    """Serve the filesystem tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
