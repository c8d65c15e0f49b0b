"""Where a path points, judged from its text alone: inside the allowed folders, outside them, a system
location, or a store of keys and credentials.

The planner, the gateway and the tool host all need the same answer before anything runs, so the
judgement is made here once. It never looks at the disk: the words a person typed are judged as
written (after `~` and `..` are worked out), which keeps the answer the same on every machine and lets
it be given before a file exists. The tool host's sandbox still resolves symlinks when a tool runs; this
module is the earlier, cheaper check that lets Switchboard refuse in plain words.
"""

from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path, PurePosixPath
from typing import Any

__all__ = ["PATH_KEYS", "PATH_LIST_KEYS", "PathPolicy", "PathVerdict", "is_path_key", "named_paths", "printable"]

# Argument and result keys that name a file or folder (and, below, lists of them). Tool host, gateway
# and planner all read calls and results through these, so they agree on what a path is.
PATH_KEYS = frozenset(
    {
        "path",
        "source",
        "destination",
        "dest",
        "target",
        "file",
        "file_path",
        "input_path",
        "output_path",
        "new_path",
        "original_path",
        "directory",
        "folder",
    }
)
PATH_LIST_KEYS = frozenset({"paths", "files", "file_paths", "input_paths"})


def is_path_key(name: str) -> bool:
    """Whether an argument or result key names a path (`path`, `destination`, `db_path`, `out_dir` …)."""
    return name in PATH_KEYS or name.endswith(("_path", "_dir", "_file", "_folder"))


def named_paths(value: Any) -> list[str]:
    """The paths named at the top level of a call's arguments or a result, in order."""
    if not isinstance(value, dict):
        return []
    paths: list[str] = []
    for key, item in value.items():
        if is_path_key(key) and isinstance(item, str) and item.strip():
            paths.append(item)
        elif key in PATH_LIST_KEYS and isinstance(item, list):
            paths.extend(p for p in item if isinstance(p, str) and p.strip())
    return paths


def printable(path: str | os.PathLike[str]) -> str:
    """A path found on disk as text any answer can carry. A file name may hold bytes that are not
    UTF-8; Python keeps each as half of a surrogate pair, which JSON encoded as UTF-8 cannot hold, so
    one such name would make a whole listing fail. They become U+FFFD here: the name is shown, though
    it can no longer be used to open the file."""
    text = os.fspath(path)
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a lone surrogate no decoding of bytes made
        raw = text.encode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


class PathVerdict(StrEnum):
    """What a path names, from the point of view of a tool that wants to touch it."""

    INSIDE = "inside"
    OUTSIDE = "outside"
    SYSTEM = "system"
    SECRET = "secret"


# A Windows drive path ("C:\Windows", "d:/data"). Such a path names nothing on this POSIX machine, but a
# person may still type one, and it should be refused for the right reason.
_DRIVE = re.compile(r"^([A-Za-z]):(?:[\\/]|$)")
_HOME_VARIABLE = re.compile(r"^(?:\$HOME|\$\{HOME\})(?=/|$)")

