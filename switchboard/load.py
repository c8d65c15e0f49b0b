"""`bench/load`: load a running stack with concurrent sessions of a scripted person, then check that
nothing was lost, stuck or done twice, and how the services' memory grew.

    bench/load --sessions 5 --seconds 60 [--json FILE] [--url URL] [--token-file FILE]
               [--state-dir DIR] [--workspace DIR] [--allow-remote]

Each session has one session id and loops until the time is up over a mix of requests on files the
bench makes in a folder of its own inside the stack's workspace: reads (list the folder, read a file,
search it), changes a scripted person allows (a new note; deleting one of its notes, with the name
typed), changes it rejects with a reason (a copy), and undoing a note it made. It follows each run's
event stream, answers each step that waits for it from the step's preview, and reads the record. A
turn goes with an `Idempotency-Key`, so a request whose answer was lost (no answer, a 503) is sent
again without making a second run; a 429 is the gateway's deliberate backpressure, waited out as its
`Retry-After` says and never counted as an error.

When the time is up it waits (`--grace`) for every accepted run to end, reads the tool host's audit
log and the runs of its sessions, and reports: throughput, latency per stage (from the runs' events
and the steps' own timings), outcomes (a wrong tool is the models' accuracy, counted apart), HTTP
statuses, the services' memory over the load, and the checks: LOST runs (accepted, never final),
STUCK steps (answered by the person, still waiting), DUPLICATED tool executions (more than one
audited execution of one step of one run) and answer lines sent twice, steps missing from the audit
log, and orphans (runs made for its sessions that the bench was never told of). The last line printed
is `lost: N duplicated: N errors: N`.

The figures are computed by the pure functions in the first half of this module (tested in
`tests/shared/test_load.py`); the second half talks to the stack.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ipaddress
import json
import os
import random
import shutil
import socket
import sys
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from switchboard.cli import FINAL, CliSettings

MAX_SESSIONS = 200
MAX_SECONDS = 3600
SERVICES = ("gateway", "planner", "filter", "router", "toolhost")
REDIS = "redis"
# The memory of the processes a service started is reported under its name and this suffix.
CHILDREN = "+children"

# What a session asks for, and how often (relative weights). A delete or an undo needs a note the
# session made earlier; without one the session makes a note instead.
KIND_WEIGHTS: dict[str, int] = {"list": 2, "read": 2, "search": 1, "create": 3, "reject": 1, "delete": 1, "undo": 1}
# The notes a session remembers for a later delete or undo (the newest).
NOTES_KEPT = 10

# How a run ended, as the report counts it. `wrong_tool` (the router chose another tool or other
# files), `needs_clarification` and `failed_tool` (a wrong call failed) are the models' accuracy, not
# failures of the system; `failed_system` is: the right call failed, or a stage gave up.
OUTCOMES = (
    "ok",
    "rejected_by_person",
    "wrong_tool",
    "needs_clarification",
    "refused",
    "failed_tool",
    "failed_system",
    "unanswered",
    "lost",
)

# Step errors that say the system, not the call, failed. The API does not serve a step's failure mode
# (`StepResult.failure`), so these are the texts its stages write for them: a stage that gave up
# (switchboard/failures.py), an interrupted call and a refused approval (services/toolhost/app.py).
SYSTEM_FAILURE_MARKERS = (
    "could not process this step after repeated attempts",
    "stopped while this call ran",
    "not run: ",
    "could not be reached",
    "unavailable",
)


# ---- pure parts ----


def percentile(values: Sequence[float], q: float) -> float | None:
    """The `q` quantile (0..1) of `values`, interpolated between the closest ranks; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    position = q * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def is_loopback_url(url: str) -> bool:
    """True when `url` names this machine (localhost or a loopback address)."""
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def retry_after_seconds(header: str | None, default: float = 1.0, cap: float = 30.0) -> float:
    """How long a 429's `Retry-After` (seconds) asks to wait, within (0, cap]."""
    try:
        seconds = float(header) if header is not None else default
    except ValueError:
        seconds = default
    return min(max(seconds, 0.05), cap)


@dataclass(frozen=True)
class Scenario:
    """One request of a session: its words, the call it should make, and what the person does."""

    kind: str
    text: str
    tool: str
    paths: tuple[str, ...]
    # For a change: "approve" or "reject" when it waits for the person.
    decision: str = "approve"
    reason: str = ""
    # The file the change makes or removes, checked on disk once the run ends.
    target: str = ""


def scenario(kind: str, folder: Path, label: str, number: int, note: str = "") -> Scenario:
    """The request of `kind` for a session's `folder`; `label` and `number` name the notes it makes,
    `note` is the note a delete removes."""
    a, b = folder / "a.txt", folder / "b.txt"
    if kind == "list":
        return Scenario(kind, f"List the files in {folder}", "filesystem.list_dir", (str(folder),))
    if kind == "read":
        which = a if number % 2 else b
        return Scenario(kind, f"Read {which}", "filesystem.read_file", (str(which),))
    if kind == "search":
        return Scenario(kind, f"Find the files named *.txt in {folder}", "filesystem.search_files", (str(folder),))
    if kind == "create":
        made = folder / f"load-{label}-{number}.txt"
        return Scenario(kind, f"Write 'hello' to {made}", "filesystem.write_file", (str(made),), target=str(made))
    if kind == "reject":
        copy = folder / f"copy-{label}-{number}.txt"
        return Scenario(
            kind,
            f"Copy the file {a} to {copy}",
            "filesystem.copy_file",
            (str(a), str(copy)),
            decision="reject",
            reason="the load bench's person says no",
            target=str(copy),
        )
    if kind == "delete":
        return Scenario(kind, f"Delete the file {note}", "filesystem.delete_file", (note,), target=note)
    raise ValueError(f"no scenario {kind!r}")


def choose_kind(rng: random.Random, have_notes: bool, weights: Mapping[str, int] = KIND_WEIGHTS) -> str:
    """The next thing a session does; a delete or an undo needs a note it made (else it makes one)."""
    kinds = list(weights)
    kind = rng.choices(kinds, weights=[weights[k] for k in kinds])[0]
    if kind in ("delete", "undo") and not have_notes:
        return "create"
    return kind


def argument_strings(value: Any) -> list[str]:
    """Every string inside a call's arguments."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in argument_strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in argument_strings(v)]
    return []


def first_call(run: Mapping[str, Any]) -> dict[str, Any] | None:
    """The run's first step that names a tool."""
    return next((s for s in run.get("steps", []) if s.get("tool")), None)


def is_expected_call(step: Mapping[str, Any] | None, expected: Scenario) -> bool:
    """The step calls the scenario's tool on the scenario's files."""
    if step is None or step.get("tool") != expected.tool:
        return False
    given = {os.path.normpath(s) for s in argument_strings(step.get("arguments", {}))}
    return all(os.path.normpath(p) in given for p in expected.paths)


