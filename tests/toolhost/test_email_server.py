"""The email MCP server, through the SDK's in-memory client, on real mbox and Maildir files written with
the stdlib `mailbox` module and a real (tiny, stdlib-socket) SMTP server for sending."""

from __future__ import annotations

import base64
import functools
import mailbox
import re
import socket
import socketserver
import sqlite3
import threading
from collections.abc import Iterator
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from services.toolhost.servers import META_DESTRUCTIVE
from services.toolhost.servers.email import EmailSettings, build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import BuildServer, assert_matches_contract, connected, ok, refused, stdio_parameters

# mail fixtures


def message(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    msgid: str | None,
    date: str | None,
    cc: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    html: bool = False,
) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    if date:
        msg["Date"] = date
    if msgid:
        msg["Message-ID"] = msgid
    if in_reply_to:
        msg["In-Reply-To"] = in_reply_to
    if references:
        msg["References"] = references
    if html:
        msg.set_content(body, subtype="html")
    else:
        msg.set_content(body)
    return msg


ALICE = "Alice Example <alice@example.com>"
BOB = "Bob Builder <bob@example.com>"
CAROL = "carol@example.com"


def budget_opening() -> EmailMessage:
    msg = message(
        ALICE,
        BOB,
        "Q3 budget",
        "Hi Bob,\n\nThe Q3 budget draft is attached for review.\nPlease send comments by Friday.\n\n"
        "Thanks,\nAlice\n-- \nAlice Example, Finance\n",
        msgid="<m1@example.com>",
        date="Wed, 01 May 2030 09:00:00 +0000",
        cc=CAROL,
    )
    msg.add_attachment(b"a,b\n1,2\n", maintype="text", subtype="csv", filename="budget.csv")
    return msg


def budget_reply() -> EmailMessage:
    return message(
        BOB,
        ALICE,
        "Re: Q3 budget",
        "The travel line looks too high.\n\nOn Wed, 1 May 2030 at 09:00, Alice Example <alice@example.com> wrote:\n"
        "> The Q3 budget draft is attached for review.\n",
        msgid="<m2@example.com>",
        date="Thu, 02 May 2030 10:30:00 +0000",
        in_reply_to="<m1@example.com>",
        references="<m1@example.com>",
    )


def budget_answer() -> EmailMessage:
    # Only In-Reply-To, pointing at the reply: threading must follow the chain back to m1.
    return message(
        ALICE,
        BOB,
        "Re: Re: Q3 budget",
        "Agreed, I cut travel by 10%.\n",
        msgid="<m3@example.com>",
        date="Fri, 03 May 2030 08:00:00 +0000",
        in_reply_to="<m2@example.com>",
    )


def headerless_reply() -> EmailMessage:
    # No Message-ID and no threading headers: joins the thread by its "RE:" subject.
    return message(
        CAROL,
        ALICE,
        "RE: Q3 budget",
        "Fine by me.\n",
        msgid=None,
        date="Sat, 04 May 2030 12:00:00 +0000",
    )


def lunch() -> EmailMessage:
    return message(
        "Dave <dave@example.org>",
        ALICE,
        "Lunch on Friday?",
        "<html><body><p>Are you free for <b>lunch</b>?</p><style>p {color: red}</style></body></html>",
        msgid="<m4@example.org>",
        date="Sat, 20 Apr 2030 12:00:00 +0200",
        html=True,
    )


def newsletter() -> EmailMessage:
    return message("news@example.net", ALICE, "Newsletter", "Monthly news.\n", msgid="<m6@example.net>", date=None)


def write_mbox(path: Path, messages: list[EmailMessage]) -> Path:
    box = mailbox.mbox(path)
    try:
        for msg in messages:
            box.add(msg)
        box.flush()
    finally:
        box.close()
    return path


@pytest.fixture
def mbox(root: Path) -> Path:
    return write_mbox(
        root / "inbox.mbox",
        [budget_opening(), budget_reply(), budget_answer(), headerless_reply(), lunch(), newsletter()],
    )


