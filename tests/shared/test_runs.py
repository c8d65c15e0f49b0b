"""The run store against a real Redis: the oldest finished runs are forgotten beyond `runs_kept`,
runs still going are kept, and a run reopened is no longer counted as finished."""

from __future__ import annotations

import redis.asyncio as aioredis

from switchboard import keys, runs
from switchboard.v1 import switchboard_pb2 as pb


async def test_only_finished_runs_are_forgotten_oldest_first(redis: aioredis.Redis) -> None:
    store = runs.RunStore(redis, "test", runs_kept=2)
    for number in range(5):
        run = runs.new_run(f"run{number}", "session", "list my files", False)
        run.created_unix_ms = 1000 + number
        await store.create(run)
    # run0 waits for the person; the others finish.
    for number in (1, 2, 3, 4):
        await store.update(f"run{number}", lambda run: runs.apply_finished(run, pb.RUN_STATUS_ANSWERED, "done"))
    assert await store.forget_old_runs() == 3  # five kept down to two: the three oldest finished ones
    assert await store.find("run0") is not None  # still going: kept
    assert [await store.find(f"run{n}") is None for n in (1, 2, 3, 4)] == [True, True, True, False]
    assert await redis.zrange(keys.FINISHED_RUNS, 0, -1) == [b"run4"]


async def test_a_reopened_run_is_no_longer_among_the_finished(redis: aioredis.Redis) -> None:
    store = runs.RunStore(redis, "test", runs_kept=10)
    await store.create(runs.new_run("run", "session", "list my files", False))
    await store.update("run", lambda run: runs.apply_finished(run, pb.RUN_STATUS_NEEDS_CLARIFICATION, "which?"))
    assert await redis.zcard(keys.FINISHED_RUNS) == 1
    await store.update("run", runs.apply_reopened)
    assert await redis.zcard(keys.FINISHED_RUNS) == 0
