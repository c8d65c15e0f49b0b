"""The `security` MCP server: find personal data, leaked secrets and duplicate files; encrypt and decrypt files.

The scanners read text files and report where a match is (file, line, kind) with the value masked, so
no result ever repeats a full card number or key. `propose_cleanup` only proposes: it changes nothing.
`encrypt_file` uses AES-256-GCM with a fresh random key per file; the key goes into a key store under
the tool host's state folder (never beside the ciphertext), and the `.enc` file's header names it by id.
Run over stdio with `python -m services.toolhost.servers.security`; logs go to stderr.
"""

from __future__ import annotations

import filecmp
import ipaddress
import logging
import math
import os
import re
import sqlite3
import stat
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, ConfigDict, Field

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

log = logging.getLogger("services.toolhost.servers.security")

SERVER_NAME = "security"
MAX_SCAN_FILE_BYTES = 5 * 1024 * 1024
MAX_SCAN_FILES = 20_000
MAX_FINDINGS = 1000
MAX_SKIPPED_LISTED = 50
MAX_EXCERPT_CHARS = 160
MAX_ENCRYPT_BYTES = 1024 * 1024 * 1024
LARGE_FILE_BYTES = 100 * 1024 * 1024
OLD_FILE_DAYS = 730
# Folders of tools and caches: scanning them finds vendored test keys, not the user's leaks.
SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "node_modules", "__pycache__", ".venv", "venv", ".tox", ".mypy_cache"})
TEMP_NAME = re.compile(
    r"(?i)^(?:~\$.*|\..*\.sw[a-p]|\.ds_store|thumbs\.db|desktop\.ini|.*~|.*\.(?:tmp|temp|bak|old|part|crdownload|pyc))$"
)

# The encrypted file: magic, key id (16 bytes), nonce (12 bytes), then AES-256-GCM ciphertext and tag.
ENC_MAGIC = b"SBENC\x01"
ENC_HEADER_BYTES = len(ENC_MAGIC) + 16 + 12
ENC_SUFFIX = ".enc"

PiiKind = Literal["email", "phone", "credit_card", "iban", "ssn", "ip"]
PII_KINDS: tuple[str, ...] = ("email", "phone", "credit_card", "iban", "ssn", "ip")


class Finding(BaseModel):
    """One match in one file; the value itself is never shown, only a masked excerpt of its line."""

    path: str
    line: int | None = Field(None, description="1-based line number; null for a whole-file finding.")
    column: int | None = Field(None, description="1-based column where the match starts.")
    kind: str = Field(description='What was found, e.g. "email", "credit_card", "aws_access_key_id".')
    category: Literal["pii", "secret", "duplicate"]
    excerpt: str = Field("", description="The line around the match, with every sensitive value masked.")
    duplicate_of: str | None = Field(None, description="For a duplicate: the copy that would be kept.")


class SkippedFile(BaseModel):
    path: str
    reason: str


class ScanResult(BaseModel):
    path: str
    findings: list[Finding]
    files_scanned: int
    files_skipped: int = Field(description="Files not read: binary, too large, unreadable or symlinks.")
    skipped: list[SkippedFile] = Field(description=f"The first {MAX_SKIPPED_LISTED} skipped files and why.")
    truncated: bool = Field(description=f"True when there were more than {MAX_FINDINGS} findings.")
    kinds_checked: list[str]


class DuplicateFile(BaseModel):
    path: str
    size: int
    modified: str
    sha256: str | None = Field(None, description="Content hash, when it was computed.")


class DuplicateResult(BaseModel):
    path: str
    method: str
    groups: list[list[DuplicateFile]] = Field(
        description="Each group lists files that match; the first file of a group is the one to keep (oldest)."
    )
    identical_content: list[bool] = Field(description="Per group: whether its files have the same bytes.")
    wasted_bytes: int = Field(description="Bytes that removing all but one file of each identical group frees.")
    files_compared: int
    findings: list[Finding] = Field(
        description="One finding per extra copy of identical files, ready to pass to security.propose_cleanup."
    )


class ReportedFinding(BaseModel):
    """A finding handed back to propose_cleanup: as returned by the scanners, or just a path."""

    model_config = ConfigDict(extra="ignore")

    path: str = Field(description="File (or folder, to have it reviewed) the finding is about.")
    kind: str = Field("", description='What was found, e.g. "aws_access_key_id" or "email".')
    category: str | None = Field(None, description='"pii", "secret" or "duplicate".')
    line: int | None = Field(None, description="Line of the finding, if any.")
    duplicate_of: str | None = Field(None, description="For a duplicate: the copy to keep.")


ActionName = Literal["delete", "encrypt", "remove_secret", "archive", "review"]


class ProposedAction(BaseModel):
    action: ActionName
    path: str
    reason: str
    size: int | None = Field(None, description="Size of the file in bytes.")
    modified: str | None = None
    suggested_tool: str | None = Field(None, description="The tool that would carry the action out.")
    keep: str | None = Field(None, description="For a duplicate: the copy that stays.")
    lines: list[int] = Field(default_factory=list, description="Lines of the findings this action is about.")


