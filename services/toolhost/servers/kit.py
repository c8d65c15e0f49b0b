"""What every MCP server of the tool host shares: effects, error reporting, the trash, undo records.

A server module builds an `MCPServer` in `build_server(settings)` and runs it with `serve(build_server,
name)`. Each tool is registered with `@tool(server, Effects...)`: one statement of what it does to the
person's world, from which both its MCP annotations and Switchboard's `_meta` flags are derived.

Tools raise `ToolError` (or a `switchboard.errors.InvalidRequest`, or let an `OSError` out) with a
message that says what went wrong and how to correct the call; when the error also names the fix (a
parameter's better value, or a tool that would do what was asked), it carries a `Correction`, which
travels in the error result's `_meta` so the tool host gets it as data. A tool that changes files
returns `undo` actions in its structured output; the tool host stores them and carries them out on
`sb undo`.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import inspect
import json
import logging
import os
import shutil
import sqlite3
import tempfile
import typing
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, ParamSpec, TypeVar, cast

from fpdf import FPDF
from fpdf.fonts import TTFFont
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError as McpToolError
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from opentelemetry import context as otel_context
from opentelemetry import trace
from pydantic import BaseModel, Field

from services.toolhost.sandbox import PathOutsideSandbox
from services.toolhost.servers import (
    META_CALL_KEY,
    META_CONFIRMATION_REQUIRED,
    META_CORRECTION,
    META_DESTRUCTIVE,
    META_INTERRUPTED,
    META_OVERWRITES,
    META_PREVIEW,
    META_PREVIEW_FROM,
    META_TARGET,
    META_UNDO_SUPPORTED,
)
from services.toolhost.servers.journal import CallJournal, Interrupted, Replayed
from services.toolhost.settings import ToolHostSettings
from switchboard.errors import InvalidRequest
from switchboard.telemetry import extract, failed, setup_logging, setup_tracing, tool_call_span

__all__ = [
    "Correction",
    "Effects",
    "ToolError",
    "Trash",
    "TrashEntry",
    "UndeclaredUndo",
    "UndoAction",
    "close_fonts",
    "closest_choice",
    "existing_dir",
    "existing_file",
    "iso",
    "keep_journal",
    "missing",
    "report_expected_failures",
    "serve",
    "sha256_of",
    "sqlite_transaction",
    "tool",
    "write_atomically",
]

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
# How the SDK words a tool's anticipated failure (`Tool.run`); a failure that carries a correction is
# answered here rather than by the SDK, in the same words.
ERROR_PREFIX = "Error executing tool {tool}: "

_P = ParamSpec("_P")
_R = TypeVar("_R")


@dataclass(frozen=True)
class Effects:
    """What a tool does to the person's world, said once; its MCP annotations and `_meta` flags follow.

    - `reads()`: changes nothing of the person's (files, mail, calendar, tasks, clipboard, desktop).
      Bookkeeping a server keeps for itself (a search index it can rebuild, a history of texts read)
      does not count. Runs without asking: readOnlyHint, no confirmation.
    - `changes(...)`: everything else; a person confirms the call first.
      - `destructive`: the call exists to remove something the person has (even into the trash), or
        its effect cannot be taken back (a sent email). The policy asks for a typed confirmation. An
        overwrite that keeps the old file in the trash and returns an undo is not destructive.
      - `undoable`: the tool returns `undo` actions (`UndoAction`) for what it changed. `tool` checks
        this against the result type at registration and against every result at call time.
      - `idempotent`: the same call again changes nothing more.
      - `open_world`: the call reaches beyond this machine's files (starts programs, sends mail).
      - `preview`: what the call does, as a template over its arguments ("Move {source} → {destination}"),
        shown to the person before it runs (`switchboard.preview` renders it).
      - `target`: the parameter naming what the call acts on, which a typed confirmation must match;
        `to|draft_id` takes the first of them that has a value.
      - `preview_from`: a resource of the tool's server, as a URI template over the arguments, whose JSON
        fields the preview may name too ("Send the email to {to}" for a draft named only by its id).
      - `overwrites`: the parameters naming a file the call replaces when it is already there (the old
        one is kept in the trash); such a call is confirmed like a destructive one. `"path-.enc"` means
        the value of `path` without its `.enc` ending.
    """

    read_only: bool
    destructive: bool
    undoable: bool
    idempotent: bool
    open_world: bool
    preview: str = ""
    target: str = ""
    overwrites: tuple[str, ...] = ()
    preview_from: str = ""

    def __post_init__(self) -> None:
        if self.read_only and (self.destructive or self.undoable):
            raise ValueError("a tool that only reads can be neither destructive nor undone")

    @classmethod
    def reads(cls) -> Effects:
        """A tool that only reads."""
        return cls(read_only=True, destructive=False, undoable=False, idempotent=True, open_world=False)

    @classmethod
    def changes(
        cls,
        *,
        destructive: bool,
        undoable: bool,
        idempotent: bool,
        preview: str,
        target: str = "",
        overwrites: tuple[str, ...] = (),
        preview_from: str = "",
        open_world: bool = False,
    ) -> Effects:
        """A tool that changes something of the person's, and what to show the person before it does."""
        if destructive and not target:
            raise ValueError("a destructive tool names the parameter a typed confirmation must match")
        return cls(
            read_only=False,
            destructive=destructive,
            undoable=undoable,
            idempotent=idempotent,
            open_world=open_world,
            preview=preview,
            target=target,
            overwrites=overwrites,
            preview_from=preview_from,
        )

    @property
    def confirmation_required(self) -> bool:
        return not self.read_only

    def annotations(self) -> ToolAnnotations:
        """MCP's hints, every one set."""
        return ToolAnnotations(
            read_only_hint=self.read_only,
            destructive_hint=self.destructive,
            idempotent_hint=self.idempotent,
            open_world_hint=self.open_world,
        )

    def meta(self) -> dict[str, Any]:
        """Switchboard's flags for the tool's `_meta`, false ones included, and its preview."""
        meta: dict[str, Any] = {
            META_CONFIRMATION_REQUIRED: self.confirmation_required,
            META_UNDO_SUPPORTED: self.undoable,
            META_DESTRUCTIVE: self.destructive,
        }
        if self.preview:
            meta[META_PREVIEW] = self.preview
        if self.target:
            meta[META_TARGET] = self.target
        if self.overwrites:
            meta[META_OVERWRITES] = list(self.overwrites)
        if self.preview_from:
            meta[META_PREVIEW_FROM] = self.preview_from
        return meta