# Whole folders that exist to hold keys or credentials: everything below them is secret.
_SECRET_FOLDERS = frozenset({".ssh", ".gnupg", ".password-store", ".aws", ".azure"})
# Secret folders and files recognised by a run of path parts (lower-cased), wherever the run appears.
_SECRET_RUNS: tuple[tuple[str, ...], ...] = (
    ("library", "keychains"),  # macOS keychains
    (".local", "share", "keyrings"),  # GNOME keyring
    (".local", "share", "kwalletd"),  # KDE wallet
    (".config", "gcloud"),
    (".kube", "config"),
    (".docker", "config.json"),
    ("microsoft", "credentials"),  # Windows credential manager
    ("microsoft", "protect"),  # Windows DPAPI master keys
    ("system32", "config", "sam"),
    ("system32", "config", "security"),
)
# Secret system files, recognised from the filesystem root (macOS keeps /etc under /private).
_SECRET_FROM_ROOT: tuple[tuple[str, ...], ...] = (
    ("etc", "shadow"),
    ("etc", "shadow-"),
    ("etc", "gshadow"),
    ("etc", "sudoers"),
    ("etc", "sudoers.d"),
    ("etc", "master.passwd"),
    ("etc", "security", "opasswd"),
    ("etc", "ssl", "private"),
)
# File names that are private keys, password files or browser password stores, wherever they are.
_SECRET_NAMES = frozenset(
    {
        "id_rsa",
        "id_dsa",
        "id_ecdsa",
        "id_ed25519",
        "id_ecdsa_sk",
        "id_ed25519_sk",
        ".netrc",
        "_netrc",
        ".pgpass",
        ".git-credentials",
        ".pypirc",
        ".npmrc",
        ".my.cnf",
        "secring.gpg",
        "login data",  # Chrome, Edge, Brave saved passwords
        "login data for account",
        "logins.json",  # Firefox saved passwords and the key that opens them
        "logins-backup.json",
        "key3.db",
        "key4.db",
        "signons.sqlite",
    }
)
# Extensions of key stores and password databases. Plain ".pem" and ".key" are left out on purpose:
# they are as often public certificates and Keynote decks as private keys, and refusing those would
# stop ordinary work; key files are still caught by their folder (.ssh) or their name (privkey.pem).
_SECRET_SUFFIXES = (".ppk", ".kdbx", ".kdb", ".keychain", ".keychain-db", ".p12", ".pfx", ".jks", ".keystore")
_SECRET_NAME_MARKERS = ("privkey", "private_key", "private-key", "privatekey")

# First parts of absolute paths that belong to the operating system (lower-cased, so macOS's
# case-insensitive /System and /Library match however they are typed).
_SYSTEM_TOP = frozenset(
    {
        "etc",
        "usr",
        "bin",
        "sbin",
        "boot",
        "proc",
        "sys",
        "dev",
        "var",
        "opt",
        "srv",
        "root",
        "run",
        "snap",
        "lost+found",
        "system",  # macOS
        "library",  # macOS (the system one; ~/Library is below home, not here)
        "applications",  # macOS
        "private",  # macOS: /private/etc, /private/var
        "cores",  # macOS
    }
)
# Folders at the top of a Windows drive that belong to the system; the drive itself is one too.
_WINDOWS_SYSTEM_TOP = frozenset(
    {
        "windows",
        "program files",
        "program files (x86)",
        "programdata",
        "system volume information",
        "$recycle.bin",
        "recovery",
        "boot",
        "pagefile.sys",
        "hiberfil.sys",
    }
)