class CleanupProposal(BaseModel):
    actions: list[ProposedAction]
    reclaimable_bytes: int = Field(description="Bytes the proposed deletions would free.")
    changed_nothing: bool = Field(True, description="Always true: this tool only proposes.")
    note: str


class EncryptResult(BaseModel):
    success: bool
    path: str = Field(description="The encrypted file.")
    source: str
    key_id: str = Field(description="Id of the key in this computer's key store; the .enc file's header names it.")
    key_store: str = Field(description="Where the key is kept (never beside the encrypted file).")
    size: int
    original_kept: bool = Field(description="The original file is left as it was.")
    overwrote: bool
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


class DecryptResult(BaseModel):
    success: bool
    path: str = Field(description="The decrypted file.")
    source: str
    size: int
    overwrote: bool
    trash_id: str | None = Field(None, description="Trash entry holding the file that was replaced, if any.")
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


# detectors


@dataclass(frozen=True)
class Detector:
    """A pattern for one kind of sensitive value; `group` is the part that is the value."""

    kind: str
    category: Literal["pii", "secret"]
    regex: re.Pattern[str]
    mask: Callable[[str], str]
    valid: Callable[[str], bool] = lambda value: True
    group: int = 0


@dataclass(frozen=True)
class Match:
    detector: Detector
    start: int
    end: int
    value: str
    key_name: str = ""

    @property
    def kind(self) -> str:
        if self.detector.kind == "generic_secret" and re.search(r"(?i)pass|pwd", self.key_name):
            return "password"
        return self.detector.kind


def _keep(value: str, start: int, end: int) -> str:
    """`value` with all but `start` leading and `end` trailing characters hidden; at most half is shown."""
    shown = len(value) // 2
    start, end = min(start, shown), min(end, max(0, shown - min(start, shown)))
    return value[:start] + "****" + (value[-end:] if end else "")


def _mask_digits(value: str, keep_last: int) -> str:
    digits = sum(c.isdigit() for c in value)
    keep = min(keep_last, digits // 2)
    out, seen = [], 0
    for c in value:
        if c.isdigit():
            seen += 1
            out.append(c if seen > digits - keep else "*")
        else:
            out.append(c)
    return "".join(out)


def _mask_email(value: str) -> str:
    local, _, domain = value.partition("@")
    return f"{local[:1]}***@{domain}"


def _mask_iban(value: str) -> str:
    compact = value.replace(" ", "")
    return f"{compact[:2]}** **** {compact[-2:]}"


def _mask_ip(value: str) -> str:
    if ":" in value:
        return value.split(":", 1)[0] + ":****"
    return ".".join(value.split(".")[:2]) + ".*.*"


def _mask_private_key(value: str) -> str:
    header = re.match(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----", value)
    if header is None:
        return "-----BEGIN PRIVATE KEY-----[key material hidden]"
    if header.end() == len(value.rstrip()):
        return header.group(0)  # the header alone is no secret
    return header.group(0) + "[key material hidden]"


def _mask_assigned(value: str) -> str:
    """The value of `password = "..."` masked, its quotes kept."""
    quote = value[0] if value[:1] in ("'", '"') else ""
    return quote + _keep(value.strip("\"'"), 1, 1) + quote


def _luhn(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


# Issuer prefixes: Luhn alone passes one random number in ten, so also ask for a real card network.
CARD_PREFIX = re.compile(r"^(?:4|5[1-5]|2(?:2[2-9]|[3-6]\d|7[01]|720)|3[47]|3(?:0[0-5]|[68])|6(?:011|5|4[4-9])|35)")


def _card_ok(value: str) -> bool:
    digits = re.sub(r"\D", "", value)
    return 13 <= len(digits) <= 19 and bool(CARD_PREFIX.match(digits)) and _luhn(digits)


def _iban_ok(value: str) -> bool:
    compact = value.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _phone_ok(value: str) -> bool:
    digits = sum(c.isdigit() for c in value)
    return 7 <= digits <= 15 and not re.fullmatch(r"\d{4}[-./]\d{2}[-./]\d{2}", value)


def _ip_ok(value: str) -> bool:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        return False
    # Loopback, "any" and broadcast addresses are not anyone's address.
    return not (address.is_loopback or address.is_unspecified or str(address) == "255.255.255.255")


def _entropy(value: str) -> float:
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


PLACEHOLDERS = frozenset(
    {"password", "changeme", "change_me", "secret", "example", "redacted", "none", "null", "true", "false", "xxxxxxxx"}
)


def _assigned_secret_ok(value: str) -> bool:
    """Whether the value of `password = ...` looks like a real secret rather than code or a placeholder."""
    bare = value.strip("\"'")
    quoted = bare != value
    if len(bare) < 8 or bare.lower() in PLACEHOLDERS or set(bare.lower()) <= {"x", "*", "."}:
        return False
    if any(mark in bare for mark in ("${", "{{", "<", "%(", "(", "getenv", "environ", "process.env")):
        return False
    if bare.startswith("$"):
        return False
    if not quoted and (
        re.fullmatch(r"[A-Za-z_]\w*(?:\.\w+)+", bare)  # attribute access: config.password
        or re.fullmatch(r"[a-z_]+", bare)  # a variable name: user_password
        or re.fullmatch(r"[A-Z_]+", bare)  # a constant's name: DB_PASSWORD
    ):
        return False
    classes = sum(
        (
            any(c.islower() for c in bare),
            any(c.isupper() for c in bare),
            any(c.isdigit() for c in bare),
            any(not c.isalnum() for c in bare),
        )
    )
    return classes >= 2 and _entropy(bare) >= 3.0


def _secret_ok(value: str) -> bool:
    return _entropy(value) >= 3.5


PII_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "credit_card",
        "pii",
        re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])"),
        lambda v: _mask_digits(v, 4),
        _card_ok,
    ),
    Detector(
        "iban",
        "pii",
        re.compile(r"(?<![A-Z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?(?![A-Za-z0-9])"),
        _mask_iban,
        _iban_ok,
    ),
    Detector(
        "ssn",
        "pii",
        re.compile(r"(?<![\d-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\d-])"),
        lambda v: _mask_digits(v, 4),
    ),
    Detector(
        "email",
        "pii",
        re.compile(r"(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}(?![\w-])"),
        _mask_email,
    ),
    Detector(
        "ip",
        "pii",
        re.compile(
            r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?!\w|\.\d)"
            r"|(?<![\w:.])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])"
        ),
        _mask_ip,
        _ip_ok,
    ),
    Detector(
        "phone",
        "pii",
        re.compile(
            r"(?<![\w+])\+\d{1,3}(?:[ .-]?\(?\d{1,4}\)?){2,6}(?!\w)"
            r"|(?<![\w.+-])(?:\(\d{3}\) ?|\d{3}[-. ])\d{3}[-. ]\d{4}(?![\w-])"
        ),
        lambda v: _mask_digits(v, 2),
        _phone_ok,
    ),
)