@dataclass(frozen=True)
class Correction:
    """What a failed call should change: the wrong parameter, and a value or a tool that would work.

    `suggested_value` is only ever a value a retry can use as it is: one derived from the call and what
    is there (the closest existing name, the caller's own name with the right suffix, the allowed choice
    nearest the one given, a flag to set), never a made-up example. `suggested_tool` is a tool that would
    do what was asked when this one would not. `problem` says what was wrong, in a few words.

    A helper that refuses a value without knowing which parameter carried it (`missing` gets a path,
    not a parameter name) gives the value as `rejected`; `tool` names the parameter from the call's
    arguments. On the wire it is the `switchboard.v1.Correction` fields, strings all (`wire`).
    """

    problem: str
    parameter: str = ""
    suggested_value: Any = None
    suggested_tool: str = ""
    rejected: Any = None

    def named_for(self, arguments: Mapping[str, Any]) -> Correction:
        """This correction with `parameter` set to the argument that carried `rejected`.

        When that argument is a list, the suggestion becomes the whole list with the one entry replaced,
        so a retry can pass it as it is.
        """
        if self.parameter or self.rejected is None:
            return self
        for name, value in arguments.items():
            if value == self.rejected:
                return replace(self, parameter=name)
            if isinstance(value, list) and self.rejected in value:
                suggested = self.suggested_value
                if suggested is not None:
                    suggested = [suggested if item == self.rejected else item for item in value]
                return replace(self, parameter=name, suggested_value=suggested)
        return self

    def wire(self) -> dict[str, str]:
        """The `_meta` form: the fields of `switchboard.v1.Correction`, the suggested value as JSON text."""
        return {
            "parameter": self.parameter,
            "problem": self.problem,
            "suggested_value_json": "" if self.suggested_value is None else json.dumps(self.suggested_value),
            "suggested_tool": self.suggested_tool,
        }


