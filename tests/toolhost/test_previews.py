"""Every tool that changes something says what it will do in terms of its own parameters."""

from __future__ import annotations

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
        assert spec.preview and named <= properties, (spec.name, named - properties)
        assert {overwrite_rule(rule)[0] for rule in spec.overwrites} <= properties, spec.name
        if spec.destructive:
            assert spec.target in properties, spec.name
        # With its required values given, nothing in the preview is left as a question mark.
        required = {name: f"/w/{name}.txt" for name in spec.input_schema.get("required", [])}
        shown = preview(spec.name, spec.declared(), required, lambda _path: False)
        assert "?" not in shown.text, (spec.name, shown.text)
        assert shown.tier == (pb.CONFIRM_TIER_TYPED if spec.destructive else pb.CONFIRM_TIER_CONFIRM), spec.name


async def test_reads_declare_no_preview_and_run() -> None:
    for spec in await read_catalogue():
        if not spec.confirmation_required:
            assert not spec.preview and not spec.target and not spec.overwrites, spec.name
            assert preview(spec.name, spec.declared(), {}, lambda _p: False).tier == pb.CONFIRM_TIER_RUN
