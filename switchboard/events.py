"""A run's event stream: what watchers of a run (SSE, `WatchRun`, `sb ask`) read, in order.

The gateway appends what happens to the run's record; the planner appends the answer's lines as it
settles each step, so a person reads them while the run goes on.
"""

from __future__ import annotations

import time

import redis.asyncio as aioredis

from switchboard import keys
from switchboard.v1 import switchboard_pb2 as pb

# The kind of event that carries a piece of the answer (its `message`).
ANSWER = "answer"
FINISHED = "finished"


async def append_event(redis: aioredis.Redis, event: pb.RunEvent) -> None:
    """Add `event` to its run's stream (kept as long as the run's record)."""
    if not event.unix_ms:
        event.unix_ms = int(time.time() * 1000)
    key = keys.run_events_key(event.run_id)
    pipe = redis.pipeline(transaction=True)
    pipe.xadd(key, {"event": event.SerializeToString()})
    pipe.expire(key, keys.RUN_TTL_SECONDS)
    await pipe.execute()
