"""The `email` MCP server: drafts and an outbox in SQLite, search and thread summaries over local mail.

Drafts live in `<state_dir>/email.db`. Mail is read from the mailbox named by `SWITCHBOARD_MAILBOX`, inside
the allowed folders: an mbox file, a Maildir (its Maildir++ subfolders are further folders), or a folder
holding several of those, one per mail folder. `send_draft` sends over SMTP only when
`SWITCHBOARD_SMTP_HOST` is set (with `SWITCHBOARD_SMTP_PORT`, `_USER`, `_PASSWORD`, `_STARTTLS`, `_FROM`);
otherwise the draft waits in the outbox and the result says it was not sent. Nothing is summarised by
a language model: a thread summary is extracted from the messages themselves. Run over stdio with
`python -m services.toolhost.servers.email`; logs go to stderr.
"""

from __future__ import annotations

import email.utils
import hashlib
import html
import json
import logging
import mailbox
import re
import smtplib
import sqlite3
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email import policy
from email.errors import MessageError
from email.headerregistry import Address
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Annotated, Literal

from mcp.server.mcpserver import MCPServer
from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from services.toolhost.servers.calendar import local_iso, local_midnight, parse_when
from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    closest_choice,
    serve,
    sqlite_transaction,
    tool,
)
from services.toolhost.settings import ToolHostSettings
from switchboard.errors import InvalidRequest

log = logging.getLogger("services.toolhost.servers.email")  # not "__main__" under `python -m`

SERVER_NAME = "email"
DB_NAME = "email.db"
INBOX = "inbox"
MAX_RESULTS = 200
SNIPPET_CHARS = 200
PREVIEW_CHARS = 1000
KEY_POINT_CHARS = 240

