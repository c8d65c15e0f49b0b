"""The confirmation policy: what becomes of a routed call, judged against its run's record."""

from __future__ import annotations

import json
import re
from pathlib import Path

from switchboard import confirmation, runs
from switchboard.confirmation import Policy, call_tier, decide, judge_proposal
from switchboard.paths import PathPolicy
from switchboard.v1 import switchboard_pb2 as pb

LIST = pb.ToolInfo(name="filesystem.list_dir", server="filesystem", confirmation_required=False)
DELETE = pb.ToolInfo(name="filesystem.delete_file", server="filesystem", confirmation_required=True, destructive=True)
CHANGES = frozenset({DELETE.name})
PATHS = PathPolicy((Path("/tmp"),), Path("/home/ana"))


def call(tool: str, arguments: dict, step: int = 1, **fields: object) -> pb.ToolCall:
    return pb.ToolCall(
        run_id="r",
        step=step,
        tool=tool,
        arguments_json=json.dumps(arguments),
        outcome=pb.ROUTE_OUTCOME_ROUTED,
        **fields,
    )


def judged(run: pb.Run, routed: pb.ToolCall, needs_person: bool = False) -> tuple[int, int, str]:
    return judge_proposal(run, routed, needs_person, CHANGES, PATHS)


def settle(run: pb.Run, routed: pb.ToolCall, status: int, content: object = None) -> None:
    runs.apply_routed(run, routed, "filesystem", 0.0, [])
    result = pb.StepResult(
        run_id="r",
        step=routed.step,
        tool=routed.tool,
        arguments_json=routed.arguments_json,
        status=status,  # type: ignore[arg-type]
        content_json=json.dumps(content) if content is not None else "",
    )
    runs.apply_result(run, result, [])


def test_reads_run_at_once_and_changes_or_unknown_tools_wait_for_the_person() -> None:
    assert decide(LIST) is Policy.RUN_NOW
    assert decide(DELETE) is Policy.ASK_PERSON
    assert decide(None) is Policy.ASK_PERSON


def test_a_read_for_a_request_that_asks_for_a_change_waits_for_the_person() -> None:
    assert not call_tier(LIST, None, 0.1).needs_person
    held = call_tier(LIST, None, confirmation.CHANGE_INTENT_HOLD)
    assert held.needs_person and held.held_for_intent and held.tier == pb.CONFIRM_TIER_RUN
    assert call_tier(DELETE, None, 0.0).needs_person  # a change waits whatever the words


def test_the_tier_comes_from_the_preview_and_a_grant_covers_only_a_click() -> None:
    typed = pb.Preview(text="Delete /tmp/a", tier=pb.CONFIRM_TIER_TYPED, target="a")
    click = pb.Preview(text="Write /tmp/a", tier=pb.CONFIRM_TIER_CONFIRM)
    run_now = pb.Preview(text="Write /tmp/a", tier=pb.CONFIRM_TIER_RUN)  # the policy file says so
    assert call_tier(DELETE, typed, 0.0, grant_id="g").needs_person  # a grant never covers a typed call
    assert call_tier(DELETE, typed, 0.0, grant_id="g").grant_id == ""
    covered = call_tier(DELETE, click, 0.0, grant_id="g")
    assert (covered.needs_person, covered.grant_id) == (False, "g")
    assert call_tier(DELETE, click, 0.0).needs_person
    assert not call_tier(DELETE, run_now, 0.9).needs_person  # the file's word; the intent holds reads only
    unknown = call_tier(None, None, 0.0)
    assert unknown.needs_person and unknown.tier == pb.CONFIRM_TIER_CONFIRM  # an unknown tool asks


def test_a_read_is_let_through_and_a_change_waits() -> None:
    run = runs.new_run("r", "s", "", False)
    assert judged(run, call(LIST.name, {"path": "/tmp"}))[0] == pb.STEP_STATUS_APPROVED
    waits = judged(run, call(DELETE.name, {"path": "/tmp/a"}), needs_person=True)
    assert waits[:2] == (pb.STEP_STATUS_AWAITING_CONFIRMATION, pb.EVENT_KIND_AWAITING_CONFIRMATION)


def test_a_call_naming_a_path_outside_the_roots_is_refused_before_anyone_is_asked() -> None:
    status, kind, reason = judged(
        runs.new_run("r", "s", "", False), call("filesystem.read_file", {"path": "/etc/shadow"})
    )
    assert (status, kind) == (pb.STEP_STATUS_REJECTED, pb.EVENT_KIND_REFUSED) and "/etc/shadow" in reason


