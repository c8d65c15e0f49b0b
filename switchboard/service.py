"""What every service process does besides its own work.

`ServiceRuntime.serve` starts the gRPC server (with `grpc.health.v1`), the Prometheus metrics
endpoint, the stream workers and a heartbeat in Redis (how `sb status` finds running services), writes
a pid file, and on SIGINT/SIGTERM stops all of it in order. Redis going away or restarting stops none
of it: every loop waits for Redis to come back and carries on.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import grpc
import redis.asyncio as aioredis
from google.protobuf.descriptor import ServiceDescriptor
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import start_http_server
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from switchboard import keys
from switchboard.auth import BearerAuth
from switchboard.decoding import RefuseUndecodable
from switchboard.errors import ConfigurationError
from switchboard.metrics import AUTH_REFUSALS, start_series
from switchboard.rpc_tracing import ServerTracing
from switchboard.secrets import read_or_create_secret
from switchboard.settings import CommonSettings
from switchboard.streams import (
    REDIS_DOWN,
    Redelivery,
    RedisOutage,
    StreamWorker,
    local_consumer_name,
    pause,
    refresh_stream_gauges,
    stage_claim_idle_ms,
    trim_acknowledged,
)
from switchboard.telemetry import setup_logging, setup_tracing
from switchboard.v1 import switchboard_pb2 as pb

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0


# Longer than any blocking read Switchboard makes (stream reads block for at most a few seconds).
REDIS_SOCKET_TIMEOUT_SECONDS = 30.0


# Connections a service keeps to Redis at most. A caller that finds them all in use waits (up to the
# socket timeout) for one to come free instead of failing: running out is load, not Redis going away.
DEFAULT_REDIS_CONNECTIONS = 100


def connect_redis(
    url: str, password: str | None = None, max_connections: int = DEFAULT_REDIS_CONNECTIONS
) -> aioredis.Redis:
    """A Redis client that returns bytes (stream bodies are protobuf), authenticating with `password`
    unless the URL carries one, with at most `max_connections` connections.

    The socket timeout is set explicitly: the client's default is shorter than a blocking XREAD, which
    then fails with a timeout instead of returning empty.
    """
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=max_connections,
        timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        decode_responses=False,
        socket_timeout=REDIS_SOCKET_TIMEOUT_SECONDS,
        socket_connect_timeout=5.0,
        # After Redis restarted, a connection left in the pool from before fails its next command:
        # that command is tried once more on a new connection rather than reported as an outage.
        retry=Retry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError],
    )
    if password:
        pool.connection_kwargs["password"] = password
    return aioredis.Redis.from_pool(pool)  # the client owns the pool: closing it closes the connections


# How long a service waits at start for Redis to answer (to start, or to load its data) before it gives up.
REDIS_LOADING_WAIT_SECONDS = 300.0


async def wait_for_redis(redis: aioredis.Redis, stop: asyncio.Event, limit: float = REDIS_LOADING_WAIT_SECONDS) -> None:
    """Return once Redis answers commands. A Redis that is not up yet refuses the connection, and one
    that has just started may still be loading its data from disk and answer every command with
    LOADING; a service waits through both (saying so once) until Redis answers, `limit` seconds at
    most, and then raises the last error."""
    deadline = time.monotonic() + limit
    outage = RedisOutage("start")
    while True:
        try:
            await redis.ping()
        except REDIS_DOWN as exc:
            delay = outage.lost(exc)
            if time.monotonic() > deadline or stop.is_set():
                raise
            await pause(stop, delay)
            continue
        outage.back()
        return


def proto_service(service: str) -> ServiceDescriptor:
    """The proto service a Switchboard service serves (`toolhost` → `switchboard.v1.ToolHost`)."""
    for described in pb.DESCRIPTOR.services_by_name.values():
        if described.name.lower() == service:
            return described
    raise ConfigurationError(f"no gRPC service named {service!r} in the proto")


def run(main: Coroutine[Any, Any, None]) -> None:
    """Run a service's main coroutine on uvloop: its event loop (libuv, in C) takes a good part of the
    per-message cost of asyncio's own off every hop of a step."""
    import uvloop

    uvloop.run(main)


