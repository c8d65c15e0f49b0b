"""The metrics as their readers see them, on a running stack.

A real Prometheus (Debian's `prometheus` package) scrapes the stack's five services under the job names
of `observability/prometheus/prometheus.yml`, with the repository's own rules; after runs that read, that
change once a person allows it, that a person rejects and that fail, every query of every panel of every
dashboard in `observability/grafana/dashboards/` must return data. And `sb top` watching the stack while
a run goes through shows each service answering and the stages the run crossed at work.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from switchboard.settings import SERVICE_NAMES
from tests.conftest import free_port
from tests.stack.harness import PROJECT_ROOT, Stack

pytestmark = pytest.mark.stack

PROMETHEUS = Path("/usr/bin/prometheus")
OBSERVABILITY = PROJECT_ROOT / "observability"
DASHBOARDS = OBSERVABILITY / "grafana" / "dashboards"
# Every panel query is asked over this window: longer than the test, so it holds all of its runs.
WINDOW = "5m"
# Grafana's interval variables, in both their forms (`$__range`, `${__range}`); `$__range_s` and the
# like are other variables and stay, so the check below reports them.
GRAFANA_INTERVAL = re.compile(r"\$(?:__(rate_interval|interval|range)\b|\{__(rate_interval|interval|range)\})")
FINAL = ("answered", "failed", "refused", "needs_clarification")


class Prometheus:
    """A Prometheus of the test's own on a free port, with its data in a temporary folder."""

    def __init__(self, folder: Path, jobs: dict[str, int]) -> None:
        self.port = free_port()
        self.folder = folder
        self.config = folder / "prometheus.yml"
        repository = yaml.safe_load((OBSERVABILITY / "prometheus" / "prometheus.yml").read_text())
        # The repository's jobs by name, each pointed at the one port its service has here instead of at
        # a Compose DNS name; the same rule file, evaluated every second as targets are scraped.
        scrape_configs = []
        for job in repository["scrape_configs"]:
            name = job["job_name"]
            assert name in jobs, f"prometheus.yml has a job {name!r} that is no service of the stack"
            scrape_configs.append({"job_name": name, "static_configs": [{"targets": [f"127.0.0.1:{jobs[name]}"]}]})
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": repository["rule_files"],
            "scrape_configs": scrape_configs,
        }
        for rule_file in repository["rule_files"]:
            shutil.copy(OBSERVABILITY / "prometheus" / rule_file, folder / rule_file)
        self.config.write_text(yaml.safe_dump(config, sort_keys=False))
        self.jobs = [job["job_name"] for job in scrape_configs]
        self.log = folder / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def start(self, timeout: float = 60.0) -> None:
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(PROMETHEUS),
                    f"--config.file={self.config}",
                    f"--storage.tsdb.path={self.folder / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, f"prometheus exited:\n{self.log_tail()}"
            try:
                if self.http.get("/-/ready").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"prometheus was not ready in {timeout} s:\n{self.log_tail()}"
            time.sleep(0.2)

    def stop(self) -> None:
        self.http.close()
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def query(self, expr: str) -> tuple[list[Any], str]:
        """An instant query's result (a vector's series, or a scalar's one value) and the error, if any."""
        reply = self.http.get("/api/v1/query", params={"query": expr}).json()
        if reply.get("status") != "success":
            return [], f"{reply.get('errorType')}: {reply.get('error')}"
        data = reply["data"]
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}], ""
        return list(data["result"]), ""

    def wait_until(self, condition: str, satisfied: Callable[[], bool], timeout: float) -> None:
        """Poll until `satisfied()` is true; fail saying what was waited for."""
        deadline = time.monotonic() + timeout
        while not satisfied():
            assert time.monotonic() < deadline, f"prometheus: {condition} not within {timeout} s:\n{self.log_tail()}"
            time.sleep(0.25)

    def scraped_since(self, moment: float) -> bool:
        """Every job is up, and scraped after `moment` (Unix time)."""
        result, _ = self.query("timestamp(up == 1)")
        latest = {series["metric"].get("job"): float(series["value"][1]) for series in result}
        return all(latest.get(job, 0.0) > moment for job in self.jobs)

    def rules(self) -> list[dict[str, Any]]:
        """The rule groups Prometheus loaded, with each rule's health and last error."""
        groups: list[dict[str, Any]] = self.http.get("/api/v1/rules").json()["data"]["groups"]
        return groups

    def rules_evaluated_since(self, moment: float) -> bool:
        """Every rule group was evaluated after `moment`."""
        groups = self.rules()
        return bool(groups) and all(_unix(group["lastEvaluation"]) > moment for group in groups)