def test_an_identical_read_reuses_the_earlier_result_unless_something_changed_in_between() -> None:
    run = runs.new_run("r", "s", "", False)
    first = call(LIST.name, {"path": "/tmp"})
    settle(run, first, pb.STEP_STATUS_SUCCEEDED, [{"name": "a.txt"}])
    again = call(LIST.name, {"path": "/tmp"}, step=2)
    status, kind, _ = judged(run, again)
    assert (status, kind) == (pb.STEP_STATUS_SUCCEEDED, pb.EVENT_KIND_REUSED_RESULT)
    settle(run, again, status)
    earlier = confirmation.reused_result(run, runs.step_record(run, 2))
    assert earlier is not None and json.loads(earlier.result_json) == [{"name": "a.txt"}]
    settle(run, call(DELETE.name, {"path": "/tmp/x"}, step=3), pb.STEP_STATUS_SUCCEEDED)
    assert judged(run, call(LIST.name, {"path": "/tmp"}, step=4))[0] == pb.STEP_STATUS_APPROVED


def test_an_identical_call_after_a_failure_is_not_made_again() -> None:
    run = runs.new_run("r", "s", "", False)
    settle(run, call("filesystem.read_file", {"path": "/tmp/missing.txt"}), pb.STEP_STATUS_FAILED)
    status, kind, reason = judged(run, call("filesystem.read_file", {"path": "/tmp/missing.txt"}, step=2))
    assert (status, kind) == (pb.STEP_STATUS_FAILED, pb.EVENT_KIND_REPEATED_CALL)
    assert reason.startswith("repeated call: step 1")


def test_a_dry_run_and_a_held_step_are_settled_without_running() -> None:
    run = runs.new_run("r", "s", "", True)
    assert judged(run, call(LIST.name, {"path": "/tmp"}, dry_run=True))[0] == pb.STEP_STATUS_SKIPPED
    held = judged(run, call(LIST.name, {"path": "/tmp"}, held="Which folder?"))
    assert held == (pb.STEP_STATUS_NEEDS_CLARIFICATION, pb.EVENT_KIND_NEEDS_CLARIFICATION, "Which folder?")


# ---- the policy file ----


def test_the_policy_file_overrides_by_tool_then_by_server(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("servers:\n  email: typed\n  clipboard: run\ntools:\n  email.draft_email: confirm\n")
    policy = confirmation.load_policy(path)
    assert policy.tier("email.send_draft", pb.CONFIRM_TIER_TYPED) == pb.CONFIRM_TIER_TYPED
    assert policy.tier("email.search_emails", pb.CONFIRM_TIER_RUN) == pb.CONFIRM_TIER_TYPED  # its server's
    assert policy.tier("email.draft_email", pb.CONFIRM_TIER_CONFIRM) == pb.CONFIRM_TIER_CONFIRM  # its own wins
    assert policy.tier("clipboard.set_clipboard", pb.CONFIRM_TIER_CONFIRM) == pb.CONFIRM_TIER_RUN
    # Nothing configured: the effects decide; an unknown tool (no declared tier) asks for a click.
    assert policy.tier("filesystem.delete_file", pb.CONFIRM_TIER_TYPED) == pb.CONFIRM_TIER_TYPED
    assert policy.tier("filesystem.list_dir", pb.CONFIRM_TIER_RUN) == pb.CONFIRM_TIER_RUN
    assert policy.tier("nowhere.thing", None) == pb.CONFIRM_TIER_CONFIRM


def test_the_shipped_policy_file_is_valid_and_changes_nothing(project_root: Path) -> None:
    policy = confirmation.load_policy(project_root / "config" / "confirmation.yaml")
    assert not policy.tools and not policy.servers


def test_a_wrong_policy_file_is_refused_saying_where(tmp_path: Path) -> None:
    import pytest

    from switchboard.errors import ConfigurationError

    cases = {
        "tools:\n  filesystem.write_file: maybe\n": "filesystem.write_file: 'maybe' is not one of run, confirm, typed",
        "tools:\n  write_file: run\n": "a tool is named server.tool",
        "rules: {}\n": "unknown key(s) rules",
        "- run\n": "expected a mapping",
        "tools: [1, 2]\n": "'tools' must map names to a tier",
        "tools: {a.b: [\n": "cannot be read",
    }
    for text, said in cases.items():
        path = tmp_path / "bad.yaml"
        path.write_text(text)
        with pytest.raises(ConfigurationError, match=re.escape(said)):
            confirmation.load_policy(path)
    with pytest.raises(ConfigurationError, match="no such file"):
        confirmation.load_policy(tmp_path / "missing.yaml")