SECRET_DETECTORS: tuple[Detector, ...] = (
    Detector(
        "private_key",
        "secret",
        re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY(?: BLOCK)?-----[A-Za-z0-9+/=\\ ]*"),
        _mask_private_key,
    ),
    Detector(
        "aws_access_key_id",
        "secret",
        re.compile(r"(?<![A-Z0-9])(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA)[A-Z0-9]{16}(?![A-Z0-9])"),
        lambda v: _keep(v, 4, 2),
    ),
    Detector(
        "aws_secret_access_key",
        "secret",
        re.compile(r"(?i)aws_?secret_?(?:access_?)?key\W{0,5}[:=]\W{0,3}([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])"),
        lambda v: _keep(v, 2, 2),
        _secret_ok,
        group=1,
    ),
    Detector(
        "github_token",
        "secret",
        re.compile(
            r"(?<![A-Za-z0-9_])(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{50,255})(?![A-Za-z0-9_])"
        ),
        lambda v: _keep(v, 4, 2),
    ),
    Detector(
        "gitlab_token",
        "secret",
        re.compile(r"(?<![\w-])glpat-[A-Za-z0-9_-]{20,}(?![\w-])"),
        lambda v: _keep(v, 6, 2),
    ),
    Detector(
        "slack_token",
        "secret",
        re.compile(r"(?<![\w-])xox[abposr]-[A-Za-z0-9-]{10,}(?![\w-])"),
        lambda v: _keep(v, 5, 2),
    ),
    Detector(
        "slack_webhook",
        "secret",
        re.compile(r"https://hooks\.slack\.com/services/[A-Za-z0-9/_-]{20,}"),
        lambda v: _keep(v, 33, 0),
    ),
    Detector(
        "stripe_key",
        "secret",
        re.compile(r"(?<!\w)[sr]k_live_[A-Za-z0-9]{20,}(?!\w)"),
        lambda v: _keep(v, 8, 2),
    ),
    Detector(
        "google_api_key",
        "secret",
        re.compile(r"(?<![\w-])AIza[0-9A-Za-z_-]{35}(?![\w-])"),
        lambda v: _keep(v, 4, 2),
    ),
    Detector(
        "jwt",
        "secret",
        re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}(?![\w-])"),
        lambda v: _keep(v, 3, 0),
    ),
    Detector(
        "generic_secret",
        "secret",
        re.compile(
            r"(?i)(?<![A-Za-z0-9_.-])([A-Za-z0-9_.-]*(?:password|passwd|passphrase|pwd|secret|api[_-]?key|apikey"
            r"|access[_-]?key|auth[_-]?token|access[_-]?token|token|client[_-]?secret))[\"']?\s*(?::=|=>|[:=])\s*"
            r"((\"|')[^\"'\s]{6,200}\3|[^\s\"'`,;]{6,200})"
        ),
        _mask_assigned,
        _assigned_secret_ok,
        group=2,
    ),
)

ALL_DETECTORS = SECRET_DETECTORS + PII_DETECTORS
SECRET_KINDS = frozenset(d.kind for d in SECRET_DETECTORS) | {"password"}


