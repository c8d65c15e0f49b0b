"""What is running: the services' heartbeats in Redis, each checked with `grpc.health.v1`."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard import keys

HEALTH_TIMEOUT_SECONDS = 2.0


def grpc_healthy(addr: str, timeout: float = HEALTH_TIMEOUT_SECONDS) -> bool:
    """True when the server at `addr` answers SERVING."""
    with grpc.insecure_channel(addr) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def redacted(url: str) -> str:
    """`url` without its password, fit to print."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user = f"{parts.username}:" if parts.username else ":"
    return urlunsplit(parts._replace(netloc=f"{user}***@{parts.hostname}:{parts.port}"))


def collect_status(redis_url: str, password: str | None = None) -> dict[str, Any]:
    """`{"redis": {"url", "streams": {name: length}}, "services": [{"name", "pid", "grpc", "healthy"}]}`.

    The URL is shown without its password; `password` is used when the URL has none."""
    extra = {"password": password} if password else {}
    client = redis.Redis.from_url(redis_url, socket_timeout=HEALTH_TIMEOUT_SECONDS, **extra)
    redis_url = redacted(redis_url)
    try:
        lengths = {stream: int(client.xlen(stream)) for stream in keys.ALL_STREAMS}
        records = [client.get(key) for key in client.scan_iter(match=keys.SERVICE_PATTERN, count=100)]
    except redis.RedisError as exc:
        return {"redis": {"url": redis_url, "error": str(exc), "streams": {}}, "services": []}
    finally:
        client.close()
    services = []
    for raw in records:
        if raw is None:
            continue
        record = json.loads(raw)
        services.append(
            {
                "name": record["name"],
                "pid": record["pid"],
                "host": record.get("host", ""),
                "grpc": record["grpc"],
                "healthy": grpc_healthy(record["grpc"]),
            }
        )
    services.sort(key=lambda s: (s["name"], s["pid"]))
    return {"redis": {"url": redis_url, "streams": lengths}, "services": services}
