"""Two replicas each of the filter, router and planner under the stack's supervisor: they share the work
of one stream, and a replica killed mid-step leaves its message to the other, which takes it over at
once (same machine, its process gone) rather than after the claim idle time."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from switchboard import keys
from tests.stack.supervised import SupervisedStack
from tests.stack.test_faults import assert_one_answer, events, run_record, submit

pytestmark = pytest.mark.stack

REPLICAS = "filter=2,router=2,planner=2"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("replicas-workspace")
    for name in ("figs.txt", "plums.txt"):
        (root / name).write_text(f"{name}\n")
    return root


@pytest.fixture(scope="module")
def replicated(workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SupervisedStack]:
    stack = SupervisedStack(tmp_path_factory.mktemp("replicas-state"), [workspace], replicas=REPLICAS)
    try:
        stack.start(timeout=420)
        yield stack
    finally:
        stack.stop()


def handled(stack: SupervisedStack, service: str, replica: int, metric: str, stage: str) -> float:
    """A replica's count of `metric` samples for `stage`, read from its own metrics port."""
    port = int(stack.env[f"SWITCHBOARD_{service.upper()}_METRICS_PORT"]) + 10 * replica
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(metric + "{") and f'stage="{stage}"' in line
    )


def test_every_replica_serves_and_the_steps_are_shared(replicated: SupervisedStack, workspace: Path) -> None:
    assert sorted(replicated.pids()) == sorted(
        ["redis", "toolhost", "filter", "filter#1", "router", "router#1", "planner", "planner#1", "gateway"]
    )
    assert len(replicated.healthy()) == 8
    runs = [submit(replicated, f"List the files in {workspace}") for _ in range(8)]
    for run_id in runs:
        assert_one_answer(events(replicated, run_id))
        assert run_record(replicated, run_id)["status"] == "answered"
    # The planner times each message it handles; the router and the filter count each step's outcome.
    counts = {
        "planner": "switchboard_stage_work_seconds_count",
        "router": "switchboard_step_outcomes_total",
        "filter": "switchboard_step_outcomes_total",
    }
    for service, metric in counts.items():
        shares = [handled(replicated, service, replica, metric, service) for replica in (0, 1)]
        assert all(share > 0 for share in shares), (service, shares)


def test_a_replica_killed_mid_step_leaves_its_message_to_the_other(
    replicated: SupervisedStack, workspace: Path
) -> None:
    pids = replicated.pids()
    run_id = submit(replicated, f"List the files in {workspace}")
    # Kill the replica that holds the turn.
    holder = holding_consumer(replicated, run_id)
    label = next(label for label, pid in pids.items() if label.startswith("planner") and holder.endswith(f"-{pid}"))
    started = time.monotonic()
    replicated.kill(label)
    assert_one_answer(events(replicated, run_id))
    assert run_record(replicated, run_id)["status"] == "answered"
    # Taken over by the other replica, not left for the claim idle time (two and a half minutes).
    assert time.monotonic() - started < 60
    replicated.wait_restarted(label, pids[label], timeout=240)


def holding_consumer(stack: SupervisedStack, run_id: str, timeout: float = 60.0) -> str:
    """The consumer that holds the run's turn, as soon as a planner replica has read it and not yet
    finished it (mid-step). Who holds it is read in the same look that finds it held: a second look
    may come after the replica finished."""
    client = stack.redis()
    deadline = time.monotonic() + timeout
    try:
        while not (pending := client.xpending_range(keys.TURNS, keys.GROUP_PLANNER, min="-", max="+", count=1)):
            if time.monotonic() > deadline:
                raise AssertionError(f"no planner replica ever held the turn: {run_record(stack, run_id)}")
            time.sleep(0.002)
    finally:
        client.close()
    name = pending[0]["consumer"]
    return name.decode() if isinstance(name, bytes) else str(name)
