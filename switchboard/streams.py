"""Stage workers on Redis Streams: read through a consumer group, process, publish, acknowledge.

The rule that keeps work from being lost or repeated: a stage's outputs, its "done" marker for the
message's idempotency key and the acknowledgement are written in one Redis transaction, after the
handler has finished. A stage that dies mid-message leaves it pending; a replica on the same machine
takes it over at once when the dead one's process is provably gone, any other once it has been idle
longer than the stage's own timeout; the done marker makes a redelivered message a no-op.

Nothing is dropped: a message that cannot be parsed, that fails on every attempt, or whose handler
never finishes (it crashed the process each time) ends on the dead-letter stream, and the stage's
`on_failure` says what failed so that no run waits forever.

Redis itself may go away (restarted, loading its data, unreachable): `RedisOutage` is how every loop
that uses it rides that out, logging once per outage and backing off until it is back.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import socket
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.client import Pipeline
from redis.exceptions import AuthenticationError, ResponseError, WatchError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from switchboard import keys
from switchboard.envelope import Envelope, as_text
from switchboard.errors import ConfigurationError, MalformedMessage, SwitchboardError
from switchboard.metrics import (
    DEAD_LETTERED,
    REDIS_OUTAGES,
    STAGE_ERRORS,
    STAGE_WAIT,
    STREAM_LAG,
    STREAM_LENGTH,
    STREAM_PENDING,
    timed_work,
)
from switchboard.telemetry import consume_span, produce_span

log = logging.getLogger(__name__)

# Errors that say Redis is away (restarting, still loading its data, unreachable, too slow to answer),
# not that a command was wrong. redis-py's BusyLoadingError is a ConnectionError.
REDIS_DOWN: tuple[type[Exception], ...] = (RedisConnectionError, RedisTimeoutError)

BACKOFF_FIRST_SECONDS = 0.1
BACKOFF_CAP_SECONDS = 5.0


def backoff_seconds(attempt: int, jitter: float) -> float:
    """The wait before retry `attempt` (1, 2, …): doubling from 0.1 s up to 5 s, then placed by `jitter`
    (in [0, 1)) in the upper half of that, so replicas that lost Redis together do not return in step."""
    ceiling = min(BACKOFF_CAP_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** min(attempt - 1, 16))
    return ceiling * (0.5 + jitter / 2)


class RedisOutage:
    """How one loop rides out Redis going away: it says so once when Redis goes and once when it is
    back, not on every retry, and waits between attempts with capped exponential backoff and jitter.

    `loop` names the loop in the log and in `switchboard_redis_outages_total`."""

    def __init__(self, loop: str, jitter: Callable[[], float] = random.random) -> None:
        self.loop = loop
        self.jitter = jitter
        REDIS_OUTAGES.labels(loop=loop)  # at 0 until the first outage, so that one shows as an increase
        self.attempts = 0
        self.since = 0.0

    @property
    def down(self) -> bool:
        return self.attempts > 0

    def lost(self, exc: Exception) -> float:
        """Note a failed attempt; the seconds to wait before the next. A refused password is no outage
        (waiting does not mend it), so an `AuthenticationError` is raised again."""
        if isinstance(exc, AuthenticationError):
            raise exc
        if not self.attempts:
            self.since = time.monotonic()
            REDIS_OUTAGES.labels(loop=self.loop).inc()
            log.warning("%s: Redis is unreachable (%s); retrying until it is back", self.loop, exc)
        self.attempts += 1
        return backoff_seconds(self.attempts, self.jitter())

    def back(self) -> None:
        """Note a successful attempt (and say that Redis is back, if it was away)."""
        if self.attempts:
            log.info("%s: Redis is back after %.1f s", self.loop, time.monotonic() - self.since)
            self.attempts = 0


async def pause(stop: asyncio.Event, seconds: float) -> None:
    """Wait `seconds`, or less if `stop` is set meanwhile."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass


# ---- who may take over a consumer's messages ----


def local_consumer_name() -> str:
    """This process's consumer name in every group: `host-pid`, which tells a replica on the same
    machine whether the consumer still runs (`dead_on_this_host`)."""
    return f"{socket.gethostname()}-{os.getpid()}"


def dead_on_this_host(consumer: str, host: str, alive: Callable[[int], bool]) -> bool:
    """Whether `consumer` (named `host-pid`) ran on `host` in a process that is gone. A consumer of
    another machine, or named otherwise, is never judged dead here: only its idle time says."""
    name, dash, pid = consumer.rpartition("-")
    if not dash or name != host or not pid.isdigit() or int(pid) <= 0:
        return False
    return not alive(int(pid))


