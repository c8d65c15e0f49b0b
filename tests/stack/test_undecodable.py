"""Bytes that are no request, sent to every running service's gRPC port: each answers INVALID_ARGUMENT
to a caller with its credential and UNAUTHENTICATED to one without, never UNKNOWN (the services are
built by `ServiceRuntime.serve`, which puts `RefuseUndecodable` after the credential check)."""

from __future__ import annotations

import grpc
import pytest

from switchboard.settings import SERVICE_NAMES
from tests.stack.harness import Stack

pytestmark = pytest.mark.stack

# One method of each service, and bytes no parser of any message accepts (a tag that never ends).
METHODS = {
    "gateway": "/switchboard.v1.Gateway/GetRun",
    "planner": "/switchboard.v1.Planner/Plan",
    "filter": "/switchboard.v1.Filter/Rank",
    "router": "/switchboard.v1.Router/Route",
    "toolhost": "/switchboard.v1.ToolHost/PreviewCall",
}
GARBAGE = b"\xff\xff\xff"


def status(addr: str, method: str, credential: str | None) -> tuple[grpc.StatusCode, str]:
    metadata = [("authorization", f"Bearer {credential}")] if credential else []
    with grpc.insecure_channel(addr) as channel:
        try:
            channel.unary_unary(method)(GARBAGE, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    return grpc.StatusCode.OK, ""


def test_every_service_refuses_bytes_that_are_no_request(stack: Stack) -> None:
    internal = (stack.state_dir / "internal.key").read_text().strip()
    assert set(METHODS) == set(SERVICE_NAMES)
    for service, method in METHODS.items():
        addr = stack.env[f"SWITCHBOARD_{service.upper()}_ADDR"]
        credential = stack.token if service == "gateway" else internal
        code, details = status(addr, method, credential)
        assert code == grpc.StatusCode.INVALID_ARGUMENT and "not a valid message" in details, (service, code, details)
        assert status(addr, method, None)[0] == grpc.StatusCode.UNAUTHENTICATED, service
