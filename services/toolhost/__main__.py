"""Start the tool host and its MCP servers: `python -m services.toolhost`."""

from __future__ import annotations

import os

from services.toolhost.app import ApprovedCallWorker, ToolHost
from services.toolhost.audit import AuditLog
from services.toolhost.core import SERVER_MODULES
from services.toolhost.mcp_pool import McpServer
from services.toolhost.server import ToolHostServicer
from services.toolhost.servers.kit import Trash
from services.toolhost.settings import ToolHostSettings
from switchboard import keys, service
from switchboard.failures import fail_step
from switchboard.secrets import read_or_create_secret
from switchboard.service import ServiceRuntime
from switchboard.streams import StreamWorker
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc


async def main(settings: ToolHostSettings) -> None:
    runtime = ServiceRuntime("toolhost", settings)
    # The servers are handed the resolved roots, so they agree with the tool host on what is allowed.
    server_env = {
        "SWITCHBOARD_ALLOWED_ROOTS": os.pathsep.join(str(root) for root in settings.roots()),
        "SWITCHBOARD_STATE_DIR": str(settings.state_dir),
        "SWITCHBOARD_USER_HOME": str(settings.home()),
    }
    servers = [McpServer(name, module, server_env) for name, module in SERVER_MODULES.items()]
    host = ToolHost(
        runtime.redis,
        servers,
        {
            pb.GRANT_KIND_PERSON: read_or_create_secret(settings.secret_path),
            pb.GRANT_KIND_POLICY: read_or_create_secret(settings.policy_key_path),
            # The planner signs the approvals a standing grant covers; the grant itself is the person's.
            pb.GRANT_KIND_STANDING: read_or_create_secret(settings.policy_key_path),
        },
        settings.call_timeout_seconds,
        AuditLog(settings.audit_path),
        settings.sandbox(),
        Trash(settings.trash_dir),
        settings.confirmation(),
    )
    supervisors = [lambda s=server: s.supervise(runtime.stop) for server in servers]
    worker = ApprovedCallWorker(runtime.redis, host)
    # A call may run for the call timeout; no other replica takes it over sooner.
    redelivery = runtime.redelivery(settings.call_timeout_seconds)
    await runtime.serve(
        lambda server: pb_grpc.add_ToolHostServicer_to_server(ToolHostServicer(host), server),
        workers=[
            StreamWorker(
                runtime.redis,
                stream=keys.APPROVED,
                group=keys.GROUP_TOOLHOST,
                consumer=runtime.instance,
                handler=worker.on_approved,
                on_failure=fail_step("tool host"),
                on_duplicate=worker.on_duplicate,
                redelivery=redelivery,
            ),
            StreamWorker(
                runtime.redis,
                stream=keys.DECISIONS,
                group=keys.GROUP_TOOLHOST,
                consumer=runtime.instance,
                handler=worker.on_decision,
                redelivery=redelivery,
            ),
        ],
        background=supervisors,
        ready=host.wait_ready,
    )


if __name__ == "__main__":
    service.run(main(ToolHostSettings()))