class ToolError(McpToolError):
    """A failure the tool saw coming. The message tells the model how to correct the call; `correction`,
    when the fix is known, says the same as data."""

    def __init__(self, message: str, *, correction: Correction | None = None) -> None:
        super().__init__(message)
        self.correction = correction


class UndeclaredUndo(RuntimeError):
    """A tool returned undo actions while its `Effects` say it is not undoable (a bug in the server)."""


def closest_choice(given: str, choices: Sequence[str]) -> str | None:
    """The allowed choice nearest to `given` (ignoring case), if one is near enough to be what was meant."""
    by_folded = {choice.lower(): choice for choice in choices}
    close = difflib.get_close_matches(given.strip().lower(), list(by_folded), n=1, cutoff=0.6)
    return by_folded[close[0]] if close else None


def report_expected_failures(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn refusals and OS errors into tool errors, whose text the model reads and can act on."""

    @functools.wraps(fn)
    def reported(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except PathOutsideSandbox as exc:
            correction = Correction(f"{exc.raw!r} is outside the allowed folders", rejected=exc.raw)
            raise ToolError(str(exc), correction=correction) from exc
        except InvalidRequest as exc:
            raise ToolError(str(exc)) from exc
        except OSError as exc:
            where = f" ({exc.filename})" if exc.filename else ""
            raise ToolError(f"{exc.strerror or exc}{where}. Check the path and permissions, then try again.") from exc

    return reported


def tool(server: MCPServer, effects: Effects) -> Callable[[Callable[_P, _R]], Callable[_P, _R]]:
    """Register the decorated function as a tool of `server`, with the annotations and `_meta` of `effects`.

    The registered tool also reports expected failures (`report_expected_failures`), answers a failure
    that carries a `Correction` with the correction in the result's `_meta`, and refuses to return undo
    actions its `effects` do not declare. The function itself is returned unchanged.
    """

    def register(fn: Callable[_P, _R]) -> Callable[_P, _R]:
        if inspect.iscoroutinefunction(fn):
            raise TypeError(f"tool {fn.__name__}: kit.tool registers plain functions (the SDK runs them in a thread)")
        _check_result_type(fn, effects)
        server.tool(annotations=effects.annotations(), meta=effects.meta())(_guarded(fn, effects))
        return fn

    return register


def _check_result_type(fn: Callable[..., Any], effects: Effects) -> None:
    """A tool is undoable exactly when its result type has an `undo` field: a tool without one cannot
    return undo actions, and a declared-undoable tool must have somewhere to put them."""
    result = typing.get_type_hints(fn).get("return")
    has_undo = isinstance(result, type) and issubclass(result, BaseModel) and "undo" in result.model_fields
    if has_undo != effects.undoable:
        raise TypeError(
            f"tool {fn.__name__}: its Effects say undoable={effects.undoable}, but its result type "
            f"{getattr(result, '__name__', result)} {'has' if has_undo else 'has no'} `undo` field"
        )


def _guarded(fn: Callable[_P, _R], effects: Effects) -> Callable[..., Any]:
    name = fn.__name__
    reported = report_expected_failures(fn)
    returns = typing.get_type_hints(fn).get("return")

    def run(args: Any, kwargs: Any) -> Any:
        try:
            result = reported(*args, **kwargs)
        except ToolError as exc:
            if exc.correction is None:
                raise
            return _failure_with_correction(name, str(exc), exc.correction.named_for(kwargs))
        if not effects.undoable and _undo_actions(result):
            raise UndeclaredUndo(
                f"tool {name} returned undo actions, but its Effects do not declare it undoable; declare "
                "Effects.changes(undoable=True) so the tool host and the person know it can be undone"
            )
        return result

    def journaled(args: Any, kwargs: Any, call_context: Context | None) -> Any:
        journal, key = _journal_and_key(call_context)
        if effects.read_only or journal is None or not key:
            return run(args, kwargs)
        try:
            outcome = journal.once(key, name, lambda: run(args, kwargs), _recorded, _recorded_error)
        except Interrupted as exc:
            return _interrupted(name, str(exc))
        return _revived(outcome.outcome, returns) if isinstance(outcome, Replayed) else outcome

    @functools.wraps(fn)
    def call(*args: Any, call_context: Context | None = None, **kwargs: Any) -> Any:
        parent, request_id, protocol = _trace_of(call_context)
        with tool_call_span(
            trace.SpanKind.SERVER,
            name,
            parent=parent,
            request_id=request_id,
            protocol_version=protocol,
            tool_errors=(McpToolError,),
        ) as span:
            result = journaled(args, kwargs, call_context)
            if isinstance(result, CallToolResult) and result.is_error:
                failed(span, "tool_error")
            return result

    # The SDK hands the request's context to the parameter annotated `Context`, and leaves it out of
    # the tool's input schema. The annotations are evaluated here, in the tool's own module.
    signature = inspect.signature(fn, eval_str=True)
    context = inspect.Parameter("call_context", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Context)
    call.__signature__ = signature.replace(parameters=[*signature.parameters.values(), context])  # type: ignore[attr-defined]
    call.__annotations__ = {**typing.get_type_hints(fn), "call_context": Context}
    return call


def keep_journal(server: MCPServer, journal: CallJournal) -> None:
    """Have `server`'s changing tools record each call sent with a key (`META_CALL_KEY`) in `journal`,
    and answer the same call sent again from it."""
    setattr(server, _JOURNAL_ATTRIBUTE, journal)


_JOURNAL_ATTRIBUTE = "switchboard_call_journal"


def _journal_and_key(context: Context | None) -> tuple[CallJournal | None, str]:
    if context is None:
        return None, ""
    try:
        journal = getattr(context.mcp_server, _JOURNAL_ATTRIBUTE, None)
        meta = context.request_context.meta or {}
    except (ValueError, AttributeError):  # no request in progress (a tool function called directly)
        return None, ""
    key = meta.get(META_CALL_KEY, "")
    return journal, key if isinstance(key, str) else ""


def _trace_of(context: Context | None) -> tuple[otel_context.Context | None, str, str]:
    """The trace context the request's `_meta` carries (MCP's way of propagating it), its JSON-RPC id and
    the session's protocol version; (None, "", "") outside a request."""
    if context is None:
        return None, "", ""
    try:
        meta = context.request_context.meta or {}
        return extract(cast(Mapping[str, Any], meta)), context.request_id, context.protocol_version or ""
    except (ValueError, AttributeError):  # no request in progress (a tool function called directly)
        return None, "", ""


