"""Faults on the stack as `make up` runs it: a worker killed with SIGKILL at any stage, mid-step, is
restarted by the supervisor while Redis and the others keep serving; its message is taken up again;
the run completes; a changing tool runs once (the audit log shows one execution); no answer line
appears twice."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.toolhost.audit import AuditLog
from switchboard import keys
from tests.stack.supervised import SupervisedStack

pytestmark = pytest.mark.stack


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("faults-workspace")
    for name in ("apples.txt", "pears.txt"):
        (root / name).write_text(f"{name}\n")
    return root


@pytest.fixture(scope="module")
def supervised(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedStack]:
    stack = SupervisedStack(tmp_path_factory.mktemp("faults-state"), [workspace])
    try:
        stack.start()
        yield stack
    finally:
        stack.stop()


def submit(stack: SupervisedStack, text: str) -> str:
    with stack.http() as http:
        reply = http.post("/v1/turns", json={"text": text})
        assert reply.status_code in (200, 201, 202), reply.text
        return str(reply.json()["run_id"])


def events(stack: SupervisedStack, run_id: str, timeout: float = 240.0) -> list[dict[str, Any]]:
    """Every event of a run, read from its event stream, which ends once the run has finished."""
    with stack.http() as http:
        text = http.get(f"/v1/runs/{run_id}/events", timeout=timeout).text
    return [json.loads(line[len("data: ") :]) for line in text.splitlines() if line.startswith("data: ")]


def run_record(stack: SupervisedStack, run_id: str) -> dict[str, Any]:
    with stack.http() as http:
        return dict(http.get(f"/v1/runs/{run_id}").json())


def when_handling(stack: SupervisedStack, run_id: str, timeout: float = 60.0) -> None:
    """Return as soon as the planner has read the run's turn and not yet finished it (mid-step)."""
    client = stack.redis()
    deadline = time.monotonic() + timeout
    try:
        while int(client.xpending(keys.TURNS, keys.GROUP_PLANNER)["pending"]) == 0:
            if time.monotonic() > deadline:
                raise AssertionError(f"the planner never held the turn: {run_record(stack, run_id)}")
            time.sleep(0.002)
    finally:
        client.close()


def assert_one_answer(found: list[dict[str, Any]]) -> None:
    kinds = [event["kind"] for event in found]
    assert kinds.count("finished") == 1, kinds
    answers = [event["message"] for event in found if event["kind"] == "answer"]
    assert len(answers) == len(set(answers)), answers


def test_a_killed_worker_is_restarted_while_redis_and_the_others_keep_serving(supervised: SupervisedStack) -> None:
    before = supervised.pids()
    old = supervised.kill("router")
    new = supervised.wait_restarted("router", old)
    after = supervised.pids()
    assert new != old
    assert {label: pid for label, pid in after.items() if label != "router"} == {
        label: pid for label, pid in before.items() if label != "router"
    }
    client = supervised.redis()
    try:
        assert client.ping()
        record = json.loads(client.hget(keys.RESTARTS, "router") or b"{}")
    finally:
        client.close()
    assert record["restarts"] >= 1 and record["last_exit"] == -9
    status = supervised.sb("status")
    assert status.returncode == 0, status.stderr
    assert "restart" in status.stdout


@pytest.mark.parametrize("stage", ["planner", "filter", "router"])
def test_a_stage_killed_mid_step_leaves_the_run_to_complete_once(
    supervised: SupervisedStack, workspace: Path, stage: str
) -> None:
    run_id = submit(supervised, f"List the files in {workspace}")
    when_handling(supervised, run_id)
    old = supervised.kill(stage)
    found = events(supervised, run_id)
    record = run_record(supervised, run_id)
    assert record["status"] == "answered", record
    assert [step["tool"] for step in record["steps"]] == ["filesystem.list_dir"]
    assert "apples.txt" in record["answer"]
    assert_one_answer(found)
    supervised.wait_restarted(stage, old)


