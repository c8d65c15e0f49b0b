"""Carrying out the undo actions a tool call recorded, inside the sandbox, losing nothing.

Actions run in reverse order. Whatever an undo would displace goes to the trash first, and a file
changed since the call is left alone (the undo says so), so an undo never destroys anything either.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from typing import Any

from services.toolhost.sandbox import Sandbox
from services.toolhost.servers.kit import Trash, UndoAction, sha256_of
from switchboard.errors import InvalidRequest


def carry_out(actions: Sequence[dict[str, Any]], sandbox: Sandbox, trash: Trash) -> list[str]:
    """Undo a call; returns one line per action done. `InvalidRequest` when one cannot be done."""
    done: list[str] = []
    for raw in reversed(actions):
        action = UndoAction.model_validate(raw)
        if action.kind == "restore_trash":
            done.append(_restore(action, sandbox, trash))
        elif action.kind == "move_back":
            done.append(_move_back(action, sandbox))
        else:
            done.append(_remove_created(action, sandbox, trash))
    return done


def _restore(action: UndoAction, sandbox: Sandbox, trash: Trash) -> str:
    original = trash.manifest(action.trash_id)["original_path"]
    target = sandbox.resolve(original, follow_last=False)
    if action.replace and (target.is_symlink() or target.exists()):
        kept = trash.keep(target, move=True, reason="replaced by undo")
        restored = trash.restore(action.trash_id)
        return f"restored {restored} (the version it replaced is in trash entry {kept.trash_id})"
    return f"restored {trash.restore(action.trash_id)} from the trash"


def _move_back(action: UndoAction, sandbox: Sandbox) -> str:
    current = sandbox.resolve(action.path, follow_last=False)
    original = sandbox.resolve(action.original_path, follow_last=False)
    if not current.is_symlink() and not current.exists():
        raise InvalidRequest(f"cannot move {current} back: it is no longer there")
    if original.is_symlink() or original.exists():
        raise InvalidRequest(f"cannot move {current} back to {original}: something is there now")
    original.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(current, original)
    return f"moved {current} back to {original}"


def _remove_created(action: UndoAction, sandbox: Sandbox, trash: Trash) -> str:
    created = sandbox.resolve(action.path, follow_last=False)
    if not created.is_symlink() and not created.exists():
        return f"{created} is already gone"
    if action.sha256 and sha256_of(created) != action.sha256:
        raise InvalidRequest(f"{created} has changed since the call created it; it was left in place")
    entry = trash.keep(created, move=True, reason="removed by undo")
    return f"moved {created}, which the call created, to trash entry {entry.trash_id}"