def _recorded(result: Any) -> dict[str, Any]:
    """A tool's result as the journal keeps it."""
    if isinstance(result, CallToolResult):
        return {"call_result": result.model_dump(mode="json", by_alias=True)}
    if isinstance(result, BaseModel):
        return {"model": result.model_dump(mode="json")}
    return {"value": json.loads(json.dumps(result, default=str))}


def _recorded_error(exc: Exception) -> dict[str, Any]:
    return {"error": str(exc)}


def _revived(outcome: dict[str, Any], returns: Any) -> Any:
    """A result as the tool gave it when it ran, from the journal (a failure is raised again)."""
    if "error" in outcome:
        raise ToolError(outcome["error"])
    if "call_result" in outcome:
        return CallToolResult.model_validate(outcome["call_result"])
    if "model" in outcome and isinstance(returns, type) and issubclass(returns, BaseModel):
        return returns.model_validate(outcome["model"])
    return outcome.get("value", outcome.get("model"))


def _interrupted(tool_name: str, message: str) -> CallToolResult:
    """The failure of a call whose earlier attempt stopped midway: marked so the tool host can tell."""
    log.warning("Tool %r not repeated: %s", tool_name, message)
    return CallToolResult(
        content=[TextContent(type="text", text=ERROR_PREFIX.format(tool=tool_name) + message)],
        is_error=True,
        _meta={META_INTERRUPTED: True},
    )


