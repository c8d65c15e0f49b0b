"""Start the planner: `python -m services.planner`."""

from __future__ import annotations

import asyncio
from collections import defaultdict

from services.planner import core
from services.planner.server import PlannerServicer
from services.planner.settings import PlannerSettings
from services.planner.worker import PlannerWorker
from switchboard.llm import LocalModel
from switchboard.rpc import ToolHostClient
from switchboard.service import ServiceRuntime
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


async def main(settings: PlannerSettings) -> None:
    runtime = ServiceRuntime("planner", settings)
    model = LocalModel(settings.planner_model, n_threads=settings.planner_threads or None)
    servers: dict[str, list[str]] = defaultdict(list)

    def guess_server(text: str) -> str:
        if not servers:
            return ""
        return model.choose(core.server_prompt(text, servers), sorted(servers))

    async def load_catalogue() -> None:
        toolhost = ToolHostClient(settings.toolhost_addr)
        for tool in await toolhost.wait_for_tools():
            servers[tool.server].append(tool.name.split(".", 1)[-1])
        await toolhost.close()

    worker = PlannerWorker(runtime.redis, guess_server)
    await runtime.serve(
        lambda server: pb_grpc.add_PlannerServicer_to_server(PlannerServicer(guess_server), server),
        workers=worker.workers(runtime.instance),
        ready=load_catalogue,
    )


if __name__ == "__main__":
    asyncio.run(main(PlannerSettings()))