DraftStatus = Literal["draft", "queued", "sent"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS drafts (
    draft_id INTEGER PRIMARY KEY AUTOINCREMENT,
    to_addrs TEXT NOT NULL,
    cc_addrs TEXT NOT NULL DEFAULT '[]',
    subject TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'queued', 'sent')),
    created_at TEXT NOT NULL,
    sent_at TEXT,
    message_id TEXT
);
CREATE TABLE IF NOT EXISTS outbox (
    draft_id INTEGER PRIMARY KEY REFERENCES drafts (draft_id),
    queued_at TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_attempt_at TEXT,
    last_error TEXT NOT NULL
);
"""

# An address's mailbox part and a dotted domain; stricter than RFC 5322 on purpose, so a name typed
# where an address belongs ("Bob") is caught before anything is queued.
_ADDRESS = re.compile(
    r"^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$"
)
_REPLY_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_MESSAGE_ID = re.compile(r"<([^<>\s]+)>")
_QUERY_TOKEN = re.compile(r'(?:(\w+):)?(?:"([^"]*)"|(\S+))')
_QUERY_FIELDS = ("from", "to", "subject", "body", "after", "since", "before")
_ATTRIBUTION = re.compile(r"^(on .{4,200} wrote:|.{0,80} (schrieb|a écrit|escribió)\s?.{0,80}:)$", re.IGNORECASE)
_GREETING = re.compile(r"^(hi|hello|hey|dear|hallo|good (morning|afternoon|evening))\b[^.!?]{0,40}[,!]?$", re.I)
_SIGNATURE_OR_FORWARD = re.compile(r"^(-- ?|_{5,}|-{5,}\s*original message\s*-{5,}|-{5,}\s*forwarded message.*)$", re.I)
_SIGN_OFF = re.compile(
    r"^(thanks|thank you|many thanks|best|best regards|kind regards|regards|cheers|sincerely|best wishes|"
    r"viele grüße|mit freundlichen grüßen|gruß|cordialement)[,.!]?$",
    re.IGNORECASE,
)
_HTML_TAG = re.compile(r"<(script|style)\b.*?</\1\s*>|<[^>]+>", re.IGNORECASE | re.DOTALL)


class EmailSettings(BaseSettings):
    """Where the mail archive is and how to send; read from `SWITCHBOARD_*` variables."""

    model_config = SettingsConfigDict(env_prefix="SWITCHBOARD_", extra="ignore", frozen=True)

    mailbox: str = Field("", description="An mbox file, a Maildir, or a folder of those, inside the allowed roots.")
    smtp_host: str = Field("", description="SMTP server to send through; empty means drafts are only queued.")
    smtp_port: int = Field(587, ge=1, le=65535)
    smtp_user: str = Field("", description="Login name; empty means no login.")
    smtp_password: SecretStr = Field(SecretStr(""))
    smtp_starttls: bool = Field(True, description="Upgrade the connection with STARTTLS before logging in.")
    smtp_from: str = Field("", description="The sender address of sent mail.")
    smtp_timeout_seconds: float = Field(30.0, gt=0)


# Results


class DraftCreated(BaseModel):
    draft_id: str
    preview: str = Field(description="The message as it would be sent: headers, a blank line, the body.")
    note: str


class Draft(BaseModel):
    """A saved, unsent email."""

    draft_id: str
    to: list[str]
    cc: list[str]
    subject: str
    body_preview: str = Field(description=f"The first {SNIPPET_CHARS} characters of the body.")
    status: DraftStatus = Field(description="draft: saved; queued: send_draft was called but it was not sent yet.")
    created_at: str
    not_sent_reason: str | None = Field(description="For a queued draft, why it has not been sent.")


class DraftList(BaseModel):
    drafts: list[Draft]
    total: int = Field(description="How many unsent drafts there are.")


class EmailSummary(BaseModel):
    """One message of the archive."""

    message_id: str
    thread_id: str = Field(description="Give this to email.summarize_thread for the whole conversation.")
    folder: str
    date: str | None = Field(description="When it was sent, local time ISO 8601; null if the message has no date.")
    sender: str = Field(description="The From header.")
    to: list[str]
    cc: list[str]
    subject: str
    snippet: str = Field(description="The start of the message text, quoted replies left out.")
    has_attachments: bool


class SearchResults(BaseModel):
    query: str
    folders: list[str] = Field(description="The folders searched.")
    results: list[EmailSummary]
    total_matches: int
    truncated: bool
    unreadable: int = Field(description="Messages in the mailbox that could not be parsed and were skipped.")


class ThreadSummary(BaseModel):
    thread_id: str
    subject: str
    message_count: int
    first_date: str | None
    last_date: str | None
    participants: list[str] = Field(description="Everyone who wrote or received a message, first seen first.")
    summary: str = Field(description="Extracted from the messages, not written by a model.")
    key_points: list[str] = Field(description="Each message in date order: date, sender, its first lines.")
    messages: list[EmailSummary]


class SendResult(BaseModel):
    success: bool = Field(description="True only when the SMTP server accepted the message.")
    sent: bool
    status: DraftStatus
    draft_id: str
    message_id: str = Field(description="Message-ID of the sent email; empty when nothing was sent.")
    message: str = Field(description="What happened, in plain words.")
    refused_recipients: list[str] = Field(default_factory=list)


# Reading mail


@dataclass(frozen=True)
class Mail:
    """One parsed message with what searching and threading need."""

    folder: str
    message_id: str
    references: tuple[str, ...]
    date: datetime | None
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    body: str
    has_attachments: bool
    replied_subject: bool  # the subject starts with Re:, Fwd: or the like

    @property
    def thread_root_guess(self) -> str:
        """The first message a reply refers to, else the message itself."""
        return self.references[0] if self.references else self.message_id


@dataclass
class MailArchive:
    """The configured mail store and its folders."""

    root: Path

    def folders(self) -> dict[str, Path]:
        """Folder name → an mbox file or a Maildir folder."""
        if _is_maildir(self.root):
            found = {INBOX: self.root}
            for child in sorted(self.root.iterdir()):
                if child.name.startswith(".") and _is_maildir(child):
                    found[child.name[1:]] = child
            return found
        if self.root.is_file():
            if self.root.stat().st_size and not _is_mbox(self.root):
                raise ToolError(
                    f"{self.root} is not an mbox file (it does not start with 'From '). Point SWITCHBOARD_MAILBOX "
                    "at an mbox file, a Maildir (with cur/ and new/), or a folder of those."
                )
            return {INBOX: self.root}
        found = {}
        for child in sorted(self.root.iterdir()):
            if _is_maildir(child) or _is_mbox(child):
                found[child.name.lstrip(".").removesuffix(".mbox")] = child
        return found

    def pick(self, folder: str | None) -> dict[str, Path]:
        """The folders to search: all, or the one named (case-insensitive)."""
        folders = self.folders()
        if not folders:
            raise ToolError(
                f"{self.root} holds no mbox files or Maildir folders. Point SWITCHBOARD_MAILBOX at an mbox file, "
                "a Maildir (with cur/ and new/), or a folder of those."
            )
        if folder is None or not folder.strip():
            return folders
        wanted = folder.strip().lstrip(".").casefold()
        chosen = {name: path for name, path in folders.items() if name.casefold() == wanted}
        if not chosen and wanted == INBOX and len(folders) == 1:
            chosen = folders  # one single mbox is the inbox, whatever its file is called
        if not chosen:
            raise ToolError(
                f"There is no mail folder {folder!r}. Folders: {', '.join(folders)}. Omit folder for all.",
                correction=Correction(
                    f"no mail folder {folder!r}",
                    parameter="folder",
                    suggested_value=closest_choice(folder, list(folders)),
                ),
            )
        return chosen

    def read(self, folders: dict[str, Path]) -> tuple[list[Mail], int]:
        """Every message of the given folders, parsed, and how many could not be parsed."""
        mails: list[Mail] = []
        unreadable = 0
        for name, path in folders.items():
            box: mailbox.Mailbox = (
                mailbox.Maildir(path, factory=None, create=False)
                if path.is_dir()
                else mailbox.mbox(path, factory=None, create=False)
            )
            try:
                for key in box.iterkeys():
                    data = box.get_bytes(key)
                    try:
                        mails.append(_parse(name, data))
                    except (ValueError, IndexError, LookupError, MessageError) as exc:
                        # One broken message must not hide the rest of the archive; it is counted instead.
                        log.warning("skipped unreadable message %s in %s: %s", key, path, exc)
                        unreadable += 1
            finally:
                box.close()
        return mails, unreadable


def _is_maildir(path: Path) -> bool:
    return (path / "cur").is_dir() and (path / "new").is_dir()


def _is_mbox(path: Path) -> bool:
    if not path.is_file():
        return False
    with path.open("rb") as f:
        return f.read(5) == b"From "


def _parse(folder: str, data: bytes) -> Mail:
    msg = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(msg, EmailMessage)  # what policy.default produces
    ids = _MESSAGE_ID.findall(_header(msg, "Message-ID"))
    # A message without an id still needs one, for threading and to be named in results; its content is
    # what stays the same when other messages are added or removed.
    message_id = ids[0] if ids else "no-id-" + hashlib.sha256(data).hexdigest()[:16]
    references = _MESSAGE_ID.findall(_header(msg, "References"))
    for parent in _MESSAGE_ID.findall(_header(msg, "In-Reply-To")):
        if parent not in references:
            references.append(parent)
    subject = _header(msg, "Subject")
    return Mail(
        folder=folder,
        message_id=message_id,
        references=tuple(r for r in references if r != message_id),
        date=_date(_header(msg, "Date")),
        sender=_header(msg, "From"),
        to=tuple(_addresses(msg, "To")),
        cc=tuple(_addresses(msg, "Cc")),
        subject=subject,
        body=_body_text(msg),
        has_attachments=any(True for _ in msg.iter_attachments()),
        replied_subject=bool(_REPLY_PREFIX.match(subject)),
    )


def _header(msg: EmailMessage, name: str) -> str:
    value = msg.get(name)
    return " ".join(str(value).split()) if value is not None else ""


def _addresses(msg: EmailMessage, name: str) -> list[str]:
    found: list[str] = []
    for header in msg.get_all(name) or []:
        # policy.default gives address headers parsed, with display names decoded and quoted as needed.
        found.extend(str(a) for a in getattr(header, "addresses", ()) if a.addr_spec)
    return found


def _date(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        moment = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _body_text(msg: EmailMessage) -> str:
    part = msg.get_body(preferencelist=("plain", "html"))
    if not isinstance(part, EmailMessage):
        return ""
    try:
        text = part.get_content()
    except (LookupError, UnicodeDecodeError):
        # An unknown or wrong charset: keep what can be read rather than dropping the message.
        payload = part.get_payload(decode=True)
        text = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else ""
    if not isinstance(text, str):
        return ""
    if part.get_content_type() == "text/html":
        text = html.unescape(_HTML_TAG.sub(" ", re.sub(r"<br\s*/?>|</p>", "\n", text, flags=re.I)))
    return text


def _own_lines(body: str) -> list[str]:
    """The lines the sender wrote: quoted text, attributions, greetings and signatures left out."""
    lines: list[str] = []
    for raw in body.splitlines():
        line = raw.strip()
        if _SIGNATURE_OR_FORWARD.match(raw.rstrip()) or _SIGNATURE_OR_FORWARD.match(line):
            break
        if lines and _SIGN_OFF.match(line):
            break  # what follows a closing line is the sender's name and signature
        if not line or line.startswith(">") or _ATTRIBUTION.match(line) or (not lines and _GREETING.match(line)):
            continue
        lines.append(" ".join(line.split()))
    return lines


def _excerpt(body: str, limit: int) -> str:
    text = " ".join(_own_lines(body))
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def _normalized_subject(subject: str) -> str:
    return " ".join(_REPLY_PREFIX.sub("", subject).split()).casefold()


def thread_ids(mails: list[Mail]) -> dict[str, str]:
    """Message id → thread id, joining messages through References and In-Reply-To.

    A reply that lost its headers joins the earliest message with the same subject. A thread's id is a
    short hash of its root (the first message its earliest message refers to), so it stays the same as
    replies arrive.
    """
    parent: dict[str, str] = {}

    def find(node: str) -> str:
        parent.setdefault(node, node)
        while parent[node] != node:
            parent[node] = parent[parent[node]]
            node = parent[node]
        return node

    def union(a: str, b: str) -> None:
        parent[find(a)] = find(b)

    in_order = sorted(mails, key=_sort_key)
    first_by_subject: dict[str, str] = {}
    for mail in in_order:
        find(mail.message_id)
        for ref in mail.references:
            union(mail.message_id, ref)
        subject = _normalized_subject(mail.subject)
        if subject:
            if not mail.references and mail.replied_subject and subject in first_by_subject:
                union(mail.message_id, first_by_subject[subject])
            first_by_subject.setdefault(subject, mail.message_id)
    roots: dict[str, str] = {}
    for mail in in_order:
        roots.setdefault(find(mail.message_id), mail.thread_root_guess)
    return {
        mail.message_id: "t-" + hashlib.sha256(roots[find(mail.message_id)].encode()).hexdigest()[:10] for mail in mails
    }


def _sort_key(mail: Mail) -> tuple[datetime, str]:
    return (mail.date or datetime.min.replace(tzinfo=UTC), mail.message_id)


def _summary(mail: Mail, thread_id: str) -> EmailSummary:
    return EmailSummary(
        message_id=mail.message_id,
        thread_id=thread_id,
        folder=mail.folder,
        date=local_iso(mail.date) if mail.date else None,
        sender=mail.sender,
        to=list(mail.to),
        cc=list(mail.cc),
        subject=mail.subject,
        snippet=_excerpt(mail.body, SNIPPET_CHARS),
        has_attachments=mail.has_attachments,
    )


@dataclass(frozen=True)
class Query:
    """A parsed search: every part must match (case-insensitive)."""

    words: tuple[str, ...] = ()
    fields: tuple[tuple[str, str], ...] = ()
    after: datetime | None = None
    before: datetime | None = None

    @classmethod
    def parse(cls, query: str) -> Query:
        words: list[str] = []
        fields: list[tuple[str, str]] = []
        after = before = None
        for match in _QUERY_TOKEN.finditer(query):
            name, value = (
                (match.group(1) or "").lower(),
                match.group(2) if match.group(2) is not None else match.group(3),
            )
            if name in ("after", "since", "before"):
                start = local_midnight(parse_when(value, f"{name}:", parameter="query").day)
                if name == "before":
                    before = start
                else:
                    after = start
            elif name in _QUERY_FIELDS:
                fields.append((name, value.casefold()))
            else:
                # "http://x" or "re:" are words, not fields this search knows.
                words.append(match.group(0).strip('"').casefold())
        return cls(tuple(w for w in words if w and w != "*"), tuple(fields), after, before)

    def matches(self, mail: Mail) -> bool:
        people = " ".join((mail.sender, *mail.to, *mail.cc)).casefold()
        texts = {
            "from": mail.sender.casefold(),
            "to": " ".join((*mail.to, *mail.cc)).casefold(),
            "subject": mail.subject.casefold(),
            "body": mail.body.casefold(),
        }
        everything = " ".join((people, texts["subject"], texts["body"]))
        if any(word not in everything for word in self.words):
            return False
        if any(value not in texts[name] for name, value in self.fields):
            return False
        if self.after is not None and (mail.date is None or mail.date < self.after):
            return False
        return self.before is None or (mail.date is not None and mail.date < self.before)


# Drafts and sending


class DraftStore:
    """Drafts and the outbox in one SQLite file, created with its schema on first use."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one transaction: committed when the block ends, rolled back on error."""
        with sqlite_transaction(self.path, _SCHEMA, foreign_keys=True) as conn:
            yield conn

    def get(self, draft_id: int) -> sqlite3.Row | None:
        with self.connect() as conn:
            row: sqlite3.Row | None = conn.execute(
                "SELECT d.*, o.last_error FROM drafts d LEFT JOIN outbox o USING (draft_id) WHERE d.draft_id = ?",
                (draft_id,),
            ).fetchone()
            return row

    def queue(self, draft_id: int, reason: str, *, attempted: bool) -> None:
        """Put the draft in the outbox (or update its entry) with why it is not sent."""
        now = _now()
        with self.connect() as conn:
            conn.execute("UPDATE drafts SET status = 'queued' WHERE draft_id = ?", (draft_id,))
            conn.execute(
                "INSERT INTO outbox (draft_id, queued_at, attempts, last_attempt_at, last_error) "
                "VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (draft_id) DO UPDATE SET attempts = attempts + excluded.attempts, "
                "last_attempt_at = COALESCE(excluded.last_attempt_at, last_attempt_at), "
                "last_error = excluded.last_error",
                (draft_id, now, int(attempted), now if attempted else None, reason),
            )

    def mark_sent(self, draft_id: int, message_id: str) -> None:
        with self.connect() as conn:
            conn.execute(
                "UPDATE drafts SET status = 'sent', sent_at = ?, message_id = ? WHERE draft_id = ?",
                (_now(), message_id, draft_id),
            )
            conn.execute("DELETE FROM outbox WHERE draft_id = ?", (draft_id,))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _draft_key(draft_id: int) -> str:
    return f"draft-{draft_id}"