def _undo_actions(result: Any) -> list[Any]:
    undo = result.get("undo") if isinstance(result, dict) else getattr(result, "undo", None)
    return list(undo or [])


def _failure_with_correction(tool_name: str, message: str, correction: Correction) -> CallToolResult:
    """The error result the SDK would give for `message`, with the correction in its `_meta`."""
    log.info("Tool %r failed: %r (correction for %r)", tool_name, message, correction.parameter or "the tool")
    return CallToolResult(
        content=[TextContent(type="text", text=ERROR_PREFIX.format(tool=tool_name) + message)],
        is_error=True,
        _meta={META_CORRECTION: correction.wire()},
    )


def _folder_of(raw: str) -> str:
    """The folder part of a path as the caller wrote it ('' when it names no folder)."""
    stripped = raw.rstrip("/")
    return stripped.rsplit("/", 1)[0] if "/" in stripped else ""


def missing(path: Path, raw: str) -> ToolError:
    """The error for `raw`, which does not exist; with the closest name in its folder, if one is close.

    The suggestion is the correction a retry can use ("Did you mean '…'?"), written the way the caller
    wrote the path, so it stays inside the same folder and the same sandbox check applies to it.
    """
    message = f"{raw!r} does not exist ({path})."
    problem = f"{raw!r} does not exist"
    try:
        siblings = [entry.name for entry in path.parent.iterdir()] if path.parent.is_dir() else []
    except OSError:
        siblings = []
    close = difflib.get_close_matches(path.name, siblings, n=1, cutoff=0.75)
    if close:
        folder = _folder_of(raw)
        suggestion = f"{folder}/{close[0]}" if folder else close[0]
        return ToolError(
            f"{message} Did you mean {suggestion!r}?",
            correction=Correction(problem, suggested_value=suggestion, rejected=raw),
        )
    return ToolError(
        f"{message} Check the name with filesystem.list_dir or filesystem.search_files.",
        correction=Correction(problem, rejected=raw),
    )


def existing_dir(path: Path, raw: str) -> Path:
    """`path` if it is a folder, else a tool error that says what it is instead."""
    if not path.exists():
        raise missing(path, raw)
    if not path.is_dir():
        folder = _folder_of(raw)
        raise ToolError(
            f"{path} is a file, not a folder. Give the folder that contains it, or use filesystem.read_file "
            "or filesystem.get_metadata for the file itself.",
            correction=Correction(f"{raw!r} is a file, not a folder", suggested_value=folder or None, rejected=raw),
        )
    return path


def existing_file(path: Path, raw: str) -> Path:
    """`path` if it is a file, else a tool error that says what it is instead."""
    if not path.exists():
        raise missing(path, raw)
    if path.is_dir():
        raise ToolError(
            f"{path} is a folder, not a file. Use filesystem.list_dir to see what is inside.",
            correction=Correction(f"{raw!r} is a folder, not a file", rejected=raw),
        )
    return path


def close_fonts(pdf: FPDF) -> None:
    """Close the font files an fpdf2 document opened: fontTools reads them lazily and keeps them open,
    and a file left for the garbage collector is a ResourceWarning at some later, unrelated moment."""
    for font in pdf.fonts.values():
        if isinstance(font, TTFFont):
            font.ttfont.close()


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
    """Run a server over stdio with the tool host's settings; logs go to stderr, and its spans (service
    `switchboard-tool-<name>`) over OTLP when the tool host's `SWITCHBOARD_OTLP_ENDPOINT` is set (a
    server inherits the tool host's environment)."""
    settings = ToolHostSettings()
    setup_logging(f"toolhost.{name}", settings.log_level)
    setup_tracing(f"tool-{name}", settings.otlp_endpoint)
    server = build_server(settings)
    keep_journal(server, CallJournal(settings.calls_journal_path, settings.call_timeout_seconds))
    server.run("stdio")