def _matches(line: str, detectors: tuple[Detector, ...]) -> list[Match]:
    """Valid matches of `detectors` in `line`; where two overlap, the earlier detector wins."""
    found: list[Match] = []
    for detector in detectors:
        for m in detector.regex.finditer(line):
            value = m.group(detector.group)
            if not value or not detector.valid(value):
                continue
            start, end = m.span(detector.group)
            if any(start < other.end and other.start < end for other in found):
                continue
            key_name = m.group(1) if detector.kind == "generic_secret" else ""
            found.append(Match(detector, start, end, value, key_name))
    return sorted(found, key=lambda x: x.start)


def _masked_excerpt(line: str, focus: Match) -> str:
    """The part of `line` around `focus`, with every sensitive value on the line masked."""
    # The focus first, so among equal spans it is the one masked and located.
    spans = sorted([focus, *_matches(line, ALL_DETECTORS)], key=lambda x: (x.start, -x.end))
    pieces: list[str] = []
    cursor = 0
    focus_at = 0
    for m in spans:
        if m.start < cursor:
            if m.end > cursor:  # overlaps what is already masked: hide the rest of it too
                pieces.append("****")
                cursor = m.end
            continue
        pieces.append(line[cursor : m.start])
        if m is focus:
            focus_at = sum(len(p) for p in pieces)
        pieces.append(m.detector.mask(m.value))
        cursor = m.end
    pieces.append(line[cursor:])
    masked = "".join(pieces).strip("\r\n")
    if len(masked) <= MAX_EXCERPT_CHARS:
        return masked.strip()
    begin = max(0, focus_at - MAX_EXCERPT_CHARS // 3)
    return ("…" if begin else "") + masked[begin : begin + MAX_EXCERPT_CHARS].strip() + "…"


@dataclass
class _Walk:
    files: list[Path]
    skipped: list[SkippedFile]
    skipped_count: int = 0

    def skip(self, path: Path, reason: str) -> None:
        self.skipped_count += 1
        if len(self.skipped) < MAX_SKIPPED_LISTED:
            self.skipped.append(SkippedFile(path=printable(path), reason=reason))


def _files_below(target: Path) -> Iterator[Path]:
    """Regular files at or below `target`, sorted, symlinks and tool folders left out."""
    if not target.is_dir():
        yield target
        return
    for folder, dirs, names in os.walk(target):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            yield Path(folder) / name


def _collect(target: Path) -> _Walk:
    walk = _Walk(files=[], skipped=[])
    for path in _files_below(target):
        if path.is_symlink():
            # A link could lead out of the allowed folders; scan what it points to directly instead.
            walk.skip(path, "symbolic link (not followed)")
        elif not path.is_file():
            walk.skip(path, "not a regular file")
        elif len(walk.files) >= MAX_SCAN_FILES:
            walk.skip(path, f"more than {MAX_SCAN_FILES} files; scan a smaller folder")
        else:
            walk.files.append(path)
    return walk


def _read_text(path: Path) -> tuple[str | None, str]:
    """The text of a file, or None and why it was not read."""
    try:
        with path.open("rb") as f:
            data = f.read(MAX_SCAN_FILE_BYTES + 1)
    except OSError as exc:
        return None, f"unreadable: {exc.strerror or exc}"
    if len(data) > MAX_SCAN_FILE_BYTES:
        return None, f"larger than {MAX_SCAN_FILE_BYTES // (1024 * 1024)} MiB"
    if b"\0" in data[:8192]:
        return None, "binary file (for PDFs and documents, extract their text with document.extract_text first)"
    return data.decode("utf-8", errors="replace"), ""


def _scan(target: Path, detectors: tuple[Detector, ...], kinds: list[str]) -> ScanResult:
    """Findings of `kinds` in the files at or below `target`.

    All `detectors` run so that overlaps resolve the same way whichever kinds were asked for: a card
    number is never reported as a phone number just because cards were not asked for.
    """
    walk = _collect(target)
    findings: list[Finding] = []
    truncated = False
    scanned = 0
    for path in walk.files:
        text, why = _read_text(path)
        if text is None:
            walk.skip(path, why)
            continue
        scanned += 1
        for number, line in enumerate(text.splitlines(), 1):
            for m in _matches(line, detectors):
                if m.kind not in kinds and m.detector.kind not in kinds:
                    continue
                if len(findings) == MAX_FINDINGS:
                    truncated = True
                    break
                findings.append(
                    Finding(
                        path=printable(path),
                        line=number,
                        column=m.start + 1,
                        kind=m.kind,
                        category=m.detector.category,
                        excerpt=_masked_excerpt(line, m),
                    )
                )
    return ScanResult(
        path=str(target),
        findings=findings,
        files_scanned=scanned,
        files_skipped=walk.skipped_count,
        skipped=walk.skipped,
        truncated=truncated,
        kinds_checked=kinds,
    )


# duplicates


def _duplicate_file(path: Path, digest: str | None = None) -> DuplicateFile:
    info = path.stat()
    return DuplicateFile(path=printable(path), size=info.st_size, modified=iso(info.st_mtime), sha256=digest)


def _oldest_first(paths: list[Path]) -> list[Path]:
    return sorted(paths, key=lambda p: (p.stat().st_mtime, str(p)))


def _groups_by_hash(by_size: dict[int, list[Path]]) -> list[tuple[list[Path], dict[Path, str]]]:
    groups = []
    for paths in by_size.values():
        by_digest: dict[str, list[Path]] = defaultdict(list)
        for path in paths:
            by_digest[sha256_of(path)].append(path)
        for digest, same in by_digest.items():
            if len(same) > 1:
                groups.append((same, dict.fromkeys(same, digest)))
    return groups


def _groups_by_content(by_size: dict[int, list[Path]]) -> list[list[Path]]:
    """Byte-for-byte comparison, for when a hash match is not proof enough."""
    groups: list[list[Path]] = []
    for paths in by_size.values():
        classes: list[list[Path]] = []
        for path in paths:
            for members in classes:
                if filecmp.cmp(members[0], path, shallow=False):
                    members.append(path)
                    break
            else:
                classes.append([path])
        groups.extend(c for c in classes if len(c) > 1)
    return groups


# the key store


class KeyStore:
    """Encryption keys by id, in SQLite under the state folder, readable by this user only."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.path = folder / "keys.db"

    def _connect(self) -> sqlite3.Connection:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(stat.S_IRWXU)
        if not self.path.exists():
            # Created 0600 before SQLite opens it; its journal files inherit these permissions.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        connection = sqlite3.connect(self.path)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(
            "CREATE TABLE IF NOT EXISTS keys (key_id TEXT PRIMARY KEY, key BLOB NOT NULL, created_at TEXT NOT NULL,"
            " source_path TEXT NOT NULL, encrypted_path TEXT NOT NULL)"
        )
        return connection

    def new_key(self, source: Path, encrypted: Path) -> tuple[str, bytes]:
        """A fresh 256-bit key, stored before any ciphertext exists, and its id."""
        key_id, key = uuid.uuid4(), AESGCM.generate_key(bit_length=256)
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO keys VALUES (?, ?, ?, ?, ?)",
                (str(key_id), key, datetime.now(UTC).isoformat(), str(source), str(encrypted)),
            )
        return str(key_id), key

    def key(self, key_id: str) -> bytes | None:
        """The key with this id, or None when this key store does not have it."""
        if not self.path.exists():
            return None
        with closing(self._connect()) as db:
            row = db.execute("SELECT key FROM keys WHERE key_id = ?", (key_id,)).fetchone()
        return bytes(row[0]) if row else None


def _refuse_key_store(path: Path, store: KeyStore, what: str, parameter: str) -> None:
    if path.is_relative_to(store.folder.resolve()):
        raise ToolError(
            f"The {what} {path} is inside the key store folder; choose a path outside {store.folder}.",
            correction=Correction(f"the {what} is inside the key store folder", parameter=parameter),
        )


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The security server, confined to `settings.roots()`, keeping keys under `settings.state_dir`."""
    sandbox = settings.sandbox()
    trash = Trash(settings.trash_dir)
    keys = KeyStore(settings.state_dir / "keystore")
    resolve = sandbox.resolve
    server = MCPServer(
        SERVER_NAME,
        instructions="Find personal data, leaked secrets and duplicate files; propose clean-ups; encrypt files.",
    )

    @tool(server, Effects.reads())
    def scan_for_pii(
        path: Annotated[str, Field(description="File or folder to scan; folders are scanned with all subfolders.")],
        types: Annotated[
            list[PiiKind] | None,
            Field(description="Kinds of personal data to look for; omit to look for all of them."),
        ] = None,
    ) -> ScanResult:
        """Find personal data in text files: email addresses, phone numbers, credit card numbers, IBANs,
        US social security numbers and IP addresses. Each finding gives file, line, kind and a masked excerpt.

        Card numbers must pass the Luhn check and IBANs their checksum. For passwords, API keys and
        tokens use security.scan_for_secrets instead. Binary files are skipped.
        """
        target = _existing(resolve(path), path)
        kinds: list[str] = list(dict.fromkeys(types)) if types else list(PII_KINDS)
        return _scan(target, PII_DETECTORS, kinds)

    @tool(server, Effects.reads())
    def scan_for_secrets(
        path: Annotated[str, Field(description="File or folder to scan; folders are scanned with all subfolders.")],
    ) -> ScanResult:
        """Find leaked credentials in text files: AWS, GitHub, GitLab, Slack, Stripe and Google keys, private
        key blocks, JWTs, and password/api_key/token assignments with a random-looking value.

        Each finding gives file, line, kind and a masked excerpt (the secret is never shown). For
        personal data such as emails or card numbers use security.scan_for_pii instead.
        """
        target = _existing(resolve(path), path)
        return _scan(target, SECRET_DETECTORS, sorted(SECRET_KINDS - {"generic_secret"}) + ["generic_secret"])

    @tool(server, Effects.reads())
    def find_duplicates(
        path: Annotated[str, Field(description="Folder to look in, subfolders included.")],
        method: Annotated[
            Literal["hash", "name", "content"],
            Field(
                description='"hash": same size and SHA-256 (the usual choice); "content": same bytes, compared '
                'byte by byte; "name": same file name in different folders, whatever the content.'
            ),
        ] = "hash",
    ) -> DuplicateResult:
        """Find duplicate files below a folder and how much space the extra copies take.

        Groups are listed with the oldest file first (the one to keep). To get a clean-up plan,
        pass the returned findings to security.propose_cleanup; to delete a copy use filesystem.delete_file.
        Empty files and symbolic links are ignored.
        """
        folder = existing_dir(resolve(path), path)
        walk = _collect(folder)
        files = [p for p in walk.files if p.stat().st_size > 0]
        grouped: list[tuple[list[Path], dict[Path, str]]] = []
        if method == "name":
            by_name: dict[str, list[Path]] = defaultdict(list)
            for p in files:
                by_name[p.name].append(p)
            grouped = [(same, {p: sha256_of(p) for p in same}) for same in by_name.values() if len(same) > 1]
        else:
            by_size: dict[int, list[Path]] = defaultdict(list)
            for p in files:
                by_size[p.stat().st_size].append(p)
            candidates = {size: same for size, same in by_size.items() if len(same) > 1}
            if method == "hash":
                grouped = _groups_by_hash(candidates)
            else:
                grouped = [(same, {}) for same in _groups_by_content(candidates)]
        groups: list[list[DuplicateFile]] = []
        identical: list[bool] = []
        findings: list[Finding] = []
        wasted = 0
        for same, digests in sorted(grouped, key=lambda g: str(min(g[0]))):
            ordered = _oldest_first(same)
            groups.append([_duplicate_file(p, digests.get(p)) for p in ordered])
            same_bytes = method != "name" or len(set(digests.values())) == 1
            identical.append(same_bytes)
            if same_bytes:
                wasted += sum(p.stat().st_size for p in ordered[1:])
                findings.extend(
                    Finding(
                        path=printable(p),
                        kind="duplicate_file",
                        category="duplicate",
                        duplicate_of=printable(ordered[0]),
                    )
                    for p in ordered[1:]
                )
        return DuplicateResult(
            path=str(folder),
            method=method,
            groups=groups,
            identical_content=identical,
            wasted_bytes=wasted,
            files_compared=len(files),
            findings=findings,
        )

    @tool(server, Effects.reads())
    def propose_cleanup(
        findings: Annotated[
            list[ReportedFinding],
            Field(
                description="Findings returned by security.scan_for_secrets, security.scan_for_pii or "
                'security.find_duplicates; or {"path": "<folder>"} to have a folder reviewed for duplicates, '
                "temporary files, and large or old files."
            ),
        ],
    ) -> CleanupProposal:
        """Propose what to do about findings, with sizes and reasons, without changing anything.

        Secrets get "remove_secret" (and rotate the key), personal data "encrypt", extra copies and
        temporary files "delete", large or old files "archive". Each action names the tool that would do
        it (e.g. filesystem.delete_file, security.encrypt_file); carry it out only after the person agrees.
        """
        actions: list[ProposedAction] = []
        by_file: dict[Path, list[ReportedFinding]] = defaultdict(list)
        for finding in findings:
            by_file[resolve(finding.path, follow_last=False)].append(finding)
        for target, about in by_file.items():
            if target.is_dir() and not target.is_symlink():
                actions.extend(_review_folder(target))
            elif not target.is_symlink() and not target.exists():
                actions.append(ProposedAction(action="review", path=str(target), reason="The file no longer exists."))
            else:
                actions.extend(_actions_for_file(target, about, resolve))
        reclaimable = sum(a.size or 0 for a in actions if a.action == "delete")
        note = (
            "Nothing was changed. Show these proposals to the person; carry out each accepted one with its "
            "suggested tool."
            if actions
            else "Nothing to propose: no findings were given, or they need no action."
        )
        return CleanupProposal(actions=actions, reclaimable_bytes=reclaimable, note=note)

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=False,
            preview="Encrypt {path}[ into {output_path}] (the original stays)",
            overwrites=("output_path", "path+.enc"),
        ),
    )
    def encrypt_file(
        path: Annotated[str, Field(description="The file to encrypt; it is left as it is.")],
        output_path: Annotated[
            str | None, Field(description="Where to write the encrypted file; omit for the same path plus .enc.")
        ] = None,
    ) -> EncryptResult:
        """Encrypt a file with AES-256-GCM into a new .enc file, keeping the original unchanged.

        A fresh key is made and kept in this computer's Switchboard key store, never beside the
        encrypted file; decrypt it again with security.decrypt_file. To delete the plain original
        afterwards, use filesystem.delete_file (it goes to the trash).
        """
        source = existing_file(resolve(path), path)
        _refuse_key_store(source, keys, "file to encrypt", "path")
        target = resolve(output_path) if output_path else source.with_name(source.name + ENC_SUFFIX)
        _refuse_key_store(target, keys, "output path", "output_path")
        if target.is_dir():
            raise ToolError(
                f"{target} is a folder. Give a file path, e.g. {target / (source.name + ENC_SUFFIX)}.",
                correction=Correction(
                    f"{output_path!r} is a folder, not a file",
                    parameter="output_path",
                    suggested_value=str(target / (source.name + ENC_SUFFIX)),
                ),
            )
        if target == source:
            raise ToolError(
                "output_path is the file itself. Choose another name, or omit output_path.",
                correction=Correction(
                    "output_path is the file itself",
                    parameter="output_path",
                    suggested_value=str(source.with_name(source.name + ENC_SUFFIX)),
                ),
            )
        size = source.stat().st_size
        if size > MAX_ENCRYPT_BYTES:
            raise ToolError(f"{source} is {size} bytes; encrypt_file handles files up to 1 GiB.")
        with source.open("rb") as f:
            if f.read(len(ENC_MAGIC)) == ENC_MAGIC:
                raise ToolError(
                    f"{source} is already encrypted by security.encrypt_file; use security.decrypt_file.",
                    correction=Correction(
                        f"{source.name} is already encrypted", suggested_tool="security.decrypt_file"
                    ),
                )
        plaintext = source.read_bytes()
        key_id, key = keys.new_key(source, target)
        nonce = os.urandom(12)
        header = ENC_MAGIC + uuid.UUID(key_id).bytes + nonce
        ciphertext = AESGCM(key).encrypt(nonce, plaintext, header)
        trash_id = _prepare_target(target, trash, "overwritten by security.encrypt_file")
        write_atomically(target, header + ciphertext)
        log.info("encrypted %s to %s with key %s", source, target, key_id)
        return EncryptResult(
            success=True,
            path=str(target),
            source=str(source),
            key_id=key_id,
            key_store=str(keys.path),
            size=target.stat().st_size,
            original_kept=True,
            overwrote=trash_id is not None,
            undo=[_undo_for(target, trash_id)],
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=False,
            preview="Decrypt {path}[ into {output_path}]",
            overwrites=("output_path", "path-.enc"),
        ),
    )
    def decrypt_file(
        path: Annotated[str, Field(description="The .enc file made by security.encrypt_file.")],
        output_path: Annotated[
            str | None,
            Field(description="Where to write the decrypted file; omit to use the same path without .enc."),
        ] = None,
    ) -> DecryptResult:
        """Decrypt a .enc file made by security.encrypt_file back into a normal file.

        Needs the key in this computer's key store. A file that exists at the output path is first
        kept in the trash, so nothing is lost. To encrypt, use security.encrypt_file.
        """
        source = existing_file(resolve(path), path)
        if output_path:
            target = resolve(output_path)
        elif source.name.endswith(ENC_SUFFIX) and len(source.name) > len(ENC_SUFFIX):
            target = source.with_name(source.name[: -len(ENC_SUFFIX)])
        else:
            raise ToolError(
                f"{source} does not end in {ENC_SUFFIX}; give output_path for the decrypted file.",
                correction=Correction(f"{source.name} does not end in {ENC_SUFFIX}", parameter="output_path"),
            )
        if target.is_dir():
            plain_name = source.name.removesuffix(ENC_SUFFIX) if source.name.endswith(ENC_SUFFIX) else ""
            raise ToolError(
                f"{target} is a folder. Give a file path inside it for the decrypted file.",
                correction=Correction(
                    f"{output_path!r} is a folder, not a file",
                    parameter="output_path",
                    suggested_value=str(target / plain_name) if plain_name else None,
                ),
            )
        if target == source:
            raise ToolError(
                "output_path is the encrypted file itself. Choose another name.",
                correction=Correction("output_path is the encrypted file itself", parameter="output_path"),
            )
        _refuse_key_store(target, keys, "output path", "output_path")
        # The header first: a large file that is not one of ours is refused without being read.
        with source.open("rb") as encrypted:
            data = encrypted.read(ENC_HEADER_BYTES + 16)
            if len(data) == ENC_HEADER_BYTES + 16 and data.startswith(ENC_MAGIC):
                data += encrypted.read()
        if len(data) < ENC_HEADER_BYTES + 16 or not data.startswith(ENC_MAGIC):
            raise ToolError(
                f"{source} is not a file encrypted by security.encrypt_file (its header is missing), "
                "so it cannot be decrypted here.",
                correction=Correction(f"{source.name} is not encrypted by security.encrypt_file", parameter="path"),
            )
        header = data[:ENC_HEADER_BYTES]
        key_id = str(uuid.UUID(bytes=header[len(ENC_MAGIC) : len(ENC_MAGIC) + 16]))
        key = keys.key(key_id)
        if key is None:
            raise ToolError(
                f"The key for {source} (key id {key_id}) is not in the key store {keys.path}. It was encrypted on "
                "another computer or with another Switchboard state folder; it can only be decrypted there."
            )
        try:
            plaintext = AESGCM(key).decrypt(header[-12:], data[ENC_HEADER_BYTES:], header)
        except InvalidTag as exc:
            raise ToolError(
                f"Decryption of {source} failed: the key does not match or the file was changed or damaged "
                "after it was encrypted. Nothing was written."
            ) from exc
        trash_id = _prepare_target(target, trash, "overwritten by security.decrypt_file")
        write_atomically(target, plaintext)
        log.info("decrypted %s to %s", source, target)
        return DecryptResult(
            success=True,
            path=str(target),
            source=str(source),
            size=len(plaintext),
            overwrote=trash_id is not None,
            trash_id=trash_id,
            undo=[_undo_for(target, trash_id)],
        )

    return server


