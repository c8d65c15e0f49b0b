"""Every tool that changes something says what it will do in terms of its own parameters."""

from __future__ import annotations

import json
import re

from services.toolhost.catalogue import read_catalogue
from switchboard.preview import overwrite_rule, preview
from switchboard.v1 import switchboard_pb2 as pb


async def test_every_change_has_a_preview_over_its_own_parameters() -> None:
    changes = [spec for spec in await read_catalogue() if spec.confirmation_required]
    assert len(changes) >= 20
    for spec in changes:
        properties = set(spec.input_schema.get("properties", {}))
        named = set(re.findall(r"\{(\w+)\}", spec.preview))
        assert spec.preview, spec.name
        assert {overwrite_rule(rule)[0] for rule in spec.overwrites} <= properties, spec.name
        if spec.destructive:
            assert set(spec.target.split("|")) & properties, spec.name
        if spec.preview_from:  # it may name the resource's fields too; they are checked with the server
            assert set(re.findall(r"\{(\w+)\}", spec.preview_from)) <= properties, spec.name
            continue
        assert named <= properties, (spec.name, named - properties)
        # With its required values given, nothing in the preview is left as a question mark.
        required = {name: f"/w/{name}.txt" for name in spec.input_schema.get("required", [])}
        shown = preview(spec.name, spec.declared(), required, lambda _path: False)
        assert "?" not in shown.text, (spec.name, shown.text)
        assert shown.tier == (pb.CONFIRM_TIER_TYPED if spec.destructive else pb.CONFIRM_TIER_CONFIRM), spec.name


async def test_reads_declare_no_preview_and_run() -> None:
    for spec in await read_catalogue():
        if not spec.confirmation_required:
            assert not (spec.preview or spec.target or spec.overwrites or spec.preview_from), spec.name
            assert preview(spec.name, spec.declared(), {}, lambda _p: False).tier == pb.CONFIRM_TIER_RUN


async def test_sending_a_draft_is_previewed_with_what_the_draft_holds(settings, tmp_path) -> None:  # noqa: ANN001
    """The send names only a draft id; the preview reads the draft (a resource of the email server) and
    says whom it goes to and about what, and the typed confirmation is the first recipient's address."""
    from services.toolhost.app import ToolHost
    from services.toolhost.audit import AuditLog
    from services.toolhost.servers.kit import Trash
    from tests.toolhost.mcp_helpers import supervised

    async with supervised("email", settings) as email:
        created = await email.call(
            "draft_email",
            {"to": ["Ana Lima <ana@example.org>", "bo@example.org"], "subject": "Quarterly numbers", "body": "Hi"},
            30,
        )
        host = ToolHost(
            None,  # type: ignore[arg-type] - a preview touches no Redis
            [email],
            {},
            30,
            AuditLog(tmp_path / "audit.db"),
            settings.sandbox(),
            Trash(tmp_path / "trash"),
        )
        shown = await host.preview("email.send_draft", json.dumps({"draft_id": created["draft_id"]}))
        assert shown.text == (
            "Send the email to Ana Lima <ana@example.org>, bo@example.org: “Quarterly numbers” "
            "(a sent email cannot be taken back)"
        )
        assert (shown.tier, shown.target) == (pb.CONFIRM_TIER_TYPED, "ana@example.org")
        # A draft that is not there: the preview says so by its gaps, and the id is what is typed.
        missing = await host.preview("email.send_draft", json.dumps({"draft_id": "draft-999"}))
        assert missing.text.startswith("Send the email to ?")
        assert (missing.tier, missing.target) == (pb.CONFIRM_TIER_TYPED, "draft-999")
