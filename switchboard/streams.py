"""Stage workers on Redis Streams: read through a consumer group, process, publish, acknowledge.

The rule that keeps work from being lost or repeated: a stage's outputs, its "done" marker for the
message's idempotency key and the acknowledgement are written in one Redis transaction, after the
handler has finished. A stage that dies mid-message leaves it pending; another consumer claims it once
it has been idle long enough; the done marker makes a redelivered message a no-op.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ResponseError

from switchboard import keys
from switchboard.envelope import Envelope
from switchboard.errors import MalformedMessage
from switchboard.telemetry import (
    STAGE_ERRORS,
    STREAM_LENGTH,
    STREAM_PENDING,
    STREAM_WAIT,
    consume_span,
    current_traceparent,
    timed,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Emit:
    """One message a handler wants published when its input is acknowledged."""

    stream: str
    envelope: Envelope


@dataclass(frozen=True)
class Forget:
    """A hash field a handler kept only until its outputs are committed: deleted in the same transaction."""

    key: str
    field: str


@dataclass(frozen=True)
class DeadLetter:
    """A message no attempt could process, kept with the error for a person to look at."""

    stream: str
    fields: dict[bytes, bytes]


Handler = Callable[[Envelope], Awaitable[Sequence[Emit | Forget]]]
FailureHandler = Callable[[Envelope, BaseException], Awaitable[Sequence[Emit]]]
DuplicateHandler = Callable[[Envelope], Awaitable[None]]


def emit(stream: str, run_id: str, step: int, key: str, body: bytes) -> Emit:
    """An `Emit` whose envelope carries the current span's traceparent."""
    return Emit(stream, Envelope(run_id, step, key, current_traceparent(), body))


async def publish(redis: aioredis.Redis, emits: Sequence[Emit]) -> None:
    """Publish messages outside any consumer (the gateway's turns, for instance)."""
    pipe = redis.pipeline(transaction=True)
    for item in emits:
        pipe.xadd(item.stream, item.envelope.to_fields())  # type: ignore[arg-type]
    await pipe.execute()