def _existing(path: Path, raw: str) -> Path:
    if not path.exists():
        raise missing(path, raw)
    return path


def _prepare_target(target: Path, trash: Trash, reason: str) -> str | None:
    """Keep a copy of what is at `target` in the trash before it is replaced (its trash id); create its folder."""
    if target.is_symlink() or target.exists():
        return trash.keep(target, move=False, reason=reason).trash_id
    target.parent.mkdir(parents=True, exist_ok=True)
    return None


def _undo_for(target: Path, trash_id: str | None) -> UndoAction:
    """An overwrite is undone by restoring the old file (the new one goes to the trash); a new file by removing it."""
    if trash_id is not None:
        return UndoAction(kind="restore_trash", path=str(target), trash_id=trash_id, replace=True)
    return UndoAction(kind="remove_created", path=str(target), sha256=sha256_of(target))


def _review_folder(folder: Path) -> list[ProposedAction]:
    """Duplicates, temporary files and large or old files below `folder`, as proposals."""
    walk = _collect(folder)
    actions: list[ProposedAction] = []
    proposed: set[Path] = set()
    by_size: dict[int, list[Path]] = defaultdict(list)
    for p in walk.files:
        size = p.stat().st_size
        if size:
            by_size[size].append(p)
    for same, _ in _groups_by_hash({s: ps for s, ps in by_size.items() if len(ps) > 1}):
        keep, *extra = _oldest_first(same)
        for p in extra:
            actions.append(_action("delete", p, f"Identical copy of {keep}.", "filesystem.delete_file", keep=keep))
            proposed.add(p)
    now = time.time()
    for p in walk.files:
        if p in proposed:
            continue
        info = p.stat()
        if TEMP_NAME.match(p.name):
            actions.append(_action("delete", p, "Temporary or backup file.", "filesystem.delete_file"))
        elif info.st_size >= LARGE_FILE_BYTES:
            mib = info.st_size // (1024 * 1024)
            actions.append(_action("archive", p, f"Large file ({mib} MiB).", "filesystem.move_file"))
        elif now - info.st_mtime > OLD_FILE_DAYS * 86400:
            days = int((now - info.st_mtime) // 86400)
            actions.append(_action("archive", p, f"Not changed for {days} days.", "filesystem.move_file"))
    return actions


def _action(
    action: ActionName,
    path: Path,
    reason: str,
    tool: str | None,
    *,
    keep: Path | None = None,
    lines: list[int] | None = None,
) -> ProposedAction:
    info = path.lstat()
    return ProposedAction(
        action=action,
        path=str(path),
        reason=reason,
        size=info.st_size,
        modified=iso(info.st_mtime),
        suggested_tool=tool,
        keep=str(keep) if keep else None,
        lines=lines or [],
    )


def _actions_for_file(path: Path, about: list[ReportedFinding], resolve: Callable[[str], Path]) -> list[ProposedAction]:
    actions: list[ProposedAction] = []
    secrets = [f for f in about if f.category == "secret" or f.kind in SECRET_KINDS]
    pii = [f for f in about if (f.category == "pii" or f.kind in PII_KINDS) and f not in secrets]
    duplicates = [f for f in about if f.category == "duplicate" or f.duplicate_of]
    if secrets:
        kinds = ", ".join(sorted({f.kind for f in secrets if f.kind})) or "secrets"
        actions.append(
            _action(
                "remove_secret",
                path,
                f"Holds {kinds}. Treat them as exposed: revoke or rotate them at their issuer, delete them from "
                "the file and load them from an environment variable or secret manager instead.",
                None,
                lines=sorted({f.line for f in secrets if f.line}),
            )
        )
    if pii:
        kinds = ", ".join(sorted({f.kind for f in pii if f.kind})) or "personal data"
        actions.append(
            _action(
                "encrypt",
                path,
                f"Holds personal data ({kinds}). Encrypt it if it must be kept, then delete the plain copy.",
                "security.encrypt_file",
                lines=sorted({f.line for f in pii if f.line}),
            )
        )
    for dup in duplicates:
        if not dup.duplicate_of:
            continue
        keep = resolve(dup.duplicate_of)
        if keep.is_file() and keep != path and filecmp.cmp(keep, path, shallow=False):
            actions.append(_action("delete", path, f"Identical copy of {keep}.", "filesystem.delete_file", keep=keep))
        else:
            actions.append(
                _action("review", path, f"No longer identical to {keep} (or it is gone); nothing to delete.", None)
            )
    if not actions and path.is_file():
        if TEMP_NAME.match(path.name):
            actions.append(_action("delete", path, "Temporary or backup file.", "filesystem.delete_file"))
        else:
            actions.append(_action("review", path, "No action is known for this finding; look at it yourself.", None))
    return actions


def main() -> None:
    """Serve the security tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
