"""The gateway's stream worker: it judges each call the planner routed."""

from __future__ import annotations

import redis.asyncio as aioredis

from services.gateway.app import Gateway
from switchboard import keys
from switchboard.failures import fail_step
from switchboard.streams import StreamWorker


def build_workers(redis: aioredis.Redis, gateway: Gateway, consumer: str) -> list[StreamWorker]:
    return [
        StreamWorker(
            redis,
            stream=keys.PROPOSED,
            group=keys.GROUP_GATEWAY,
            consumer=consumer,
            handler=gateway.on_proposal,
            on_failure=fail_step("gateway"),
        )
    ]