@dataclass
class Decision:
    """The scripted person's answer to a step, and how the API took it."""

    step: int
    approve: bool
    status_code: int  # 0: no answer (transport error)
    at_ms: int

    @property
    def taken(self) -> bool:
        return 200 <= self.status_code < 300


@dataclass
class RunTrace:
    """What the bench saw of one request: the run it made, its events, the person's answers, the
    record at the end."""

    session_id: str
    scenario: Scenario
    submitted_ms: int
    idempotency_key: str = field(default_factory=lambda: uuid.uuid4().hex)
    run_id: str = ""
    submit_status: int = 0
    events: list[dict[str, Any]] = field(default_factory=list)
    run: dict[str, Any] | None = None
    decisions: list[Decision] = field(default_factory=list)
    # The person rejected the step because it was not the call asked for.
    wrong_call: bool = False
    # What the bench found on disk that the run's answer contradicts ('' when it agrees).
    effect_mismatch: str = ""

    @property
    def accepted(self) -> bool:
        return bool(self.run_id)

    @property
    def final(self) -> bool:
        return self.run is not None and self.run.get("status") in FINAL


@dataclass
class UndoTrace:
    """An undo the scripted person asked for, of a note one of its runs made."""

    session_id: str
    run_id: str
    step: int
    status_code: int
    ms: float
    effect_mismatch: str = ""


def has_system_failure(run: Mapping[str, Any]) -> bool:
    texts = [str(s.get("error") or "") for s in run.get("steps", [])]
    return any(marker in text.lower() for text in texts for marker in SYSTEM_FAILURE_MARKERS)


def waits_unanswered(trace: RunTrace) -> bool:
    """The run waits on a step the person never managed to answer (the bench's problem, not a loss)."""
    if trace.run is None:
        return False
    taken = {d.step for d in trace.decisions if d.taken}
    return any(
        s.get("status") == "awaiting_confirmation" and s.get("number") not in taken for s in trace.run.get("steps", [])
    )


def classify(trace: RunTrace) -> str:
    """How the run ended, as one of OUTCOMES (only for accepted runs)."""
    run = trace.run
    if run is None or not trace.final:
        return "unanswered" if waits_unanswered(trace) else "lost"
    step = first_call(run)
    right = is_expected_call(step, trace.scenario)
    status = run["status"]
    if status == "failed":
        return "failed_system" if has_system_failure(run) or right else "failed_tool"
    if trace.wrong_call or (step is not None and not right):
        return "wrong_tool"
    if status == "needs_clarification":
        return "needs_clarification"
    if status == "refused":
        rejected = step is not None and step.get("status") == "rejected" and trace.scenario.decision == "reject"
        return "rejected_by_person" if rejected else "refused"
    if step is None:
        return "needs_clarification"
    return "ok" if step.get("status") in ("succeeded", "undone") else "failed_system"


def stuck_steps(trace: RunTrace) -> list[int]:
    """Steps the person answered (the API took it) that still wait, or were allowed and never ran."""
    if trace.run is None:
        return []
    by_number = {s.get("number"): s for s in trace.run.get("steps", [])}
    stuck = []
    for decision in trace.decisions:
        state = (by_number.get(decision.step) or {}).get("status")
        if decision.taken and (state == "awaiting_confirmation" or (state == "approved" and trace.final)):
            stuck.append(decision.step)
    return stuck


