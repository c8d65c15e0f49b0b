"""A service's start: it waits for a Redis that is still loading its data (a stand-in Redis), or not up
yet (a real one, started late)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest
from redis.exceptions import BusyLoadingError

from switchboard.service import connect_redis, wait_for_redis
from tests.conftest import RedisProcess


class Loading:
    """Answers LOADING twice, as a Redis reading a large file from disk does, then PONG."""

    def __init__(self) -> None:
        self.pings = 0

    async def ping(self) -> bool:
        self.pings += 1
        if self.pings <= 2:
            raise BusyLoadingError("Redis is loading the dataset in memory")
        return True


async def test_a_service_waits_while_redis_loads_its_data() -> None:
    redis = Loading()
    await wait_for_redis(redis, asyncio.Event(), limit=10)  # type: ignore[arg-type]
    assert redis.pings == 3


async def test_it_gives_up_after_the_limit() -> None:
    with pytest.raises(BusyLoadingError):
        await wait_for_redis(Loading(), asyncio.Event(), limit=0)  # type: ignore[arg-type]


async def test_a_service_waits_for_a_redis_that_is_not_up_yet(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisProcess(tmp_path)
    client = connect_redis(server.url)
    try:
        with caplog.at_level(logging.INFO, logger="switchboard.streams"):
            waiting = asyncio.create_task(wait_for_redis(client, asyncio.Event(), limit=30))
            async with asyncio.timeout(10):  # nothing listens on the port yet: its pings are refused
                while not caplog.records:
                    await asyncio.sleep(0.01)
            assert not waiting.done()
            await asyncio.to_thread(server.start)
            await asyncio.wait_for(waiting, 20)
        said = [record.getMessage() for record in caplog.records]
        assert len(said) == 2 and "unreachable" in said[0] and "is back" in said[1], said
    finally:
        await client.aclose()
        server.stop()
