"""What one step costs, and that nothing grows without bound: a stack of its own, with a Redis of its own,
keeping 20 runs."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from switchboard import keys
from tests.conftest import redis_server
from tests.stack.harness import Stack

pytestmark = pytest.mark.stack

RUNS_KEPT = 20
# The design's cost of a run of one step that reads: a turn, then per step an approved call and its
# result (the filter and the router are called over gRPC, and the planner applies the policy itself);
# and three writes of the run's one record: made by the gateway, the step routed and judged by the
# planner, its result and the answer by the planner. (Before: 7 stream messages and 5 read-modify-writes
# of the gateway's record per step, besides the planner's own state.)
MESSAGES_PER_READ_RUN = 3
RECORD_WRITES_PER_READ_RUN = 3


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Path]]:
    workspace = tmp_path_factory.mktemp("bounded-workspace")
    for name in ("a.txt", "b.txt"):
        (workspace / name).write_text(f"{name}\n")
    with redis_server(tmp_path_factory.mktemp("bounded-redis")) as url:
        stack = Stack(
            url, tmp_path_factory.mktemp("bounded-state"), [workspace], {"SWITCHBOARD_RUNS_KEPT": str(RUNS_KEPT)}
        )
        try:
            stack.start()
            yield stack, workspace
        finally:
            stack.stop()


def run_to_the_end(stack: Stack, text: str) -> dict:
    with stack.http() as http:
        run_id = http.post("/v1/turns", json={"text": text}).json()["run_id"]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            run = http.get(f"/v1/runs/{run_id}").json()
            if run["status"] in ("answered", "failed", "refused", "needs_clarification"):
                return run
            time.sleep(0.02)
    raise AssertionError(f"run {run_id} did not finish")


def messages_added(client: redis.Redis) -> int:
    """Every message ever added to the hop streams (trimming does not lower it)."""
    return sum(int(client.xinfo_stream(stream)["entries-added"]) for stream in keys.ALL_STREAMS)


def record_writes(stack: Stack) -> float:
    return sum(stack.metric(name, "switchboard_run_record_writes_total") for name in ("gateway", "planner"))


def test_a_step_costs_the_designs_messages_and_record_writes(small_stack: tuple[Stack, Path]) -> None:
    stack, workspace = small_stack
    client = redis.Redis.from_url(stack.redis_url)
    run_to_the_end(stack, f"List the files in {workspace}")  # every stream and group exists from here on
    messages, writes = messages_added(client), record_writes(stack)
    run = run_to_the_end(stack, f"List the files in {workspace}")
    assert run["status"] == "answered" and len(run["steps"]) == 1, run
    assert messages_added(client) - messages == MESSAGES_PER_READ_RUN
    assert record_writes(stack) - writes == RECORD_WRITES_PER_READ_RUN
    client.close()


def test_after_200_runs_streams_and_memory_stay_bounded(small_stack: tuple[Stack, Path]) -> None:
    stack, workspace = small_stack
    client = redis.Redis.from_url(stack.redis_url)
    texts = [f"List the files in {workspace}", f"Read {workspace / 'a.txt'}"]
    memory_at: dict[int, int] = {}
    for number in range(1, 201):
        run = run_to_the_end(stack, texts[number % 2])
        assert run["status"] == "answered", run
        if number in (50, 200):
            time.sleep(6)  # a heartbeat trims the streams every five seconds
            memory_at[number] = int(client.info("memory")["used_memory"])
    lengths = {stream: int(client.xlen(stream)) for stream in keys.ALL_STREAMS}
    assert sum(lengths.values()) <= 20, lengths  # what is not yet acknowledged, at most
    assert int(client.zcard(keys.RUNS_INDEX)) == RUNS_KEPT
    assert len(list(client.scan_iter(match=f"{keys.PREFIX}:run:*", count=1000))) == RUNS_KEPT
    for kept in ("done", "calls", "run-events"):
        assert len(list(client.scan_iter(match=f"{keys.PREFIX}:{kept}:*", count=1000))) <= RUNS_KEPT, kept
    # Sessions are counted when a run is created; the last run's session came after that.
    assert len(list(client.scan_iter(match=f"{keys.PREFIX}:session:*", count=1000))) <= RUNS_KEPT + 1
    # From run 50 to run 200 the data kept is the same 20 runs' worth: memory does not grow with runs.
    assert memory_at[200] - memory_at[50] < 512 * 1024, memory_at
    client.close()
