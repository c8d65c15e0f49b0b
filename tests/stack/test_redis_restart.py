"""Redis restarting under a running stack, as a service manager restarts it (SIGTERM; it keeps an
append-only file, so its data comes back): the run accepted just before completes, no service process
dies or is replaced, the API says 503 / UNAVAILABLE meanwhile, each loop says so once, and new runs
work afterwards. A stack of its own, on a Redis of its own."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import httpx
import pytest

from switchboard.auth import blocking_channel
from switchboard.settings import SERVICE_NAMES
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc
from tests.conftest import RedisProcess
from tests.stack.harness import Stack

pytestmark = pytest.mark.stack

FILES = ("alpha.txt", "beta.txt")
FINAL = ("answered", "failed", "refused", "needs_clarification")


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, RedisProcess, Path]]:
    workspace = tmp_path_factory.mktemp("restart-workspace")
    for name in FILES:
        (workspace / name).write_text(f"{name}\n")
    server = RedisProcess(tmp_path_factory.mktemp("restart-redis"), appendonly=True)
    server.start()
    stack = Stack(server.url, tmp_path_factory.mktemp("restart-state"), [workspace])
    try:
        stack.start()
        yield stack, server, workspace
    finally:
        stack.stop()
        server.stop()


def finished(http: httpx.Client, run_id: str, timeout: float = 120.0) -> dict:
    """The run once it has finished; answers of a Redis still loading its data (503) are waited through."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        answer = http.get(f"/v1/runs/{run_id}")
        if answer.status_code == 200 and answer.json()["status"] in FINAL:
            return answer.json()
        assert answer.status_code in (200, 503), answer.text
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def outages_said(stack: Stack) -> Counter[str]:
    """How often each loop of each service logged that Redis went away."""
    said: Counter[str] = Counter()
    for name in SERVICE_NAMES:
        for line in (stack.logs / f"{name}.log").read_text(errors="replace").splitlines():
            if line.startswith("{") and "Redis is unreachable" in line:
                said[json.loads(line)["msg"].partition(": Redis is unreachable")[0]] += 1
    return said


def test_an_accepted_run_completes_across_a_redis_restart_and_every_service_stays_up(
    restartable: tuple[Stack, RedisProcess, Path],
) -> None:
    stack, server, workspace = restartable
    pids = {name: process.pid for name, process in stack.processes.items()}
    with stack.http() as http:
        accepted = http.post("/v1/turns", json={"text": f"List the files in {workspace}"})
        assert accepted.status_code == 202, accepted.text
        run_id = accepted.json()["run_id"]
        server.stop()  # while the planner takes the turn up

        away = http.get(f"/v1/runs/{run_id}")
        assert away.status_code == 503 and "not answering" in away.json()["error"], away.text
        assert int(away.headers["retry-after"]) >= 1
        refused = http.post("/v1/turns", json={"text": f"List the files in {workspace}"})
        assert refused.status_code == 503 and "retry after" in refused.json()["error"]
        with blocking_channel(stack.env["SWITCHBOARD_GATEWAY_ADDR"], stack.token) as channel:
            with pytest.raises(grpc.RpcError) as unavailable:
                pb_grpc.GatewayStub(channel).GetRun(pb.GetRunRequest(run_id=run_id), timeout=10)
        assert unavailable.value.code() == grpc.StatusCode.UNAVAILABLE  # type: ignore[attr-defined]
        deadline = time.monotonic() + 20
        while not {"planner heartbeat", "toolhost heartbeat"} <= set(outages_said(stack)):
            assert time.monotonic() < deadline, outages_said(stack)  # every service saw Redis go
            time.sleep(0.1)

        server.start()  # the same port and files: the run's record and its turn come back
        run = finished(http, run_id)
        assert run["status"] == "answered", (run, stack.log_tail("planner"))
        assert all(name in run["answer"] for name in FILES), run["answer"]

        again = http.post("/v1/turns", json={"text": f"List the files in {workspace}"})
        assert again.status_code == 202, again.text
        assert finished(http, again.json()["run_id"])["status"] == "answered"

    assert {name: process.poll() for name, process in stack.processes.items()} == dict.fromkeys(SERVICE_NAMES)
    status = json.loads(stack.sb("status", "--json").stdout)
    assert {s["name"]: s["pid"] for s in status["services"] if s["healthy"]} == pids
    said = outages_said(stack)
    assert said and max(said.values()) == 1, said  # once per loop, not once per retry
