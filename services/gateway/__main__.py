"""Start the gateway: `python -m services.gateway`."""

from __future__ import annotations

import contextlib
import logging

import uvicorn
from redis.exceptions import RedisError

from services.gateway.app import Gateway
from services.gateway.http import build_app
from services.gateway.limits import DEFAULT_MAX_BUCKETS, GrpcLimits, TokenBuckets
from services.gateway.openai_compat import GrpcToolRanking, build_openai_router
from services.gateway.server import GatewayServicer
from services.gateway.settings import GatewaySettings
from switchboard import service
from switchboard.errors import UpstreamUnavailable
from switchboard.rpc import ToolHostClient
from switchboard.secrets import read_or_create_secret
from switchboard.service import ServiceRuntime
from switchboard.streams import REDIS_DOWN, RedisOutage, pause
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

log = logging.getLogger(__name__)

# Redis connections the gateway keeps for requests, beyond one per open event stream.
REQUEST_CONNECTIONS = 128


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a service whose runtime owns the signal handlers."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def main(settings: GatewaySettings) -> None:
    # Each open event stream holds a Redis connection while it waits for events; the rest serve requests.
    runtime = ServiceRuntime("gateway", settings, settings.max_watchers + REQUEST_CONNECTIONS)
    token = read_or_create_secret(settings.token_path)
    gateway = Gateway(
        runtime.redis,
        ToolHostClient(settings.toolhost_addr, runtime.internal_key),
        read_or_create_secret(settings.secret_path),
        settings.approval_ttl_seconds,
        settings.runs_kept,
        settings.confirmation_deadline_seconds,
        max_backlog=settings.max_backlog,
        max_watchers=settings.max_watchers,
    )
    ranking = GrpcToolRanking(settings.filter_addr, settings.router_addr, runtime.internal_key)
    # One rate per token across both doors: HTTP requests and gRPC calls spend from the same buckets.
    buckets = TokenBuckets(settings.rate_per_minute, DEFAULT_MAX_BUCKETS)
    app = build_app(
        gateway,
        token,
        routers=[build_openai_router(gateway, ranking, token)],
        buckets=buckets,
        max_body_bytes=settings.max_body_bytes,
        max_json_depth=settings.max_json_depth,
    )
    http = EmbeddedServer(
        uvicorn.Config(
            app,
            host=settings.bind_host,
            port=settings.http_port,
            log_config=None,
            access_log=False,
            lifespan="off",
        )
    )

    async def serve_http() -> None:
        await http.serve()

    async def stop_http_on_exit() -> None:
        await runtime.stop.wait()
        http.should_exit = True

    async def expire_waiting() -> None:
        # A step nobody answers is rejected at its deadline, checked a few times per deadline.
        every = max(0.2, min(5.0, settings.confirmation_deadline_seconds / 4))
        outage = RedisOutage("gateway expiring confirmations")
        while not runtime.stop.is_set():
            try:
                await gateway.expire_waiting()
                await gateway.count_waiting()
            except REDIS_DOWN as exc:
                await pause(runtime.stop, outage.lost(exc))
                continue
            except (RedisError, UpstreamUnavailable) as exc:
                log.warning("could not check for expired confirmations: %s", exc)
            outage.back()
            await pause(runtime.stop, every)

    await runtime.serve(
        lambda server: pb_grpc.add_GatewayServicer_to_server(GatewayServicer(gateway), server),
        background=[serve_http, stop_http_on_exit, expire_waiting],
        public_token=token,
        interceptors=[GrpcLimits(buckets)],
        max_message_bytes=settings.max_body_bytes,
    )


if __name__ == "__main__":
    service.run(main(GatewaySettings()))