def test_the_tool_host_killed_during_a_change_leaves_it_done_once(supervised: SupervisedStack, workspace: Path) -> None:
    # Big enough that copying it takes a while, so the kill lands while the tool runs.
    source = workspace / "archive.bin"
    with open(source, "wb") as handle:
        for _ in range(384):
            handle.write(b"\x5a" * (1 << 20))
    destination = workspace / "archive-copy.bin"
    run_id = submit(supervised, f"Copy {source} to {destination}")
    step = wait_awaiting(supervised, run_id)
    assert step["tool"] == "filesystem.copy_file", step
    audit = AuditLog(supervised.state_dir / "audit.db")
    with supervised.http() as http:
        arguments = {"source": str(source), "destination": str(destination)}
        reply = http.post(f"/v1/runs/{run_id}/steps/1/confirm", json={"approve": True, "arguments": arguments})
        assert reply.status_code == 200, reply.text
    deadline = time.monotonic() + 60
    while not [r for r in audit.rows() if r["run_id"] == run_id and r["outcome"] == "started"]:
        assert time.monotonic() < deadline, "the copy never started"
        time.sleep(0.005)
    old = supervised.kill("toolhost")

    found = events(supervised, run_id)
    record = run_record(supervised, run_id)
    assert record["status"] == "answered", record
    assert record["steps"][0]["status"] == "succeeded", record
    assert destination.stat().st_size == source.stat().st_size
    calls = [r for r in audit.rows() if r["run_id"] == run_id and r["kind"] == "call"]
    assert [(r["tool"], r["outcome"]) for r in calls] == [("filesystem.copy_file", "succeeded")]
    # The copy ran in one server process: its journal recorded one execution under the call's key.
    assert_one_answer(found)
    supervised.wait_restarted("toolhost", old)


def wait_awaiting(stack: SupervisedStack, run_id: str, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = run_record(stack, run_id)
        waiting = [step for step in record.get("steps", []) if step.get("status") == "awaiting_confirmation"]
        if waiting:
            return dict(waiting[0])
        assert record["status"] not in ("answered", "failed", "refused"), record
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never waited for the person")


def test_redis_killed_and_restarted_by_the_supervisor_loses_no_accepted_run(
    supervised: SupervisedStack, workspace: Path
) -> None:
    source = workspace / "apples.txt"
    destination = workspace / "apples-kept.txt"
    run_id = submit(supervised, f"Copy {source} to {destination}")
    assert wait_awaiting(supervised, run_id)["tool"] == "filesystem.copy_file"
    services = {label: pid for label, pid in supervised.pids().items() if label != "redis"}
    # The append-only file is written to disk every second; a rewrite makes what is accepted so far
    # durable now, so the kill below tests recovery rather than the last second's fsync.
    client = supervised.redis()
    try:
        client.bgrewriteaof()
        deadline = time.monotonic() + 30
        while int(client.info("persistence")["aof_rewrite_in_progress"]):
            assert time.monotonic() < deadline
            time.sleep(0.05)
    finally:
        client.close()

    old = supervised.kill("redis")
    supervised.wait_restarted("redis", old)
    with supervised.http() as http:
        deadline = time.monotonic() + 60
        while (reply := http.get(f"/v1/runs/{run_id}")).status_code == 503:
            assert time.monotonic() < deadline, reply.text
            time.sleep(0.1)
        assert reply.status_code == 200, reply.text
        arguments = {"source": str(source), "destination": str(destination)}
        confirmed = http.post(f"/v1/runs/{run_id}/steps/1/confirm", json={"approve": True, "arguments": arguments})
        assert confirmed.status_code == 200, confirmed.text
    assert_one_answer(events(supervised, run_id))
    assert run_record(supervised, run_id)["status"] == "answered"
    assert destination.read_text() == source.read_text()
    # No service stopped for it.
    assert {label: pid for label, pid in supervised.pids().items() if label != "redis"} == services