class ServiceRuntime:
    """The lifecycle of one service process."""

    def __init__(self, name: str, settings: CommonSettings, redis_connections: int = DEFAULT_REDIS_CONNECTIONS) -> None:
        self.name = name
        self.settings = settings
        # Also the consumer name in every group, which tells a replica on this machine whether it runs.
        self.instance = local_consumer_name()
        self.stop = asyncio.Event()
        self.redis = connect_redis(settings.redis_url, settings.redis_password(), redis_connections)
        # What the other services present when they call this one, and this one when it calls them.
        self.internal_key = read_or_create_secret(settings.internal_key_path)
        self.health = health.aio.HealthServicer()
        setup_logging(name, settings.log_level)
        setup_tracing(name, settings.otlp_endpoint)

    async def serve(
        self,
        register: Callable[[grpc.aio.Server], None],
        workers: Sequence[StreamWorker] = (),
        background: Sequence[Callable[[], Coroutine[Any, Any, None]]] = (),
        ready: Callable[[], Awaitable[None]] | None = None,
        public_token: str = "",
        interceptors: Sequence[grpc.aio.ServerInterceptor] = (),
        max_message_bytes: int = 0,
    ) -> None:
        """Run until a signal arrives.

        Every gRPC method but health checks needs a credential: the internal key, or, for a public API
        (`public_token` given: the gateway's), the person's token. Background jobs start at once;
        `ready` is then awaited (say, for the tool catalogue) before the stream workers start and the
        service reports SERVING. `interceptors` run after authentication; `max_message_bytes` caps a
        request message (0: gRPC's own limit).
        """
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop.set)

        if public_token:
            auth = BearerAuth([public_token], "present the API token (the `token` file in the state directory)")
        else:
            auth = BearerAuth([self.internal_key], "this API is for Switchboard's own services")
        options = [("grpc.max_receive_message_length", max_message_bytes)] if max_message_bytes else []
        # Tracing first, so that its span covers every call, refused ones too, and the handler runs in
        # it; the undecodable check last, so that a caller without a credential is refused as such
        # whatever bytes it sent.
        server = grpc.aio.server(
            interceptors=[ServerTracing(), auth, *interceptors, RefuseUndecodable()], options=options
        )
        register(server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, server)
        served = proto_service(self.name)
        start_series(AUTH_REFUSALS, ({"method": f"/{served.full_name}/{m.name}"} for m in served.methods))
        listen = self.settings.grpc_listen(self.name)
        if server.add_insecure_port(listen) == 0:
            raise OSError(f"{self.name}: cannot listen on {listen}")
        await server.start()
        start_http_server(self.settings.metrics_port(self.name), addr=self.settings.bind_host)
        await self._set_serving(False)
        self._write_pid()
        log.info("%s listening on %s (metrics on %s)", self.name, listen, self.settings.metrics_port(self.name))

        await wait_for_redis(self.redis, self.stop)
        tasks = [asyncio.create_task(self._heartbeat(), name="heartbeat")]
        tasks += [asyncio.create_task(job(), name=getattr(job, "__name__", "job")) for job in background]
        try:
            if ready is not None:
                await ready()
            tasks += [asyncio.create_task(w.run(self.stop), name=f"worker {w.stream}") for w in workers]
            await self._set_serving(True)
            log.info("%s ready", self.name)
            stop_wait = asyncio.create_task(self.stop.wait())
            done, _ = await asyncio.wait([stop_wait, *tasks], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stop_wait and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            self.stop.set()
            await self._set_serving(False)
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await server.stop(grace=2)
            try:
                await self.redis.delete(keys.service_key(self.name, self.instance))
            except RedisError as exc:  # Redis may already be gone; the record expires by itself
                log.warning("could not remove the heartbeat record: %s", exc)
            await self.redis.aclose()
            self._remove_pid()
            log.info("%s stopped", self.name)

    async def _set_serving(self, serving: bool) -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        for service in ("", proto_service(self.name).full_name):
            await self.health.set(service, status)

    def redelivery(self, stage_timeout_seconds: float) -> Redelivery:
        """When this service's stream workers handle a message again and when they give up on it, from
        the settings; a message is taken from another consumer only after longer than
        `stage_timeout_seconds`, the longest this stage may legitimately work on one (`ConfigurationError`
        if the configured wait is not longer)."""
        setting = f"{self.name}_claim_idle_ms"
        return Redelivery(
            claim_idle_ms=stage_claim_idle_ms(
                getattr(self.settings, setting), stage_timeout_seconds, f"SWITCHBOARD_{setting.upper()}"
            ),
            retry_ms=self.settings.stream_retry_ms,
            max_deliveries=self.settings.max_deliveries,
        )

    async def _heartbeat(self) -> None:
        record = json.dumps(
            {
                "name": self.name,
                "instance": self.instance,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "grpc": self.settings.own_addr(self.name),
                "replica": self.settings.replica,
                "metrics_port": self.settings.metrics_port(self.name),
                "started_unix": int(time.time()),
            }
        )
        outage = RedisOutage(f"{self.name} heartbeat")
        while not self.stop.is_set():
            try:
                await self.redis.set(keys.service_key(self.name, self.instance), record, ex=keys.SERVICE_TTL_SECONDS)
                for stream in keys.ALL_STREAMS:
                    await trim_acknowledged(self.redis, stream)
                await refresh_stream_gauges(self.redis, keys.ALL_STREAMS)
            except REDIS_DOWN as exc:
                await pause(self.stop, outage.lost(exc))
                continue
            outage.back()
            await pause(self.stop, HEARTBEAT_SECONDS)

    @property
    def pid_path(self) -> Path:
        return self.settings.run_dir / f"{self.name}.pid"

    def _write_pid(self) -> None:
        self.settings.run_dir.mkdir(parents=True, exist_ok=True)
        self.pid_path.write_text(f"{os.getpid()}\n")

    def _remove_pid(self) -> None:
        try:
            if self.pid_path.read_text().strip() == str(os.getpid()):
                self.pid_path.unlink()
        except FileNotFoundError:
            pass
