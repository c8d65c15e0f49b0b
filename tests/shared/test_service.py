"""A service's start: it waits for a Redis that is still loading its data (pure logic; a stand-in Redis)."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import BusyLoadingError

from switchboard.service import wait_for_redis


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
