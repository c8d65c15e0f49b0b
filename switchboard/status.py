"""What is running: the services' heartbeats in Redis, each checked with `grpc.health.v1`, and what
the stages gave up on (the dead-letter stream)."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import grpc
import redis
from grpc_health.v1 import health_pb2, health_pb2_grpc

from switchboard import keys

HEALTH_TIMEOUT_SECONDS = 2.0
# How many of the newest dead letters status shows.
DEAD_LETTERS_SHOWN = 5


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


def dead_letter_summary(entry_id: bytes, fields: dict[bytes, bytes]) -> dict[str, str]:
    """What status shows of one dead letter: where it came from, its run and what went wrong."""

    def text(name: bytes) -> str:
        return fields.get(name, b"").decode(errors="replace")

    return {
        "id": entry_id.decode(),
        "stream": text(b"stream"),
        "group": text(b"group"),
        "run_id": text(b"run_id"),
        "error": text(b"error"),
    }


def heartbeat_records(client: redis.Redis) -> list[dict[str, Any]]:
    """Every running service replica's heartbeat record (`ServiceRuntime._heartbeat`), parsed; one that
    expired since the scan, or that no service wrote, is left out. `RedisError` if Redis does not answer."""
    records = []
    for key in client.scan_iter(match=keys.SERVICE_PATTERN, count=100):
        raw = client.get(key)
        if raw is None:  # expired since the scan
            continue
        try:
            record = json.loads(raw)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def collect_status(redis_url: str, password: str | None = None) -> dict[str, Any]:
    """`{"redis": {"url", "streams": {name: length}}, "dead_letters": {"length", "newest": [{"id",
    "stream", "group", "run_id", "error"}]}, "services": [{"name", "replica", "pid", "grpc", "healthy",
    "restarts"}], "restarts": {label: {"restarts", "last_exit", "last_exit_unix"}}}`, the newest dead
    letters first; the restarts are the stack's supervisor's, by program (`router#1`, `redis`).

    The URL is shown without its password; `password` is used when the URL has none."""
    extra = {"password": password} if password else {}
    client = redis.Redis.from_url(redis_url, socket_timeout=HEALTH_TIMEOUT_SECONDS, **extra)
    redis_url = redacted(redis_url)
    try:
        lengths = {stream: int(client.xlen(stream)) for stream in keys.ALL_STREAMS}
        dead: Any = client.xrevrange(keys.DEAD_LETTERS, count=DEAD_LETTERS_SHOWN)
        dead_letters = {
            "length": int(client.xlen(keys.DEAD_LETTERS)),
            "newest": [dead_letter_summary(entry_id, fields) for entry_id, fields in dead],
        }
        records = heartbeat_records(client)
        restarts = {
            (label.decode() if isinstance(label, bytes) else label): json.loads(body)
            for label, body in dict(client.hgetall(keys.RESTARTS)).items()
        }
    except redis.RedisError as exc:
        return {
            "redis": {"url": redis_url, "error": str(exc), "streams": {}},
            "dead_letters": {"length": 0, "newest": []},
            "services": [],
            "restarts": {},
        }
    finally:
        client.close()
    services = []
    for record in records:
        replica = int(record.get("replica", 0))
        label = record["name"] if replica == 0 else f"{record['name']}#{replica}"
        services.append(
            {
                "name": record["name"],
                "pid": record["pid"],
                "host": record.get("host", ""),
                "grpc": record["grpc"],
                "replica": replica,
                "healthy": grpc_healthy(record["grpc"]),
                "restarts": int(restarts.get(label, {}).get("restarts", 0)),
            }
        )
    services.sort(key=lambda s: (s["name"], s["replica"], s["pid"]))
    return {
        "redis": {"url": redis_url, "streams": lengths},
        "dead_letters": dead_letters,
        "services": services,
        "restarts": restarts,
    }
