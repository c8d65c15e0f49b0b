"""Which paths a tool may touch: every path a tool is given must resolve inside an allowed root."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from switchboard.errors import InvalidRequest


class PathOutsideSandbox(InvalidRequest):
    """A path resolved (after `~`, `..` and symlinks) to a place outside every allowed root."""

    def __init__(self, raw: str, resolved: Path, roots: Iterable[Path]) -> None:
        self.raw = raw
        self.resolved = resolved
        self.roots = tuple(roots)
        where = "" if str(resolved) == raw else f" (it resolves to {resolved})"
        super().__init__(f"Path {raw!r} is outside the allowed folders{where}. {_use_one_of(self.roots)}")


class Sandbox:
    """The allowed roots, and the one way to turn a path a tool was given into a path it may use."""

    def __init__(self, roots: Iterable[Path], home: Path | None = None) -> None:
        # Resolved again so a root given through a symlink still matches the resolved paths below it.
        self.roots: tuple[Path, ...] = tuple(Path(os.path.realpath(r)) for r in roots)
        if not self.roots:
            raise ValueError("a sandbox needs at least one allowed root")
        # What "~" means: the person's home as the tools see it, which need not be this process's.
        self.home = home

    def contains(self, path: Path) -> bool:
        """Whether an already resolved absolute path is one of the roots or lies below one."""
        return any(path.is_relative_to(root) for root in self.roots)

    def resolve(self, raw: str, *, follow_last: bool = True) -> Path:
        """The real path `raw` names, if it lies inside a root; raises `PathOutsideSandbox` otherwise.

        `~` is expanded, a relative path is taken from the working directory, `..` and symlinks are
        followed. A path that does not exist yet (a write destination) resolves through its existing
        ancestors, so a symlinked parent cannot place a new file outside. With `follow_last=False` a
        final symlink is kept as itself (its folder is still resolved): deleting or moving a link
        must act on the link, not on what it points to.
        """
        if not raw.strip():
            raise InvalidRequest(f"No path was given. {_use_one_of(self.roots)}")
        if "\0" in raw:
            raise InvalidRequest(f"Path {raw!r} contains a NUL character, which no file name can hold.")
        expanded = self.expand_home(raw)
        folder, name = os.path.split(expanded.rstrip(os.sep) or os.sep)
        if follow_last or name in ("", ".", ".."):
            # Non-strict realpath follows every symlink that exists and keeps a missing tail as written.
            resolved = Path(os.path.realpath(expanded))
        else:
            resolved = Path(os.path.realpath(folder or os.curdir)) / name
        if not self.contains(resolved):
            raise PathOutsideSandbox(raw, resolved, self.roots)
        return resolved

    def expand_home(self, raw: str) -> str:
        """`raw` with a leading `~` replaced by the home folder."""
        if self.home is not None and (raw == "~" or raw.startswith("~/")):
            return str(self.home) + raw[1:]
        return os.path.expanduser(raw)

    def is_inside(self, raw: str) -> bool:
        """Whether `resolve(raw)` would accept `raw`."""
        try:
            self.resolve(raw)
        except InvalidRequest:
            return False
        return True


def _use_one_of(roots: Iterable[Path]) -> str:
    return "Use a path inside one of: " + ", ".join(str(r) for r in roots) + "."
