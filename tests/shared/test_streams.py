"""The stream worker against a real redis-server: outputs, acknowledgement, redelivery, claiming from
dead consumers, giving up on poison messages, and riding out a Redis restart."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
import redis.asyncio as aioredis
from opentelemetry import trace
from prometheus_client import REGISTRY
from redis.exceptions import AuthenticationError
from redis.exceptions import ConnectionError as RedisConnectionError

from switchboard import keys
from switchboard.envelope import Envelope
from switchboard.streams import (
    REDIS_DOWN,
    AbandonedMessage,
    Emit,
    Redelivery,
    StreamWorker,
    emit,
    ensure_group,
    publish,
)
from tests.conftest import RedisProcess

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
    stage = worker(redis, broken, on_failure=give_up, redelivery=Redelivery(retry_ms=0, max_deliveries=2))
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
    await worker(redis, broken, redelivery=Redelivery(retry_ms=0, max_deliveries=3)).run(burst=True)

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

    await worker(redis, handle, consumer="alive", redelivery=Redelivery(claim_idle_ms=0)).run(burst=True)
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


# ---- Redis going away ----


def test_backoff_doubles_up_to_a_cap_and_is_spread_by_jitter() -> None:
    from switchboard.streams import BACKOFF_CAP_SECONDS, backoff_seconds

    lowest = [backoff_seconds(attempt, 0.0) for attempt in range(1, 10)]
    highest = [backoff_seconds(attempt, 0.999) for attempt in range(1, 10)]
    assert lowest[:3] == pytest.approx([0.05, 0.1, 0.2])
    assert all(later >= earlier for earlier, later in itertools.pairwise(highest))
    assert max(highest) <= BACKOFF_CAP_SECONDS and backoff_seconds(10_000, 0.999) <= BACKOFF_CAP_SECONDS
    assert all(low < high for low, high in zip(lowest, highest, strict=True))


def test_an_outage_is_logged_once_when_it_starts_and_once_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    from switchboard.streams import RedisOutage

    outage = RedisOutage("test loop", jitter=lambda: 0.0)
    with caplog.at_level(logging.INFO, logger="switchboard.streams"):
        delays = [outage.lost(RedisConnectionError("Connection refused")) for _ in range(5)]
        outage.back()
        outage.back()
    assert delays == sorted(delays) and not outage.down
    said = [record.getMessage() for record in caplog.records]
    assert len(said) == 2, said
    assert "unreachable" in said[0] and "Connection refused" in said[0] and "is back" in said[1]


def test_a_refused_password_is_no_outage() -> None:
    from switchboard.streams import RedisOutage

    with pytest.raises(AuthenticationError):
        RedisOutage("test loop").lost(AuthenticationError("invalid password"))


async def test_a_worker_outlives_a_redis_restart_and_handles_again_what_it_interrupted(tmp_path: Path) -> None:
    server = RedisProcess(tmp_path, appendonly=True)
    server.start()
    client = aioredis.Redis.from_url(server.url, decode_responses=False)
    started, restarted = asyncio.Event(), asyncio.Event()
    calls: list[str] = []

    async def handle(env: Envelope) -> list[Emit]:
        calls.append(env.idempotency_key)
        if len(calls) == 1:  # the first attempt loses Redis half-way
            started.set()
            await restarted.wait()
            await client.hset("test:effects", env.idempotency_key, b"1")
        return [emit(OUT, env.run_id, env.step, "out", b"")]

    stop = asyncio.Event()
    stage = worker(client, handle)
    try:
        running = asyncio.create_task(stage.run(stop))
        await publish(client, [message("k")])
        await asyncio.wait_for(started.wait(), 10)
        await asyncio.to_thread(server.stop)
        await asyncio.to_thread(server.start)
        restarted.set()
        async with asyncio.timeout(20):
            while True:
                try:
                    if await client.xlen(OUT):
                        break
                except REDIS_DOWN:
                    pass
                await asyncio.sleep(0.05)
        assert not running.done()
        assert calls == ["k", "k"]  # handled again once Redis was back, and only then
        assert (await client.xpending(IN, GROUP))["pending"] == 0
        assert await client.xlen(keys.DEAD_LETTERS) == 0  # an outage is not the message's fault
        stop.set()
        await asyncio.wait_for(running, 5)
    finally:
        await client.aclose()
        server.stop()


# ---- messages of dead consumers ----


def dead_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def test_only_a_consumer_of_this_host_whose_process_is_gone_is_dead() -> None:
    from switchboard.streams import dead_on_this_host

    gone = {4242}.__contains__

    def alive(pid: int) -> bool:
        return not gone(pid)

    assert dead_on_this_host("my-laptop-4242", "my-laptop", alive)
    assert not dead_on_this_host("my-laptop-4243", "my-laptop", alive)  # still running
    assert not dead_on_this_host("other-host-4242", "my-laptop", alive)  # only its idle time can say
    for name in ("my-laptop", "my-laptop-", "my-laptop-x42", "my-laptop-0", "4242", "dead"):
        assert not dead_on_this_host(name, "my-laptop", alive), name


def test_a_process_is_alive_until_it_ends_even_as_a_zombie() -> None:
    from switchboard.streams import process_alive

    child = subprocess.Popen(["sleep", "30"])
    try:
        assert process_alive(child.pid)
        child.kill()
        deadline = time.monotonic() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rpartition(")")[2].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert not process_alive(child.pid)  # ended, not yet reaped
    finally:
        child.wait()
    assert not process_alive(child.pid)
    assert process_alive(os.getpid())


def test_claim_idle_is_longer_than_the_stages_own_timeout() -> None:
    from switchboard.errors import ConfigurationError
    from switchboard.streams import CLAIM_MARGIN_MS, stage_claim_idle_ms

    assert stage_claim_idle_ms(0, 60.0, "SWITCHBOARD_TOOLHOST_CLAIM_IDLE_MS") == 60_000 + CLAIM_MARGIN_MS
    assert stage_claim_idle_ms(61_000, 60.0, "SWITCHBOARD_TOOLHOST_CLAIM_IDLE_MS") == 61_000
    with pytest.raises(ConfigurationError, match="SWITCHBOARD_TOOLHOST_CLAIM_IDLE_MS is 30000 ms.*above 60000"):
        stage_claim_idle_ms(30_000, 60.0, "SWITCHBOARD_TOOLHOST_CLAIM_IDLE_MS")


async def deliver_to(redis: aioredis.Redis, consumer: str, times: int) -> None:
    """Deliver the next entry of IN to `consumer`, `times` times over (as restarts of it would)."""
    await ensure_group(redis, IN, GROUP)
    [(_, [(msg_id, _)])] = await redis.xreadgroup(GROUP, consumer, {IN: ">"}, count=1)
    for _ in range(times - 1):
        await redis.xclaim(IN, GROUP, consumer, 0, [msg_id])


async def test_a_dead_consumer_on_this_host_is_relieved_at_once_and_then_removed(redis: aioredis.Redis) -> None:
    gone = f"{socket.gethostname()}-{dead_pid()}"
    await publish(redis, [message("orphan")])
    await deliver_to(redis, gone, 1)
    handled: list[str] = []

    async def handle(env: Envelope) -> list[Emit]:
        handled.append(env.idempotency_key)
        return []

    stage = worker(redis, handle, consumer="alive")  # claim_idle stays at 30 s
    await stage.run(burst=True)
    assert handled == ["orphan"]
    assert (await redis.xpending(IN, GROUP))["pending"] == 0
    await stage.run(burst=True)
    assert [c["name"] for c in await redis.xinfo_consumers(IN, GROUP)] == [b"alive"]


async def test_a_live_or_remote_consumer_keeps_its_messages_until_claim_idle(redis: aioredis.Redis) -> None:
    await publish(redis, [message("mine"), message("theirs")])
    await deliver_to(redis, f"{socket.gethostname()}-{os.getpid()}", 1)  # this very process: alive
    await deliver_to(redis, "other-host-1", 1)
    handled: list[str] = []

    async def handle(env: Envelope) -> list[Emit]:
        handled.append(env.idempotency_key)
        return []

    await worker(redis, handle, consumer="alive").run(burst=True)
    assert handled == []
    assert (await redis.xpending(IN, GROUP))["pending"] == 2
    await worker(redis, handle, consumer="alive", redelivery=Redelivery(claim_idle_ms=0)).run(burst=True)
    assert sorted(handled) == ["mine", "theirs"]


async def test_a_message_whose_handler_never_finished_is_given_up_without_running_it(redis: aioredis.Redis) -> None:
    await publish(redis, [message("crasher")])
    await deliver_to(redis, f"{socket.gethostname()}-{dead_pid()}", 3)  # three starts, three crashes
    ran: list[str] = []
    reported: list[BaseException] = []

    async def handle(env: Envelope) -> list[Emit]:
        ran.append(env.idempotency_key)
        return []

    async def give_up(env: Envelope, exc: BaseException) -> list[Emit]:
        reported.append(exc)
        return [emit(OUT, env.run_id, env.step, "failed", str(exc).encode())]

    before = dead_letters_counted()
    await worker(redis, handle, on_failure=give_up, redelivery=Redelivery(max_deliveries=3)).run(burst=True)

    assert ran == []
    [exc] = reported
    assert isinstance(exc, AbandonedMessage)
    assert "delivered 4 times and its handler never finished" in str(exc)
    assert [Envelope.from_fields(fields).body for _, fields in await redis.xrange(OUT)] == [str(exc).encode()]
    [(_, dead)] = await redis.xrange(keys.DEAD_LETTERS)
    assert dead[b"key"] == b"crasher" and dead[b"group"] == GROUP.encode() and dead[b"deliveries"] == b"4"
    assert dead[b"error"].startswith(b"AbandonedMessage: this message was delivered 4 times")
    assert dead_letters_counted() == before + 1
    assert (await redis.xpending(IN, GROUP))["pending"] == 0
    assert await redis.hexists(keys.done_key("run1"), keys.done_field(GROUP, "crasher"))


async def test_a_failed_message_is_retried_by_its_own_consumer_after_retry_ms(redis: aioredis.Redis) -> None:
    attempts: list[int] = []

    async def flaky(env: Envelope) -> list[Emit]:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("the router is restarting")
        return []

    await publish(redis, [message("k")])
    await worker(redis, flaky, redelivery=Redelivery(retry_ms=60_000)).run(burst=True)
    assert len(attempts) == 1  # not yet: it waits retry_ms
    await worker(redis, flaky, redelivery=Redelivery(retry_ms=0)).run(burst=True)
    assert len(attempts) == 2
    assert (await redis.xpending(IN, GROUP))["pending"] == 0
    assert await redis.xlen(keys.DEAD_LETTERS) == 0


async def test_a_malformed_entry_goes_to_the_dead_letters_not_away(redis: aioredis.Redis) -> None:
    async def never(env: Envelope) -> list[Emit]:
        raise AssertionError("a malformed entry reached the handler")

    await ensure_group(redis, IN, GROUP)
    await redis.xadd(IN, {"junk": "not an envelope"})
    before = dead_letters_counted()
    await worker(redis, never).run(burst=True)

    [(_, dead)] = await redis.xrange(keys.DEAD_LETTERS)
    assert dead[b"junk"] == b"not an envelope" and dead[b"stream"] == IN.encode()
    assert dead[b"error"].startswith(b"MalformedMessage: ")
    assert dead_letters_counted() == before + 1
    assert (await redis.xpending(IN, GROUP))["pending"] == 0


def dead_letters_counted() -> float:
    return REGISTRY.get_sample_value("switchboard_dead_letters_total", {"stream": IN, "group": GROUP}) or 0.0


async def test_a_worker_makes_its_group_again_when_redis_lost_it(redis: aioredis.Redis) -> None:
    handled: list[str] = []

    async def handle(env: Envelope) -> list[Emit]:
        handled.append(env.idempotency_key)
        return []

    stage = worker(redis, handle)
    await publish(redis, [message("before")])
    await stage.run(burst=True)
    await redis.flushdb()  # as a Redis restarted without its data
    await publish(redis, [message("after")])
    await stage.run(burst=True)
    assert handled == ["before", "after"]


async def test_a_message_two_consumers_handle_at_once_is_committed_once(redis: aioredis.Redis) -> None:
    """A slow consumer whose message was taken over (it looked dead, or held it past the claim idle
    time) finishes after the one that took it: the first commit stands, the second is dropped."""
    release = asyncio.Event()
    started = asyncio.Event()

    async def slow(env: Envelope) -> list[Emit]:
        started.set()
        await release.wait()
        return [emit(OUT, env.run_id, env.step, env.idempotency_key + ":out", b"slow")]

    async def quick(env: Envelope) -> list[Emit]:
        return [emit(OUT, env.run_id, env.step, env.idempotency_key + ":out", b"quick")]

    await publish(redis, [message("k1")])
    first = asyncio.create_task(worker(redis, slow, consumer="c1").run(burst=True))
    await asyncio.wait_for(started.wait(), 10)
    # c2 takes the message over while c1 still works on it, and commits.
    taken = await redis.xclaim(IN, GROUP, "c2", min_idle_time=0, message_ids=[(await redis.xrange(IN))[0][0]])
    entry_id, fields = taken[0]
    await worker(redis, quick, consumer="c2").process(entry_id, fields)
    release.set()
    await asyncio.wait_for(first, 10)

    assert [Envelope.from_fields(f).body for _, f in await redis.xrange(OUT)] == [b"quick"]
    assert (await redis.xpending(IN, GROUP))["pending"] == 0