def duplicated_executions(rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Steps of runs the audit log shows executed more than once: calls the tool host ran (not those it
    refused, such as a replayed approval), and successful undos, counted per (run, step)."""
    calls: Counter[tuple[str, int, str]] = Counter()
    for row in rows:
        if not row.get("run_id"):
            continue
        refused = str(row.get("confirmation", "")).startswith("refused")
        if row.get("kind") == "call" and not refused:
            calls[(row["run_id"], int(row.get("step", 0)), "call")] += 1
        elif row.get("kind") == "undo" and row.get("status") == "succeeded":
            calls[(row["run_id"], int(row.get("step", 0)), "undo")] += 1
    return [
        {"run_id": run_id, "step": step, "kind": kind, "times": times}
        for (run_id, step, kind), times in sorted(calls.items())
        if times > 1
    ]


def refused_replays(rows: Iterable[Mapping[str, Any]]) -> int:
    """Copies of a call the tool host refused to run again (duplicates it caught)."""
    return sum(1 for row in rows if str(row.get("confirmation", "")) == "refused_replayed")


def unaudited_steps(traces: Iterable[RunTrace], rows: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """What the audit log should hold of the runs and does not: a call for every step that ran, a
    decision for every step the person rejected, a successful undo for every step undone."""
    have = {(r.get("run_id"), int(r.get("step", 0)), r.get("kind")) for r in rows if r.get("kind") != "undo"}
    have |= {(r.get("run_id"), int(r.get("step", 0)), "undo") for r in rows if r.get("status") == "succeeded"}
    missing = []
    for trace in traces:
        rejected = {d.step for d in trace.decisions if d.taken and not d.approve}
        for step in (trace.run or {}).get("steps", []):
            number, state = int(step.get("number", 0)), step.get("status")
            wanted = []
            if state in ("succeeded", "undone"):
                wanted.append("call")
            if state == "undone":
                wanted.append("undo")
            if state == "rejected" and number in rejected:
                wanted.append("decision")
            missing += [
                {"run_id": trace.run_id, "step": number, "kind": kind}
                for kind in wanted
                if (trace.run_id, number, kind) not in have
            ]
    return missing


def orphans(listed: Iterable[Mapping[str, Any]], known: Iterable[str]) -> list[dict[str, Any]]:
    """Runs the stack made for the bench's sessions that the bench was never told of: their request was
    answered with an error (or not at all) although the run was recorded."""
    seen = set(known)
    return [
        {"run_id": run["run_id"], "status": run.get("status"), "text": run.get("text", "")}
        for run in listed
        if run.get("run_id") not in seen
    ]


def duplicated_answer_lines(events: Iterable[Mapping[str, Any]]) -> list[str]:
    """Answer lines a run's event stream carries more than once."""
    lines = Counter(str(e.get("message", "")) for e in events if e.get("kind") == "answer")
    return [line for line, times in lines.items() if times > 1]


def stage_times(run: Mapping[str, Any], events: Sequence[Mapping[str, Any]]) -> dict[str, list[float]]:
    """The run's time per stage (ms), from its record and its events (server time stamps):

    - `accept→routed`: submitted → the first step routed (the turn's queue, planning, ranking, routing);
    - `rank`, `route`, `tool`: the filter's, the router's and the tool's own time on each step;
    - `policy→result`: a read the policy let through → its result (the approved stream, the tool host);
    - `person's wait`: a step waiting → the person's answer (the bench's own reaction);
    - `approve→result`: the person's approval → the step's result;
    - `result→finished`: the last step's result → the run's end (the answer);
    - `whole run`: created → finished; `whole run (system)`: the same without the person's wait.
    """
    times: dict[str, list[float]] = defaultdict(list)
    for step in run.get("steps", []):
        if step.get("tool"):
            times["rank"].append(float(step.get("rank_ms", 0.0)))
            times["route"].append(float(step.get("route_ms", 0.0)))
        if step.get("status") in ("succeeded", "failed", "undone") and step.get("duration_ms"):
            times["tool"].append(float(step["duration_ms"]))
    first: dict[tuple[str, int], int] = {}
    for event in events:
        first.setdefault((str(event.get("kind")), int(event.get("step", 0))), int(event.get("unix_ms", 0)))
    submitted = first.get(("submitted", 0))
    planned = sorted(at for (kind, _), at in first.items() if kind == "step_planned")
    if submitted is not None and planned:
        times["accept→routed"].append(planned[0] - submitted)
    waited = 0.0
    results: list[int] = []
    for (kind, number), at in first.items():
        if kind not in ("succeeded", "failed"):
            continue
        results.append(at)
        awaiting = first.get(("awaiting_confirmation", number))
        approved = first.get(("approved", number))
        if approved is None:
            continue
        if awaiting is None:
            times["policy→result"].append(at - approved)
        else:
            times["approve→result"].append(at - approved)
    for (kind, number), at in first.items():
        if kind == "awaiting_confirmation":
            answered = [first.get((k, number)) for k in ("approved", "rejected", "expired")]
            answered_at = min((t for t in answered if t is not None), default=None)
            if answered_at is not None:
                times["person's wait"].append(answered_at - at)
                waited += answered_at - at
    finished = first.get(("finished", 0))
    if finished is not None and results:
        times["result→finished"].append(finished - max(results))
    if run.get("finished_unix_ms") and "created_unix_ms" in run:
        whole = float(run["finished_unix_ms"] - run["created_unix_ms"])
        times["whole run"].append(whole)
        times["whole run (system)"].append(whole - waited)
    return dict(times)


STAGE_ORDER = (
    "accept→routed",
    "rank",
    "route",
    "policy→result",
    "person's wait",
    "approve→result",
    "tool",
    "result→finished",
    "whole run",
    "whole run (system)",
)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    def rounded(value: float | None) -> float | None:
        return None if value is None else round(value, 1)

    return {
        "n": len(values),
        "p50": rounded(percentile(values, 0.5)),
        "p95": rounded(percentile(values, 0.95)),
        "max": rounded(max(values) if values else None),
    }


def descendants(parents: Mapping[int, int], roots: Iterable[int]) -> set[int]:
    """The processes below `roots` (children, their children, …), from a map of process to parent."""
    children: dict[int, list[int]] = defaultdict(list)
    for pid, parent in parents.items():
        children[parent].append(pid)
    found: set[int] = set()
    todo = list(roots)
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def parse_vmrss_kb(status_text: str) -> int | None:
    """The resident set size (kB) in the text of /proc/<pid>/status."""
    for line in status_text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return None


@dataclass
class MemorySample:
    """The resident memory (kB) of each process of each service at one moment (`t`: seconds since the
    load began)."""

    t: float
    rss_kb: dict[str, dict[int, int]]

    def total_kb(self, service: str) -> int | None:
        found = self.rss_kb.get(service)
        return sum(found.values()) if found else None


def memory_rows(samples: Sequence[MemorySample], every: float = 60.0) -> list[MemorySample]:
    """The samples a table shows: the first, about one every `every` seconds, and the last."""
    if not samples:
        return []
    shown, last = [samples[0]], samples[-1]
    for sample in samples[1:-1]:
        if sample.t - shown[-1].t >= every and last.t - sample.t >= every / 2:
            shown.append(sample)
    if samples[-1] is not shown[-1]:
        shown.append(samples[-1])
    return shown


def memory_growth(samples: Sequence[MemorySample], warmup: float) -> dict[str, dict[str, Any]]:
    """Per service: its memory after warm-up (the first sample at or after `warmup` seconds) and at
    the end, the growth between them (kB, and kB a minute), and whether its processes changed (a
    restart makes the growth meaningless)."""
    growth: dict[str, dict[str, Any]] = {}
    if not samples:
        return growth
    names = sorted({name for s in samples for name in s.rss_kb})
    base = next((s for s in samples if s.t >= warmup), samples[-1])
    last = samples[-1]
    for name in names:
        start, end = base.total_kb(name), last.total_kb(name)
        pids = [frozenset(s.rss_kb.get(name, {})) for s in samples if s.t >= base.t and s.rss_kb.get(name)]
        minutes = (last.t - base.t) / 60
        entry: dict[str, Any] = {"after_warmup_kb": start, "end_kb": end, "restarted": len(set(pids)) > 1}
        if start is not None and end is not None:
            entry["growth_kb"] = end - start
            entry["growth_kb_per_min"] = round((end - start) / minutes, 1) if minutes > 0 else None
        growth[name] = entry
    return growth


@dataclass
class HttpTally:
    """Every HTTP answer the bench got, by operation and status, and its time."""

    statuses: Counter[str] = field(default_factory=Counter)
    by_operation: dict[str, Counter[str]] = field(default_factory=lambda: defaultdict(Counter))
    times_ms: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    throttled: int = 0
    transport_errors: list[str] = field(default_factory=list)
    # The first answers of each failing status, as the API explained them.
    problems: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def answered(self, operation: str, status: int, ms: float, body: str = "") -> None:
        if status >= 400 and status != 429 and len(self.problems[str(status)]) < 5:
            self.problems[str(status)].append(f"{operation}: {body[:300]}")
        self.statuses[str(status)] += 1
        self.by_operation[operation][str(status)] += 1
        if status != 429:
            self.times_ms[operation].append(ms)
        else:
            self.throttled += 1

    def failed(self, operation: str, error: str) -> None:
        self.statuses["transport"] += 1
        self.by_operation[operation]["transport"] += 1
        self.transport_errors.append(f"{operation}: {error}")

    def errors(self) -> int:
        """Answers that are failures: 5xx, transport errors, and any 4xx but a 429 (the bench sends only
        what the API must accept, so a 4xx means a step changed under it or a check misjudged it)."""
        return sum(
            count for status, count in self.statuses.items() if status == "transport" or int(status) >= 400
        ) - self.statuses.get("429", 0)


def summary_line(lost: int, duplicated: int, errors: int) -> str:
    return f"lost: {lost} duplicated: {duplicated} errors: {errors}"


def build_report(
    traces: Sequence[RunTrace],
    undos: Sequence[UndoTrace],
    audit_rows: Sequence[Mapping[str, Any]],
    tally: HttpTally,
    samples: Sequence[MemorySample],
    *,
    unknown_runs: Sequence[Mapping[str, Any]] = (),
    load_seconds: float,
    warmup: float,
    config: Mapping[str, Any],
    table_every: float = 60.0,
) -> dict[str, Any]:
    """Everything the bench measured, as one JSON-able dict; `format_report` prints it."""
    accepted = [t for t in traces if t.accepted]
    outcomes = Counter(classify(t) for t in accepted)
    minutes = max(load_seconds, 1e-9) / 60
    final = [t for t in accepted if t.final]
    settled_steps = sum(
        1
        for t in final
        for s in (t.run or {}).get("steps", [])
        if s.get("status") in ("succeeded", "failed", "rejected", "skipped", "undone", "needs_clarification")
    )
    stages: dict[str, list[float]] = defaultdict(list)
    for trace in final:
        for stage, values in stage_times(trace.run or {}, trace.events).items():
            stages[stage].extend(values)
    lost = [t.run_id for t in accepted if classify(t) == "lost"]
    stuck = [{"run_id": t.run_id, "step": n} for t in accepted for n in stuck_steps(t)]
    ours = {t.run_id for t in accepted}
    rows = [r for r in audit_rows if r.get("run_id") in ours]
    duplicated = duplicated_executions(rows)
    repeated_lines = [
        {"run_id": t.run_id, "line": line} for t in accepted for line in duplicated_answer_lines(t.events)
    ]
    system_failures = [
        {"run_id": t.run_id, "status": (t.run or {}).get("status"), "errors": _step_errors(t.run)}
        for t in accepted
        if classify(t) == "failed_system"
    ]
    mismatches = [{"run_id": t.run_id, "problem": t.effect_mismatch} for t in accepted if t.effect_mismatch]
    mismatches += [{"run_id": u.run_id, "problem": u.effect_mismatch} for u in undos if u.effect_mismatch]
    unaudited = unaudited_steps([t for t in accepted if t.final], rows)
    lost_ids = set(lost)
    stuck_not_lost = [s for s in stuck if s["run_id"] not in lost_ids]
    errors = tally.errors() + len(system_failures) + len(stuck_not_lost) + len(mismatches) + len(unaudited)
    errors += len(unknown_runs)
    undo_outcomes = Counter("ok" if 200 <= u.status_code < 300 else str(u.status_code or "transport") for u in undos)
    return {
        "config": dict(config),
        "load_seconds": round(load_seconds, 1),
        "throughput": {
            "runs": len(final),
            "runs_per_min": round(len(final) / minutes, 2),
            "steps": settled_steps,
            "steps_per_min": round(settled_steps / minutes, 2),
            "undos": len(undos),
        },
        "runs": {
            "submitted": len(traces),
            "accepted": len(accepted),
            # What a request that was not accepted got instead (429: still refused when the time was up).
            "not_accepted": dict(Counter(str(t.submit_status or "no answer") for t in traces if not t.accepted)),
            "by_kind": dict(Counter(t.scenario.kind for t in accepted)),
            "outcomes": {name: outcomes.get(name, 0) for name in OUTCOMES},
            "undo_outcomes": dict(undo_outcomes),
        },
        "latency_ms": {stage: summarize(stages[stage]) for stage in STAGE_ORDER if stage in stages},
        "http": {
            "statuses": dict(sorted(tally.statuses.items())),
            "by_operation": {op: dict(sorted(c.items())) for op, c in sorted(tally.by_operation.items())},
            "times_ms": {op: summarize(v) for op, v in sorted(tally.times_ms.items())},
            "throttled_429": tally.throttled,
            "transport_errors": tally.transport_errors[:20],
            "problems": dict(sorted(tally.problems.items())),
        },
        "integrity": {
            "lost": lost,
            "stuck": stuck,
            "duplicated_executions": duplicated,
            "duplicated_answer_lines": repeated_lines,
            "refused_replays": refused_replays(rows),
            "audit_rows": len(rows),
            "unaudited": unaudited,
            "orphans": list(unknown_runs),
            "system_failures": system_failures,
            "effect_mismatches": mismatches,
            "unanswered": [t.run_id for t in accepted if classify(t) == "unanswered"],
        },
        "memory": {
            "warmup_seconds": warmup,
            "table_every_seconds": table_every,
            "samples": [{"t": round(s.t, 1), "rss_kb": _memory_json(s)} for s in samples],
            "services": sorted({name for s in samples for name in s.rss_kb}),
            "growth": memory_growth(samples, warmup),
        },
        "wrong_calls": [
            {"run_id": t.run_id, "kind": t.scenario.kind, "text": t.scenario.text, "step": first_call(t.run or {})}
            for t in accepted
            if classify(t) in ("wrong_tool", "failed_tool", "needs_clarification", "refused")
        ][:50],
        "summary": {
            "lost": len(lost),
            "duplicated": len(duplicated) + len(repeated_lines),
            "errors": errors,
        },
    }


def _memory_json(sample: MemorySample) -> dict[str, Any]:
    return {name: {str(pid): kb for pid, kb in pids.items()} for name, pids in sorted(sample.rss_kb.items())}


def _step_errors(run: Mapping[str, Any] | None) -> list[str]:
    return [str(s.get("error")) for s in (run or {}).get("steps", []) if s.get("error")]


def format_report(report: Mapping[str, Any]) -> list[str]:
    """The report as lines to print; the last is `summary_line`."""
    out: list[str] = []
    config, put = report["config"], report["throughput"]
    out.append(
        f"bench/load: {config.get('sessions')} sessions for {config.get('seconds')} s against {config.get('url')}"
        f" (load ran {report['load_seconds']} s; workspace {config.get('folder')})"
    )
    out.append(
        f"throughput: {put['runs']} runs ({put['runs_per_min']}/min), {put['steps']} steps"
        f" ({put['steps_per_min']}/min), {put['undos']} undos"
    )
    runs = report["runs"]
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(runs["by_kind"].items()))
    refused = ", ".join(f"{count} got {status}" for status, count in sorted(runs["not_accepted"].items()))
    out.append(
        f"runs: {runs['submitted']} submitted, {runs['accepted']} accepted ({kinds})"
        + (f"; not accepted: {refused}" if refused else "")
    )
    out.append("outcomes: " + ", ".join(f"{name} {count}" for name, count in runs["outcomes"].items()))
    if runs["undo_outcomes"]:
        out.append("undos: " + ", ".join(f"{k} {v}" for k, v in sorted(runs["undo_outcomes"].items())))
    out.append("")
    out.append(f"{'latency (ms)':<26}{'n':>6}{'p50':>10}{'p95':>10}{'max':>10}")
    rows = [(stage, figures) for stage, figures in report["latency_ms"].items()]
    rows += [(f"HTTP {op}", figures) for op, figures in report["http"]["times_ms"].items()]
    for stage, figures in rows:
        cells = "".join(f"{'-' if figures[k] is None else figures[k]:>10}" for k in ("p50", "p95", "max"))
        out.append(f"  {stage:<24}{figures['n']:>6}{cells}")
    out.append("")
    http = report["http"]
    out.append(
        "HTTP statuses: "
        + ", ".join(f"{status} {count}" for status, count in http["statuses"].items())
        + f" (429 = backpressure, waited out and retried: {http['throttled_429']})"
    )
    for status, said in http["problems"].items():
        out += [f"  {status} {answer}" for answer in said[:3]]
    for error in http["transport_errors"][:5]:
        out.append(f"  transport error: {error}")
    out.append("")
    memory = report["memory"]
    samples = [
        MemorySample(s["t"], {n: {int(p): kb for p, kb in v.items()} for n, v in s["rss_kb"].items()})
        for s in memory["samples"]
    ]
    order = [part for name in SERVICES for part in (name, f"{name}{CHILDREN}")] + [REDIS]
    names = [n for n in order if n in memory["services"]] + [n for n in memory["services"] if n not in order]
    if samples:
        widths = [max(10, len(name) + 2) for name in names]
        growth = memory["growth"]
        out.append(f"{'memory (RSS, MiB)':<20}" + "".join(f"{n:>{w}}" for n, w in zip(names, widths, strict=True)))
        table = [
            (f"  t={s.t:.0f}s", [_mib(s.total_kb(n)) for n in names])
            for s in memory_rows(samples, memory["table_every_seconds"])
        ]
        table.append(
            (
                f"  growth after {memory['warmup_seconds']:.0f}s",
                [_signed_mib(growth[n].get("growth_kb")) for n in names],
            )
        )
        for label, row in table:
            out.append(f"{label:<20}" + "".join(f"{c:>{w}}" for c, w in zip(row, widths, strict=True)))
        restarted = [name for name in names if growth[name].get("restarted")]
        if restarted:
            out.append(
                f"  (processes changed during the load, so their growth is not comparable: {', '.join(restarted)})"
            )
    else:
        out.append("memory: no samples (no service processes found on this machine)")
    out.append("")
    checks = report["integrity"]
    out.append(
        f"integrity: lost {len(checks['lost'])}, stuck {len(checks['stuck'])}, duplicated executions"
        f" {len(checks['duplicated_executions'])}, duplicated answer lines {len(checks['duplicated_answer_lines'])},"
        f" system failures {len(checks['system_failures'])}, effect mismatches {len(checks['effect_mismatches'])},"
        f" unaudited {len(checks['unaudited'])}, orphans {len(checks['orphans'])},"
        f" unanswered {len(checks['unanswered'])};"
        f" {checks['audit_rows']} audit rows read, replays the tool host refused {checks['refused_replays']}"
    )
    for name in (
        "lost",
        "stuck",
        "duplicated_executions",
        "duplicated_answer_lines",
        "system_failures",
        "effect_mismatches",
        "unaudited",
        "orphans",
        "unanswered",
    ):
        for item in checks[name][:10]:
            out.append(f"  {name}: {json.dumps(item, ensure_ascii=False)}")
    summary = report["summary"]
    out.append(summary_line(summary["lost"], summary["duplicated"], summary["errors"]))
    return out


