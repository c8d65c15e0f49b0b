"""The container health check against a real in-process gRPC health server."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from switchboard.healthcheck import EXIT_NOT_SERVING, EXIT_SERVING, main


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def test_serving_and_not_serving(health_server, capsys: pytest.CaptureFixture[str]) -> None:  # noqa: ANN001
    addr, servicer = health_server
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert main([addr]) == EXIT_SERVING
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert main([addr]) == EXIT_NOT_SERVING
    assert capsys.readouterr().out.splitlines() == [f"{addr}: SERVING", capsys_line(addr)]


def capsys_line(addr: str) -> str:
    return f"{addr}: not SERVING (connection refused, no answer within 2s, or the service reports NOT_SERVING)"


def test_usage_errors_exit_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == EXIT_NOT_SERVING
    assert main(["no-port"]) == EXIT_NOT_SERVING
    assert "usage" in capsys.readouterr().err
