"""Start the router: `python -m services.router`."""

from __future__ import annotations

from services.router.app import ToolRouter
from services.router.server import RouterServicer
from services.router.settings import RouterSettings
from switchboard import service
from switchboard.llm import LocalModel
from switchboard.service import ServiceRuntime
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


async def main(settings: RouterSettings) -> None:
    runtime = ServiceRuntime("router", settings)
    model = (
        LocalModel(settings.router_model, n_threads=settings.router_threads or None, stage="router")
        if settings.router_use_model
        else None
    )
    router = ToolRouter(model, settings.router_fusion, settings.router_model_choice, settings.router_span_copy)
    await runtime.serve(
        lambda server: pb_grpc.add_RouterServicer_to_server(RouterServicer(router), server),
    )


if __name__ == "__main__":
    service.run(main(RouterSettings()))