def _mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:.1f}"


def _signed_mib(kb: int | None) -> str:
    return "-" if kb is None else f"{kb / 1024:+.1f}"


# ---- talking to the stack ----


def progress(message: str) -> None:
    print(f"load: {message}", file=sys.stderr, flush=True)


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Target:
    """The stack the bench loads, and where it finds its processes and files."""

    url: str
    token: str
    state_dir: Path
    redis_url: str
    redis_password: str | None
    workspace: Path


def discover(args: argparse.Namespace) -> Target:
    """The API's address and token the way `sb` finds them (the state directory and the HTTP port,
    `SWITCHBOARD_*` settings), unless given; the stack's Redis the way `sb status` finds it."""
    from switchboard.stack import REDIS_URL_FILE

    settings = CliSettings(state_dir=args.state_dir) if args.state_dir else CliSettings()
    url = (args.url or settings.api_url).rstrip("/")
    if not is_loopback_url(url) and not args.allow_remote:
        raise SystemExit(f"load: {url} is not this machine; the bench loads a local stack (--allow-remote to insist)")
    token_file = args.token_file or settings.token_path
    try:
        token = settings.token if settings.token and not args.token_file else token_file.read_text().strip()
    except FileNotFoundError:
        raise SystemExit(
            f"load: no API token at {token_file}; start the stack (`make start`) or pass --token-file"
        ) from None
    redis_url = args.redis_url
    if not redis_url and "redis_url" in settings.model_fields_set:
        redis_url = settings.redis_url
    if not redis_url:
        try:
            redis_url = (settings.state_dir / REDIS_URL_FILE).read_text().strip()
        except FileNotFoundError:
            redis_url = settings.redis_url
    workspace = args.workspace or settings.roots()[0]
    return Target(url, token, settings.state_dir, redis_url, settings.redis_password(), workspace)


