"""The whole stack: five processes, real gRPC, real Redis Streams, real models, a real MCP server."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from services.toolhost.audit import AuditLog
from switchboard import keys
from switchboard.settings import SERVICE_NAMES
from switchboard.v1 import switchboard_pb2 as pb
from tests.stack.conftest import FILES
from tests.stack.harness import Stack

pytestmark = pytest.mark.stack


def test_list_files_crosses_every_stream_and_answers_with_real_names(stack: Stack, workspace: Path) -> None:
    done = stack.sb("ask", "--json", "--wait", f"List the files in {workspace}")
    assert done.returncode == 0, done.stderr + stack.log_tail("router") + stack.log_tail("toolhost")
    run = json.loads(done.stdout)

    assert run["status"] == "answered", run
    for name in (*FILES, "drafts"):
        assert name in run["answer"]
    [step] = run["steps"]
    assert step["tool"] == "filesystem.list_dir"
    assert step["arguments"]["path"] == str(workspace)
    assert step["status"] == "succeeded"
    assert step["hops"] == [keys.HOP_RANK, keys.HOP_ROUTE, keys.APPROVED, keys.RESULTS]


def test_status_shows_five_healthy_services_in_five_processes(stack: Stack) -> None:
    done = stack.sb("status", "--json")
    assert done.returncode == 0, done.stderr
    status = json.loads(done.stdout)
    services = status["services"]
    assert sorted(s["name"] for s in services) == sorted(SERVICE_NAMES)
    assert all(s["healthy"] for s in services)
    assert len({s["pid"] for s in services}) == 5
    assert {s["pid"] for s in services} == {p.pid for p in stack.processes.values()}
    assert set(status["redis"]["streams"]) == set(keys.ALL_STREAMS)


def test_tools_lists_the_filesystem_tools_with_their_flags(stack: Stack) -> None:
    done = stack.sb("tools", "--json")
    assert done.returncode == 0, done.stderr
    tools = {tool["name"]: tool for tool in json.loads(done.stdout)}
    assert set(tools["filesystem.list_dir"]) == {
        "name",
        "server",
        "description",
        "input_schema",
        "confirmation_required",
        "undo_supported",
        "destructive",
    }
    assert tools["filesystem.list_dir"]["confirmation_required"] is False
    assert tools["filesystem.delete_file"]["confirmation_required"] is True
    assert tools["filesystem.delete_file"]["destructive"] is True
    assert "path" in tools["filesystem.list_dir"]["input_schema"]["required"]


def test_a_change_waits_for_confirmation_and_runs_once_allowed(stack: Stack, workspace: Path) -> None:
    target = workspace / "alpha.txt"
    copy = workspace / "drafts" / "alpha-copy.txt"
    asked = stack.sb("ask", "--json", "--wait", f"Copy the file {target} to {copy}")
    run = json.loads(asked.stdout)
    step = run["steps"][0]
    assert asked.returncode == 3, (run["answer"], step["arguments"], asked.stderr)
    assert step["status"] == "awaiting_confirmation" and step["tool"] == "filesystem.copy_file"
    assert not copy.exists()

    confirmed = stack.sb("confirm", run["run_id"], "1")
    assert confirmed.returncode == 0, confirmed.stderr
    with stack.http() as http:
        events = http.get(f"/v1/runs/{run['run_id']}/events").text
        final = http.get(f"/v1/runs/{run['run_id']}").json()
    assert "event: finished" in events
    assert final["status"] == "answered", final
    assert copy.read_text() == target.read_text()


def test_errors_are_one_clear_line(stack: Stack) -> None:
    missing = stack.sb("show", "no-such-run")
    assert missing.returncode != 0
    assert missing.stderr.strip().count("\n") == 0 and "no-such-run" in missing.stderr
    with stack.http() as http:
        assert http.post("/v1/turns", json={"text": ""}).status_code == 400
        assert http.get("/v1/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_delete_then_undo_gets_the_file_back_and_the_audit_log_shows_both(stack: Stack, workspace: Path) -> None:
    target = workspace / "notes.md"
    asked = stack.sb("ask", "--json", "--wait", f"Delete the file {target}")
    run = json.loads(asked.stdout)
    assert asked.returncode == 3 and run["steps"][0]["tool"] == "filesystem.delete_file", asked.stderr
    assert stack.sb("confirm", run["run_id"], "1", "--typed", "notes.md").returncode == 0
    with stack.http() as http:
        http.get(f"/v1/runs/{run['run_id']}/events")  # returns once the run has finished
    assert not target.exists()

    undone = stack.sb("undo", "--json", run["run_id"], "1")
    assert undone.returncode == 0, undone.stderr
    assert json.loads(undone.stdout)["steps"][0]["status"] == "undone"
    assert target.read_text() == "contents of notes.md\n"

    rows = [r for r in AuditLog(stack.state_dir / "audit.db").rows() if r["run_id"] == run["run_id"]]
    assert [(r["kind"], r["tool"], r["outcome"]) for r in rows] == [
        ("call", "filesystem.delete_file", "succeeded"),
        ("undo", "filesystem.delete_file", "succeeded"),
    ]
    again = stack.sb("undo", run["run_id"], "1")
    assert again.returncode != 0 and "undone" in again.stderr


def test_a_rejected_step_is_audited_and_changes_nothing(stack: Stack, workspace: Path) -> None:
    target = workspace / "alpha.txt"
    run = json.loads(stack.sb("ask", "--json", "--wait", f"Delete the file {target}").stdout)
    rejected = stack.sb("confirm", run["run_id"], "1", "--reject", "--reason", "keep it")
    assert rejected.returncode == 0, rejected.stderr
    with stack.http() as http:
        http.get(f"/v1/runs/{run['run_id']}/events")
        final = http.get(f"/v1/runs/{run['run_id']}").json()
    assert final["status"] == "refused" and "keep it" in final["answer"]
    assert target.exists()
    log = AuditLog(stack.state_dir / "audit.db")
    deadline = time.monotonic() + 30
    while not [r for r in log.rows() if r["run_id"] == run["run_id"]]:
        assert time.monotonic() < deadline, "the rejection never reached the audit log"
        time.sleep(0.1)
    [row] = [r for r in log.rows() if r["run_id"] == run["run_id"]]
    assert (row["kind"], row["confirmation"], row["error"]) == ("decision", "rejected", "keep it")


def test_a_compound_request_runs_every_step_waits_for_the_write_and_answers_what_was_done(
    stack: Stack, workspace: Path
) -> None:
    papers = workspace / "papers"
    asked = stack.sb(
        "ask",
        "--json",
        "--wait",
        f"Find the PDFs in {papers}, extract the text of each, and save a summary to notes.md",
    )
    run = json.loads(asked.stdout)
    summary = papers / "notes.md"
    assert asked.returncode == 3, (run["answer"], [(s["tool"], s["arguments"], s["error"]) for s in run["steps"]])
    tools = [step["tool"] for step in run["steps"]]
    assert tools == [
        "filesystem.search_files",
        "document.extract_text",
        "document.extract_text",
        "filesystem.write_file",
    ], run["steps"]
    extracted = sorted(Path(step["arguments"]["path"]).name for step in run["steps"][1:3])
    assert extracted == ["solar.pdf", "wind.pdf"]
    write = run["steps"][3]
    assert write["status"] == "awaiting_confirmation" and not summary.exists()
    assert Path(write["arguments"]["path"]) == summary

    confirmed = stack.sb("confirm", "--json", "--wait", run["run_id"], "4")
    final = json.loads(confirmed.stdout)
    assert confirmed.returncode == 0, confirmed.stderr
    assert final["status"] == "answered", final["answer"]
    saved = summary.read_text()
    assert "21 percent" in saved and "38 percent" in saved
    # The answer says what happened, step by step, and claims the write only because it ran.
    answer = final["answer"]
    assert "solar.pdf" in answer and "wind.pdf" in answer and "notes.md" in answer
    assert "done (changed)" in answer and "Done: 4 of 4 steps ran." in answer
    with stack.http() as http:
        events = http.get(f"/v1/runs/{run['run_id']}/events").text
    streamed = [json.loads(line[6:])["message"] for line in events.splitlines() if line.startswith("data: ")]
    assert "".join(m for m in streamed if m.endswith("\n")).count("Step ") >= 4  # the answer came in lines


def test_a_follow_up_turn_uses_what_the_session_found(stack: Stack, workspace: Path) -> None:
    first = json.loads(stack.sb("ask", "--json", "--wait", f"List the files in {workspace / 'single'}").stdout)
    assert first["status"] == "answered", first["answer"]
    follow = stack.sb("ask", "--json", "--wait", "--session", first["session_id"], "Now extract the text of that PDF")
    run = json.loads(follow.stdout)
    assert run["status"] == "answered", run["answer"]
    [step] = run["steps"]
    # Either way of reading a PDF's text will do; what matters is which PDF "that" meant.
    assert step["tool"] in ("document.extract_text", "ocr.extract_text_from_pdf")
    assert Path(step["arguments"]["path"]) == workspace / "single" / "report.pdf"
    assert "nine percent" in run["answer"]


def test_system_paths_and_vague_requests_end_without_any_call(stack: Stack) -> None:
    refused = json.loads(stack.sb("ask", "--json", "--wait", "Show me the contents of /etc/shadow").stdout)
    assert refused["status"] == "refused" and refused["steps"] == []
    assert "/etc/shadow" in refused["answer"]
    vague = json.loads(stack.sb("ask", "--json", "--wait", "fix it").stdout)
    assert vague["status"] == "needs_clarification"
    # Its step may be routed to show what it would call, but nothing runs before the person answers.
    assert all(step["status"] in ("skipped", "needs_clarification") for step in vague["steps"]), vague["steps"]


def test_a_failed_step_is_retried_once_with_the_tool_hosts_correction(stack: Stack, workspace: Path) -> None:
    typo = workspace / "papers" / "solr.pdf"
    run = json.loads(stack.sb("ask", "--json", "--wait", f"Extract the text of {typo}").stdout)
    assert run["status"] == "answered", run["answer"]
    first, retry = run["steps"]
    assert first["status"] == "failed" and "Did you mean" in first["error"]
    assert retry["status"] == "succeeded" and Path(retry["arguments"]["path"]) == workspace / "papers" / "solar.pdf"
    assert "21 percent" in run["answer"] and "retry" in run["answer"]


def test_a_request_no_tool_serves_asks_back_instead_of_calling_something(stack: Stack) -> None:
    # No refusal rule or vague-request rule covers this; the filter finds no tool close enough.
    run = json.loads(stack.sb("ask", "--json", "--wait", "Recommend a good pizza place near the harbour").stdout)
    assert run["status"] == "needs_clarification", run
    assert all(not step["tool"] for step in run["steps"]), run["steps"]


def test_reading_the_same_file_twice_reuses_the_first_result(stack: Stack, workspace: Path) -> None:
    path = workspace / "alpha.txt"
    run = json.loads(stack.sb("ask", "--json", "--wait", f"Read {path}, then show me what {path} says").stdout)
    assert run["status"] == "answered", run["answer"]
    first, second = run["steps"]
    assert first["tool"] == second["tool"] == "filesystem.read_file", run["steps"]
    assert first["status"] == second["status"] == "succeeded"
    assert second["result"] == first["result"]
    assert "contents of alpha.txt" in run["answer"]


def test_a_value_nobody_gave_is_an_open_field_the_next_turn_fills(stack: Stack) -> None:
    asked = json.loads(stack.sb("ask", "--json", "--wait", "Add an event called Planning sync to my calendar").stdout)
    assert asked["status"] == "needs_clarification", asked["answer"]
    (step,) = asked["steps"]
    assert step["tool"] == "calendar.create_event" and step["arguments"] == {"title": "Planning sync"}
    assert sorted(step["missing"]) == ["end", "start"]
    assert "calendar.create_event" in asked["answer"] and "start" in asked["answer"]
    session = asked["session_id"]
    given = json.loads(
        stack.sb("ask", "--json", "--wait", "--dry-run", "--session", session, "2030-01-07 from 3pm to 4pm").stdout
    )
    (step,) = given["steps"]
    assert step["tool"] == "calendar.create_event", given
    assert step["arguments"] == {"title": "Planning sync", "start": "2030-01-07T15:00:00", "end": "2030-01-07T16:00:00"}


def test_a_large_result_is_stored_once_and_referenced(stack: Stack, workspace: Path) -> None:
    big = workspace / "big.txt"
    big.write_text("".join(f"line {n} of a long log\n" for n in range(12_000)))  # about 280 KB
    done = stack.sb("ask", "--json", "--wait", f"Read the file {big}")
    run = json.loads(done.stdout)
    assert run["status"] == "answered", run
    [step] = run["steps"]
    assert step["tool"] == "filesystem.read_file" and "line 11999 of a long log" in json.dumps(step["result"])
    client = redis.Redis.from_url(stack.redis_url)
    record = pb.Run.FromString(client.get(keys.run_key(run["run_id"])))
    [kept] = record.steps
    assert kept.result_ref and not kept.result_json  # the record refers to it
    stored = client.hget(keys.contents_key(run["run_id"]), kept.result_ref)
    assert stored is not None and b"line 11999 of a long log" in stored  # kept once, here
    client.close()
