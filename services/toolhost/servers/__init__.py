"""The tool host's MCP servers, one module each, and the `_meta` keys every tool declares.

Each tool's `_meta` in `tools/list` carries the three keys below, so the gateway's confirmation policy
and the undo machinery read them from the servers themselves instead of from a separate table.
"""

from __future__ import annotations

META_CONFIRMATION_REQUIRED = "switchboard/confirmation_required"
META_UNDO_SUPPORTED = "switchboard/undo_supported"
META_DESTRUCTIVE = "switchboard/destructive"


def tool_meta(*, confirmation_required: bool, undo_supported: bool, destructive: bool = False) -> dict[str, bool]:
    """The `_meta` a tool is registered with: all three Switchboard flags, false ones included."""
    return {
        META_CONFIRMATION_REQUIRED: confirmation_required,
        META_UNDO_SUPPORTED: undo_supported,
        META_DESTRUCTIVE: destructive,
    }