@dataclass(frozen=True)
class PathPolicy:
    """The folders tools may touch, and the rules that sort every other path into a reason to refuse.

    `roots` are absolute folders; `home` is what `~` means for the person (in a container it may differ
    from the process's own $HOME, so it is given, never read from the environment).
    """

    roots: tuple[Path, ...]
    home: Path

    def expand(self, raw: str) -> Path:
        """The absolute path `raw` names: `~` and `$HOME` become `home`, a relative path starts at the
        first root, and `.` and `..` are worked out on the text alone (nothing on disk is consulted).

        `~name` is read as a sibling of `home` (`/home/name`), the usual layout, since looking the user
        up would depend on this machine. A Windows drive path comes back normalised but unchanged in
        meaning; it never lies inside a root.
        """
        text = raw.strip()
        if _DRIVE.match(text):
            return Path(_normalise(text.replace("\\", "/")))
        text = _HOME_VARIABLE.sub("~", text)
        if text == "~" or text.startswith("~/"):
            text = str(self.home) + text[1:]
        elif text.startswith("~"):
            text = str(self.home.parent / text[1:])
        elif not text.startswith("/"):
            base = self.roots[0] if self.roots else self.home
            text = str(base / text) if text else str(base)
        return Path(_normalise(text))

    def classify(self, raw: str) -> PathVerdict:
        """Which verdict `raw` earns. Secrets are checked first (a key inside a root is still a key),
        then system locations (unless an allowed root lies within that location and the path is in
        that root), then the roots."""
        path = self.expand(raw)
        if _DRIVE.match(str(path)):
            return _classify_windows(str(path))
        if _is_secret(PurePosixPath(str(path).lower()).parts):
            return PathVerdict.SECRET
        if str(path) == "/":
            return PathVerdict.SYSTEM
        system_top = _system_top(path)
        inside = [root for root in self._roots() if path.is_relative_to(root)]
        if system_top is not None:
            # A root counts only if it lies inside the system folder itself (a workspace under /root):
            # a root that merely contains it (a careless "/") must not make /etc fair game.
            if any(root.is_relative_to(system_top) for root in inside):
                return PathVerdict.INSIDE
            return PathVerdict.SYSTEM
        return PathVerdict.INSIDE if inside else PathVerdict.OUTSIDE

    def explain(self, raw: str) -> str:
        """One plain sentence saying what `raw` is and so why it may or may not be used."""
        path = self.expand(raw)
        shown = f"'{raw}'" if str(path) == raw.strip() else f"'{raw}' (which is {path})"
        verdict = self.classify(raw)
        if verdict is PathVerdict.SECRET:
            return (
                f"{shown} is a private key or a store of credentials, which Switchboard never reads, copies or sends."
            )
        if verdict is PathVerdict.SYSTEM:
            return f"{shown} is an operating-system location, which Switchboard does not read or change."
        allowed = ", ".join(str(root) for root in self._roots()) or "none are set"
        if verdict is PathVerdict.OUTSIDE:
            return f"{shown} is outside the folders Switchboard may use ({allowed})."
        return f"{shown} is inside the folders Switchboard may use ({allowed})."

    def _roots(self) -> tuple[Path, ...]:
        # Normalised here rather than trusted, so "/home/user/" and "/home/user/." compare equal.
        return tuple(Path(_normalise(str(root))) for root in self.roots)


def _normalise(text: str) -> str:
    """`os.path.normpath` on POSIX text, except that a leading "//" (which POSIX leaves alone) is one "/"."""
    normal = posixpath.normpath(text)
    return "/" + normal.lstrip("/") if normal.startswith("//") else normal


def _contains_run(parts: tuple[str, ...], run: tuple[str, ...]) -> bool:
    width = len(run)
    return any(parts[i : i + width] == run for i in range(len(parts) - width + 1))


def _is_secret(parts: tuple[str, ...]) -> bool:
    """Whether lower-cased path parts name a key, a credential file or a folder of them."""
    if any(part in _SECRET_FOLDERS or part in _SECRET_NAMES for part in parts):
        return True
    if any(_contains_run(parts, run) for run in _SECRET_RUNS):
        return True
    below_root = parts[1:] if parts[:1] == ("/",) else ()
    if below_root[:1] == ("private",):
        below_root = below_root[1:]
    if any(below_root[: len(run)] == run for run in _SECRET_FROM_ROOT):
        return True
    if any(part.startswith("ssh_host_") and part.endswith("_key") for part in parts):
        return True
    name = parts[-1] if parts else ""
    return name.endswith(_SECRET_SUFFIXES) or any(marker in name for marker in _SECRET_NAME_MARKERS)


def _system_top(path: Path) -> Path | None:
    """The operating-system folder at the top of an absolute POSIX path, or None."""
    parts = path.parts
    if len(parts) < 2 or parts[0] != "/":
        return None
    top = parts[1].lower()
    if top in _SYSTEM_TOP or top.startswith("lib"):
        return Path("/", parts[1])
    return None


def _classify_windows(text: str) -> PathVerdict:
    """A Windows drive path: a secret, the system, or simply not one of this machine's roots."""
    parts = tuple(part for part in text.lower().split("/") if part)
    if _is_secret(parts):
        return PathVerdict.SECRET
    if len(parts) == 1 or parts[1] in _WINDOWS_SYSTEM_TOP:
        return PathVerdict.SYSTEM
    return PathVerdict.OUTSIDE