@pytest.fixture
def maildir(root: Path) -> Path:
    """Bob's Maildir: Alice's messages in the inbox, his reply in the Maildir++ folder .Sent."""
    path = root / "Maildir"
    inbox = mailbox.Maildir(path, create=True)
    inbox.add(budget_opening())
    inbox.add(budget_answer())
    inbox.add_folder("Sent").add(budget_reply())
    return path


def with_mail(**fields: Any) -> BuildServer:
    return functools.partial(build_server, mail=EmailSettings(**fields))


# SMTP


class SmtpSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP to accept mail: EHLO, AUTH PLAIN, MAIL, RCPT (refusing nobody@...), DATA, QUIT."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SmtpSession)
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.logins: list[tuple[str, str]] = []

    @property
    def port(self) -> int:
        return int(self.server_address[1])


class SmtpSession(socketserver.StreamRequestHandler):
    server: SmtpSink

    def reply(self, line: str) -> None:
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self) -> None:
        self.reply("220 sink ESMTP")
        sender, recipients = "", []
        for raw in self.rfile:
            line = raw.decode().rstrip("\r\n")
            verb = line.split(" ", 1)[0].upper()
            address = re.search(r"<([^>]*)>", line)
            if verb == "EHLO":
                self.wfile.write(b"250-sink\r\n250-AUTH PLAIN\r\n250 8BITMIME\r\n")
            elif verb == "AUTH":
                _, user, password = base64.b64decode(line.split()[2]).decode().split("\0")
                self.server.logins.append((user, password))
                self.reply("235 2.7.0 Authentication successful")
            elif verb == "MAIL" and address:
                sender, recipients = address.group(1), []
                self.reply("250 OK")
            elif verb == "RCPT" and address:
                if address.group(1).startswith("nobody@"):
                    self.reply("550 5.1.1 No such user")
                else:
                    recipients.append(address.group(1))
                    self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                lines = []
                for data in self.rfile:
                    if data == b".\r\n":
                        break
                    lines.append(data[1:] if data.startswith(b"..") else data)
                self.server.messages.append((sender, recipients, b"".join(lines)))
                self.reply("250 OK queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("250 OK")


@pytest.fixture
def smtp() -> Iterator[SmtpSink]:
    sink = SmtpSink()
    thread = threading.Thread(target=sink.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    yield sink
    sink.shutdown()
    sink.server_close()
    thread.join()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def outbox(settings: ToolHostSettings) -> list[tuple[int, int, str]]:
    conn = sqlite3.connect(settings.state_dir / "email.db")
    try:
        return conn.execute("SELECT draft_id, attempts, last_error FROM outbox ORDER BY draft_id").fetchall()
    finally:
        conn.close()


async def a_draft(build: BuildServer, settings: ToolHostSettings, **fields: Any) -> str:
    arguments = {"to": ["ana@example.com"], "subject": "Minutes", "body": "Notes from **today**.", **fields}
    created = await ok(build, settings, "draft_email", **arguments)
    draft_id = created["draft_id"]
    assert isinstance(draft_id, str)
    return draft_id


# tools/list


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "email")
    async with connected(build_server, settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    for name, tool in tools.items():
        assert tool.meta is not None and tool.meta[META_DESTRUCTIVE] is (name == "send_draft"), name
        assert tool.annotations is not None and tool.annotations.destructive_hint is (name == "send_draft"), name
        assert tool.annotations.read_only_hint is (name in {"list_drafts", "search_emails", "summarize_thread"})
    assert tools["list_drafts"].input_schema["properties"]["limit"]["default"] == 20
    assert tools["search_emails"].input_schema["properties"]["limit"]["default"] == 20


# drafts


async def test_draft_email_saves_a_draft_and_shows_a_preview(settings: ToolHostSettings) -> None:
    created = await ok(
        build_server,
        settings,
        "draft_email",
        to=['"Doe, Jane" <jane@example.com>', "ana@example.com, bo@example.com"],
        cc=["José <jose@example.es>"],
        subject="Minutes",
        body="# Minutes\n\n- budget approved\n",
    )
    assert created["draft_id"] == "draft-1"
    preview = created["preview"]
    assert '"Doe, Jane" <jane@example.com>, ana@example.com, bo@example.com' in preview
    assert "Cc: José <jose@example.es>" in preview and "Subject: Minutes" in preview
    assert preview.endswith("\n\n# Minutes\n\n- budget approved\n")
    assert "nothing was sent" in created["note"] and "email.send_draft" in created["note"]
    assert (await a_draft(build_server, settings)) == "draft-2"
    listing = await ok(build_server, settings, "list_drafts")
    assert [d["draft_id"] for d in listing["drafts"]] == ["draft-2", "draft-1"] and listing["total"] == 2
    first = listing["drafts"][1]
    assert first["to"] == ['"Doe, Jane" <jane@example.com>', "ana@example.com", "bo@example.com"]
    assert first["cc"] == ["José <jose@example.es>"] and first["status"] == "draft"
    assert first["body_preview"] == "# Minutes - budget approved" and first["not_sent_reason"] is None
    limited = await ok(build_server, settings, "list_drafts", limit=1)
    assert [d["draft_id"] for d in limited["drafts"]] == ["draft-2"] and limited["total"] == 2


async def test_draft_email_refusals(settings: ToolHostSettings) -> None:
    for fields, expected in [
        ({"to": ["Bob"]}, "'Bob' is not an email address"),
        ({"to": ["bob@localhost"]}, "not an email address"),
        ({"to": ["a@example.com"], "cc": ["not-an-address"]}, "cc: 'not-an-address'"),
        ({"to": []}, "at least one recipient"),
        ({"to": ["a@example.com\nBcc: x@example.com"]}, "line break"),
        ({"subject": "two\nlines"}, "one non-empty line"),
        ({"subject": " "}, "one non-empty line"),
        ({"body": "  "}, "body is empty"),
    ]:
        arguments = {"to": ["a@example.com"], "subject": "s", "body": "b", **fields}
        text = await refused(build_server, settings, "draft_email", **arguments)
        assert expected in text, (fields, text)
    assert "email.search_emails" in await refused(
        build_server, settings, "draft_email", to=["Bob"], subject="s", body="b"
    )
    assert (await ok(build_server, settings, "list_drafts"))["drafts"] == []


# send_draft


async def test_send_draft_without_smtp_queues_it_and_says_it_was_not_sent(settings: ToolHostSettings) -> None:
    draft_id = await a_draft(build_server, settings)
    result = await ok(build_server, settings, "send_draft", draft_id=draft_id)
    assert (result["success"], result["sent"], result["status"], result["message_id"]) == (False, False, "queued", "")
    assert "was NOT sent" in result["message"] and "SWITCHBOARD_SMTP_HOST" in result["message"]
    assert outbox(settings) == [(1, 0, outbox(settings)[0][2])] and "no mail server" in outbox(settings)[0][2]
    listing = await ok(build_server, settings, "list_drafts")
    assert listing["drafts"][0]["status"] == "queued"
    assert "SWITCHBOARD_SMTP_HOST" in listing["drafts"][0]["not_sent_reason"]
    # Asking again changes nothing: it is still queued, not sent.
    again = await ok(build_server, settings, "send_draft", draft_id="1")
    assert again["sent"] is False and len(outbox(settings)) == 1


async def test_send_draft_refusals(settings: ToolHostSettings) -> None:
    text = await refused(build_server, settings, "send_draft", draft_id="draft-7")
    assert "no draft draft-7" in text and "email.list_drafts" in text
    text = await refused(build_server, settings, "send_draft", draft_id="the minutes")
    assert "not a draft id" in text and "draft-3" in text


async def test_send_draft_over_smtp(settings: ToolHostSettings, smtp: SmtpSink) -> None:
    build = with_mail(
        smtp_host="127.0.0.1",
        smtp_port=smtp.port,
        smtp_starttls=False,
        smtp_user="me",
        smtp_password="secret",
        smtp_from="Me <me@example.com>",
    )
    draft_id = await a_draft(build, settings, to=["Ana <ana@example.com>"], cc=["nobody@example.com", CAROL])
    result = await ok(build, settings, "send_draft", draft_id=draft_id)
    assert (result["success"], result["sent"], result["status"]) == (True, True, "sent")
    assert result["refused_recipients"] == ["nobody@example.com"] and "nobody@example.com" in result["message"]
    assert re.fullmatch(r"<.+@example\.com>", result["message_id"])
    assert smtp.logins == [("me", "secret")]
    [(sender, recipients, data)] = smtp.messages
    assert sender == "me@example.com" and recipients == ["ana@example.com", "carol@example.com"]
    sent = message_from_bytes(data.replace(b"\r\n", b"\n"), policy=policy.default)
    assert sent["Subject"] == "Minutes" and sent["Message-ID"] == result["message_id"]
    assert sent["To"] == "Ana <ana@example.com>" and sent["From"] == "Me <me@example.com>"
    assert isinstance(sent, EmailMessage) and sent.get_content() == "Notes from **today**.\n"
    assert (await ok(build, settings, "list_drafts"))["drafts"] == [] and outbox(settings) == []
    text = await refused(build, settings, "send_draft", draft_id=draft_id)
    assert "already sent" in text and result["message_id"] in text
    assert len(smtp.messages) == 1


async def test_send_draft_that_the_server_does_not_take_stays_queued(
    settings: ToolHostSettings, smtp: SmtpSink
) -> None:
    nobody_listens = with_mail(smtp_host="127.0.0.1", smtp_port=closed_port(), smtp_from="me@example.com")
    draft_id = await a_draft(nobody_listens, settings)
    result = await ok(nobody_listens, settings, "send_draft", draft_id=draft_id)
    assert result["success"] is False and result["status"] == "queued" and "was NOT sent" in result["message"]
    assert "did not take it" in result["message"]
    # The sink offers no STARTTLS, and the default asks for it: refused rather than sent in the clear.
    tls_required = with_mail(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_from="me@example.com")
    result = await ok(tls_required, settings, "send_draft", draft_id=draft_id)
    assert result["sent"] is False and "STARTTLS" in result["message"]
    assert [(d, attempts) for d, attempts, _ in outbox(settings)] == [(1, 2)] and smtp.messages == []
    no_sender = with_mail(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False)
    result = await ok(no_sender, settings, "send_draft", draft_id=draft_id)
    assert result["sent"] is False and "SWITCHBOARD_SMTP_FROM" in result["message"]
    retry = with_mail(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_starttls=False, smtp_from="me@example.com")
    assert (await ok(retry, settings, "send_draft", draft_id=draft_id))["sent"] is True
    assert len(smtp.messages) == 1 and outbox(settings) == []


# search_emails


async def test_search_emails_in_an_mbox(settings: ToolHostSettings, mbox: Path) -> None:
    build = with_mail(mailbox=str(mbox))

    async def subjects(query: str, **extra: Any) -> list[str]:
        found = await ok(build, settings, "search_emails", query=query, **extra)
        return [r["subject"] for r in found["results"]]

    assert await subjects("budget") == ["RE: Q3 budget", "Re: Re: Q3 budget", "Re: Q3 budget", "Q3 budget"]
    assert await subjects("from:alice BUDGET") == ["Re: Re: Q3 budget", "Q3 budget"]
    assert await subjects('subject:"q3 budget" to:carol') == ["Q3 budget"]
    assert await subjects("travel after:2030-05-03") == ["Re: Re: Q3 budget"]
    assert await subjects("before:2030-05-01") == ["Lunch on Friday?"]
    assert await subjects("lunch", folder="INBOX") == ["Lunch on Friday?"]
    assert await subjects("nothing-like-this") == []
    everything = await ok(build, settings, "search_emails", query="*")
    assert everything["total_matches"] == 6 and everything["folders"] == ["inbox"] and everything["unreadable"] == 0
    assert everything["results"][-1]["subject"] == "Newsletter" and everything["results"][-1]["date"] is None
    limited = await ok(build, settings, "search_emails", query="budget", limit=1)
    assert len(limited["results"]) == 1 and limited["truncated"] is True and limited["total_matches"] == 4
    opening = (await ok(build, settings, "search_emails", query="attached from:alice"))["results"][0]
    assert opening["message_id"] == "m1@example.com" and opening["has_attachments"] is True
    assert opening["sender"] == ALICE and opening["to"] == [BOB] and opening["cc"] == [CAROL]
    assert opening["snippet"].startswith("The Q3 budget draft is attached for review.")
    assert "Finance" not in opening["snippet"] and opening["date"] is not None
    html = (await ok(build, settings, "search_emails", query="lunch"))["results"][0]
    assert html["snippet"] == "Are you free for lunch ?"
    reply = (await ok(build, settings, "search_emails", query="subject:re: from:bob"))["results"][0]
    assert reply["snippet"] == "The travel line looks too high."
    threads = {r["subject"]: r["thread_id"] for r in everything["results"]}
    assert len({threads[s] for s in ("Q3 budget", "Re: Q3 budget", "Re: Re: Q3 budget", "RE: Q3 budget")}) == 1
    assert threads["Lunch on Friday?"] != threads["Q3 budget"]
    text = await refused(build, settings, "search_emails", query="x", folder="sent")
    assert "no mail folder 'sent'" in text and "inbox" in text
    assert "ISO 8601" in await refused(build, settings, "search_emails", query="after:yesterdayish")


async def test_search_emails_in_a_maildir_with_folders(settings: ToolHostSettings, maildir: Path) -> None:
    build = with_mail(mailbox=str(maildir))
    everything = await ok(build, settings, "search_emails", query="budget")
    assert everything["folders"] == ["inbox", "Sent"]
    assert [(r["folder"], r["message_id"]) for r in everything["results"]] == [
        ("inbox", "m3@example.com"),
        ("Sent", "m2@example.com"),
        ("inbox", "m1@example.com"),
    ]
    sent = await ok(build, settings, "search_emails", query="budget", folder="sent")
    assert [r["message_id"] for r in sent["results"]] == ["m2@example.com"]
    assert len({r["thread_id"] for r in everything["results"]}) == 1
    summary = await ok(build, settings, "summarize_thread", thread_id=sent["results"][0]["thread_id"])
    assert summary["message_count"] == 3 and [m["folder"] for m in summary["messages"]] == ["inbox", "Sent", "inbox"]


async def test_search_emails_in_a_folder_of_mailboxes(settings: ToolHostSettings, root: Path) -> None:
    mail = root / "Mail"
    mail.mkdir()
    write_mbox(mail / "inbox.mbox", [lunch()])
    write_mbox(mail / "sent", [budget_reply()])
    mailbox.Maildir(mail / "Work", create=True).add(budget_opening())
    (mail / "notes.txt").write_text("not mail\n")
    build = with_mail(mailbox=str(mail))
    found = await ok(build, settings, "search_emails", query="*")
    assert found["folders"] == ["Work", "inbox", "sent"] and found["total_matches"] == 3
    work = await ok(build, settings, "search_emails", query="*", folder="work")
    assert [r["subject"] for r in work["results"]] == ["Q3 budget"]
    assert "Work, inbox, sent" in await refused(build, settings, "search_emails", query="*", folder="notes")


async def test_the_mailbox_must_be_configured_and_inside_the_roots(
    settings: ToolHostSettings, root: Path, tmp_path: Path
) -> None:
    text = await refused(build_server, settings, "search_emails", query="budget")
    assert "No mailbox is configured" in text and "SWITCHBOARD_MAILBOX" in text and str(root) in text
    assert "SWITCHBOARD_MAILBOX" in await refused(build_server, settings, "summarize_thread", thread_id="t-1")
    outside = write_mbox(tmp_path / "secret.mbox", [lunch()])
    text = await refused(with_mail(mailbox=str(outside)), settings, "search_emails", query="lunch")
    assert "outside the allowed folders" in text and str(root) in text
    escape = str(root / ".." / "secret.mbox")
    assert "outside the allowed folders" in await refused(
        with_mail(mailbox=escape), settings, "search_emails", query="*"
    )
    text = await refused(with_mail(mailbox=str(root / "missing.mbox")), settings, "search_emails", query="*")
    assert "does not exist" in text
    (root / "notes.txt").write_text("not mail\n")
    text = await refused(with_mail(mailbox=str(root / "notes.txt")), settings, "search_emails", query="*")
    assert "is not an mbox file" in text
    (root / "empty").mkdir()
    text = await refused(with_mail(mailbox=str(root / "empty")), settings, "search_emails", query="*")
    assert "holds no mbox files or Maildir folders" in text


# summarize_thread


async def test_summarize_thread(settings: ToolHostSettings, mbox: Path) -> None:
    build = with_mail(mailbox=str(mbox))
    found = await ok(build, settings, "search_emails", query="subject:q3")
    thread_id = found["results"][0]["thread_id"]
    summary = await ok(build, settings, "summarize_thread", thread_id=thread_id)
    assert summary["thread_id"] == thread_id and summary["subject"] == "Q3 budget"
    assert summary["message_count"] == 4
    assert summary["participants"] == [ALICE, BOB, CAROL]
    assert summary["first_date"] is not None and summary["first_date"][:10] in ("2030-05-01", "2030-04-30")
    assert [m["message_id"] for m in summary["messages"]][:3] == ["m1@example.com", "m2@example.com", "m3@example.com"]
    points = summary["key_points"]
    assert len(points) == 4
    assert "Alice Example <alice@example.com>: The Q3 budget draft is attached for review." in points[0]
    assert "Please send comments by Friday." in points[0]
    assert "Hi Bob" not in points[0] and "Thanks" not in points[0] and "Finance" not in points[0]
    assert points[1].endswith("Bob Builder <bob@example.com>: The travel line looks too high.")
    assert points[2].endswith(": Agreed, I cut travel by 10%.") and points[3].endswith(": Fine by me.")
    text = summary["summary"]
    assert text.startswith('Thread "Q3 budget": 4 messages from ')
    assert "between Alice Example, Bob Builder, carol@example.com" in text
    assert 'It starts with Alice Example: "The Q3 budget draft is attached for review. Please send' in text
    assert text.endswith('The latest, from carol@example.com: "Fine by me."')
    by_message_id = await ok(build, settings, "summarize_thread", thread_id="<m3@example.com>")
    assert by_message_id["thread_id"] == thread_id and by_message_id["message_count"] == 4
    single = await ok(build, settings, "summarize_thread", thread_id="m6@example.net")
    assert single["message_count"] == 1 and single["first_date"] is None and "undated" in single["key_points"][0]
    text = await refused(build, settings, "summarize_thread", thread_id="t-0000000000")
    assert "No thread 't-0000000000'" in text and "email.search_emails" in text


async def test_drafts_are_sqlite_in_wal_mode(settings: ToolHostSettings) -> None:
    await a_draft(build_server, settings)
    conn = sqlite3.connect(settings.state_dir / "email.db")
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    finally:
        conn.close()


async def test_server_runs_over_stdio(settings: ToolHostSettings, root: Path, mbox: Path) -> None:
    """`python -m services.toolhost.servers.email` (no clash with the stdlib's `email` package), with the
    mailbox named by SWITCHBOARD_MAILBOX."""
    params = stdio_parameters("email", settings, {"SWITCHBOARD_MAILBOX": str(mbox)})
    async with Client(params) as client:
        assert client.server_info is not None and client.server_info.name == "email"
        result = await client.call_tool("search_emails", {"query": "lunch"})
    assert not result.is_error and result.structured_content is not None
    assert [r["subject"] for r in result.structured_content["results"]] == ["Lunch on Friday?"]


def test_build_server_reads_the_mail_settings_from_the_environment(
    settings: ToolHostSettings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_SMTP_HOST", "mail.example.com")
    monkeypatch.setenv("SWITCHBOARD_SMTP_STARTTLS", "false")
    config = EmailSettings()
    assert config.smtp_host == "mail.example.com" and config.smtp_starttls is False and config.smtp_port == 587
    assert isinstance(build_server(settings), MCPServer)