def process_alive(pid: int) -> bool:
    """Whether process `pid` runs on this machine (a zombie, finished but not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:  # no /proc here, or it ended just now: what kill said stands
        return True
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


# A message another consumer holds is taken over when it has been idle this much longer than the
# stage's own timeout, so that a slow but live replica keeps its work.
CLAIM_MARGIN_MS = 30_000


def stage_claim_idle_ms(configured_ms: int, stage_timeout_seconds: float, setting: str) -> int:
    """How long a message must sit with another consumer before this stage takes it over: the
    configured value (`setting`, 0 for the default), which must exceed the stage's own timeout, or by
    default that timeout and a margin. Raises `ConfigurationError` saying what to set."""
    timeout_ms = int(stage_timeout_seconds * 1000)
    if not configured_ms:
        return timeout_ms + CLAIM_MARGIN_MS
    if configured_ms <= timeout_ms:
        raise ConfigurationError(
            f"{setting} is {configured_ms} ms, not longer than the stage's own timeout of {timeout_ms} ms: "
            f"a slow but live replica's message would be taken from it mid-work and handled twice; set it "
            f"above {timeout_ms} (or to 0 for {timeout_ms + CLAIM_MARGIN_MS})"
        )
    return configured_ms


@dataclass(frozen=True)
class Redelivery:
    """When a stage handles a message again, and when it gives up on it.

    - `claim_idle_ms`: a message another consumer has held this long is taken over (that consumer is
      presumed dead); see `stage_claim_idle_ms`. A consumer that provably died on this machine is
      relieved at once.
    - `retry_ms`: a message whose handler failed here is tried again after this long.
    - `max_deliveries`: how many attempts a message gets. One that failed that often, or that was
      delivered more often than that without its handler ever finishing, is given up on.
    """

    claim_idle_ms: int = 30_000
    retry_ms: int = 30_000
    max_deliveries: int = 3


class AbandonedMessage(SwitchboardError):
    """A message whose handler never finished: each delivery ended with the stage gone (killed,
    crashed) while handling it, so it is not handed to the handler again."""

    def __init__(self, deliveries: int) -> None:
        super().__init__(
            f"this message was delivered {deliveries} times and its handler never finished "
            "(the stage stopped while handling it)"
        )


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
    """An `Emit` whose envelope carries the traceparent of its PRODUCER span (`send <stream>`), a child
    of the current span."""
    return Emit(stream, Envelope(run_id, step, key, produce_span(stream, run_id, step), body))


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


@dataclass(frozen=True)
class Delivery:
    """A stream entry as this consumer got it, and how many times the group has delivered it."""

    msg_id: bytes
    fields: dict[bytes, bytes]
    count: int = 1


# How often a worker looks for messages to handle again (dead consumers', its own failed ones, stale
# ones); a worker that found a full batch looks again at once.
SWEEP_SECONDS = 1.0


class StreamWorker:
    """Runs one stage's handler over one stream, through one consumer group.

    `handler` returns what to publish; it must not publish itself. A handler that raises leaves the
    message pending, to be tried again (`Redelivery`); after `max_deliveries` attempts, or once the
    message was delivered more often than that without its handler finishing, `on_failure` turns it
    into outputs (say, a failed step result) and the message goes to the dead-letter stream, so that
    no run waits forever on a message nobody can process. Redis going away stops nothing: the worker
    waits for it and carries on where it was.
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
        redelivery: Redelivery = Redelivery(),
        batch: int = 8,
    ) -> None:
        self.redis = redis
        self.stream = stream
        self.group = group
        DEAD_LETTERED.labels(stream=stream, group=group)  # at 0, so the first dead letter shows as one
        self.consumer = consumer
        self.handler = handler
        self.on_failure = on_failure
        self.on_duplicate = on_duplicate
        self.block_ms = block_ms
        self.redelivery = redelivery
        self.batch = batch
        self.processed = 0
        self._group_ready = False
        self._sweep_at = 0.0
        # What an outage interrupted: handled first when Redis is back, without a new delivery.
        self._interrupted: list[Delivery] = []

    async def run(self, stop: asyncio.Event | None = None, *, burst: bool = False) -> None:
        """Process messages until `stop` is set, or, with `burst`, until nothing is left to read."""
        stop = stop or asyncio.Event()
        outage = RedisOutage(f"{self.group} reading {self.stream}")
        while not stop.is_set():
            try:
                more = await self._step(burst)
            except REDIS_DOWN as exc:
                await pause(stop, outage.lost(exc))
                continue
            except ResponseError as exc:
                if not _group_gone(exc):
                    raise
                # Redis came back without its data (no append-only file): make the group again.
                log.warning("%s: the group on %s is gone; creating it again", self.group, self.stream)
                self._group_ready = False
                continue
            outage.back()
            if not more:
                return

    async def _step(self, burst: bool) -> bool:
        """Handle one batch; False when, in `burst`, nothing was left."""
        if not self._group_ready:
            await ensure_group(self.redis, self.stream, self.group)
            self._group_ready = True
        deliveries = await self._still_pending(self._interrupted) if self._interrupted else await self._next(burst)
        self._interrupted = []
        if not deliveries:
            return not burst
        for index, delivery in enumerate(deliveries):
            try:
                await self.process(delivery.msg_id, delivery.fields, delivery.count)
            except REDIS_DOWN:
                self._interrupted = deliveries[index:]
                raise
        return True

    async def _next(self, burst: bool) -> list[Delivery]:
        """Messages to handle again, when a look for them is due, else new ones."""
        if burst or time.monotonic() >= self._sweep_at:
            again = await self._redeliveries()
            self._sweep_at = time.monotonic() + (0.0 if len(again) >= self.batch else SWEEP_SECONDS)
            if again:
                return again
        return await self._read(block=not burst)

    async def _read(self, *, block: bool) -> list[Delivery]:
        reply: Any = await self.redis.xreadgroup(
            self.group,
            self.consumer,
            {self.stream: ">"},
            count=self.batch,
            block=self.block_ms if block else None,
        )
        return [Delivery(msg_id, fields) for _, items in reply for msg_id, fields in items] if reply else []

    async def _redeliveries(self) -> list[Delivery]:
        """Take over what should be handled again: every message of a consumer of this group that died
        on this machine (at once), this consumer's own failed messages (after `retry_ms`), and any
        message held longer than `claim_idle_ms`. Consumers found dead with nothing pending are
        removed from the group."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xinfo_consumers(self.stream, self.group)
        pipe.xpending_range(
            self.stream, self.group, "-", "+", self.batch, consumername=self.consumer, idle=self.redelivery.retry_ms
        )
        pipe.xpending_range(self.stream, self.group, "-", "+", self.batch, idle=self.redelivery.claim_idle_ms)
        consumers, own, stale = await pipe.execute()
        host = socket.gethostname()
        dead = [
            (name, int(info["pending"]))
            for info in consumers
            if (name := as_text(info["name"])) != self.consumer and dead_on_this_host(name, host, process_alive)
        ]
        pending = [*own, *stale]
        if dead:
            pipe = self.redis.pipeline(transaction=False)
            for name, held in dead:
                if held:
                    pipe.xpending_range(self.stream, self.group, "-", "+", self.batch, consumername=name)
                else:
                    pipe.xgroup_delconsumer(self.stream, self.group, name)
                    log.info("%s: removed the dead consumer %s from %s", self.group, name, self.stream)
            replies = await pipe.execute()
            pending += [entry for (_, held), reply in zip(dead, replies, strict=True) if held for entry in reply]
        return await self._claim(pending)

    async def _claim(self, pending: list[dict[str, Any]]) -> list[Delivery]:
        """Claim the given pending entries (as XPENDING lists them) for this consumer, each only if it
        has been idle at least as long as when it was listed, so that a consumer that claimed it
        meanwhile keeps it."""
        unique = list({entry["message_id"]: entry for entry in pending}.values())
        if not unique:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for entry in unique:
            pipe.xclaim(
                self.stream, self.group, self.consumer, int(entry["time_since_delivered"]), [entry["message_id"]]
            )
        claimed: list[Delivery] = []
        deleted: list[bytes] = []
        for entry, reply in zip(unique, await pipe.execute(), strict=True):
            for msg_id, fields in reply:
                if fields is None:  # deleted from the stream: nothing to handle, only to acknowledge
                    deleted.append(msg_id)
                else:
                    claimed.append(Delivery(msg_id, fields, int(entry["times_delivered"]) + 1))
        if deleted:
            await self.redis.xack(self.stream, self.group, *deleted)
        return claimed

    async def _still_pending(self, deliveries: list[Delivery]) -> list[Delivery]:
        """Those of `deliveries` this consumer still holds: a transaction an outage cut off may have
        committed before the connection went."""
        pipe = self.redis.pipeline(transaction=False)
        for delivery in deliveries:
            pipe.xpending_range(
                self.stream, self.group, delivery.msg_id, delivery.msg_id, 1, consumername=self.consumer
            )
        held = await pipe.execute()
        return [delivery for delivery, reply in zip(deliveries, held, strict=True) if reply]

    async def process(self, msg_id: bytes, fields: dict[bytes, bytes], deliveries: int = 1) -> None:
        """Handle one entry, delivered `deliveries` times so far: skip it if already done, give up on it
        if its handler never finished in more than `max_deliveries` deliveries, else run the handler and
        commit its outputs. Redis going away meanwhile raises (the entry stays pending)."""
        added_ms = int(msg_id.split(b"-")[0])
        STAGE_WAIT.labels(stage=self.group, queue=self.stream).observe(max(0.0, time.time() - added_ms / 1000))
        try:
            envelope = Envelope.from_fields(fields)
        except MalformedMessage as exc:
            log.error("dead-lettering malformed entry %s on %s: %s", msg_id, self.stream, exc)
            STAGE_ERRORS.labels(stage=self.group, error="MalformedMessage").inc()
            await self._commit(msg_id, None, [self._dead(fields, exc, deliveries)])
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
            self.stream,
            self.group,
            envelope.traceparent,
            message_id=msg_id.decode(),
            run_id=envelope.run_id,
            step=envelope.step,
        ):
            outputs: Sequence[Emit | Forget | DeadLetter]
            if deliveries > self.redelivery.max_deliveries:
                # Every earlier delivery ended with the stage gone mid-handling (a crash, a kill): running
                # the handler again would most likely end the same way.
                abandoned = AbandonedMessage(deliveries)
                STAGE_ERRORS.labels(stage=self.group, error=type(abandoned).__name__).inc()
                log.error(
                    "%s gives up on %s (run %s step %s): %s",
                    self.group,
                    msg_id,
                    envelope.run_id,
                    envelope.step,
                    abandoned,
                )
                outputs = await self._give_up(envelope, fields, abandoned, deliveries)
            else:
                try:
                    with timed_work(self.group):
                        outputs = await self.handler(envelope)
                except asyncio.CancelledError:
                    raise
                except REDIS_DOWN:
                    raise  # not the message's fault: it is handled again once Redis is back
                except Exception as exc:  # noqa: BLE001 - counted, logged, retried, then handed to on_failure
                    STAGE_ERRORS.labels(stage=self.group, error=type(exc).__name__).inc()
                    log.exception(
                        "%s failed on %s (run %s step %s)", self.group, msg_id, envelope.run_id, envelope.step
                    )
                    if deliveries < self.redelivery.max_deliveries:
                        return
                    outputs = await self._give_up(envelope, fields, exc, deliveries)
            await self._commit(msg_id, done, outputs)
        self.processed += 1

    async def _give_up(
        self, envelope: Envelope, fields: dict[bytes, bytes], exc: Exception, deliveries: int
    ) -> list[Emit | Forget | DeadLetter]:
        """What giving up on a message publishes: what `on_failure` reports, and the dead letter. A
        failing `on_failure` does not keep the message from the dead-letter stream; its error goes there
        too."""
        reported: Sequence[Emit] = []
        if self.on_failure is not None:
            try:
                reported = await self.on_failure(envelope, exc)
            except REDIS_DOWN:
                raise
            except Exception as failure:  # noqa: BLE001 - logged and kept on the dead letter
                log.exception("%s could not report its failure on run %s", self.group, envelope.run_id)
                return [self._dead(fields, exc, deliveries, failure)]
        return [*reported, self._dead(fields, exc, deliveries)]

    def _dead(
        self, fields: dict[bytes, bytes], exc: Exception, deliveries: int, report_failed: Exception | None = None
    ) -> DeadLetter:
        said = {
            b"stream": self.stream.encode(),
            b"group": self.group.encode(),
            b"error": f"{type(exc).__name__}: {exc}".encode(),
            b"deliveries": str(deliveries).encode(),
        }
        if report_failed is not None:
            said[b"on_failure_error"] = f"{type(report_failed).__name__}: {report_failed}".encode()
        return DeadLetter(keys.DEAD_LETTERS, {**fields, **said})

    async def _commit(
        self, msg_id: bytes, done: tuple[str, str] | None, outputs: Sequence[Emit | Forget | DeadLetter]
    ) -> None:
        """Publish `outputs`, mark the message done (when it has a run to mark it in) and acknowledge
        it, in one transaction.

        The transaction is made only if the message is not marked done yet (`WATCH` on the run's done
        hash): if another consumer took it over while this one was still working on it and committed
        first, its outputs stand and these are dropped, so no message's outputs are published twice."""
        if done is None:
            pipe = self.redis.pipeline(transaction=True)
            self._queue_commit(pipe, msg_id, None, outputs)
            await pipe.execute()
        else:
            async with self.redis.pipeline(transaction=True) as pipe:
                while True:
                    try:
                        await pipe.watch(done[0])
                        if await pipe.hexists(*done):
                            await pipe.unwatch()
                            log.warning("%s: %s was committed by another consumer first", self.group, msg_id)
                            await self.redis.xack(self.stream, self.group, msg_id)
                            return
                        pipe.multi()
                        self._queue_commit(pipe, msg_id, done, outputs)
                        await pipe.execute()
                        break
                    except WatchError:  # another message of the run was marked done meanwhile
                        continue
        if any(isinstance(item, DeadLetter) for item in outputs):
            DEAD_LETTERED.labels(stream=self.stream, group=self.group).inc()

    def _queue_commit(
        self,
        pipe: Pipeline,
        msg_id: bytes,
        done: tuple[str, str] | None,
        outputs: Sequence[Emit | Forget | DeadLetter],
    ) -> None:
        for item in outputs:
            if isinstance(item, Forget):
                pipe.hdel(item.key, item.field)
            elif isinstance(item, DeadLetter):
                pipe.xadd(item.stream, item.fields, maxlen=DEAD_LETTERS_KEPT, approximate=True)  # type: ignore[arg-type]
            else:
                pipe.xadd(item.stream, item.envelope.to_fields())  # type: ignore[arg-type]
        if done is not None:
            pipe.hset(done[0], done[1], b"1")
            pipe.expire(done[0], keys.RUN_TTL_SECONDS)
        pipe.xack(self.stream, self.group, msg_id)