async def ensure_group(redis: aioredis.Redis, stream: str, group: str) -> None:
    """Create the consumer group (and the stream) if they do not exist yet."""
    try:
        await redis.xgroup_create(stream, group, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


class StreamWorker:
    """Runs one stage's handler over one stream, through one consumer group.

    `handler` returns what to publish; it must not publish itself. Unexpected errors leave the message
    pending to be retried; after `max_deliveries` attempts `on_failure` turns it into outputs (say, a
    failed step result) so that no run waits forever on a message nobody can process.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        *,
        stream: str,
        group: str,
        consumer: str,
        handler: Handler,
        on_failure: FailureHandler | None = None,
        on_duplicate: DuplicateHandler | None = None,
        block_ms: int = 1000,
        claim_idle_ms: int = 30_000,
        max_deliveries: int = 3,
        batch: int = 8,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        self.consumer = consumer
        self.handler = handler
        self.on_failure = on_failure
        self.on_duplicate = on_duplicate
        self.block_ms = block_ms
        self.claim_idle_ms = claim_idle_ms
        self.max_deliveries = max_deliveries
        self.batch = batch
        self.processed = 0

    async def run(self, stop: asyncio.Event | None = None, *, burst: bool = False) -> None:
        """Process messages until `stop` is set, or, with `burst`, until nothing is left to read."""
        await ensure_group(self.redis, self.stream, self.group)
        stop = stop or asyncio.Event()
        while not stop.is_set():
            entries = await self._claim_stale()
            if not entries:
                entries = await self._read(block=not burst)
            if not entries:
                if burst:
                    return
                continue
            for msg_id, fields in entries:
                await self.process(msg_id, fields)

    async def _read(self, *, block: bool) -> list[tuple[bytes, dict[bytes, bytes]]]:
        reply: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.batch,
            block=self.block_ms if block else None,
        )
        return [entry for _, items in reply for entry in items] if reply else []

    async def _claim_stale(self) -> list[tuple[bytes, dict[bytes, bytes]]]:
        """Take over messages another consumer of this group left pending for too long."""
        reply: Any = await self.redis.xautoclaim(
            self.stream, self.group, self.consumer, min_idle_time=self.claim_idle_ms, start_id="0-0", count=self.batch
        )
        # Deleted entries come back as (id, None); they cannot be processed, only acknowledged.
        entries = []
        for msg_id, fields in reply[1]:
            if fields is None:
                await self.redis.xack(self.stream, self.group, msg_id)
            else:
                entries.append((msg_id, fields))
        return entries

    async def process(self, msg_id: bytes, fields: dict[bytes, bytes]) -> None:
        """Handle one entry: skip it if already done, else run the handler and commit its outputs."""
        added_ms = int(msg_id.split(b"-")[0])
        STREAM_WAIT.labels(stream=self.stream, group=self.group).observe(max(0.0, time.time() - added_ms / 1000))
        try:
            envelope = Envelope.from_fields(fields)
        except MalformedMessage:
            log.exception("dropping malformed entry %s on %s", msg_id, self.stream)
            STAGE_ERRORS.labels(stage=self.group, error="MalformedMessage").inc()
            await self.redis.xack(self.stream, self.group, msg_id)
            return

        done = (keys.done_key(envelope.run_id), keys.done_field(self.group, envelope.idempotency_key))
        if await self.redis.hexists(*done):
            # A message is acknowledged in the transaction that marks it done, so it is never delivered
            # again after that: one seen here is a second copy of it (`on_duplicate` may say so).
            if self.on_duplicate is not None:
                await self.on_duplicate(envelope)
            await self.redis.xack(self.stream, self.group, msg_id)
            return

        with consume_span(
            f"{self.group} {self.stream}", envelope.traceparent, run_id=envelope.run_id, step=envelope.step
        ):
            outputs: Sequence[Emit | Forget | DeadLetter]
            try:
                with timed(self.group):
                    outputs = await self.handler(envelope)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - counted, logged, retried, then handed to on_failure
                STAGE_ERRORS.labels(stage=self.group, error=type(exc).__name__).inc()
                log.exception("%s failed on %s (run %s step %s)", self.group, msg_id, envelope.run_id, envelope.step)
                if await self._deliveries(msg_id) < self.max_deliveries:
                    return
                # Give up: keep the message on the dead-letter stream and let the stage say what failed.
                outputs = [*(await self.on_failure(envelope, exc) if self.on_failure else []), self._dead(fields, exc)]
            await self._commit(msg_id, done, outputs)
        self.processed += 1

    def _dead(self, fields: dict[bytes, bytes], exc: BaseException) -> DeadLetter:
        return DeadLetter(
            keys.DEAD_LETTERS,
            {**fields, b"stream": self.stream.encode(), b"group": self.group.encode(), b"error": repr(exc).encode()},
        )

    async def _deliveries(self, msg_id: bytes) -> int:
        info = await self.redis.xpending_range(self.stream, self.group, min=msg_id, max=msg_id, count=1)
        return int(info[0]["times_delivered"]) if info else 0

    async def _commit(
        self, msg_id: bytes, done: tuple[str, str], outputs: Sequence[Emit | Forget | DeadLetter]
    ) -> None:
        pipe = self.redis.pipeline(transaction=True)
        for item in outputs:
            if isinstance(item, Forget):
                pipe.hdel(item.key, item.field)
            elif isinstance(item, DeadLetter):
                pipe.xadd(item.stream, item.fields, maxlen=DEAD_LETTERS_KEPT, approximate=True)  # type: ignore[arg-type]
            else:
                pipe.xadd(item.stream, item.envelope.to_fields())  # type: ignore[arg-type]
        pipe.hset(done[0], done[1], b"1")
        pipe.expire(done[0], keys.RUN_TTL_SECONDS)
        pipe.xack(self.stream, self.group, msg_id)
        await pipe.execute()


# How many dead letters are kept for a person to look at (the oldest go first).
DEAD_LETTERS_KEPT = 1000


def _after(entry_id: str) -> str:
    """The smallest stream id greater than `entry_id`."""
    ms, _, seq = entry_id.partition("-")
    return f"{ms}-{int(seq or 0) + 1}"


def _id_key(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


async def trim_acknowledged(redis: aioredis.Redis, stream: str) -> int:
    """Drop the entries of `stream` that every consumer group reading it has acknowledged; how many.

    Nothing is lost: an entry a group has not read yet, or read and not acknowledged, is kept, and
    nothing is trimmed while a group that should read the stream does not exist yet (it will read the
    stream from its start)."""
    try:
        groups: Any = await redis.xinfo_groups(stream)
    except ResponseError:  # no such stream yet
        return 0
    names = {g["name"].decode() if isinstance(g["name"], bytes) else g["name"]: g for g in groups}
    if any(group not in names for group in keys.STREAM_GROUPS.get(stream, ())):
        return 0
    needed: list[str] = []
    for name, info in names.items():
        last = info["last-delivered-id"]
        last = last.decode() if isinstance(last, bytes) else str(last)
        summary: Any = await redis.xpending(stream, name)
        if int(summary["pending"]):
            oldest = summary["min"]
            needed.append(oldest.decode() if isinstance(oldest, bytes) else str(oldest))
        else:
            needed.append(_after(last))
    if not needed:
        return 0
    return int(await redis.xtrim(stream, minid=min(needed, key=_id_key), approximate=False))


async def stream_stats(redis: aioredis.Redis) -> dict[str, int]:
    """Length of every Switchboard stream (0 for one not created yet)."""
    pipe = redis.pipeline(transaction=False)
    for stream in keys.ALL_STREAMS:
        pipe.xlen(stream)
    lengths = await pipe.execute()
    return dict(zip(keys.ALL_STREAMS, (int(n) for n in lengths), strict=True))


async def refresh_stream_gauges(redis: aioredis.Redis, streams: Sequence[str]) -> None:
    """Update the length and pending-count gauges of the given streams."""
    for stream in streams:
        STREAM_LENGTH.labels(stream=stream).set(await redis.xlen(stream))
        for group in keys.STREAM_GROUPS.get(stream, ()):
            try:
                summary = await redis.xpending(stream, group)
            except ResponseError:  # the group does not exist yet
                continue
            STREAM_PENDING.labels(stream=stream, group=group).set(int(summary["pending"]))
