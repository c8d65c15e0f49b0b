"""Run records and run events in Redis, shared by every gateway replica.

A run record is a serialized `switchboard.v1.Run` under one key; changes go through `update`, an
optimistic transaction (WATCH/MULTI) that retries when another replica changed the record meanwhile.
Each run also has a stream of `RunEvent`s that watchers read from the beginning.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import WatchError

from services.gateway import core
from switchboard import events, keys
from switchboard.errors import NotFound
from switchboard.events import append_event
from switchboard.v1 import switchboard_pb2 as pb

T = TypeVar("T")
EVENT_KIND_FINISHED = events.FINISHED


class RunStore:
    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis

    async def create(self, run: pb.Run) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.run_key(run.run_id), run.SerializeToString(), ex=keys.RUN_TTL_SECONDS)
        pipe.zadd(keys.RUNS_INDEX, {run.run_id: run.created_unix_ms})
        await pipe.execute()

    async def get(self, run_id: str) -> pb.Run:
        raw = await self.redis.get(keys.run_key(run_id))
        if raw is None:
            raise NotFound(f"no run {run_id!r}")
        return pb.Run.FromString(raw)

    async def list(self, limit: int = 20) -> list[pb.Run]:
        """The newest runs first."""
        ids: Any = await self.redis.zrevrange(keys.RUNS_INDEX, 0, max(0, limit - 1))
        runs = []
        for run_id in ids:
            try:
                runs.append(await self.get(run_id.decode()))
            except NotFound:  # expired since it was indexed
                await self.redis.zrem(keys.RUNS_INDEX, run_id)
        return runs

    async def update(
        self,
        run_id: str,
        mutate: Callable[[pb.Run], T],
        also: Callable[[Pipeline, pb.Run, T], None] | None = None,
    ) -> tuple[pb.Run, T]:
        """Apply `mutate` to the record atomically; `also` may queue more commands in the same transaction."""
        key = keys.run_key(run_id)
        async with self.redis.pipeline(transaction=True) as pipe:
            while True:
                try:
                    await pipe.watch(key)
                    raw = await pipe.get(key)
                    if raw is None:
                        raise NotFound(f"no run {run_id!r}")
                    run = pb.Run.FromString(raw)
                    result = mutate(run)
                    pipe.multi()
                    pipe.set(key, run.SerializeToString(), ex=keys.RUN_TTL_SECONDS)
                    if also is not None:
                        also(pipe, run, result)
                    await pipe.execute()
                    return run, result
                except WatchError:
                    continue

    async def add_event(self, run: pb.Run, kind: str, step: int = 0, message: str = "") -> None:
        event = pb.RunEvent(
            run_id=run.run_id, kind=kind, step=step, message=message, status=run.status, unix_ms=core.now_ms()
        )
        await append_event(self.redis, event)

    async def events(self, run_id: str, block_ms: int = 5000) -> AsyncIterator[pb.RunEvent]:
        """Every event of the run from its start, then new ones as they come, until it finishes."""
        await self.get(run_id)  # NotFound for an unknown run
        key = keys.run_events_key(run_id)
        last = b"0"
        while True:
            reply: Any = await self.redis.xread({key: last}, block=block_ms, count=100)
            for _, items in reply or []:
                for msg_id, fields in items:
                    last = msg_id
                    event = pb.RunEvent.FromString(fields[b"event"])
                    yield event
                    if event.kind == EVENT_KIND_FINISHED:
                        return
            if not reply and (await self.get(run_id)).status in core.FINAL_STATUSES:
                return
