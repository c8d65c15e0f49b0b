"""The load bench's pure parts: percentiles, the outcome of a run, the integrity checks over given runs
and audit rows, stage times, memory growth, and the report's last line."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
import pytest

from switchboard.load import (
    Api,
    Decision,
    HttpTally,
    MemorySample,
    RunTrace,
    UndoTrace,
    build_report,
    choose_kind,
    classify,
    descendants,
    duplicated_answer_lines,
    duplicated_executions,
    format_report,
    is_expected_call,
    is_loopback_url,
    memory_growth,
    memory_rows,
    orphans,
    parse_args,
    parse_vmrss_kb,
    percentile,
    refused_replays,
    retry_after_seconds,
    scenario,
    stage_times,
    stuck_steps,
    summary_line,
    unaudited_steps,
)

FOLDER = Path("/ws/load/s001")


def step(number: int = 1, tool: str = "filesystem.write_file", status: str = "succeeded", **more: Any) -> dict:
    base = {"number": number, "tool": tool, "status": status, "arguments": {}, "error": ""}
    return {**base, **more}


def traced(kind: str, status: str, steps: list[dict], **more: Any) -> RunTrace:
    asked = scenario(kind, FOLDER, "001", 1, note=str(FOLDER / "load-001-0.txt"))
    trace = RunTrace("session", asked, 0, run_id=more.pop("run_id", f"run-{kind}"), submit_status=202)
    trace.run = {"run_id": trace.run_id, "status": status, "steps": steps, **more}
    return trace


def create_step(**more: Any) -> dict:
    return step(arguments={"path": str(FOLDER / "load-001-1.txt"), "content": "hello"}, **more)


def test_percentile_interpolates_between_ranks_and_is_none_without_values() -> None:
    assert percentile([], 0.5) is None
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile(list(range(1, 101)), 0.95) == pytest.approx(95.05)
    assert percentile([5.0, 1.0, 3.0], 0.0) == 1.0 and percentile([5.0, 1.0, 3.0], 1.0) == 5.0


@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("http://127.0.0.1:7310", True),
        ("http://localhost:7310", True),
        ("http://[::1]:7310", True),
        ("http://127.8.0.1", True),
        ("http://10.0.0.5:7310", False),
        ("https://example.org", False),
    ],
)
def test_only_loopback_urls_are_local(url: str, local: bool) -> None:
    assert is_loopback_url(url) is local


def test_retry_after_is_read_and_bounded() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) == 1.0
    assert retry_after_seconds("soon") == 1.0
    assert retry_after_seconds("600") == 30.0
    assert retry_after_seconds("0") == 0.05


def test_a_delete_or_undo_without_a_note_makes_one_instead() -> None:
    rng = random.Random(0)
    kinds = {choose_kind(rng, have_notes=False) for _ in range(300)}
    assert "create" in kinds and not kinds & {"delete", "undo"}
    assert {"delete", "undo"} <= {choose_kind(rng, have_notes=True) for _ in range(300)}


def test_an_expected_call_names_the_tool_and_every_file_of_the_request() -> None:
    asked = scenario("reject", FOLDER, "001", 4)
    right = step(tool="filesystem.copy_file", arguments={"source": f"{FOLDER}/a.txt", "destination": asked.target})
    assert asked.decision == "reject" and is_expected_call(right, asked)
    assert not is_expected_call({**right, "tool": "filesystem.move_file"}, asked)
    assert not is_expected_call({**right, "arguments": {"source": f"{FOLDER}/a.txt"}}, asked)
    assert not is_expected_call(None, asked)


def test_outcomes_tell_the_models_choices_from_the_systems_failures() -> None:
    assert classify(traced("create", "answered", [create_step()])) == "ok"
    assert classify(traced("create", "answered", [create_step(status="undone")])) == "ok"
    wrong = traced("create", "refused", [step(tool="filesystem.move_file", status="rejected")])
    assert classify(wrong) == "wrong_tool"
    assert classify(traced("create", "failed", [step(tool="filesystem.move_file", status="failed")])) == "failed_tool"
    assert classify(traced("create", "failed", [create_step(status="failed", error="disk full")])) == "failed_system"
    gave_up = step(tool="", status="failed", error="the planner could not process this step after repeated attempts")
    assert classify(traced("list", "failed", [gave_up])) == "failed_system"
    assert classify(traced("create", "needs_clarification", [step(tool="", status="needs_clarification")])) == (
        "needs_clarification"
    )
    copy = scenario("reject", FOLDER, "001", 1)
    rejected = traced("reject", "refused", [step(tool=copy.tool, status="rejected")])
    rejected.run["steps"][0]["arguments"] = {"source": f"{FOLDER}/a.txt", "destination": copy.target}  # type: ignore[index]
    rejected.scenario = copy
    assert classify(rejected) == "rejected_by_person"
    assert classify(traced("list", "refused", [])) == "refused"


def test_a_run_never_final_is_lost_unless_it_waits_for_an_answer_the_person_never_gave() -> None:
    lost = traced("create", "running", [create_step(status="approved")])
    lost.decisions.append(Decision(1, True, 200, 0))
    assert classify(lost) == "lost"
    unanswered = traced("create", "awaiting_confirmation", [create_step(status="awaiting_confirmation")])
    unanswered.decisions.append(Decision(1, True, 400, 0))
    assert classify(unanswered) == "unanswered"
    never = RunTrace("session", scenario("list", FOLDER, "001", 1), 0, run_id="gone")
    assert classify(never) == "lost"


def test_a_step_the_person_answered_that_still_waits_is_stuck() -> None:
    waiting = traced("create", "awaiting_confirmation", [create_step(status="awaiting_confirmation")])
    waiting.decisions.append(Decision(1, True, 200, 0))
    assert stuck_steps(waiting) == [1]
    allowed_never_ran = traced("create", "answered", [create_step(status="approved")])
    allowed_never_ran.decisions.append(Decision(1, True, 200, 0))
    assert stuck_steps(allowed_never_ran) == [1]
    refused = traced("create", "awaiting_confirmation", [create_step(status="awaiting_confirmation")])
    refused.decisions.append(Decision(1, True, 400, 0))
    assert stuck_steps(refused) == []
    assert stuck_steps(traced("create", "answered", [create_step()])) == []


def audit(run_id: str, step_: int, kind: str = "call", status: str = "succeeded", confirmation: str = "confirmed"):
    return {"run_id": run_id, "step": step_, "kind": kind, "status": status, "confirmation": confirmation}


def test_an_execution_audited_twice_for_one_step_is_duplicated_but_a_refused_replay_is_not() -> None:
    rows = [
        audit("r1", 1),
        audit("r1", 1, status="failed", confirmation="refused_replayed"),
        audit("r2", 1),
        audit("r2", 2),
        audit("r3", 1),
        audit("r3", 1, status="failed"),
        audit("r1", 1, kind="undo"),
        audit("r1", 1, kind="undo", status="failed"),
        audit("r2", 1, kind="decision", status="rejected", confirmation="rejected"),
        audit("", 0),
        audit("", 0),
    ]
    assert duplicated_executions(rows) == [{"run_id": "r3", "step": 1, "kind": "call", "times": 2}]
    assert duplicated_executions([*rows, audit("r2", 1, kind="undo"), audit("r2", 1, kind="undo")]) == [
        {"run_id": "r2", "step": 1, "kind": "undo", "times": 2},
        {"run_id": "r3", "step": 1, "kind": "call", "times": 2},
    ]
    assert refused_replays(rows) == 1


def test_answer_lines_sent_twice_are_found() -> None:
    events = [
        {"kind": "answer", "message": "Listed 3 files.\n"},
        {"kind": "succeeded", "message": ""},
        {"kind": "succeeded", "message": ""},
        {"kind": "answer", "message": "Read a.txt.\n"},
    ]
    assert duplicated_answer_lines(events) == []
    assert duplicated_answer_lines([*events, {"kind": "answer", "message": "Read a.txt.\n"}]) == ["Read a.txt.\n"]


def event(kind: str, at: int, number: int = 0) -> dict:
    return {"kind": kind, "step": number, "unix_ms": at, "message": ""}


def test_stage_times_come_from_the_events_and_the_steps_own_timings() -> None:
    change = {
        "created_unix_ms": 1000,
        "finished_unix_ms": 4000,
        "steps": [create_step(rank_ms=20.0, route_ms=300.0, duration_ms=4.0)],
    }
    events = [
        event("submitted", 1000),
        event("step_planned", 1500, 1),
        event("awaiting_confirmation", 1500, 1),
        event("approved", 3500, 1),
        event("succeeded", 3600, 1),
        event("answer", 3650),
        event("finished", 4000),
    ]
    times = stage_times(change, events)
    assert times["accept→routed"] == [500]
    assert times["rank"] == [20.0] and times["route"] == [300.0] and times["tool"] == [4.0]
    assert times["person's wait"] == [2000] and times["approve→result"] == [100]
    assert times["result→finished"] == [400]
    assert times["whole run"] == [3000.0] and times["whole run (system)"] == [1000.0]
    assert "policy→result" not in times

    read = {"created_unix_ms": 0, "finished_unix_ms": 900, "steps": [step(tool="filesystem.list_dir")]}
    events = [event("submitted", 0), event("step_planned", 600, 1), event("approved", 600, 1)]
    events += [event("succeeded", 700, 1), event("finished", 900)]
    times = stage_times(read, events)
    assert times["policy→result"] == [100] and times["whole run (system)"] == [900.0]
    assert "person's wait" not in times


def test_memory_growth_is_counted_after_warm_up_and_a_restart_is_flagged() -> None:
    samples = [
        MemorySample(0.0, {"gateway": {10: 50_000}, "planner": {11: 80_000}}),
        MemorySample(30.0, {"gateway": {10: 60_000}, "planner": {11: 90_000}}),
        MemorySample(90.0, {"gateway": {10: 66_000}, "planner": {12: 40_000}}),
    ]
    growth = memory_growth(samples, warmup=20.0)
    assert growth["gateway"] == {
        "after_warmup_kb": 60_000,
        "end_kb": 66_000,
        "restarted": False,
        "growth_kb": 6_000,
        "growth_kb_per_min": 6_000.0,
    }
    assert growth["planner"]["restarted"] is True
    two = MemorySample(1.0, {"planner": {11: 1_000, 12: 2_000}})
    assert two.total_kb("planner") == 3_000 and two.total_kb("router") is None
    assert memory_growth([], 10.0) == {}


def test_the_memory_table_shows_the_start_about_every_minute_and_the_end() -> None:
    samples = [MemorySample(float(t), {}) for t in range(0, 200, 5)]
    assert [s.t for s in memory_rows(samples)] == [0.0, 60.0, 120.0, 195.0]
    assert [s.t for s in memory_rows(samples, every=50.0)] == [0.0, 50.0, 100.0, 150.0, 195.0]
    assert memory_rows([]) == []


def test_vmrss_is_read_from_proc_status() -> None:
    assert parse_vmrss_kb("Name:\tpython\nVmPeak:\t  900 kB\nVmRSS:\t  123456 kB\n") == 123456
    assert parse_vmrss_kb("Name:\tkthreadd\n") is None


def test_http_errors_count_everything_but_success_and_backpressure() -> None:
    tally = HttpTally()
    for status in (202, 200, 200, 429, 429):
        tally.answered("submit", status, 5.0)
    assert tally.errors() == 0 and tally.throttled == 2
    tally.answered("confirm", 400, 5.0)
    tally.answered("get", 503, 5.0)
    tally.failed("events", "ReadError")
    assert tally.errors() == 3
    assert tally.times_ms["submit"] == [5.0, 5.0, 5.0]


def report_of(traces: list[RunTrace], rows: list[dict], tally: HttpTally | None = None) -> dict:
    samples = [MemorySample(0.0, {"gateway": {1: 1024}}), MemorySample(60.0, {"gateway": {1: 2048}})]
    return build_report(
        traces,
        [UndoTrace("session", "run-create", 1, 200, 12.0)],
        rows,
        tally or HttpTally(),
        samples,
        load_seconds=60.0,
        warmup=0.0,
        config={"sessions": 1, "seconds": 60, "url": "http://127.0.0.1:7310", "folder": str(FOLDER)},
    )


def test_the_report_counts_and_its_last_line_sums_up() -> None:
    good = traced("create", "answered", [create_step()], run_id="good", created_unix_ms=0, finished_unix_ms=500)
    good.events = [event("submitted", 0), event("step_planned", 100, 1), event("finished", 500)]
    lost = traced("list", "running", [], run_id="lost")
    twice = traced("create", "answered", [create_step()], run_id="twice")
    twice.events = [{"kind": "answer", "message": "Wrote it.\n", "step": 0}] * 2
    failed = traced("create", "failed", [create_step(status="failed", error="boom")], run_id="failed")
    throttled = RunTrace("session", scenario("list", FOLDER, "001", 2), 0, submit_status=429)
    rows = [audit("good", 1), audit("twice", 1), audit("twice", 1), audit("someone-else", 1), audit("someone-else", 1)]
    tally = HttpTally()
    tally.answered("submit", 429, 1.0)
    tally.answered("submit", 500, 1.0)

    report = report_of([good, lost, twice, failed, throttled], rows, tally)

    assert report["throughput"]["runs"] == 3 and report["throughput"]["runs_per_min"] == 3.0
    assert report["throughput"]["steps"] == 3 and report["throughput"]["undos"] == 1
    assert report["runs"]["submitted"] == 5 and report["runs"]["accepted"] == 4
    assert report["runs"]["not_accepted"] == {"429": 1}
    assert report["runs"]["outcomes"]["ok"] == 2 and report["runs"]["outcomes"]["failed_system"] == 1
    assert report["integrity"]["lost"] == ["lost"]
    assert report["integrity"]["duplicated_executions"] == [{"run_id": "twice", "step": 1, "kind": "call", "times": 2}]
    assert report["integrity"]["duplicated_answer_lines"] == [{"run_id": "twice", "line": "Wrote it.\n"}]
    assert report["latency_ms"]["accept→routed"] == {"n": 1, "p50": 100.0, "p95": 100.0, "max": 100.0}
    assert report["summary"] == {"lost": 1, "duplicated": 2, "errors": 2}  # the 500 and the failed run
    assert report["memory"]["growth"]["gateway"]["growth_kb"] == 1024

    lines = format_report(report)
    assert lines[-1] == "lost: 1 duplicated: 2 errors: 2"
    assert any(line.startswith("memory (RSS, MiB)") for line in lines)
    assert any("lost" in line and '"lost"' in line for line in lines)


def test_a_clean_report_ends_with_zeros() -> None:
    good = traced("create", "answered", [create_step()], run_id="good")
    report = report_of([good], [audit("good", 1)])
    assert format_report(report)[-1] == summary_line(0, 0, 0) == "lost: 0 duplicated: 0 errors: 0"


def test_the_load_is_bounded() -> None:
    with pytest.raises(SystemExit):
        parse_args(["--sessions", "5"])  # --seconds is required
    with pytest.raises(SystemExit):
        parse_args(["--sessions", "201", "--seconds", "10"])
    with pytest.raises(SystemExit):
        parse_args(["--seconds", "0"])
    args = parse_args(["--seconds", "20"])
    assert args.sessions == 5 and args.sample_every == 2.0 and args.warmup == 5.0


def test_the_processes_a_service_started_are_found_below_it() -> None:
    parents = {1: 0, 100: 1, 101: 100, 102: 100, 103: 101, 200: 1, 201: 200}
    assert descendants(parents, {100}) == {101, 102, 103}
    assert descendants(parents, {201}) == set()
    assert descendants(parents, set()) == set()


def test_a_step_that_ran_was_rejected_or_was_undone_must_be_in_the_audit_log() -> None:
    ran = traced("create", "answered", [create_step()], run_id="ran")
    undone = traced("create", "answered", [create_step(status="undone")], run_id="undone")
    rejected = traced("reject", "refused", [step(tool="filesystem.copy_file", status="rejected")], run_id="no")
    rejected.decisions.append(Decision(1, False, 200, 0))
    runs = [ran, undone, rejected]
    rows = [
        audit("ran", 1),
        audit("undone", 1),
        audit("undone", 1, kind="undo"),
        audit("no", 1, kind="decision", status="rejected", confirmation="rejected"),
    ]
    assert unaudited_steps(runs, rows) == []
    assert unaudited_steps(runs, rows[:1] + [audit("undone", 1, kind="undo", status="failed")]) == [
        {"run_id": "undone", "step": 1, "kind": "call"},
        {"run_id": "undone", "step": 1, "kind": "undo"},
        {"run_id": "no", "step": 1, "kind": "decision"},
    ]


def sse(*events: dict) -> bytes:
    return b"".join(f"event: {e.get('kind', 'error')}\ndata: {json.dumps(e)}\n\n".encode() for e in events)


def api_answering(*answers: httpx.Response | Exception) -> tuple[Api, list[httpx.Request]]:
    """An `Api` whose requests get `answers` in turn (an exception is raised as the transport's)."""
    sent: list[httpx.Request] = []
    left = list(answers)

    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        reply = left.pop(0)
        if isinstance(reply, Exception):
            raise reply
        return reply

    return Api("http://127.0.0.1:1", "token", HttpTally(), 4, transport=httpx.MockTransport(answer)), sent


async def test_a_429_is_waited_out_and_sent_again_a_failure_a_few_times_and_neither_is_hidden() -> None:
    busy = httpx.Response(429, headers={"Retry-After": "0"}, json={"error": "busy"})
    away = httpx.Response(503, headers={"Retry-After": "0"}, json={"error": "Redis is away"})
    api, sent = api_answering(busy, busy, httpx.Response(202, json={"run_id": "r"}))
    response = await api.request("submit", "POST", "/v1/turns", json={"text": "hi"})
    assert response is not None and response.status_code == 202 and len(sent) == 3
    assert sent[0].headers["authorization"] == "Bearer token"
    assert api.tally.throttled == 2 and api.tally.errors() == 0

    api, sent = api_answering(away, away, away, away, httpx.Response(200, json={}))
    response = await api.request("get", "GET", "/v1/runs/r")
    assert response is not None and response.status_code == 503 and len(sent) == 4
    assert api.tally.errors() == 4 and api.tally.problems["503"][0].startswith("get: ")

    lost = httpx.ReadError("reset")
    api, sent = api_answering(lost, httpx.Response(202, json={"run_id": "r"}))
    api.FAILURE_PAUSE_SECONDS = 0.0
    response = await api.request("submit", "POST", "/v1/turns", headers={"Idempotency-Key": "k1"}, json={})
    assert response is not None and response.status_code == 202
    assert [request.headers["idempotency-key"] for request in sent] == ["k1", "k1"]
    assert api.tally.transport_errors == ["submit: POST /v1/turns: ReadError reset"]

    api, sent = api_answering(lost, lost, lost, lost)
    api.FAILURE_PAUSE_SECONDS = 0.0
    assert await api.request("get", "GET", "/v1/runs/r") is None
    assert api.tally.errors() == 4 and len(sent) == 4
    await api.aclose()


async def test_a_runs_events_are_read_until_it_waits_finishes_or_the_stream_fails() -> None:
    waits = [event("submitted", 1), event("step_planned", 2, 1), event("awaiting_confirmation", 2, 1)]
    done = [*waits, event("approved", 3, 1), event("succeeded", 4, 1), event("finished", 5)]
    busy = httpx.Response(429, headers={"Retry-After": "0"})

    api, sent = api_answering(busy, httpx.Response(200, content=sse(*done)))
    seen, end = await api.events("r", lambda e: e["kind"] == "awaiting_confirmation", 10.0)
    assert (end, seen, len(sent)) == ("stopped", waits, 2)

    api, _ = api_answering(httpx.Response(200, content=sse(*done)))
    assert await api.events("r", lambda _e: False, 10.0) == (done, "finished")

    api, _ = api_answering(httpx.Response(200, content=sse(waits[0], {"error": "Redis is away"})))
    assert await api.events("r", lambda _e: False, 10.0) == ([waits[0]], "error")
    assert api.tally.transport_errors == ["events: run r: Redis is away"]

    api, _ = api_answering(httpx.Response(404, json={"error": "no run"}))
    assert await api.events("r", lambda _e: False, 10.0) == ([], "error")
    assert api.tally.errors() == 1


def test_a_run_of_the_benchs_sessions_it_was_never_told_of_is_an_orphan_and_an_error() -> None:
    listed = [{"run_id": "known", "status": "answered", "text": "a"}, {"run_id": "new", "status": "running"}]
    assert orphans(listed, ["known"]) == [{"run_id": "new", "status": "running", "text": ""}]
    good = traced("create", "answered", [create_step()], run_id="known")
    report = build_report(
        [good],
        [],
        [audit("known", 1)],
        HttpTally(),
        [],
        unknown_runs=orphans(listed, ["known"]),
        load_seconds=10.0,
        warmup=0.0,
        config={},
    )
    assert report["integrity"]["orphans"] == [{"run_id": "new", "status": "running", "text": ""}]
    assert format_report(report)[-1] == "lost: 0 duplicated: 0 errors: 1"
