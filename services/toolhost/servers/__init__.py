"""The tool host's MCP servers, one module each, and the `_meta` keys they speak in.

Each tool's `_meta` in `tools/list` carries the three flag keys below, so the gateway's confirmation
policy and the undo machinery read them from the servers themselves instead of from a separate table.
A server never writes them by hand: `kit.Effects` derives them, and the tool's MCP annotations, from one
declaration per tool.

A tool's failure can carry a structured correction in its result's `_meta` under `META_CORRECTION`: an
object with the string fields of `switchboard.v1.Correction` (`parameter`, `problem`,
`suggested_value_json`, `suggested_tool`); `kit.Correction` writes it and the tool host's `mcp_pool`
reads it back.
"""

from __future__ import annotations

META_CONFIRMATION_REQUIRED = "switchboard/confirmation_required"
META_UNDO_SUPPORTED = "switchboard/undo_supported"
META_DESTRUCTIVE = "switchboard/destructive"
META_CORRECTION = "switchboard/correction"
# What a call will do, for the person asked to confirm it (see `kit.Effects` and `switchboard.preview`):
# a template over the call's arguments, the parameter a typed confirmation names, and the parameters
# naming a file the call replaces when it is there.
META_PREVIEW = "switchboard/preview"
META_TARGET = "switchboard/target"
META_OVERWRITES = "switchboard/overwrites"
# A resource of the tool's server (a URI template over the arguments) whose JSON fields a preview may
# name: what a draft id stands for, say.
META_PREVIEW_FROM = "switchboard/preview_from"
# The key the tool host sends a changing call under (in the request's `_meta`): the same call sent again
# after the tool host restarted is answered from the server's journal instead of running twice
# (`journal.CallJournal`). A call that cannot be answered so, because its earlier attempt stopped midway,
# fails with `META_INTERRUPTED` set in the error result's `_meta`.
META_CALL_KEY = "switchboard/call_key"
META_INTERRUPTED = "switchboard/interrupted"