def _parse_draft_id(raw: str) -> int:
    match = re.fullmatch(r"\s*(?:draft[-_ ]?|#)?(\d+)\s*", raw, re.IGNORECASE)
    if match is None:
        raise ToolError(
            f"draft_id {raw!r} is not a draft id. Ids look like draft-3; email.list_drafts shows them.",
            correction=Correction(f"{raw!r} is not a draft id", parameter="draft_id"),
        )
    return int(match.group(1))


def valid_addresses(values: list[str], what: str) -> list[str]:
    """Each entry as 'Name <address>' or 'address'; a tool error names the first invalid one."""
    found: list[str] = []
    for raw in values:
        if "\r" in raw or "\n" in raw:
            raise ToolError(
                f"{what}: {raw!r} contains a line break; give one address per entry.",
                correction=Correction(f"{raw!r} contains a line break", parameter=what),
            )
        pairs = email.utils.getaddresses([raw])
        if not pairs or not all(_ADDRESS.match(address) for _, address in pairs):
            raise ToolError(
                f"{what}: {raw!r} is not an email address. Give full addresses like name@example.com "
                "(or 'Name <name@example.com>'); email.search_emails can find someone's address in past mail.",
                correction=Correction(f"{raw!r} is not an email address", parameter=what),
            )
        found.extend(str(Address(display_name=name, addr_spec=address)) for name, address in pairs)
    return found


