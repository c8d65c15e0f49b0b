"""The gateway's stream workers: it follows steps, proposals, results and answers."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.gateway.app import Gateway
from switchboard import keys
from switchboard.streams import StreamWorker


def build_workers(redis: aioredis.Redis, gateway: Gateway, consumer: str) -> list[StreamWorker]:
    handlers = {
        keys.STEPS: gateway.on_step,
        keys.PROPOSED: gateway.on_proposal,
        keys.RESULTS: gateway.on_result,
        keys.FINISHED: gateway.on_finished,
    }
    return [
        StreamWorker(redis, stream=stream, group=keys.GROUP_GATEWAY, consumer=consumer, handler=handler)
        for stream, handler in handlers.items()
    ]