def _group_gone(exc: ResponseError) -> bool:
    """Whether Redis says the group, or its whole stream, does not exist."""
    said = str(exc)  # in a pipeline, Redis's words are quoted inside redis-py's
    return "NOGROUP" in said or "no such key" in said


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


async def refresh_stream_gauges(redis: aioredis.Redis, streams: Sequence[str]) -> None:
    """Update the gauges of the given streams (length; each reading group's pending count and lag) and
    the dead-letter stream's length."""
    for stream in streams:
        STREAM_LENGTH.labels(stream=stream).set(await redis.xlen(stream))
        try:
            infos: Any = await redis.xinfo_groups(stream)
        except ResponseError:  # no such stream yet
            continue
        groups = {as_text(info["name"]): info for info in infos}
        for group in keys.STREAM_GROUPS.get(stream, ()):
            info = groups.get(group)
            if info is None:  # the group does not exist yet
                continue
            STREAM_PENDING.labels(stream=stream, group=group).set(int(info["pending"]))
            STREAM_LAG.labels(stream=stream, group=group).set(await group_lag(redis, stream, info))
    STREAM_LENGTH.labels(stream=keys.DEAD_LETTERS).set(await redis.xlen(keys.DEAD_LETTERS))


# How many entries one look at a stream reads when Redis cannot say a group's lag.
LAG_PAGE = 1000


async def group_lag(redis: aioredis.Redis, stream: str, info: dict[Any, Any], at_most: int | None = None) -> int:
    """Entries of `stream` the group (as XINFO GROUPS describes it) has not been delivered yet: Redis's
    own `lag` (7.0 and later), or, where Redis cannot say (before 7.0, or after entries were deleted
    from the middle of the stream), the entries after the group's last-delivered id, counted (up to
    about `at_most`, when given: a caller that only compares with a bound need not read further)."""
    lag = info.get("lag")
    if lag is not None:
        return int(lag)
    after = as_text(info["last-delivered-id"])
    counted = 0
    page_size = LAG_PAGE if at_most is None else max(1, min(LAG_PAGE, at_most))
    while True:
        page: Any = await redis.xrange(stream, min=f"({after}", count=page_size)
        counted += len(page)
        if len(page) < page_size or (at_most is not None and counted >= at_most):
            return counted
        after = as_text(page[-1][0])
