"""Start the gateway: `python -m services.gateway`."""

from __future__ import annotations

import contextlib

import uvicorn

from services.gateway.app import Gateway
from services.gateway.http import build_app
from services.gateway.server import GatewayServicer
from services.gateway.settings import GatewaySettings
from switchboard import service
from switchboard.rpc import ToolHostClient
from switchboard.secrets import read_or_create_secret
from switchboard.service import ServiceRuntime
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


class EmbeddedServer(uvicorn.Server):
    """uvicorn inside a service whose runtime owns the signal handlers."""

    def capture_signals(self) -> contextlib.AbstractContextManager[None]:  # type: ignore[override]
        return contextlib.nullcontext()


async def main(settings: GatewaySettings) -> None:
    runtime = ServiceRuntime("gateway", settings)
    token = read_or_create_secret(settings.token_path)
    gateway = Gateway(
        runtime.redis,
        ToolHostClient(settings.toolhost_addr, runtime.internal_key),
        read_or_create_secret(settings.secret_path),
        settings.approval_ttl_seconds,
        settings.runs_kept,
    )
    http = EmbeddedServer(
        uvicorn.Config(
            build_app(gateway, token),
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

    await runtime.serve(
        lambda server: pb_grpc.add_GatewayServicer_to_server(GatewayServicer(gateway), server),
        background=[serve_http, stop_http_on_exit],
        public_token=token,
    )


if __name__ == "__main__":
    service.run(main(GatewaySettings()))
