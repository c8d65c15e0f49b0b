"""The folders hostile input is thrown at: one allowed root full of traps, and the places around it
that no tool may touch, with a way to prove they were not touched.

```
base/
  root/      the only allowed folder: ordinary files, and traps (symlinks and hard links that lead
             outside, a dangling symlink into `outside`, a FIFO, names that are not UTF-8 or hold a
             newline)
  outside/   a sentinel folder beside the root; its files hold `MARKER` (`LINKED_MARKER` for the two
             with a second name inside the root)
  home/      what `~` means for the tools; outside the root, its files hold `MARKER` too
  state/     the tool host's state (trash, databases), which tools may change
  cwd/       the servers' working directory, where a relative path would land if nothing stopped it
```

`snapshot` records a folder's every entry (type, mode, size, content hash or link text), so a test
can say "this folder is exactly as it was". `MARKER` in a tool's answer means a tool read a file
outside the root and handed its content back.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
import stat
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

from services.toolhost.audit import AuditLog
from tests.files import text_pdf

# Written into every file outside the root: a tool answer that contains it read one of them.
MARKER = "SENTINEL-5c0f9e-OUTSIDE-THE-SANDBOX"
# Written into the files outside the root that have a second name (a hard link) inside it. Reading
# them through that name is allowed: a hard link is the file itself, named inside the root, which the
# sandbox (judging names) cannot tell from any other file there. Changing them in place is not.
LINKED_MARKER = "LINKED-3b71d2-SECOND-NAME-INSIDE"


# A session the audit log has a call of, so the audit tools have something to report on.
AUDITED_SESSION = "hostile-session"

# The root's ordinary files, which hostile calls may use as they like.
ORDINARY = ("docs/report.txt", "notes.md", "budget.csv", "paper.pdf", "data.sqlite", "new-output.pdf", "docs")


@dataclass(frozen=True)
class World:
    base: Path
    root: Path
    outside: Path
    home: Path
    state: Path
    cwd: Path

    def hostile_paths(self) -> list[str]:
        """Paths a hostile caller would try: every way out of the root that we know of, and a few
        inside it that are traps of their own. (Not the name that is not UTF-8: JSON cannot carry it,
        so no call can name it; the tool host refuses arguments that try, see test_grpc.)"""
        root, outside, home = self.root, self.outside, self.home
        return [
            f"{outside}/secret.txt",
            f"{outside}/new-file.txt",
            str(outside),
            f"{root}/../outside/secret.txt",
            f"{root}/../outside/new-file.txt",
            f"{root}/docs/../../outside/secret.txt",
            f"{root}/link-out/secret.txt",
            f"{root}/link-out/new-file.txt",
            f"{root}/link-out",
            f"{root}/link-secret",
            f"{root}/dangling",
            f"{root}/dangling/child.txt",
            f"{root}/hard-secret.txt",
            f"{root}/hard-ledger.sqlite",
            f"{root}/pipe",
            f"{root}/audit.pdf",
            f"{root}/new\nline.txt",
            f"{home}/notes.md",
            "~/notes.md",
            "~",
            "~root",
            "~root/.bashrc",
            "$HOME/notes.md",
            "../outside/secret.txt",
            "/etc/passwd",
            "/etc/shadow",
            "/proc/self/environ",
            "/dev/zero",
            "/",
            "//etc//passwd",
            "C:\\Windows\\System32",
            f"{root}/docs/report.txt\0.png",
            f"{root}/" + "a" * 300,
            f"{root}/" + "/".join(["deep"] * 200),
            *(f"{root}/{name}" for name in ORDINARY),
            str(root),
            # Unicode tricks: a fullwidth solidus and full stop, a combining dot, a right-to-left mark.
            f"{root}/\uff0e\uff0e\uff0foutside\uff0fsecret.txt",
            f"{root}/..\u0338/outside/secret.txt",
            f"{root}/\u202eoutside/secret.txt",
        ]

    def escapes(self) -> list[str]:
        """One path for each distinct way out of the root or into one of its traps (the rest of
        `hostile_paths` are variations), for trying in every parameter of every tool."""
        root, outside = self.root, self.outside
        return [
            f"{outside}/secret.txt",
            f"{outside}/new-file.txt",
            f"{root}/../outside/new-file.txt",
            f"{root}/link-out/new-file.txt",
            f"{root}/link-secret",
            f"{root}/dangling",
            f"{root}/hard-secret.txt",
            f"{root}/hard-ledger.sqlite",
            f"{root}/pipe",
            f"{root}/audit.pdf",
            f"{self.home}/notes.md",
            "~/notes.md",
            "~root/.bashrc",
            "/etc/passwd",
            "/dev/zero",
            f"{root}/docs/report.txt\0.png",
            f"{root}/" + "a" * 300,
            f"{root}/\uff0e\uff0e\uff0foutside\uff0fsecret.txt",
        ]


def make_world(base: Path) -> World:
    """The folders, the files and the traps (see the module's note)."""
    world = World(
        base=base.resolve(),
        root=(base / "root").resolve(),
        outside=(base / "outside").resolve(),
        home=(base / "home").resolve(),
        state=(base / "state").resolve(),
        cwd=(base / "cwd").resolve(),
    )
    for folder in (world.root, world.outside, world.home, world.state, world.cwd):
        folder.mkdir(parents=True, exist_ok=True)
    (world.outside / "secret.txt").write_text(f"{MARKER}: the password is hunter2\n")
    (world.outside / "hard.txt").write_text(f"{LINKED_MARKER}: linked from inside the root\n")
    with closing(sqlite3.connect(world.outside / "ledger.sqlite")) as conn, conn:
        conn.execute("CREATE TABLE ledger (item TEXT, total REAL)")
        conn.execute(f"INSERT INTO ledger VALUES ('{LINKED_MARKER}', 1.0)")
    (world.outside / "sub").mkdir(exist_ok=True)
    (world.outside / "sub" / "inner.txt").write_text(f"{MARKER}: one folder down\n")
    (world.home / "notes.md").write_text(f"{MARKER}: the person's notes, outside the root\n")
    audit = AuditLog(world.state / "audit.db")
    row = audit.begin(
        kind="call",
        tool="filesystem.read_file",
        arguments_json=json.dumps({"path": str(world.root / "notes.md")}),
        confirmation="not_required",
        session_id=AUDITED_SESSION,
    )
    audit.finish(row, outcome="succeeded", duration_ms=1.0)
    restore_traps(world)
    return world


def restore_traps(world: World) -> None:
    """Put back whatever the root's ordinary files and traps a tool call moved, deleted or replaced."""
    root = world.root
    (root / "docs").mkdir(exist_ok=True)
    _file(root / "docs" / "report.txt", "Quarterly report: revenue grew by nine percent.\n")
    _file(root / "notes.md", "# Notes\n\nCall Ana about the budget on Friday.\n")
    _file(root / "budget.csv", "item,amount\nrent,1200\nfood,300\n")
    if not (root / "paper.pdf").is_file():
        text_pdf(root / "paper.pdf", "Solar panels turned 21 percent of the light into power.")
    if not (root / "data.sqlite").is_file():
        with closing(sqlite3.connect(root / "data.sqlite")) as conn, conn:
            conn.execute("CREATE TABLE sales (item TEXT, total REAL)")
            conn.execute("INSERT INTO sales VALUES ('tea', 4.5)")
    _symlink(root / "link-out", world.outside)
    _symlink(root / "link-secret", world.outside / "secret.txt")
    _symlink(root / "dangling", world.outside / "planted.txt")
    # The signature file export_audit_pdf writes beside audit.pdf: a dangling link out of the root.
    _symlink(root / "audit.pdf.sig", world.outside / "planted.sig")
    _hard_link(root / "hard-secret.txt", world.outside / "hard.txt")
    _hard_link(root / "hard-ledger.sqlite", world.outside / "ledger.sqlite")
    pipe = root / "pipe"
    if not pipe.is_fifo():
        pipe.unlink(missing_ok=True)
        os.mkfifo(pipe)
    bad = os.path.join(os.fsencode(root), b"bad-\xff-name.txt")
    if not os.path.exists(bad):
        with open(bad, "wb") as f:
            f.write(b"a name that is not UTF-8; write to ana@example.org, key AKIAIOSFODNN7EXAMPLE\n")
    _file(root / "new\nline.txt", "a name with a newline in it\n")


def _file(path: Path, text: str) -> None:
    if path.is_symlink() or not path.is_file():
        path.unlink(missing_ok=True)
        path.write_text(text)


def _hard_link(link: Path, target: Path) -> None:
    if link.is_symlink() or not link.exists() or link.stat().st_ino != target.stat().st_ino:
        link.unlink(missing_ok=True)
        os.link(target, link)


def _symlink(link: Path, target: Path) -> None:
    if link.is_symlink() and Path(os.readlink(link)) == target:
        return
    if link.is_symlink() or link.is_file():
        link.unlink()
    link.symlink_to(target)


Entry = tuple[str, int, str]


def snapshot(folder: Path) -> dict[str, Entry]:
    """Every entry below `folder` by relative path: its type, mode, size and content hash (the link
    text for a symlink). Links are not followed; special files are not opened."""
    seen: dict[str, Entry] = {}
    for current, dirs, files in os.walk(os.fsencode(folder)):
        for name in [*dirs, *files]:
            path = os.path.join(current, name)
            info = os.lstat(path)
            relative = os.fsdecode(os.path.relpath(path, os.fsencode(folder)))
            if stat.S_ISLNK(info.st_mode):
                content = "link:" + os.fsdecode(os.readlink(path))
            elif stat.S_ISREG(info.st_mode):
                with open(path, "rb") as f:
                    content = hashlib.sha256(f.read()).hexdigest()
            else:
                content = ""
            # Not the link count: replacing a hard link inside the root leaves the file outside as it
            # was, with one name fewer.
            seen[relative] = (stat.filemode(info.st_mode), info.st_size, content)
    return seen


def untouchable(world: World) -> dict[str, object]:
    """What must never change, whatever a tool is asked: the sentinel folder, the home folder, the
    servers' working directory, and which entries the base folder holds."""
    return {
        "outside": snapshot(world.outside),
        "home": snapshot(world.home),
        "cwd": snapshot(world.cwd),
        "base": sorted(os.listdir(world.base)),
    }
