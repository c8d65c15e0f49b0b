"""`bench/load` against the real stack: a short load of two sessions ends with nothing lost, nothing
done twice and no errors, and reports throughput and every service's memory."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from switchboard.settings import SERVICE_NAMES
from tests.stack.harness import PROJECT_ROOT, Stack

pytestmark = pytest.mark.stack


def test_a_short_load_loses_nothing_duplicates_nothing_and_fails_nothing(
    stack: Stack, workspace: Path, tmp_path: Path
) -> None:
    report_path = tmp_path / "load.json"
    done = subprocess.run(
        [
            str(PROJECT_ROOT / "bench" / "load"),
            "--sessions",
            "2",
            "--seconds",
            "20",
            "--url",
            f"http://127.0.0.1:{stack.http_port}",
            "--token-file",
            str(stack.state_dir / "token"),
            "--state-dir",
            str(stack.state_dir),
            "--workspace",
            str(workspace),
            "--json",
            str(report_path),
        ],
        env=stack.env,  # the stack's Redis, where the services' heartbeats name their pids
        capture_output=True,
        text=True,
        timeout=300,
    )
    lines = done.stdout.strip().splitlines()
    assert lines, done.stderr
    assert lines[-1] == "lost: 0 duplicated: 0 errors: 0", done.stdout + done.stderr
    assert done.returncode == 0

    report = json.loads(report_path.read_text())
    assert report["throughput"]["runs"] > 0 and report["throughput"]["runs_per_min"] > 0
    assert report["throughput"]["steps_per_min"] > 0
    assert set(SERVICE_NAMES) <= set(report["memory"]["services"])
    assert len(report["memory"]["samples"]) >= 2
    for name in SERVICE_NAMES:
        assert all(sample["rss_kb"].get(name) for sample in report["memory"]["samples"]), name
    assert not list(workspace.glob("load-*")), "the bench leaves no folder of its own behind"
