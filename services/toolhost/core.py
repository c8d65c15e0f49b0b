"""The tool host's pure logic: tool names, flags read from MCP tool definitions, call errors.

Tools are named `server.tool` (e.g. `filesystem.list_dir`). Each of the tool host's MCP servers
declares, in a tool's `_meta`, whether the tool needs a person's confirmation, whether it can be undone
and whether it is destructive; the same declaration gives its MCP annotations (`kit.Effects`). For a
tool without those flags, the annotations decide.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from services.toolhost.servers import (
    META_CONFIRMATION_REQUIRED,
    META_DESTRUCTIVE,
    META_OVERWRITES,
    META_PREVIEW,
    META_PREVIEW_FROM,
    META_TARGET,
    META_UNDO_SUPPORTED,
)
from switchboard.errors import InvalidRequest, MalformedMessage, NotFound
from switchboard.jsontext import DEFAULT_MAX_JSON_DEPTH, parse_limited_json
from switchboard.paths import named_paths
from switchboard.preview import Declared
from switchboard.v1 import switchboard_pb2 as pb

# The MCP servers the tool host starts, by name → the module that runs one over stdio.
SERVER_MODULES: dict[str, str] = {
    "filesystem": "services.toolhost.servers.filesystem",
    "audit": "services.toolhost.servers.audit",
    "data": "services.toolhost.servers.data",
    "clipboard": "services.toolhost.servers.clipboard",
    "system": "services.toolhost.servers.system",
    "document": "services.toolhost.servers.document",
    "ocr": "services.toolhost.servers.ocr",
    "calendar": "services.toolhost.servers.calendar",
    "task": "services.toolhost.servers.task",
    "email": "services.toolhost.servers.email",
    "security": "services.toolhost.servers.security",
    "knowledge": "services.toolhost.servers.knowledge",
    "meeting": "services.toolhost.servers.meeting",
}


class UnknownTool(NotFound):
    """A call named a tool no server offers; the message suggests the nearest names."""


class MissingApproval(InvalidRequest):
    """A call that needs a person's confirmation came without the gateway's valid signature."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool as the tool host serves it."""

    name: str
    server: str
    description: str
    input_schema: dict[str, Any] = field(default_factory=dict)
    confirmation_required: bool = True
    undo_supported: bool = False
    destructive: bool = False
    # What the person is shown before a call runs (see `switchboard.preview`).
    preview: str = ""
    target: str = ""
    overwrites: tuple[str, ...] = ()
    preview_from: str = ""

    @property
    def short_name(self) -> str:
        return self.name.split(".", 1)[1]

    def declared(self) -> Declared:
        return Declared(
            read_only=not (self.confirmation_required or self.destructive),
            destructive=self.destructive,
            template=self.preview,
            target=self.target,
            overwrites=self.overwrites,
        )


def spec_from_mcp(
    server: str,
    name: str,
    description: str,
    schema: dict[str, Any],
    meta: dict[str, Any] | None,
    destructive_hint: bool | None,
    *,
    read_only_hint: bool | None = None,
) -> ToolSpec:
    """A `ToolSpec` from an MCP tool definition: Switchboard's flags from its `_meta`, else its annotations.

    Without the flags, a tool whose readOnlyHint is true runs without confirmation and is not
    destructive; any other tool needs confirmation, and is destructive unless its destructiveHint is
    false (a hint left out means what MCP says it means: not read-only, destructive). So a tool that
    says nothing is treated with the most care. Only a `_meta` flag says a tool can be undone.
    """
    meta = meta or {}
    reads = read_only_hint is True
    return ToolSpec(
        name=f"{server}.{name}",
        server=server,
        description=description,
        input_schema=schema,
        confirmation_required=_flag(meta, META_CONFIRMATION_REQUIRED, not reads),
        undo_supported=_flag(meta, META_UNDO_SUPPORTED, False),
        destructive=_flag(meta, META_DESTRUCTIVE, not reads and destructive_hint is not False),
        preview=_text(meta, META_PREVIEW),
        target=_text(meta, META_TARGET),
        overwrites=tuple(v for v in meta.get(META_OVERWRITES) or () if isinstance(v, str)),
        preview_from=_text(meta, META_PREVIEW_FROM),
    )