def _unix(rfc3339: str) -> float:
    """Prometheus's timestamps (`2026-11-30T18:05:16.123456789Z`) as Unix time; nanoseconds cut to micro."""
    from datetime import datetime

    whole, _, fraction = rfc3339.rstrip("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{(fraction or '0')[:6]}+00:00").timestamp()


@pytest.fixture
def prometheus(stack: Stack, tmp_path: Path) -> Iterator[Prometheus]:
    if not PROMETHEUS.exists():
        pytest.fail("Debian's prometheus package is not installed (/usr/bin/prometheus)")
    jobs = {name: int(stack.env[f"SWITCHBOARD_{name.upper()}_METRICS_PORT"]) for name in SERVICE_NAMES}
    server = Prometheus(tmp_path, jobs)
    try:
        server.start()
        yield server
    finally:
        server.stop()


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    expr: str


def panel_queries() -> list[PanelQuery]:
    """Every target's query of every panel (rows' panels included) of every dashboard, with Grafana's
    interval variables replaced by the test's window."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    queries = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        dashboard = json.loads(path.read_text())
        for panel in panels(dashboard.get("panels", [])):
            for target in panel.get("targets", []):
                if target.get("expr"):
                    expr = GRAFANA_INTERVAL.sub(WINDOW, target["expr"])
                    queries.append(PanelQuery(path.name, str(panel.get("title", "")), expr))
    return queries


# A metric or recording rule named in a query (`switchboard_x_total`, `stage:switchboard_x:p95_5m`).
METRIC_NAME = re.compile(r"\b(?:[a-z_]+:)?switchboard_[a-z0-9_]+(?::[a-z0-9_]+)?\b")


def diagnosis(prometheus: Prometheus, expr: str) -> str:
    """Why a query may return nothing, metric by metric (through the recording rules it reads): a
    metric no service exports yet, one that did not grow in the window, or one that did (then the query
    is at fault)."""
    recorded = {
        rule["name"]: rule["query"]
        for group in prometheus.rules()
        for rule in group["rules"]
        if rule["type"] == "recording"
    }
    names: set[str] = set()
    pending = set(METRIC_NAME.findall(expr))
    while pending:
        name = pending.pop()
        if name in recorded:
            pending |= set(METRIC_NAME.findall(recorded.pop(name))) - names
        elif ":" not in name:
            names.add(name)
    notes = []
    for name in sorted(names):
        series, _ = prometheus.query(f"count({name})")
        if not series:
            notes.append(f"{name}: no series (exported by no service, or only from its first event)")
            continue
        grown, _ = prometheus.query(f"sum(increase({name}[{WINDOW}]))")
        if name.endswith(("_total", "_bucket", "_count", "_sum")) and not any(float(s["value"][1]) > 0 for s in grown):
            notes.append(f"{name}: exported, but no increase in the window (a series born at its first event has none)")
        else:
            notes.append(f"{name}: exported and changing: the query itself returns nothing")
    return "; ".join(notes) or "names no switchboard metric"


def ask(stack: Stack, text: str, *options: str) -> tuple[int, dict[str, Any]]:
    done = stack.sb("ask", "--json", "--wait", *options, text)
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


def finished(stack: Stack, run_id: str) -> dict[str, Any]:
    with stack.http() as http:
        http.get(f"/v1/runs/{run_id}/events", timeout=300)  # returns once the run has finished
        run: dict[str, Any] = http.get(f"/v1/runs/{run_id}").json()
    assert run["status"] in FINAL, run
    return run


def drive_runs(stack: Stack, workspace: Path) -> None:
    """What the panels show: a read, a change a person allows, one a person rejects, a read that fails, and
    a step whose values the router's model copies out of the request (a dry run: routed, not executed)."""
    code, read = ask(stack, f"List the files in {workspace}")
    assert code == 0 and read["status"] == "answered", read

    code, task = ask(stack, "Create a task to water the plants on Friday", "--dry-run")
    assert code == 0 and task["steps"][0]["tool"] == "task.create_task", task

    source = workspace / "alpha.txt"
    copy = workspace / "drafts" / f"metrics-{uuid.uuid4().hex[:8]}.txt"
    code, change = ask(stack, f"Copy the file {source} to {copy}")
    assert code == 3 and change["steps"][0]["status"] == "awaiting_confirmation", change
    assert stack.sb("confirm", change["run_id"], "1").returncode == 0
    assert finished(stack, change["run_id"])["status"] == "answered"

    kept = workspace / f"keep-{uuid.uuid4().hex[:8]}.txt"
    kept.write_text("keep me\n")
    code, delete = ask(stack, f"Delete the file {kept}")
    assert code == 3 and delete["steps"][0]["status"] == "awaiting_confirmation", delete
    assert stack.sb("confirm", delete["run_id"], "1", "--reject", "--reason", "keep it").returncode == 0
    assert finished(stack, delete["run_id"])["status"] == "refused"
    assert kept.exists()

    _, missing = ask(stack, f"Read the file {workspace / 'qqxz-never-written.txt'}")
    assert any(step["status"] == "failed" for step in missing["steps"]), missing