class Api:
    """The gateway's HTTP API as the bench uses it: every answer tallied; a 429 waited out as its
    `Retry-After` says and sent again."""

    MAX_RETRIES = 100
    FAILURE_RETRIES = 3
    FAILURE_PAUSE_SECONDS = 1.0

    def __init__(
        self,
        url: str,
        token: str,
        tally: HttpTally,
        connections: int,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.tally = tally
        self.http = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=httpx.Timeout(60.0, connect=10.0),
            # An idle connection is dropped before the gateway's server drops it (uvicorn: after 5 s),
            # so a request never goes out on a connection the server is closing.
            limits=httpx.Limits(
                max_connections=connections, max_keepalive_connections=connections, keepalive_expiry=2.0
            ),
            transport=transport,
        )

    async def aclose(self) -> None:
        await self.http.aclose()

    async def request(
        self,
        operation: str,
        method: str,
        path: str,
        give_up_at: float | None = None,
        **kwargs: Any,
    ) -> httpx.Response | None:
        """The answer (a 429 only when retrying would pass `give_up_at`), or None when the request got
        none. A request that failed (no answer, or a 503 with a `Retry-After`) is sent again a few
        times, as a person would; a turn is sent with an `Idempotency-Key`, so that a turn recorded
        before its answer was lost is not made twice. Each failure still counts as an error."""
        failures = 0
        for _ in range(self.MAX_RETRIES):
            start = time.perf_counter()
            try:
                response = await self.http.request(method, path, **kwargs)
            except httpx.HTTPError as exc:
                self.tally.failed(operation, f"{method} {path}: {type(exc).__name__} {exc}")
                failures += 1
                if failures > self.FAILURE_RETRIES:
                    return None
                await asyncio.sleep(self.FAILURE_PAUSE_SECONDS)
                continue
            self.tally.answered(operation, response.status_code, (time.perf_counter() - start) * 1000, response.text)
            if response.status_code == 503 and "retry-after" in response.headers and failures < self.FAILURE_RETRIES:
                failures += 1
            elif response.status_code != 429:
                return response
            wait = retry_after_seconds(response.headers.get("retry-after"))
            if give_up_at is not None and time.monotonic() + wait > give_up_at:
                return response
            await asyncio.sleep(wait)
        return response

    async def events(
        self, run_id: str, until: Callable[[dict[str, Any]], bool], timeout: float
    ) -> tuple[list[dict[str, Any]], str]:
        """The run's events from its start, read until it finishes (`finished`), `until` holds for one
        (`stopped`), the stream ends (`ended`), `timeout` passes (`timeout`) or it fails (`error`)."""
        seen: list[dict[str, Any]] = []
        try:
            async with asyncio.timeout(timeout):
                for _ in range(self.MAX_RETRIES):
                    start = time.perf_counter()
                    async with self.http.stream(
                        "GET", f"/v1/runs/{run_id}/events", timeout=httpx.Timeout(None, connect=10.0)
                    ) as response:
                        took = (time.perf_counter() - start) * 1000
                        if response.status_code == 429:
                            self.tally.answered("events", 429, took)
                            await response.aread()
                            wait = retry_after_seconds(response.headers.get("retry-after"))
                        elif response.status_code != 200:
                            await response.aread()
                            self.tally.answered("events", response.status_code, took, response.text)
                            return seen, "error"
                        else:
                            self.tally.answered("events", 200, took)
                            async for line in response.aiter_lines():
                                if not line.startswith("data: "):
                                    continue
                                event = json.loads(line[6:])
                                if "kind" not in event:  # the gateway ends a stream it cannot go on with
                                    self.tally.failed("events", f"run {run_id}: {event.get('error', event)}")
                                    return seen, "error"
                                seen.append(event)
                                if event.get("kind") == "finished":
                                    return seen, "finished"
                                if until(event):
                                    return seen, "stopped"
                            return seen, "ended"
                    await asyncio.sleep(wait)
        except TimeoutError:
            return seen, "timeout"
        except httpx.HTTPError as exc:
            self.tally.failed("events", f"run {run_id}: {type(exc).__name__} {exc}")
            return seen, "error"
        return seen, "error"

    async def run(self, run_id: str) -> dict[str, Any] | None:
        response = await self.request("get", "GET", f"/v1/runs/{run_id}")
        return response.json() if response is not None and response.status_code == 200 else None


