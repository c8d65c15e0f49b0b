"""Which paths a tool may touch: every path a tool is given must resolve inside an allowed root.

Paths are judged by name, after `~`, `..` and every symlink are worked out, so no symlink leads a tool
out of the roots. A hard link cannot be judged that way: it is the file itself under one more name, and
nothing says where its other names are. The sandbox lets a tool read it (a file named inside a root is
a file of that root; on Linux only the file's owner, or someone who may read and write it, can link
it there), and lets a tool replace it, since a replacement is a new file renamed over the name, which
leaves every other name with the old file, unchanged. What it refuses is a change in place of a file
with other names (`in_place`), which would reach through to them.
"""

from __future__ import annotations

import os
import stat
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


class SpecialFile(InvalidRequest):
    """A path names a FIFO, a socket or a device: opening one can block forever (a FIFO nobody writes
    to) or never reach an end (`/dev/zero`), so no tool may read, copy, replace or trash it."""

    def __init__(self, raw: str, resolved: Path, kind: str) -> None:
        self.raw = raw
        self.resolved = resolved
        super().__init__(
            f"{raw!r} is {kind}, not a file or a folder; Switchboard's tools only work on regular files and "
            "folders (reading this could wait forever)."
        )


class SharedFile(InvalidRequest):
    """A tool would change a file in place that has other names (hard links): every name would see the
    change, and the sandbox cannot know where the others are, possibly outside every allowed root."""

    def __init__(self, path: Path, names: int) -> None:
        self.path = path
        super().__init__(
            f"{path} has {names} names (hard links), and changing it in place would change the file under "
            "every one of them, which may lie outside the allowed folders. Copy it (filesystem.copy_file) "
            "and use the copy."
        )


_SPECIAL_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
)


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

        A path that names a FIFO, a socket or a device is refused too (`SpecialFile`).
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
        _refuse_special(raw, resolved)
        return resolved

    def in_place(self, path: Path) -> Path:
        """`path` (resolved), which a tool is about to change in place rather than replace; `SharedFile`
        if the file there has other names. Replacing such a file (a new file renamed over this name)
        is safe and needs no check: the other names keep the old file, unchanged."""
        try:
            info = os.stat(path)
        except FileNotFoundError:
            return path
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            raise SharedFile(path, info.st_nlink)
        return path

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


def _refuse_special(raw: str, resolved: Path) -> None:
    try:
        mode = os.lstat(resolved).st_mode  # symlinks are followed already, or kept on purpose
    except OSError:
        return  # not there yet (a destination), or not reachable: the tool says so when it tries
    for is_kind, kind in _SPECIAL_KINDS:
        if is_kind(mode):
            raise SpecialFile(raw, resolved, kind)


def _use_one_of(roots: Iterable[Path]) -> str:
    return "Use a path inside one of: " + ", ".join(str(r) for r in roots) + "."