def test_every_panel_of_every_dashboard_has_data_once_runs_went_through(
    stack: Stack, workspace: Path, prometheus: Prometheus
) -> None:
    queries = panel_queries()
    assert queries, f"no panel queries in {DASHBOARDS}"
    started = time.time()
    # Scraped before the runs, so that every counter's increase over the window includes them.
    prometheus.wait_until("every job up", lambda: prometheus.scraped_since(started), timeout=60)
    drive_runs(stack, workspace)
    # A few scrapes and rule evaluations after the last run.
    after = time.time() + 2
    prometheus.wait_until("a scrape of every job after the runs", lambda: prometheus.scraped_since(after), timeout=60)
    prometheus.wait_until("the rules evaluated after the runs", lambda: prometheus.rules_evaluated_since(after), 60)

    failing = [
        (PanelQuery("rules.yml", rule["name"], rule["query"]), f"the rule fails: {rule.get('lastError')}")
        for group in prometheus.rules()
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    for query in queries:
        if "$" in query.expr:
            failing.append((query, "a dashboard variable the test cannot fill"))
            continue
        result, error = prometheus.query(query.expr)
        values = [float(series["value"][1]) for series in result]
        if error:
            failing.append((query, error))
        elif not values:
            failing.append((query, "no data"))
        elif all(math.isnan(value) for value in values):
            failing.append((query, "only NaN (nothing observed in the window)"))
    report = "\n".join(
        f"  {q.dashboard} / {q.panel}: {why}\n    {q.expr}\n    {diagnosis(prometheus, q.expr)}" for q, why in failing
    )
    assert not failing, f"{len(failing)} of {len(queries)} panel queries return no data:\n{report}"


class Frames:
    """`sb top`'s frames as it prints them, read on a thread of their own."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.text: list[str] = []
        self.lock = threading.Lock()
        assert process.stdout is not None
        self.thread = threading.Thread(target=self._read, args=(process.stdout,), daemon=True)
        self.thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            with self.lock:
                self.text.append(line)

    def all(self) -> list[str]:
        """The frames printed so far, the last perhaps still incomplete."""
        with self.lock:
            text = "".join(self.text)
        return [frame for frame in re.split(r"\n\n(?=sb top )", text) if frame.strip()]


def stage_row(frame: str, stage: str) -> list[str]:
    """A stage's row of the stages' table (the frame's first, up to a blank line): name, wait p50 and p95,
    work p50 and p95 (each a value and its unit, or `-`), done/s, errors; empty if the stage is not there."""
    table = frame.split("\n\n")[1]
    line = next((line for line in table.splitlines() if line.split()[:1] == [stage]), "")
    return re.findall(r"\d[\d.]* (?:ms|s)|\d+m\d+s|-|\S+", line)


def test_sb_top_shows_every_service_and_the_stages_a_run_crossed(stack: Stack, workspace: Path) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "switchboard.cli", "top", "--interval", "1", "--iterations", "120"],
        env=stack.env,
        cwd=PROJECT_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    frames = Frames(process)
    try:
        deadline = time.monotonic() + 60
        while not frames.all():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "sb top printed nothing"
            time.sleep(0.1)
        code, run = ask(stack, f"List the files in {workspace}")
        assert code == 0 and run["status"] == "answered", run
        # Two whole frames after the run: its last messages fall in one of them.
        seen = len(frames.all())
        deadline = time.monotonic() + 60
        while len(frames.all()) < seen + 3:
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "sb top stopped refreshing"
            time.sleep(0.1)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, stderr
    shown = frames.all()[:-1]  # the last may have been cut short
    for frame in shown:
        assert "5 service processes" in frame.splitlines()[0], frame
        states = {line.split()[0]: line.split(maxsplit=2)[2] for line in frame.splitlines()[-5:]}
        assert states == dict.fromkeys(SERVICE_NAMES, "ok"), frame
        assert "\x1b" not in frame
    for stage in ("planner", "toolhost"):
        rows = [stage_row(frame, stage) for frame in shown]
        busy = [row for row in rows if row and float(row[5]) > 0]
        assert busy, f"{stage} did nothing in any frame:\n" + "\n\n".join(shown)
        assert all(row[3] != "-" for row in busy), busy  # a stage that worked has a work time