@dataclass
class Note:
    """A note a session's run made, which it may later delete or undo."""

    run_id: str
    step: int
    path: str


class Session:
    """One scripted person with one session id, asking and answering until the time is up."""

    def __init__(
        self,
        number: int,
        api: Api,
        folder: Path,
        deadline: float,
        run_timeout: float,
        rng: random.Random,
    ) -> None:
        self.api = api
        self.folder = folder
        self.deadline = deadline
        self.run_timeout = run_timeout
        self.rng = rng
        self.label = f"{number:03d}"
        self.session_id = uuid.uuid4().hex
        self.traces: list[RunTrace] = []
        self.undos: list[UndoTrace] = []
        self.notes: list[Note] = []
        self._by_run: dict[str, RunTrace] = {}

    async def run(self) -> None:
        number = 0
        while time.monotonic() < self.deadline:
            number += 1
            kind = choose_kind(self.rng, bool(self.notes))
            # The newest note: an old run's record may be gone (the stack keeps only its latest runs).
            if kind == "undo":
                await self.undo(self.notes.pop())
                continue
            note = self.notes.pop() if kind == "delete" else None
            trace = await self.ask(scenario(kind, self.folder, self.label, number, note.path if note else ""))
            outcome = classify(trace) if trace.accepted else ""
            if kind == "create" and outcome == "ok":
                step = first_call(trace.run or {}) or {}
                self.notes.append(Note(trace.run_id, int(step.get("number", 1)), trace.scenario.target))
                del self.notes[:-NOTES_KEPT]
            elif note is not None and outcome != "ok" and Path(note.path).exists():
                self.notes.append(note)  # not deleted: it can be asked for again

    async def ask(self, asked: Scenario) -> RunTrace:
        """Submit the request, follow its run, answer each step that waits for the person, read the
        record at the end."""
        trace = RunTrace(self.session_id, asked, now_ms())
        self.traces.append(trace)
        response = await self.api.request(
            "submit",
            "POST",
            "/v1/turns",
            give_up_at=self.deadline,
            headers={"Idempotency-Key": trace.idempotency_key},
            json={"text": asked.text, "session_id": self.session_id},
        )
        if response is None:
            return trace
        trace.submit_status = response.status_code
        if response.status_code != 202:
            if "retry-after" in response.headers:  # come back when the gateway said, not at once
                wait = retry_after_seconds(response.headers["retry-after"])
                await asyncio.sleep(max(0.0, min(wait, self.deadline - time.monotonic())))
            return trace
        trace.run_id = response.json()["run_id"]
        self._by_run[trace.run_id] = trace
        give_up = time.monotonic() + self.run_timeout
        answered: set[int] = set()
        while (left := give_up - time.monotonic()) > 0:
            events, end = await self.api.events(
                trace.run_id,
                lambda e: e.get("kind") == "awaiting_confirmation" and e.get("step") not in answered,
                left,
            )
            if len(events) >= len(trace.events):
                trace.events = events
            if end == "stopped":
                step = int(events[-1]["step"])
                answered.add(step)
                await self.answer(trace, step)
                continue
            if end in ("finished", "timeout"):
                break
            # The stream broke off: follow the run again (its events come again from the start), as
            # a person's page would, unless it has ended meanwhile.
            run = await self.api.run(trace.run_id)
            if run is not None and run.get("status") in FINAL:
                break
            await asyncio.sleep(1.0)
        trace.run = await self.api.run(trace.run_id)
        trace.effect_mismatch = effect_mismatch(trace) if trace.final else ""
        return trace

    async def answer(self, trace: RunTrace, number: int) -> None:
        """The scripted person reads the step's preview and allows it (typing the target where its tier
        asks for that) or rejects it: as the scenario says when it is the call asked for, else as not
        what was asked. An allow the API refuses is followed by a reject, so the run still ends."""
        run = await self.api.run(trace.run_id)
        step = next((s for s in (run or {}).get("steps", []) if s.get("number") == number), None)
        if step is None:
            return
        asked = trace.scenario
        right = is_expected_call(step, asked)
        trace.wrong_call = trace.wrong_call or not right
        if right and asked.decision == "approve":
            preview = step.get("preview") or {}
            typed = preview.get("target", "") if preview.get("tier") == "typed" else ""
            if await self.decide(trace, number, {"approve": True, "typed": typed}):
                return
            reason = "the bench's approval was refused"
        else:
            reason = asked.reason if right else f"not what was asked: expected {asked.tool} on {', '.join(asked.paths)}"
        await self.decide(trace, number, {"approve": False, "reason": reason})

    async def decide(self, trace: RunTrace, number: int, body: dict[str, Any]) -> bool:
        response = await self.api.request(
            "confirm", "POST", f"/v1/runs/{trace.run_id}/steps/{number}/confirm", json=body
        )
        status = response.status_code if response is not None else 0
        trace.decisions.append(Decision(number, bool(body["approve"]), status, now_ms()))
        return 200 <= status < 300

    async def undo(self, note: Note) -> None:
        start = time.perf_counter()
        response = await self.api.request("undo", "POST", f"/v1/runs/{note.run_id}/steps/{note.step}/undo")
        undone = UndoTrace(
            self.session_id,
            note.run_id,
            note.step,
            response.status_code if response is not None else 0,
            (time.perf_counter() - start) * 1000,
        )
        if response is not None and response.status_code == 200:
            self._by_run[note.run_id].run = response.json()
            if Path(note.path).exists():
                undone.effect_mismatch = f"step {note.step} was undone but {note.path} is still there"
        self.undos.append(undone)