def _compose(row: sqlite3.Row, sender: str) -> EmailMessage:
    msg = EmailMessage()
    if sender:
        msg["From"] = sender
    msg["To"] = ", ".join(json.loads(row["to_addrs"]))
    cc = json.loads(row["cc_addrs"])
    if cc:
        msg["Cc"] = ", ".join(cc)
    msg["Subject"] = row["subject"]
    msg["Date"] = email.utils.formatdate(localtime=True)
    domain = email.utils.parseaddr(sender)[1].rpartition("@")[2] or None
    msg["Message-ID"] = email.utils.make_msgid(domain=domain)
    msg.set_content(row["body"])
    return msg


def _preview(row: sqlite3.Row) -> str:
    msg = _compose(row, "")
    headers = "".join(f"{name}: {msg[name]}\n" for name in ("To", "Cc", "Subject") if msg[name] is not None)
    body = row["body"] if len(row["body"]) <= PREVIEW_CHARS else row["body"][:PREVIEW_CHARS] + "..."
    return f"{headers}\n{body}"


def _to_draft(row: sqlite3.Row) -> Draft:
    body = " ".join(row["body"].split())
    return Draft(
        draft_id=_draft_key(row["draft_id"]),
        to=json.loads(row["to_addrs"]),
        cc=json.loads(row["cc_addrs"]),
        subject=row["subject"],
        body_preview=body[:SNIPPET_CHARS],
        status=row["status"],
        created_at=row["created_at"],
        not_sent_reason=row["last_error"] if row["status"] == "queued" else None,
    )


