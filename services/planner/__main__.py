"""Start the planner: `python -m services.planner`."""

from __future__ import annotations

import asyncio

from services.planner import core
from services.planner.server import PlannerServicer
from services.planner.settings import PlannerSettings
from services.planner.worker import Catalogue, PlannerWorker, Planning, warm_up_reading
from switchboard import service
from switchboard.llm import LocalModel
from switchboard.rpc import StepRouting, ToolHostClient
from switchboard.secrets import read_or_create_secret
from switchboard.service import ServiceRuntime
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


async def main(settings: PlannerSettings) -> None:
    runtime = ServiceRuntime("planner", settings)
    catalogue = Catalogue()
    model_plan = None
    if settings.planner_model_plan:
        model = LocalModel(settings.planner_model, n_threads=settings.planner_threads or None, stage="planner")

        def model_plan(text: str, servers: list[str]) -> list[tuple[str, str]]:
            grammar = core.plan_grammar(text, servers, settings.planner_max_steps)
            raw = model.complete(core.plan_prompt(text, servers), grammar, max_tokens=24 * settings.planner_max_steps)
            return core.parse_model_plan(raw, servers)

    planning = Planning(
        catalogue, settings.path_policy(), model_plan, settings.planner_max_steps, settings.planner_splitter
    )

    toolhost = ToolHostClient(settings.toolhost_addr, runtime.internal_key)

    async def load_catalogue() -> None:
        # The parser and the date reader load their data on first use (a few seconds); do it before
        # the first request, off the event loop.
        await asyncio.to_thread(warm_up_reading)
        catalogue.load(await toolhost.wait_for_tools())

    routing = StepRouting(settings.filter_addr, settings.router_addr, runtime.internal_key)
    worker = PlannerWorker(
        runtime.redis,
        planning,
        settings.planner_session_tokens,
        routing,
        read_or_create_secret(settings.policy_key_path),
        toolhost.list_tools,
        settings.planner_session_memory,
        settings.approval_ttl_seconds,
        preview=toolhost.preview,
        policy_file=settings.confirmation(),
        deadline_seconds=settings.confirmation_deadline_seconds,
    )
    await runtime.serve(
        lambda server: pb_grpc.add_PlannerServicer_to_server(PlannerServicer(planning), server),
        # No replica takes a message over while a routing call made for it may still be waiting.
        workers=worker.workers(runtime.instance, runtime.redelivery(routing.timeout)),
        ready=load_catalogue,
    )


if __name__ == "__main__":
    service.run(main(PlannerSettings()))