def effect_mismatch(trace: RunTrace) -> str:
    """What the files say against the run's end ('' when they agree): a note a run made must be there,
    one it deleted gone, a copy the person rejected never made."""
    asked, outcome = trace.scenario, classify(trace)
    if not asked.target:
        return ""
    there = Path(asked.target).exists()
    if asked.kind == "create" and outcome == "ok" and not there:
        return f"the run answered but {asked.target} was not made"
    if asked.kind == "delete" and outcome == "ok" and there:
        return f"the run answered but {asked.target} is still there"
    if asked.kind == "reject" and outcome == "rejected_by_person" and there:
        return f"the person rejected the copy but {asked.target} was made"
    return ""


class MemorySampler:
    """Samples the resident memory of every service process and of Redis, from /proc, every few
    seconds. The processes are those the services' heartbeats in Redis name on this machine (so
    replicas and restarted processes are found), else the pid files in the state directory."""

    def __init__(self, target: Target, every: float) -> None:
        self.target = target
        self.every = every
        self.samples: list[MemorySample] = []
        self.started = time.monotonic()
        self._redis: Any = None
        self._redis_pid: int | None = None

    async def run(self, stop: asyncio.Event) -> None:
        from switchboard.service import connect_redis

        self._redis = connect_redis(self.target.redis_url, self.target.redis_password)
        try:
            while True:
                self.samples.append(await self.sample())
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.every)
                if stop.is_set():
                    self.samples.append(await self.sample())
                    return
        finally:
            await self._redis.aclose()

    async def sample(self) -> MemorySample:
        rss: dict[str, dict[int, int]] = {}
        for name, pids in (await self.processes()).items():
            for pid in pids:
                kb = rss_kb(pid)
                if kb is not None:
                    rss.setdefault(name, {})[pid] = kb
        return MemorySample(time.monotonic() - self.started, rss)

    async def processes(self) -> dict[str, set[int]]:
        import redis.exceptions

        from switchboard import keys

        found: dict[str, set[int]] = defaultdict(set)
        here = socket.gethostname()
        try:
            async for key in self._redis.scan_iter(match=keys.SERVICE_PATTERN, count=100):
                raw = await self._redis.get(key)
                if raw is not None:
                    record = json.loads(raw)
                    if record.get("host", here) == here:
                        found[record["name"]].add(int(record["pid"]))
            if is_loopback_url(self.target.redis_url):  # asked each time: a supervised Redis may restart
                self._redis_pid = int((await self._redis.info("server"))["process_id"])
        except (redis.exceptions.RedisError, OSError, ValueError, KeyError):
            pass  # the pid files below, and no Redis figure
        if self._redis_pid is not None:
            found[REDIS].add(self._redis_pid)
        run_dir = self.target.state_dir / "run"
        for name in SERVICES:
            if found.get(name):
                continue
            with contextlib.suppress(OSError, ValueError):
                found[name].add(int((run_dir / f"{name}.pid").read_text().strip()))
        # The processes a service starts (the tool host's MCP servers) hold memory of their own.
        parents = process_parents()
        for name in SERVICES:
            children = descendants(parents, found.get(name, set()))
            if children:
                found[f"{name}{CHILDREN}"] = children
        return found


def process_parents() -> dict[int, int]:
    """Every process on this machine and its parent, from /proc/<pid>/stat."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # `pid (name) state ppid …`; the name may itself hold spaces and parentheses.
        parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    return parents


def rss_kb(pid: int) -> int | None:
    try:
        return parse_vmrss_kb(Path(f"/proc/{pid}/status").read_text())
    except OSError:
        return None


def make_folder(workspace: Path, sessions: int) -> Path:
    """The bench's own folder in the workspace, one subfolder a session with a few files to read."""
    folder = workspace / f"load-{datetime.now():%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
    for number in range(1, sessions + 1):
        own = folder / f"s{number:03d}"
        own.mkdir(parents=True)
        (own / "a.txt").write_text("alpha: the first file of the load bench\n")
        (own / "b.txt").write_text("beta: the second file of the load bench\n")
        (own / "notes.md").write_text("# notes\n\nnothing to see\n")
    return folder


async def preflight(api: Api, folder: Path, timeout: float) -> None:
    """One read of the bench's folder before the load (it also warms the models up): a stack that
    does not allow the folder, or does not answer, stops the bench with what to do."""
    response = await api.request("submit", "POST", "/v1/turns", json={"text": f"List the files in {folder}"})
    if response is None or response.status_code != 202:
        detail = "no answer" if response is None else f"{response.status_code} {response.text[:200]}"
        raise SystemExit(f"load: the gateway did not take a request ({detail})")
    run_id = response.json()["run_id"]
    await api.events(run_id, lambda _e: False, timeout)
    run = await api.run(run_id) or {}
    if run.get("status") == "refused":
        raise SystemExit(
            f"load: the stack refuses to read {folder}: {run.get('answer', '').strip()}\n"
            "pass --workspace with a folder inside the stack's allowed roots"
        )
    if run.get("status") not in FINAL:
        raise SystemExit(f"load: a first read of {folder} did not end within {timeout:.0f}s (run {run_id})")


async def settle(api: Api, traces: Sequence[RunTrace], grace: float) -> None:
    """Read again, until they are final or `grace` seconds pass, the runs the sessions left unfinished
    (but those waiting on a step the person never answered); then fetch the events of every final run
    the bench did not follow to its end."""
    limit = asyncio.Semaphore(8)

    async def refresh(trace: RunTrace) -> None:
        async with limit:
            trace.run = await api.run(trace.run_id) or trace.run

    async def complete(trace: RunTrace) -> None:
        async with limit:
            events, _ = await api.events(trace.run_id, lambda _e: False, 30.0)
            trace.events = events or trace.events

    give_up = time.monotonic() + grace
    while True:
        pending = [t for t in traces if t.accepted and not t.final and not waits_unanswered(t)]
        if not pending or time.monotonic() >= give_up:
            break
        await asyncio.gather(*(refresh(t) for t in pending))
        await asyncio.sleep(1.0)
    unfollowed = [t for t in traces if t.final and not any(e.get("kind") == "finished" for e in t.events)]
    await asyncio.gather(*(complete(t) for t in unfollowed))