def _deliver(config: EmailSettings, msg: EmailMessage, recipients: list[str]) -> list[str]:
    """Hand the message to the SMTP server; the recipients it refused (it accepted at least one)."""
    smtp = smtplib.SMTP(config.smtp_host, config.smtp_port, timeout=config.smtp_timeout_seconds)
    try:
        if config.smtp_starttls:
            smtp.starttls(context=ssl.create_default_context())
        if config.smtp_user:
            smtp.login(config.smtp_user, config.smtp_password.get_secret_value())
        refused = smtp.send_message(msg, to_addrs=recipients)
    finally:
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            # Once the message is accepted, a failed goodbye changes nothing; the connection is dropped.
            smtp.close()
    return sorted(refused)


# A draft's envelope as a resource: what `send_draft`'s preview shows (see `kit.Effects.preview_from`).
DRAFT_RESOURCE = "draft://{draft_id}"


def build_server(settings: ToolHostSettings, mail: EmailSettings | None = None) -> MCPServer:
    """The email server: drafts in `<state_dir>/email.db`, mail read from `mail.mailbox`."""
    config = mail if mail is not None else EmailSettings()
    drafts = DraftStore(settings.state_dir / DB_NAME)
    sandbox = settings.sandbox()
    server = MCPServer(
        SERVER_NAME,
        instructions="Email: write and list drafts, send a draft, search local mail and summarise a thread.",
    )

    def archive() -> MailArchive:
        if not config.mailbox.strip():
            raise ToolError(
                "No mailbox is configured. Set SWITCHBOARD_MAILBOX to an mbox file or a Maildir folder inside "
                f"the allowed folders ({', '.join(str(r) for r in sandbox.roots)}) and restart the tool host."
            )
        try:
            root = sandbox.resolve(config.mailbox)
        except InvalidRequest as exc:
            raise ToolError(f"The configured mailbox (SWITCHBOARD_MAILBOX) cannot be used: {exc}") from exc
        if not root.exists():
            raise ToolError(
                f"The configured mailbox {root} does not exist. Fix SWITCHBOARD_MAILBOX (an mbox file or Maildir)."
            )
        return MailArchive(root)

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=False,
            idempotent=False,
            preview="Draft an email to {to}[ (cc {cc})]: “{subject}” (not sent)",
        ),
    )
    def draft_email(
        to: Annotated[list[str], Field(description="Recipient addresses, e.g. ['ana@example.com'].")],
        subject: Annotated[str, Field(description="The subject line.")],
        body: Annotated[str, Field(description="The message text (Markdown is fine; it is sent as plain text).")],
        cc: Annotated[list[str] | None, Field(description="Addresses to copy in. Omit for none.")] = None,
    ) -> DraftCreated:
        """Compose an email and keep it as a draft; nothing is sent. Returns the draft id and a preview.

        Sending is a separate step: email.send_draft with the draft id. To see saved drafts use
        email.list_drafts; to find someone's address in past mail use email.search_emails.
        """
        recipients = valid_addresses(to, "to")
        if not recipients:
            raise ToolError(
                "to is empty. Give at least one recipient address, e.g. ['ana@example.com'].",
                correction=Correction("to is empty", parameter="to"),
            )
        copies = valid_addresses(cc or [], "cc")
        if not subject.strip() or "\n" in subject or "\r" in subject:
            raise ToolError(
                "subject must be one non-empty line. Give a short subject.",
                correction=Correction(
                    "subject is not one non-empty line",
                    parameter="subject",
                    suggested_value=" ".join(subject.split()) or None,
                ),
            )
        if not body.strip():
            raise ToolError(
                "body is empty. Write the message text.", correction=Correction("body is empty", parameter="body")
            )
        with drafts.connect() as conn:
            cursor = conn.execute(
                "INSERT INTO drafts (to_addrs, cc_addrs, subject, body, created_at) VALUES (?, ?, ?, ?, ?)",
                (json.dumps(recipients), json.dumps(copies), subject.strip(), body, _now()),
            )
            draft_id = cursor.lastrowid
        assert draft_id is not None
        row = drafts.get(draft_id)
        assert row is not None
        log.info("saved draft %d to %s", draft_id, recipients)
        return DraftCreated(
            draft_id=_draft_key(draft_id),
            preview=_preview(row),
            note=f"Saved as a draft; nothing was sent. email.send_draft with draft_id {_draft_key(draft_id)} sends it.",
        )

    @server.resource(
        DRAFT_RESOURCE,
        name="draft",
        description="One saved draft's recipients and subject, as JSON (what a preview of sending it shows).",
        mime_type="application/json",
    )
    def draft_envelope(draft_id: str) -> str:
        row = drafts.get(_parse_draft_id(draft_id))
        if row is None:
            raise ToolError(f"There is no draft {draft_id}; email.list_drafts shows the drafts there are.")
        draft = _to_draft(row)
        return json.dumps({"to": draft.to, "cc": draft.cc, "subject": draft.subject, "status": draft.status})

    @tool(server, Effects.reads())
    def list_drafts(
        limit: Annotated[int, Field(ge=1, le=MAX_RESULTS, description="Most drafts to return, newest first.")] = 20,
    ) -> DraftList:
        """List the saved email drafts that have not been sent, newest first, with their ids.

        A draft with status queued was given to email.send_draft but could not be sent yet (the reason
        is shown). To read received mail use email.search_emails.
        """
        with drafts.connect() as conn:
            rows = conn.execute(
                "SELECT d.*, o.last_error FROM drafts d LEFT JOIN outbox o USING (draft_id) "
                "WHERE d.status != 'sent' ORDER BY d.draft_id DESC"
            ).fetchall()
        return DraftList(drafts=[_to_draft(r) for r in rows[:limit]], total=len(rows))

    @tool(server, Effects.reads())
    def search_emails(
        query: Annotated[
            str,
            Field(
                description=(
                    "Words that must all appear (sender, recipients, subject or text). Also from:, to:, subject:, "
                    'body:, after:2024-05-01, before:2024-06-01; quote phrases: "project plan". * lists all.'
                )
            ),
        ],
        folder: Annotated[
            str | None, Field(description="Mail folder to search, e.g. inbox or sent. Omit to search all folders.")
        ] = None,
        limit: Annotated[int, Field(ge=1, le=MAX_RESULTS, description="Most messages to return, newest first.")] = 20,
    ) -> SearchResults:
        """Search the local mail archive for messages, newest first, with sender, subject and a snippet.

        Each result has a thread_id; pass it to email.summarize_thread for the whole conversation.
        For drafts you wrote use email.list_drafts.
        """
        store = archive()
        chosen = store.pick(folder)
        search = Query.parse(query)
        everything, unreadable = store.read(store.folders())
        threads = thread_ids(everything)
        found = sorted((m for m in everything if m.folder in chosen and search.matches(m)), key=_sort_key, reverse=True)
        return SearchResults(
            query=query,
            folders=list(chosen),
            results=[_summary(m, threads[m.message_id]) for m in found[:limit]],
            total_matches=len(found),
            truncated=len(found) > limit,
            unreadable=unreadable,
        )

    @tool(server, Effects.reads())
    def summarize_thread(
        thread_id: Annotated[
            str, Field(description="A thread_id from email.search_emails (like t-1a2b3c4d5e), or a Message-ID.")
        ],
    ) -> ThreadSummary:
        """Summarise one email conversation: who took part, when, how many messages, and what each said first.

        Find the thread_id with email.search_emails first. The summary is taken from the messages'
        own lines, not invented.
        """
        store = archive()
        everything, _ = store.read(store.folders())
        threads = thread_ids(everything)
        wanted = thread_id.strip().strip("<>")
        target = wanted if wanted in threads.values() else threads.get(wanted)
        members = sorted((m for m in everything if threads[m.message_id] == target), key=_sort_key)
        if not members:
            raise ToolError(
                f"No thread {thread_id!r} in the mailbox. Get a thread_id from the results of email.search_emails.",
                correction=Correction(f"no thread {thread_id!r}", parameter="thread_id"),
            )
        # The same message can sit in two folders (mail sent to oneself); count it once.
        unique: dict[str, Mail] = {}
        for mail in members:
            unique.setdefault(mail.message_id, mail)
        members = list(unique.values())
        participants: dict[str, str] = {}
        for mail in members:
            for person in (mail.sender, *mail.to, *mail.cc):
                address = email.utils.parseaddr(person)[1].casefold()
                if address and (address not in participants or "<" not in participants[address]):
                    participants[address] = person
        dated = [m.date for m in members if m.date is not None]
        first, last = (min(dated), max(dated)) if dated else (None, None)
        key_points = [
            f"{_when(m.date)}, {m.sender or 'unknown sender'}: {_excerpt(m.body, KEY_POINT_CHARS) or '(no text)'}"
            for m in members
        ]
        subject = _REPLY_PREFIX.sub("", members[0].subject).strip() or "(no subject)"
        span = f" from {_when(first)} to {_when(last)}" if first and last and first != last else ""
        if first and not span:
            span = f" on {_when(first)}"
        names = [email.utils.parseaddr(p)[0] or email.utils.parseaddr(p)[1] for p in participants.values()]
        opening, latest = members[0], members[-1]
        summary = (
            f'Thread "{subject}": {len(members)} message{"s" if len(members) != 1 else ""}{span} '
            f"between {', '.join(names) or 'unknown people'}. "
            f'It starts with {_short_name(opening.sender)}: "{_excerpt(opening.body, KEY_POINT_CHARS)}"'
        )
        if latest is not opening:
            summary += f' The latest, from {_short_name(latest.sender)}: "{_excerpt(latest.body, KEY_POINT_CHARS)}"'
        return ThreadSummary(
            thread_id=target or thread_id,
            subject=subject,
            message_count=len(members),
            first_date=local_iso(first) if first else None,
            last_date=local_iso(last) if last else None,
            participants=list(participants.values()),
            summary=summary,
            key_points=key_points,
            messages=[_summary(m, threads[m.message_id]) for m in members],
        )

    @tool(
        server,
        Effects.changes(
            destructive=True,
            undoable=False,
            idempotent=False,
            open_world=True,
            preview="Send the email to {to}: “{subject}” (a sent email cannot be taken back)",
            target="to|draft_id",
            preview_from=DRAFT_RESOURCE,
        ),
    )
    def send_draft(
        draft_id: Annotated[str, Field(description="The draft to send, like draft-3, from email.draft_email.")],
    ) -> SendResult:
        """Send a saved draft by email (SMTP). This cannot be undone once the mail server accepts it.

        Write the draft first with email.draft_email; email.list_drafts shows draft ids. Without a
        configured mail server the draft is kept in the outbox and NOT sent.
        """
        number = _parse_draft_id(draft_id)
        key = _draft_key(number)
        row = drafts.get(number)
        if row is None:
            raise ToolError(
                f"There is no draft {key}. email.list_drafts shows the saved drafts and their ids.",
                correction=Correction(f"no draft {key}", parameter="draft_id"),
            )
        if row["status"] == "sent":
            raise ToolError(
                f"{key} was already sent at {row['sent_at']} (Message-ID {row['message_id']}). It is not sent twice; "
                "write a new draft with email.draft_email to send it again.",
                correction=Correction(f"{key} was already sent", parameter="draft_id"),
            )

        def not_sent(reason: str, *, attempted: bool) -> SendResult:
            drafts.queue(number, reason, attempted=attempted)
            log.warning("%s not sent: %s", key, reason)
            return SendResult(
                success=False,
                sent=False,
                status="queued",
                draft_id=key,
                message_id="",
                message=f"{key} was NOT sent: {reason} It waits in the outbox; call email.send_draft again to retry.",
            )

        if not config.smtp_host.strip():
            return not_sent(
                "no mail server is configured (set SWITCHBOARD_SMTP_HOST, SWITCHBOARD_SMTP_PORT, "
                "SWITCHBOARD_SMTP_FROM and, if the server needs a login, SWITCHBOARD_SMTP_USER and "
                "SWITCHBOARD_SMTP_PASSWORD).",
                attempted=False,
            )
        sender = config.smtp_from or config.smtp_user
        if not _ADDRESS.match(email.utils.parseaddr(sender)[1]):
            return not_sent(
                f"the sender address {sender!r} is not valid; set SWITCHBOARD_SMTP_FROM to your address.",
                attempted=False,
            )
        msg = _compose(row, sender)
        recipients = [email.utils.parseaddr(a)[1] for a in (*json.loads(row["to_addrs"]), *json.loads(row["cc_addrs"]))]
        try:
            refused = _deliver(config, msg, recipients)
        except (smtplib.SMTPException, OSError) as exc:
            return not_sent(
                f"the mail server {config.smtp_host}:{config.smtp_port} did not take it ({exc}).", attempted=True
            )
        message_id = str(msg["Message-ID"])
        drafts.mark_sent(number, message_id)
        log.info("sent %s as %s", key, message_id)
        text = f"{key} was sent to {', '.join(recipients)} (Message-ID {message_id})."
        if refused:
            text += f" The server refused these recipients, who will not get it: {', '.join(refused)}."
        return SendResult(
            success=True,
            sent=True,
            status="sent",
            draft_id=key,
            message_id=message_id,
            message=text,
            refused_recipients=refused,
        )

    return server


def _when(moment: datetime | None) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M") if moment else "undated"


def _short_name(sender: str) -> str:
    name, address = email.utils.parseaddr(sender)
    return name or address or "an unknown sender"


def main() -> None:
    """Serve the email tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
