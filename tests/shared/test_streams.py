"""The stream worker against a real redis-server: outputs, acknowledgement, redelivery, claiming."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace

from switchboard import keys
from switchboard.envelope import Envelope
from switchboard.streams import Emit, StreamWorker, emit, ensure_group, publish

IN, OUT, GROUP = "test:in", "test:out", "stage"


def message(key: str, body: bytes = b"x", traceparent: str = "") -> Emit:
    return Emit(IN, Envelope("run1", 1, key, traceparent, body))


def worker(redis: aioredis.Redis, handler, consumer: str = "c1", **kwargs) -> StreamWorker:  # noqa: ANN001
    return StreamWorker(redis, stream=IN, group=GROUP, consumer=consumer, handler=handler, block_ms=10, **kwargs)


async def test_output_is_published_and_input_acknowledged(redis: aioredis.Redis) -> None:
    async def upper(env: Envelope) -> list[Emit]:
        return [emit(OUT, env.run_id, env.step, env.idempotency_key + ":out", env.body.upper())]

    await publish(redis, [message("k1", b"hello")])
    await worker(redis, upper).run(burst=True)

    out = await redis.xrange(OUT)
    assert [Envelope.from_fields(fields).body for _, fields in out] == [b"HELLO"]
    assert (await redis.xpending(IN, GROUP))["pending"] == 0
    assert await redis.hexists(keys.done_key("run1"), keys.done_field(GROUP, "k1"))


async def test_redelivered_key_has_no_second_effect(redis: aioredis.Redis) -> None:
    calls: list[str] = []

    async def count(env: Envelope) -> list[Emit]:
        calls.append(env.idempotency_key)
        return [emit(OUT, env.run_id, env.step, "out", b"")]

    await publish(redis, [message("same"), message("same")])
    await worker(redis, count).run(burst=True)

    assert calls == ["same"]
    assert await redis.xlen(OUT) == 1
    assert (await redis.xpending(IN, GROUP))["pending"] == 0


async def test_failure_stays_pending_then_goes_to_on_failure(redis: aioredis.Redis) -> None:
    async def broken(env: Envelope) -> list[Emit]:
        raise RuntimeError("boom")

    async def give_up(env: Envelope, exc: BaseException) -> list[Emit]:
        return [emit(OUT, env.run_id, env.step, "failed", str(exc).encode())]

    await publish(redis, [message("k")])
    stage = worker(redis, broken, on_failure=give_up, claim_idle_ms=0, max_deliveries=2)
    await stage.run(burst=True)

    out = await redis.xrange(OUT)
    assert [Envelope.from_fields(fields).body for _, fields in out] == [b"boom"]
    assert (await redis.xpending(IN, GROUP))["pending"] == 0
    [(_, dead)] = await redis.xrange(keys.DEAD_LETTERS)
    assert dead[b"key"] == b"k" and dead[b"stream"] == IN.encode() and b"boom" in dead[b"error"]


async def test_failure_without_a_handler_is_kept_as_a_dead_letter(redis: aioredis.Redis) -> None:
    attempts: list[int] = []

    async def broken(env: Envelope) -> list[Emit]:
        attempts.append(1)
        raise ValueError("cannot parse")

    await publish(redis, [message("poison")])
    await worker(redis, broken, claim_idle_ms=0, max_deliveries=3).run(burst=True)

    assert len(attempts) == 3
    assert (await redis.xpending(IN, GROUP))["pending"] == 0
    assert await redis.xlen(keys.DEAD_LETTERS) == 1


async def test_message_left_by_a_dead_consumer_is_claimed(redis: aioredis.Redis) -> None:
    await publish(redis, [message("orphan")])
    await ensure_group(redis, IN, GROUP)
    await redis.xreadgroup(GROUP, "dead", {IN: ">"}, count=1)  # delivered, never acknowledged
    assert (await redis.xpending(IN, GROUP))["pending"] == 1

    handled: list[str] = []

    async def handle(env: Envelope) -> list[Emit]:
        handled.append(env.idempotency_key)
        return []

    await worker(redis, handle, consumer="alive", claim_idle_ms=0).run(burst=True)
    assert handled == ["orphan"]
    assert (await redis.xpending(IN, GROUP))["pending"] == 0


async def test_output_continues_the_input_trace(redis: aioredis.Redis) -> None:
    with trace.get_tracer("test").start_as_current_span("producer") as span:
        trace_id = format(span.get_span_context().trace_id, "032x")
        await publish(redis, [emit(IN, "run1", 1, "traced", b"")])
    assert trace_id in (await redis.xrange(IN))[0][1][b"traceparent"].decode()

    async def forward(env: Envelope) -> list[Emit]:
        return [emit(OUT, env.run_id, env.step, "next", b"")]

    await worker(redis, forward).run(burst=True)
    out = Envelope.from_fields((await redis.xrange(OUT))[0][1])
    assert out.traceparent.split("-")[1] == trace_id


def test_redis_client_outlasts_every_blocking_read(redis_url: str) -> None:
    """Regression: the client's default socket timeout was shorter than the 5 s XREAD of run events,
    which then failed with a TimeoutError and cut watchers' event streams."""
    from switchboard.runs import RunStore
    from switchboard.service import connect_redis

    client = connect_redis(redis_url)
    timeout_ms = client.connection_pool.connection_kwargs["socket_timeout"] * 1000
    events_block_ms = RunStore.events.__defaults__[0]  # type: ignore[index]
    worker_block_ms = StreamWorker.__init__.__kwdefaults__["block_ms"]  # type: ignore[index]
    assert timeout_ms > max(events_block_ms, worker_block_ms)


async def test_only_what_every_group_acknowledged_is_trimmed(
    redis: aioredis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    from switchboard.streams import trim_acknowledged

    stream = "test:read-twice"  # a stream two groups read
    monkeypatch.setitem(keys.STREAM_GROUPS, stream, (keys.GROUP_PLANNER, keys.GROUP_TOOLHOST))
    for group in keys.STREAM_GROUPS[stream]:
        await ensure_group(redis, stream, group)
    await publish(redis, [Emit(stream, Envelope("run1", n, f"k{n}", "", b"x")) for n in range(5)])

    async def nothing(_env: Envelope) -> list[Emit]:
        return []

    planner = StreamWorker(redis, stream=stream, group=keys.GROUP_PLANNER, consumer="p", handler=nothing)
    await planner.run(burst=True)
    assert await trim_acknowledged(redis, stream) == 0  # the tool host has read none of them yet
    # The tool host reads three and acknowledges two.
    await redis.xreadgroup(keys.GROUP_TOOLHOST, "t", {stream: ">"}, count=3)
    ids = [entry_id for entry_id, _ in await redis.xrange(stream)]
    await redis.xack(stream, keys.GROUP_TOOLHOST, ids[0], ids[1])
    assert await trim_acknowledged(redis, stream) == 2
    assert [entry_id for entry_id, _ in await redis.xrange(stream)] == ids[2:]