async def audit_rows(api: Api, traces: Sequence[RunTrace]) -> list[dict[str, Any]]:
    """The tool host's audit rows of the bench's sessions (of each run, when a session has more rows
    than one answer holds)."""
    most = 1000
    rows: list[dict[str, Any]] = []
    by_session: dict[str, list[str]] = defaultdict(list)
    for trace in traces:
        if trace.accepted:
            by_session[trace.session_id].append(trace.run_id)
    for session_id, run_ids in by_session.items():
        response = await api.request("audit", "GET", "/v1/audit", params={"session_id": session_id, "limit": most})
        entries = response.json()["entries"] if response is not None and response.status_code == 200 else []
        if len(entries) < most:
            rows += entries
            continue
        for run_id in run_ids:
            response = await api.request("audit", "GET", "/v1/audit", params={"run_id": run_id, "limit": most})
            rows += response.json()["entries"] if response is not None and response.status_code == 200 else []
    return rows


async def orphan_runs(api: Api, traces: Sequence[RunTrace]) -> list[dict[str, Any]]:
    """The runs of the bench's sessions it was never told of (`orphans`; the newest 500 of each
    session), each step of them still waiting rejected, so that none waits for its deadline."""
    found: list[dict[str, Any]] = []
    for session_id in dict.fromkeys(t.session_id for t in traces):
        response = await api.request("list", "GET", "/v1/runs", params={"session_id": session_id, "limit": 500})
        if response is None or response.status_code != 200:
            continue
        listed = response.json()["runs"]
        unknown = {o["run_id"] for o in orphans(listed, (t.run_id for t in traces if t.session_id == session_id))}
        for run in listed:
            if run["run_id"] not in unknown:
                continue
            found += orphans([run], ())
            for step in run.get("steps", []):
                if step.get("status") == "awaiting_confirmation":
                    reason = "the load bench was never told of this run (its request was answered with an error)"
                    path = f"/v1/runs/{run['run_id']}/steps/{step['number']}/confirm"
                    await api.request("cleanup", "POST", path, json={"approve": False, "reason": reason})
    return found


async def audit_rows_settled(api: Api, traces: Sequence[RunTrace], patience: float = 10.0) -> list[dict[str, Any]]:
    """`audit_rows`, read again for up to `patience` seconds while rows are missing: the tool host audits
    a rejection from a stream, a moment after the run has ended."""
    give_up = time.monotonic() + patience
    rows = await audit_rows(api, traces)
    while unaudited_steps([t for t in traces if t.final], rows) and time.monotonic() < give_up:
        await asyncio.sleep(1.0)
        rows = await audit_rows(api, traces)
    return rows


async def report_progress(sessions: Sequence[Session], started: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 10.0)
        traces = [t for s in sessions for t in s.traces]
        ended = sum(1 for t in traces if t.final)
        progress(f"{time.monotonic() - started:5.0f}s: {len(traces)} requests, {ended} runs ended")


async def run_load(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the folder, run the sessions, settle, read the audit log; the report."""
    folder = make_folder(target.workspace, args.sessions)
    api = Api(target.url, target.token, HttpTally(), connections=args.sessions + 10)
    try:
        progress(f"{args.sessions} sessions for {args.seconds:g}s against {target.url}; files in {folder}")
        await preflight(api, folder / "s001", args.run_timeout)
        tally = api.tally = HttpTally()  # the preflight's answers are not the load's
        sampler = MemorySampler(target, args.sample_every)
        stop_sampling, stop_progress = asyncio.Event(), asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop_sampling))
        started = sampler.started
        sessions = [
            Session(
                number,
                api,
                folder / f"s{number:03d}",
                started + args.seconds,
                args.run_timeout,
                random.Random(args.seed * 1000 + number),
            )
            for number in range(1, args.sessions + 1)
        ]
        reporting = asyncio.create_task(report_progress(sessions, started, stop_progress))
        await asyncio.gather(*(session.run() for session in sessions))
        load_seconds = time.monotonic() - started
        # The last sample is the load's end: the reads below (a session's runs, the audit log) are the
        # bench's own and would blur the services' growth.
        stop_progress.set()
        stop_sampling.set()
        await asyncio.gather(reporting, sampling)
        traces = [t for s in sessions for t in s.traces]
        undos = [u for s in sessions for u in s.undos]
        progress(f"load over after {load_seconds:.0f}s; waiting up to {args.grace:g}s for every run to end")
        await settle(api, traces, args.grace)
        rows = await audit_rows_settled(api, traces)
        unknown = await orphan_runs(api, traces)
    finally:
        await api.aclose()
        if not args.keep_files:
            shutil.rmtree(folder, ignore_errors=True)
    config = {
        "sessions": args.sessions,
        "seconds": args.seconds,
        "url": target.url,
        "folder": str(folder),
        "grace_seconds": args.grace,
        "run_timeout_seconds": args.run_timeout,
        "seed": args.seed,
    }
    return build_report(
        traces,
        undos,
        rows,
        tally,
        sampler.samples,
        unknown_runs=unknown,
        load_seconds=load_seconds,
        warmup=args.warmup,
        config=config,
        # About a row a minute; more on a short load.
        table_every=min(60.0, max(10.0, args.seconds / 4)),
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench/load", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=5, help=f"concurrent sessions (1..{MAX_SESSIONS}; default 5)")
    parser.add_argument(
        "--seconds", type=float, required=True, help=f"how long the sessions ask (at most {MAX_SECONDS})"
    )
    parser.add_argument("--json", type=Path, help="also write the whole report here as JSON")
    parser.add_argument("--url", help="the gateway's HTTP API (default: this machine's, on the stack's HTTP port)")
    parser.add_argument("--token-file", type=Path, help="the bearer token's file (default: the state directory's)")
    parser.add_argument("--state-dir", type=Path, help="the stack's state directory (default: as `sb` finds it)")
    parser.add_argument("--redis-url", help="the stack's Redis, for the services' pids (default: as `sb status`)")
    parser.add_argument("--workspace", type=Path, help="a folder the stack may touch (default: its first root)")
    parser.add_argument("--allow-remote", action="store_true", help="load a gateway on another machine")
    parser.add_argument("--grace", type=float, default=60.0, help="seconds to wait for runs to end after the load")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="seconds a session follows one run")
    parser.add_argument("--sample-every", type=float, help="seconds between memory samples (default 1..5)")
    parser.add_argument("--warmup", type=float, help="seconds before memory growth is counted (default S/4, ≤60)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the sessions' choices")
    parser.add_argument("--keep-files", action="store_true", help="keep the bench's folder in the workspace")
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not 1 <= args.sessions <= MAX_SESSIONS:
        parser.error(f"--sessions must be 1..{MAX_SESSIONS}")
    if not 0 < args.seconds <= MAX_SECONDS:
        parser.error(f"--seconds must be more than 0 and at most {MAX_SECONDS}")
    if args.sample_every is None:
        args.sample_every = max(1.0, min(5.0, args.seconds / 10))
    if args.warmup is None:
        args.warmup = min(60.0, args.seconds / 4)
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    target = discover(args)
    report = asyncio.run(run_load(target, args))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    print("\n".join(format_report(report)), flush=True)
    summary = report["summary"]
    sys.exit(0 if summary["lost"] == summary["duplicated"] == summary["errors"] == 0 else 1)


if __name__ == "__main__":
    main()
