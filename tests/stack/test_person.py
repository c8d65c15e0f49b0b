"""The person's seat on the real stack: each confirmation tier, typed confirmation wrong then right,
standing grants (and revoking one), corrected arguments, filled values, and the policy file, through
`sb` and the HTTP API, with the real tool host doing what was allowed and nothing else."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from services.toolhost.audit import AuditLog
from tests.stack.harness import Stack


def ask(stack: Stack, text: str, *options: str) -> tuple[int, dict[str, Any], str]:
    done = stack.sb("ask", "--json", "--wait", *options, text)
    return done.returncode, json.loads(done.stdout), done.stderr


def finished(stack: Stack, run_id: str) -> dict[str, Any]:
    with stack.http() as http:
        http.get(f"/v1/runs/{run_id}/events")  # returns once the run has finished
        return http.get(f"/v1/runs/{run_id}").json()


def audited(stack: Stack, run_id: str) -> list[dict[str, Any]]:
    return [r for r in AuditLog(stack.state_dir / "audit.db").rows() if r["run_id"] == run_id]


def test_a_delete_asks_for_the_name_typed_and_refuses_a_wrong_one(stack: Stack, workspace: Path) -> None:
    target = workspace / "doomed-report.txt"
    target.write_text("old\n")
    code, run, stderr = ask(stack, f"Delete the file {target}")
    step = run["steps"][0]
    assert code == 3 and step["tool"] == "filesystem.delete_file", stderr
    assert step["preview"] == {
        "text": f"Delete {target} (goes to the trash, can be undone)",
        "tier": "typed",
        "target": "doomed-report.txt",
    }
    assert step["deadline_unix_ms"] > time.time() * 1000
    assert "--typed" in stderr

    plain = stack.sb("confirm", run["run_id"], "1")
    assert plain.returncode != 0 and "type 'doomed-report.txt' to confirm" in plain.stderr
    wrong = stack.sb("confirm", run["run_id"], "1", "--typed", "doomed-report")
    assert wrong.returncode != 0 and "is not 'doomed-report.txt'" in wrong.stderr
    forever = stack.sb("confirm", run["run_id"], "1", "--typed", "doomed-report.txt", "--scope", "always")
    assert forever.returncode != 0 and "asked every time" in forever.stderr
    assert target.exists()
    right = stack.sb("confirm", run["run_id"], "1", "--typed", "doomed-report.txt")
    assert right.returncode == 0, right.stderr
    assert finished(stack, run["run_id"])["status"] == "answered"
    assert not target.exists()
    assert [r["confirmation"] for r in audited(stack, run["run_id"])] == ["confirmed"]


def test_writing_over_an_existing_file_is_previewed_as_an_overwrite(stack: Stack, workspace: Path) -> None:
    target = workspace / "ledger.txt"
    target.write_text("first version\n")
    code, run, stderr = ask(stack, f"Write 'second version' to {target}")
    step = run["steps"][0]
    assert code == 3 and step["tool"] == "filesystem.write_file", (stderr, run)
    assert step["preview"]["text"] == f"Overwrite {target} (the old version is kept in the trash)"
    assert (step["preview"]["tier"], step["preview"]["target"]) == ("typed", "ledger.txt")
    assert stack.sb("confirm", run["run_id"], "1", "--reject", "--reason", "not now").returncode == 0
    final = finished(stack, run["run_id"])
    assert final["status"] == "refused" and "not now" in final["answer"]
    assert target.read_text() == "first version\n"


def test_a_session_grant_lets_the_same_tool_run_without_asking_until_it_is_revoked(
    stack: Stack, workspace: Path
) -> None:
    session = uuid.uuid4().hex
    folder = workspace / f"granted-{session[:6]}"
    folder.mkdir()
    code, first, stderr = ask(stack, f"Write 'one' to {folder / 'one.txt'}", "--session", session)
    assert code == 3 and first["steps"][0]["preview"]["tier"] == "confirm", stderr
    allowed = stack.sb("confirm", first["run_id"], "1", "--scope", "session")
    assert allowed.returncode == 0, allowed.stderr
    assert finished(stack, first["run_id"])["status"] == "answered"
    grants = json.loads(stack.sb("grants", "--json").stdout)
    [grant] = [g for g in grants if g["session_id"] == session]
    assert (grant["tool"], grant["scope"]) == ("filesystem.write_file", "session")

    # The same tool in the same session runs at once; the audit log says the grant let it through.
    code, second, stderr = ask(stack, f"Write 'two' to {folder / 'two.txt'}", "--session", session)
    assert code == 0 and second["status"] == "answered", (stderr, second)
    assert second["steps"][0]["grant_id"] == grant["grant_id"]
    assert (folder / "two.txt").read_text() == "two"
    assert [r["confirmation"] for r in audited(stack, second["run_id"])] == ["standing_grant"]

    # Another session is still asked; and once revoked, so is this one.
    code, other, _ = ask(stack, f"Write 'three' to {folder / 'three.txt'}")
    assert code == 3 and other["steps"][0]["status"] == "awaiting_confirmation"
    assert stack.sb("revoke", grant["grant_id"]).returncode == 0
    assert stack.sb("revoke", grant["grant_id"]).returncode != 0  # already gone
    code, third, _ = ask(stack, f"Write 'four' to {folder / 'four.txt'}", "--session", session)
    assert code == 3 and third["steps"][0]["status"] == "awaiting_confirmation"
    assert not (folder / "four.txt").exists()
    for waiting in (other, third):
        stack.sb("confirm", waiting["run_id"], "1", "--reject")


def test_corrected_arguments_are_what_runs(stack: Stack, workspace: Path) -> None:
    source = workspace / "alpha.txt"
    code, run, stderr = ask(stack, f"Copy the file {source} to {workspace / 'drafts' / 'first-idea.txt'}")
    assert code == 3 and run["steps"][0]["tool"] == "filesystem.copy_file", stderr
    corrected = workspace / "drafts" / "second-idea.txt"
    bad = stack.sb("confirm", run["run_id"], "1", "--arguments", json.dumps({"source": str(source), "to": "x"}))
    assert bad.returncode != 0 and "no parameter to" in bad.stderr
    outside = stack.sb(
        "confirm", run["run_id"], "1", "--arguments", json.dumps({"source": str(source), "destination": "/etc/x"})
    )
    assert outside.returncode != 0 and "outside the allowed folders" in outside.stderr
    edited = {"source": str(source), "destination": str(corrected)}
    done = stack.sb("confirm", run["run_id"], "1", "--arguments", json.dumps(edited))
    assert done.returncode == 0, done.stderr
    final = finished(stack, run["run_id"])
    assert final["status"] == "answered" and final["steps"][0]["arguments"] == edited
    assert corrected.read_text() == source.read_text()
    assert not (workspace / "drafts" / "first-idea.txt").exists()


def test_filling_the_values_a_step_waits_for_takes_the_run_up_again(stack: Stack) -> None:
    code, run, stderr = ask(stack, "Add an event called Budget review to my calendar")
    assert run["status"] == "needs_clarification", (stderr, run["answer"])
    step = run["steps"][0]
    assert step["tool"] == "calendar.create_event" and sorted(step["missing"]) == ["end", "start"]
    partial = stack.sb("fill", run["run_id"], "1", "start=2031-03-04T10:00:00")
    assert partial.returncode != 0 and "still needs end" in partial.stderr
    filled = stack.sb("fill", run["run_id"], "1", "start=2031-03-04T10:00:00", "end=2031-03-04T11:00:00")
    assert filled.returncode == 0, filled.stderr
    deadline = time.monotonic() + 120
    while True:
        with stack.http() as http:
            now = http.get(f"/v1/runs/{run['run_id']}").json()
        if now["steps"][0]["status"] == "awaiting_confirmation":
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    assert now["steps"][0]["preview"]["text"].startswith("Add “Budget review” to the calendar")
    assert stack.sb("confirm", run["run_id"], "1").returncode == 0
    final = finished(stack, run["run_id"])
    assert final["status"] == "answered", final["answer"]
    assert final["steps"][0]["arguments"]["start"] == "2031-03-04T10:00:00"
    assert final["steps"][0]["candidates"], "the filter's ranking is kept when the step is taken up again"
    assert [r["tool"] for r in audited(stack, run["run_id"])] == ["calendar.create_event"]


def test_the_policy_file_raises_a_read_and_lets_a_change_run(stack: Stack) -> None:
    # calendar.list_events is configured `confirm`: a read that waits.
    code, listed, stderr = ask(stack, "List my calendar events for 2031-03-04")
    step = listed["steps"][0]
    assert code == 3 and step["tool"] == "calendar.list_events", (stderr, listed)
    assert step["preview"]["tier"] == "confirm"
    assert stack.sb("confirm", listed["run_id"], "1").returncode == 0
    assert finished(stack, listed["run_id"])["status"] == "answered"
    # task.create_task is configured `run`: a change the policy lets through, and the tool host honours.
    code, made, stderr = ask(stack, "Create a task titled Renew the passport")
    assert code == 0 and made["status"] == "answered", (stderr, made)
    assert made["steps"][0]["tool"] == "task.create_task"
    assert [r["confirmation"] for r in audited(stack, made["run_id"])] == ["policy"]


def test_the_audit_and_session_history_are_served(stack: Stack, workspace: Path) -> None:
    session = uuid.uuid4().hex
    code, run, _ = ask(stack, f"List the files in {workspace}", "--session", session)
    assert code == 0
    with stack.http() as http:
        history = http.get("/v1/runs", params={"session_id": session}).json()["runs"]
        entries = http.get("/v1/audit", params={"session_id": session}).json()["entries"]
    assert [r["run_id"] for r in history] == [run["run_id"]]
    assert [(e["run_id"], e["tool"], e["status"]) for e in entries] == [
        (run["run_id"], "filesystem.list_dir", "succeeded")
    ]
    shown = stack.sb("audit", "--session", session)
    assert shown.returncode == 0 and "filesystem.list_dir" in shown.stdout


def test_the_tool_host_honours_only_grants_the_person_made_and_kept(stack: Stack, workspace: Path) -> None:
    """What a stage holding the policy key could try: an approval naming a grant that was revoked, one
    naming a grant it wrote itself, and the policy's own approval of a change. All are refused and
    audited; nothing is written."""
    import redis

    from switchboard import grants, keys
    from switchboard.approvals import grant
    from switchboard.auth import blocking_channel
    from switchboard.v1 import switchboard_pb2 as pb
    from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

    policy_key = (stack.state_dir / "policy.key").read_text().strip()
    internal = (stack.state_dir / "internal.key").read_text().strip()
    target = workspace / "never-written.txt"
    arguments = json.dumps({"path": str(target), "content": "x"})
    session = uuid.uuid4().hex
    made_up = grants.make(
        "not the person's key",
        tool="filesystem.write_file",
        scope=grants.ALWAYS,
        session_id="",
        run_id="r",
        step=1,
        created_unix_ms=1,
    )
    redis.Redis.from_url(stack.redis_url).hset(keys.GRANTS, made_up.grant_id, made_up.SerializeToString())
    attempts = [  # (kind, grant named, what the audit log says)
        (pb.GRANT_KIND_STANDING, "revoked-or-never-made", "refused_ungranted"),
        (pb.GRANT_KIND_STANDING, made_up.grant_id, "refused_ungranted"),
        (pb.GRANT_KIND_POLICY, "", "refused_insufficient"),
    ]
    with blocking_channel(stack.env["SWITCHBOARD_TOOLHOST_ADDR"], internal) as channel:
        host = pb_grpc.ToolHostStub(channel)
        for step, (kind, grant_id, expected) in enumerate(attempts, start=1):
            run_id = f"forged-{session[:8]}"
            approval = grant(
                policy_key,
                run_id=run_id,
                step=step,
                tool="filesystem.write_file",
                arguments_json=arguments,
                idempotency_key=f"{run_id}:{step}:planner",
                kind=kind,
                ttl_seconds=60,
                grant_id=grant_id,
            )
            request = pb.CallToolRequest(
                tool="filesystem.write_file",
                arguments_json=arguments,
                run_id=run_id,
                step=step,
                approval=approval,
                session_id=session,
            )
            result = host.CallTool(request, timeout=60)
            assert result.failure == pb.FAILURE_MODE_APPROVAL_REFUSED, expected
            [row] = [r for r in audited(stack, run_id) if r["step"] == step]
            assert row["confirmation"] == expected
    assert not target.exists()
    redis.Redis.from_url(stack.redis_url).hdel(keys.GRANTS, made_up.grant_id)