def _text(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    return value if isinstance(value, str) else ""


def _flag(meta: dict[str, Any], key: str, otherwise: bool) -> bool:
    """A boolean flag of `meta`; `otherwise` when it is missing or not a boolean."""
    value = meta.get(key)
    return value if isinstance(value, bool) else otherwise


# Names models and people use for tools, mapped to the real short names (FM-8 in the study: models
# call tools by the verb they think of, or a shell command's name).
ALIASES: dict[str, str] = {
    "rename": "move_file",
    "rename_file": "move_file",
    "mv": "move_file",
    "move": "move_file",
    "remove_file": "delete_file",
    "rm": "delete_file",
    "delete": "delete_file",
    "cp": "copy_file",
    "copy": "copy_file",
    "ls": "list_dir",
    "list_directory": "list_dir",
    "list_files": "list_dir",
    "cat": "read_file",
    "find_files": "search_files",
    "stat": "get_metadata",
}
FUZZY_CUTOFF = 0.8


def resolve_tool(name: str, tools: dict[str, ToolSpec]) -> ToolSpec:
    """The tool called `name`: exact, unique suffix, alias, or a unique close match on the same server.

    Anything else is `UnknownTool`, naming the closest real tools so the caller can correct itself.
    """
    if name in tools:
        return tools[name]
    server, _, short = name.rpartition(".")
    suffix = [spec for spec in tools.values() if spec.short_name == short and (not server or spec.server == server)]
    if len(suffix) == 1:
        return suffix[0]
    alias = ALIASES.get(short.lower())
    if alias is not None:
        matches = [s for s in tools.values() if s.short_name == alias and (not server or s.server == server)]
        if len(matches) == 1:
            return matches[0]
    if server:
        same_server = {spec.short_name: spec for spec in tools.values() if spec.server == server}
        close_names = difflib.get_close_matches(short, list(same_server), n=2, cutoff=FUZZY_CUTOFF)
        if len(close_names) == 1:
            return same_server[close_names[0]]
    close = difflib.get_close_matches(name, list(tools), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `sb tools` lists them"
    raise UnknownTool(f"no tool named {name!r}{hint}")


def parse_arguments(arguments_json: str) -> dict[str, Any]:
    """Call arguments from JSON; they must be an object, nest no deeper than the API allows, and hold
    only what an MCP server can be sent (no half of a surrogate pair, which would end the session)."""
    try:
        arguments = parse_limited_json(arguments_json, DEFAULT_MAX_JSON_DEPTH) if arguments_json.strip() else {}
    except MalformedMessage as exc:
        raise InvalidRequest(f"arguments are not valid JSON: {exc}") from exc
    if not isinstance(arguments, dict):
        raise InvalidRequest("arguments must be a JSON object")
    return arguments


# What one audit reply may carry: gRPC refuses a message over 4 MiB, and a few calls with large
# arguments (a long text written to a file) would otherwise make the whole log unreadable over the API.
AUDIT_TEXT_CHARS = 2000
AUDIT_REPLY_BYTES = 3 * 1024 * 1024
# The most entries one audit request reads (the gateway asks for at most as many).
MAX_AUDIT_ENTRIES = 1000


def fitted_audit(entries: list[pb.AuditEntry]) -> list[pb.AuditEntry]:
    """`entries` (newest first) as one reply can carry them: each entry's arguments and error cut to
    `AUDIT_TEXT_CHARS` (saying so), and only as many entries as fit in `AUDIT_REPLY_BYTES`. The audit
    log itself keeps everything."""
    fitted: list[pb.AuditEntry] = []
    size = 0
    for entry in entries:
        shown = pb.AuditEntry()
        shown.CopyFrom(entry)
        shown.arguments_json = _cut(entry.arguments_json)
        shown.error = _cut(entry.error)
        size += shown.ByteSize() + 8  # the entry's tag and length in the reply
        if size > AUDIT_REPLY_BYTES:
            break
        fitted.append(shown)
    return fitted


def _cut(text: str) -> str:
    if len(text) <= AUDIT_TEXT_CHARS:
        return text
    return text[:AUDIT_TEXT_CHARS] + f"… ({len(text) - AUDIT_TEXT_CHARS} more characters in the audit log)"


def missing_required(spec: ToolSpec, arguments: dict[str, Any]) -> list[str]:
    """Required parameters the call leaves out."""
    return [name for name in spec.input_schema.get("required", []) if name not in arguments]


def path_arguments(value: Any) -> list[str]:
    """The file paths named at the top level of a call's arguments or result (for the audit log's hashes)."""
    return named_paths(value)
