"""The gRPC APIs against hostile requests: the gateway's (the person's token) and the tool host's (the
services' key), real servers on ports with the interceptors every service has, real Redis, the real
MCP servers behind the tool host.

Hypothesis fills every field of every method's request (ids of any text, JSON fields that are not JSON,
too deep, too long, too large a number, or carry half a surrogate pair; numbers at their limits),
sends bytes that are no message at all, and presents wrong credentials. Whatever comes, a call ends
with OK or a status that says what was wrong (INVALID_ARGUMENT, NOT_FOUND, UNAUTHENTICATED,
RESOURCE_EXHAUSTED, FAILED_PRECONDITION, PERMISSION_DENIED) with details, never UNKNOWN or INTERNAL;
the tool host runs nothing without an approval; and its servers keep running.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import grpc
import pytest
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import given, settings
from hypothesis import strategies as st

from switchboard.approvals import grant
from switchboard.v1 import switchboard_pb2 as pb
from tests.gateway.test_decisions import waiting
from tests.hostile.harness import APPROVAL_KEY, INTERNAL_KEY, TOKEN, Edge, LoopThread, ToolServers
from tests.hostile.strategies import REPEATABLE, json_objects, nasty_text
from tests.hostile.world import World

EXAMPLES_PER_METHOD = 40
BYTES_PER_METHOD = 20
MEGABYTE = 1024 * 1024

# Statuses that say what was wrong with a request; UNKNOWN and INTERNAL say the server failed.
ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.PERMISSION_DENIED,
}

# JSON fields' worst: not JSON, too deep, too large a number, half a surrogate pair, too big a message.
HOSTILE_JSON = [
    "",
    " ",
    "null",
    "[]",
    '"text"',
    "{",
    '{"a":',
    "[" * 100_000,
    "[" * 100_000 + "]" * 100_000,
    '{"a": ' + "1" * 5000 + "}",
    '{"path": "\\udcff"}',
    '{"\\ud800": 1}',
    '{"a": NaN, "b": -Infinity}',
    '{"path": "/etc/shadow", "content": "owned"}',
    '{"path": "~/.ssh/id_rsa"}',
    json.dumps({"content": "x" * (MEGABYTE // 2)}),
    json.dumps({"content": "x" * (2 * MEGABYTE)}),
    json.dumps({"a": [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}),
]


def field_values(field: FieldDescriptor, depth: int, ids: list[str], tools: list[str]) -> st.SearchStrategy[Any]:
    """Values for one field of a request, hostile where a field takes text."""
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        inner = messages(field.message_type, depth + 1, ids, tools) if depth < 2 else st.just(None)
        return inner.filter(lambda m: m is not None)
    if field.type == FieldDescriptor.TYPE_STRING:
        if field.name.endswith("_json"):
            return st.one_of(st.sampled_from(HOSTILE_JSON), json_objects.map(json.dumps))
        if field.name in ("run_id", "grant_id"):
            return st.one_of(st.sampled_from(ids), nasty_text)
        if field.name == "tool":
            return st.one_of(st.sampled_from(tools), nasty_text)
        return st.one_of(nasty_text, st.just("x" * 100_000))
    if field.type == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if field.type in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_ENUM):
        return st.one_of(st.sampled_from([0, 1, -1, 2**31 - 1, -(2**31)]), st.integers(-(2**31), 2**31 - 1))
    if field.type in (FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT64):
        return st.integers(-(2**63), 2**63 - 1)
    if field.type in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(allow_nan=True, allow_infinity=True, width=32)
    return st.nothing()


def messages(descriptor: Descriptor, depth: int, ids: list[str], tools: list[str]) -> st.SearchStrategy[Message]:
    """Requests of type `descriptor` with any subset of their fields set to hostile values."""
    made = GetMessageClass(descriptor)
    optional = {field.name: field_values(field, depth, ids, tools) for field in descriptor.fields}
    return st.fixed_dictionaries({}, optional=optional).map(lambda fields: made(**fields))


def invoke(
    addr: str, service: str, method: str, body: bytes, credential: str | None
) -> tuple[grpc.StatusCode, str, bytes]:
    """Call `service.method` with `body` as the request's bytes; its status, details and reply's bytes."""
    metadata = [("authorization", f"Bearer {credential}")] if credential is not None else []
    options = [("grpc.max_send_message_length", 8 * MEGABYTE)]
    with grpc.insecure_channel(addr, options=options) as channel:
        path = f"/switchboard.v1.{service}/{method}"
        try:
            if pb.DESCRIPTOR.services_by_name[service].methods_by_name[method].server_streaming:
                replies = list(channel.unary_stream(path)(body, metadata=metadata, timeout=30))
                return grpc.StatusCode.OK, "", b"".join(replies)
            return grpc.StatusCode.OK, "", channel.unary_unary(path)(body, metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            return exc.code(), exc.details() or "", b""  # type: ignore[attr-defined]


def undecodable(descriptor: Descriptor) -> list[bytes]:
    """Bytes no parser of `descriptor`'s message accepts: a tag that never ends, a field longer than
    the message, a number of eleven bytes, and (where the message has one) a text field holding bytes
    that are not UTF-8."""
    broken = [b"\xff\xff\xff", b"\x0a\x05ab", b"\x08" + b"\xff" * 11]
    text = [f.number for f in descriptor.fields if f.type == FieldDescriptor.TYPE_STRING]
    if text:
        broken.append(bytes([text[0] << 3 | 2, 2]) + b"\xff\xfe")
    return broken


def check_status(code: grpc.StatusCode, details: str, what: str) -> None:
    assert code in ANSWERS, f"{what} -> {code.name}: {details[:500]}"
    if code != grpc.StatusCode.OK:
        assert details.strip(), f"{what} -> {code.name} without details"
        assert "Traceback" not in details, details


@pytest.fixture(scope="module")
def run_ids(background_loop: LoopThread, edge: Edge, world: World) -> list[str]:
    """Real runs for the ids to name: one whose step waits for the person."""

    async def make() -> list[str]:
        target = str(world.root / "notes.md")
        host: Any = edge.gateway.toolhost  # the real tool host's client, where the helper takes a stand-in
        run = await waiting(edge.gateway, host, "filesystem.delete_file", {"path": target})
        return [run.run_id]

    return background_loop.run(make())


@pytest.fixture(scope="module")
def tool_names(servers: ToolServers) -> list[str]:
    return sorted(servers.tools())


def methods(service: str) -> list[str]:
    return [method.name for method in pb.DESCRIPTOR.services_by_name[service].methods]


def addr_and_key(edge: Edge, service: str) -> tuple[str, str]:
    return (edge.gateway_addr, TOKEN) if service == "Gateway" else (edge.toolhost_addr, INTERNAL_KEY)


SERVICE_METHODS = [("Gateway", m) for m in methods("Gateway")] + [("ToolHost", m) for m in methods("ToolHost")]


@pytest.mark.parametrize(("service", "method"), SERVICE_METHODS)
def test_hostile_fields_get_a_status_that_says_what_was_wrong(
    edge: Edge, servers: ToolServers, run_ids: list[str], tool_names: list[str], service: str, method: str
) -> None:
    addr, key = addr_and_key(edge, service)
    described = pb.DESCRIPTOR.services_by_name[service].methods_by_name[method]
    reply_type = GetMessageClass(described.output_type)
    # A watched run streams until it finishes: only ids of no run are watched here.
    ids = [] if method == "WatchRun" else run_ids
    restarts = servers.restarts()

    @settings(REPEATABLE, max_examples=EXAMPLES_PER_METHOD)
    @given(request=messages(described.input_type, 0, ids or ["no-such-run"], tool_names))
    def answers(request: Message) -> None:
        code, details, reply = invoke(addr, service, method, request.SerializeToString(), key)
        check_status(code, details, f"{service}.{method}({request})"[:300])
        if (service, method) == ("ToolHost", "CallTool") and code == grpc.StatusCode.OK:
            result = reply_type.FromString(reply)
            # No approval a fuzzer can make is genuine: nothing runs, and the result says why.
            assert result.status != pb.STEP_STATUS_SUCCEEDED and result.error, result

    answers()
    assert servers.restarts() == restarts, "a hostile request brought an MCP server down"


@pytest.mark.parametrize(("service", "method"), SERVICE_METHODS)
def test_bytes_that_are_no_message_are_invalid_argument_and_need_the_credential_first(
    edge: Edge, service: str, method: str
) -> None:
    addr, key = addr_and_key(edge, service)
    for body in undecodable(pb.DESCRIPTOR.services_by_name[service].methods_by_name[method].input_type):
        code, details, _ = invoke(addr, service, method, body, key)
        assert code == grpc.StatusCode.INVALID_ARGUMENT, (body, code, details)
        assert "not a valid message" in details
        code, details, _ = invoke(addr, service, method, body, None)
        assert code == grpc.StatusCode.UNAUTHENTICATED, (body, code, details)

    @settings(REPEATABLE, max_examples=BYTES_PER_METHOD)
    @given(body=st.binary(max_size=96))
    def answers(body: bytes) -> None:
        code, details, _ = invoke(addr, service, method, body, key)
        check_status(code, details, f"{service}.{method}({body!r})")

    answers()


@pytest.mark.parametrize("service", ["Gateway", "ToolHost"])
def test_no_call_is_let_through_with_a_wrong_credential(edge: Edge, service: str) -> None:
    addr, key = addr_and_key(edge, service)
    other = INTERNAL_KEY if service == "Gateway" else TOKEN

    @settings(REPEATABLE, max_examples=30)
    @given(
        method=st.sampled_from(methods(service)),
        # Only what a header can carry: the client refuses to send anything else.
        credential=st.one_of(
            st.none(),
            st.sampled_from(["", " ", key + "x", key[:-1], key.upper(), f" {key}", other]),
            st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=40),
        ),
    )
    def refused(method: str, credential: str | None) -> None:
        if credential is not None and credential.strip() == key:
            return  # that is the credential, with the spaces a header may carry
        try:
            metadata = [("authorization", f"Bearer {credential}")] if credential is not None else []
            with grpc.insecure_channel(addr) as channel:
                channel.unary_unary(f"/switchboard.v1.{service}/{method}")(b"", metadata=metadata, timeout=30)
        except grpc.RpcError as exc:
            assert exc.code() == grpc.StatusCode.UNAUTHENTICATED, (method, credential, exc)  # type: ignore[attr-defined]
        else:
            raise AssertionError(f"{service}.{method} answered a caller presenting {credential!r}")

    refused()


@pytest.fixture
def call_tool(edge: Edge) -> Iterator[Callable[[str, str], pb.StepResult]]:
    """CallTool over gRPC with a person's genuine approval of exactly these arguments."""
    counter = iter(range(1, 10_000))

    def call(tool: str, arguments_json: str) -> pb.StepResult:
        step = next(counter)
        approval = grant(
            APPROVAL_KEY,
            run_id="hostile-run",
            step=step,
            tool=tool,
            arguments_json=arguments_json,
            idempotency_key=f"hostile-run:{step}:gateway",
            kind=pb.GRANT_KIND_PERSON,
            ttl_seconds=60,
        )
        request = pb.CallToolRequest(
            tool=tool, arguments_json=arguments_json, run_id="hostile-run", step=step, approval=approval
        )
        code, details, reply = invoke(
            edge.toolhost_addr, "ToolHost", "CallTool", request.SerializeToString(), INTERNAL_KEY
        )
        assert code == grpc.StatusCode.OK, (code, details)
        return pb.StepResult.FromString(reply)

    yield call


@pytest.mark.parametrize("arguments_json", [j for j in HOSTILE_JSON if len(j) < MEGABYTE])
def test_an_approved_call_with_hostile_arguments_fails_with_a_reason_and_its_server_stays_up(
    call_tool: Callable[[str, str], pb.StepResult], servers: ToolServers, world: World, arguments_json: str
) -> None:
    """Approved, so only the arguments can stop it: half a surrogate pair once ended the tool host's
    session with the server (and every call in flight), a deep or long-numbered text failed the call
    with UNKNOWN."""
    restarts = servers.restarts()
    result = call_tool("filesystem.read_file", arguments_json)
    assert result.status == pb.STEP_STATUS_FAILED and result.error, result
    servers.ping("filesystem")
    assert servers.restarts() == restarts
    assert (world.outside / "secret.txt").read_text().startswith("SENTINEL")
