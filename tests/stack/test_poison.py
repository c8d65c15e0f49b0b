"""Poison messages on a running stack: an entry that is no envelope, a turn whose handler never
finishes (each delivery ended with its planner gone), and a turn whose handler fails on every attempt.
Each lands on the dead-letter stream, is counted and shown by `sb status`, and a run it belongs to
ends failed with the reason in its answer; none of them stops the planner."""

from __future__ import annotations

import json
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
import redis

from switchboard import keys, runs
from switchboard.envelope import Envelope
from switchboard.v1 import switchboard_pb2 as pb
from tests.stack.harness import Stack

pytestmark = pytest.mark.stack

FINAL = ("answered", "failed", "refused", "needs_clarification")


@pytest.fixture
def client(stack: Stack) -> Iterator[redis.Redis]:
    connection = redis.Redis.from_url(stack.redis_url)
    yield connection
    connection.close()


def gone_planner() -> str:
    """The consumer name of a planner that ran on this machine in a process that has ended."""
    child = subprocess.Popen(["true"])
    child.wait()
    return f"{socket.gethostname()}-{child.pid}"


def inject(client: redis.Redis, fields: dict[str, str | bytes], deliveries: int) -> None:
    """Add an entry to the turns and deliver it `deliveries` times to a planner that is gone, in one
    transaction, so that the live planner first meets it as that planner's leftover."""
    entry_id = f"{int(time.time() * 1000) + 1}-0".encode()
    consumer = gone_planner()
    pipe = client.pipeline(transaction=True)
    pipe.xadd(keys.TURNS, fields, id=entry_id)  # type: ignore[arg-type]
    pipe.xreadgroup(keys.GROUP_PLANNER, consumer, {keys.TURNS: ">"}, count=1)
    for _ in range(deliveries - 1):
        pipe.xclaim(keys.TURNS, keys.GROUP_PLANNER, consumer, 0, [entry_id])
    _, read, *_ = pipe.execute()
    assert read[0][1][0][0] == entry_id, "the planner had turns left to read"


def run_of_its_own(client: redis.Redis, text: str) -> tuple[str, Envelope]:
    """A run's record, as the gateway makes it, and the envelope its turn travels in."""
    run_id = uuid.uuid4().hex
    run = runs.new_run(run_id, uuid.uuid4().hex, text, False)
    client.set(keys.run_key(run_id), run.SerializeToString())
    client.zadd(keys.RUNS_INDEX, {run_id: run.created_unix_ms})
    turn = pb.Turn(run_id=run_id, session_id=run.session_id, text=text, created_unix_ms=run.created_unix_ms)
    return run_id, Envelope(run_id, 0, f"{run_id}:0:gateway", "", turn.SerializeToString())


def dead_letter_for(client: redis.Redis, match: dict[bytes, bytes], timeout: float = 30.0) -> dict[bytes, bytes]:
    """The newest dead letter whose fields include `match`, once the planner gave up on it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for _, fields in client.xrevrange(keys.DEAD_LETTERS, count=20):  # type: ignore[union-attr]
            if all(fields.get(name) == value for name, value in match.items()):
                return dict(fields)
        time.sleep(0.05)
    raise AssertionError(f"nothing like {match} reached {keys.DEAD_LETTERS}")


def finished_run(stack: Stack, run_id: str, timeout: float = 30.0) -> dict:
    with stack.http() as http:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            run = http.get(f"/v1/runs/{run_id}").json()
            if run["status"] in FINAL:
                return run
            time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


def test_poison_messages_are_dead_lettered_counted_shown_and_fail_their_runs(stack: Stack, client: redis.Redis) -> None:
    counted = stack.metric("planner", "switchboard_dead_letters_total")

    # Not an envelope at all: kept as it came.
    junk = f"not an envelope {uuid.uuid4().hex}".encode()
    inject(client, {"junk": junk}, 1)
    letter = dead_letter_for(client, {b"junk": junk})
    assert letter[b"stream"] == keys.TURNS.encode() and letter[b"group"] == keys.GROUP_PLANNER.encode()
    assert letter[b"error"].startswith(b"MalformedMessage: ")

    # A turn that brought its planner down three times: given up without running it a fourth time.
    crashing, envelope = run_of_its_own(client, "List my files")
    inject(client, envelope.to_fields(), 3)
    run = finished_run(stack, crashing)
    assert run["status"] == "failed"
    assert "delivered 4 times and its handler never finished" in run["answer"], run["answer"]
    letter = dead_letter_for(client, {b"run_id": crashing.encode()})
    assert letter[b"error"].startswith(b"AbandonedMessage: ") and letter[b"deliveries"] == b"4"

    # A turn whose body is no Turn: the handler fails on its third attempt, the last.
    broken, envelope = run_of_its_own(client, "List my files")
    inject(client, {**envelope.to_fields(), "body": b"\xff\xff not a turn"}, 2)
    run = finished_run(stack, broken)
    assert run["status"] == "failed" and "DecodeError" in run["answer"], run["answer"]
    letter = dead_letter_for(client, {b"run_id": broken.encode()})
    assert letter[b"error"].startswith(b"DecodeError: ") and letter[b"deliveries"] == b"3"

    assert stack.metric("planner", "switchboard_dead_letters_total") == counted + 3
    status = json.loads(stack.sb("status", "--json").stdout)
    assert status["dead_letters"]["length"] >= 3
    newest = status["dead_letters"]["newest"][:3]
    assert [letter["run_id"] for letter in newest] == [broken, crashing, ""]
    assert all(letter["stream"] == keys.TURNS and letter["group"] == keys.GROUP_PLANNER for letter in newest)
    shown = stack.sb("status")
    assert keys.DEAD_LETTERS in shown.stdout and "AbandonedMessage" in shown.stdout, shown.stdout
    assert stack.processes["planner"].poll() is None
