"""Previews: what a call will do, from the tool's declared effects and the call's arguments."""

from __future__ import annotations

from switchboard.preview import Declared, preview, render, replaced_path, typed_matches
from switchboard.v1 import switchboard_pb2 as pb

MOVE = Declared(read_only=False, destructive=False, template="Move {source} → {destination}")
DELETE = Declared(
    read_only=False, destructive=True, template="Delete {path} (goes to the trash, can be undone)", target="path"
)
WRITE = Declared(read_only=False, destructive=False, template="Write {path}", overwrites=("path",))
DECRYPT = Declared(
    read_only=False,
    destructive=False,
    template="Decrypt {path}[ into {output_path}]",
    overwrites=("output_path", "path-.enc"),
)
LIST = Declared(read_only=True, destructive=False, template="List {path}")


def nothing_exists(_path: str) -> bool:
    return False


def test_a_change_is_said_plainly_and_asks_for_a_click() -> None:
    shown = preview("filesystem.move_file", MOVE, {"source": "/d/a.txt", "destination": "/d/b.txt"}, nothing_exists)
    assert shown.text == "Move /d/a.txt → /d/b.txt"
    assert shown.tier == pb.CONFIRM_TIER_CONFIRM
    assert shown.target == ""


def test_a_destructive_call_asks_for_its_target_typed() -> None:
    shown = preview("filesystem.delete_file", DELETE, {"path": "/d/old notes.txt"}, nothing_exists)
    assert shown.text == "Delete /d/old notes.txt (goes to the trash, can be undone)"
    assert shown.tier == pb.CONFIRM_TIER_TYPED
    assert shown.target == "old notes.txt"
    assert typed_matches(shown, " old notes.txt ")
    assert typed_matches(shown, "/d/old notes.txt", {"path": "/d/old notes.txt"})
    assert not typed_matches(shown, "old notes")
    assert not typed_matches(shown, "")


def test_writing_over_a_file_that_is_there_is_an_overwrite_asked_like_a_delete() -> None:
    new = preview("filesystem.write_file", WRITE, {"path": "/d/c.txt", "content": "x"}, nothing_exists)
    assert (new.text, new.tier) == ("Write /d/c.txt", pb.CONFIRM_TIER_CONFIRM)
    there = preview("filesystem.write_file", WRITE, {"path": "/d/c.txt", "content": "x"}, lambda p: p == "/d/c.txt")
    assert there.text == "Overwrite /d/c.txt (the old version is kept in the trash)"
    assert (there.tier, there.target) == (pb.CONFIRM_TIER_TYPED, "c.txt")


def test_a_derived_output_path_counts_as_what_the_call_replaces() -> None:
    exists = {"/d/report.pdf"}.__contains__
    shown = preview("security.decrypt_file", DECRYPT, {"path": "/d/report.pdf.enc"}, exists)
    assert shown.text == "Decrypt /d/report.pdf.enc; overwrites /d/report.pdf (the old version is kept in the trash)"
    assert (shown.tier, shown.target) == (pb.CONFIRM_TIER_TYPED, "report.pdf")
    assert replaced_path(DECRYPT.overwrites, {"path": "/d/plain.txt"}) == []
    assert replaced_path(DECRYPT.overwrites, {"path": "/d/a.enc", "output_path": "/e/b"}) == ["/e/b"]


def test_optional_parts_drop_out_and_missing_values_show_as_a_question_mark() -> None:
    assert render("Decrypt {path}[ into {output_path}]", {"path": "/a.enc"}) == "Decrypt /a.enc"
    assert render("Decrypt {path}[ into {output_path}]", {"path": "/a.enc", "output_path": "/b"}) == (
        "Decrypt /a.enc into /b"
    )
    assert render("Send {to}", {}) == "Send ?"
    assert render("Email {to}", {"to": ["a@x.org", "b@y.org"]}) == "Email a@x.org, b@y.org"
    long = render("Put {content} there", {"content": "word " * 100})
    assert long.endswith("… there") and len(long) < 100


def test_a_read_runs_and_an_undeclared_tool_asks_with_everything_shown() -> None:
    assert preview("filesystem.list_dir", LIST, {"path": "/d"}, nothing_exists).tier == pb.CONFIRM_TIER_RUN
    unknown = preview("other.frobnicate", None, {"level": 3}, nothing_exists)
    assert (unknown.text, unknown.tier) == ("Run other.frobnicate with level=3", pb.CONFIRM_TIER_CONFIRM)


def test_a_typed_target_is_the_first_given_of_its_alternatives_and_an_address_is_typed_bare() -> None:
    send = Declared(read_only=False, destructive=True, template="Send to {to}", target="to|draft_id")
    by_envelope = preview("email.send_draft", send, {"draft_id": "draft-2", "to": ["Ana <ana@x.org>"]}, nothing_exists)
    assert by_envelope.target == "ana@x.org"
    assert typed_matches(by_envelope, "ana@x.org") and not typed_matches(by_envelope, "Ana")
    assert preview("email.send_draft", send, {"draft_id": "draft-2"}, nothing_exists).target == "draft-2"


def test_the_tier_alone_is_the_previews_tier() -> None:
    from switchboard.preview import declared_tier

    there = {"/d/c.txt"}.__contains__
    cases = [
        (MOVE, {"source": "/d/a", "destination": "/d/b"}, nothing_exists),
        (DELETE, {"path": "/d/b.txt"}, nothing_exists),
        (WRITE, {"path": "/d/c.txt", "content": "x"}, nothing_exists),
        (WRITE, {"path": "/d/c.txt", "content": "x"}, there),
        (LIST, {"path": "/d"}, nothing_exists),
        (None, {"level": 3}, nothing_exists),
    ]
    for declared, arguments, exists in cases:
        assert declared_tier(declared, arguments, exists) == preview("t.t", declared, arguments, exists).tier
