"""The guards the hostile-input tests made necessary, one by one and in microseconds: JSON from outside
(depth, long numbers, half a surrogate pair), names on disk no answer can carry, special files and
files with other names in the sandbox, audit replies that fit a gRPC message, and requests that do not
decode (an in-process gRPC server)."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings

from services.toolhost.core import AUDIT_REPLY_BYTES, AUDIT_TEXT_CHARS, fitted_audit, parse_arguments
from services.toolhost.sandbox import Sandbox, SharedFile, SpecialFile
from switchboard.auth import BearerAuth
from switchboard.decoding import RefuseUndecodable
from switchboard.errors import InvalidRequest
from switchboard.jsontext import InvalidJson, JsonTooDeep, parse_limited_json
from switchboard.paths import printable
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc
from tests.hostile.strategies import REPEATABLE, json_values

# --- JSON from outside ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "refused"),
    [
        ('{"path": "\\udcff"}', InvalidJson),
        ('{"\\ud800": 1}', InvalidJson),
        ('["a", ["\\udfff"]]', InvalidJson),
        ("1" * 5000, InvalidJson),
        ("[" * 100_000, JsonTooDeep),
        ("[" * 33 + "]" * 33, JsonTooDeep),
    ],
)
def test_json_no_later_stage_can_carry_is_refused(text: str, refused: type[Exception]) -> None:
    with pytest.raises(refused):
        parse_limited_json(text, 32)
    with pytest.raises(refused):
        parse_limited_json(text.encode(), 32)


def test_a_surrogate_pair_is_one_character_and_passes() -> None:
    assert parse_limited_json('{"face": "\\ud83d\\ude00"}', 32) == {"face": "\U0001f600"}


@settings(REPEATABLE, max_examples=200)
@given(value=json_values)
def test_json_of_any_shape_within_the_limits_parses_as_the_standard_parser_reads_it(value: object) -> None:
    text = json.dumps(value)
    assert parse_limited_json(text, 32) == json.loads(text)


@pytest.mark.parametrize("arguments_json", ['{"path": "\\udcff"}', "[" * 100_000, '{"n": ' + "9" * 5000 + "}"])
def test_the_tool_host_refuses_call_arguments_an_mcp_server_cannot_be_sent(arguments_json: str) -> None:
    with pytest.raises(InvalidRequest, match="not valid JSON"):
        parse_arguments(arguments_json)


# --- names on disk ---------------------------------------------------------------------------------------


def test_a_name_that_is_not_utf8_is_shown_with_a_replacement_character() -> None:
    assert printable(os.fsdecode(b"bad-\xff-name.txt")) == "bad-\ufffd-name.txt"
    assert printable("half \ud800 a pair") == "half ? a pair"
    assert printable("ordinary é \U0001f600 new\nline") == "ordinary é \U0001f600 new\nline"


# --- the sandbox ----------------------------------------------------------------------------------------


def test_a_fifo_or_a_socket_in_the_root_is_refused_before_any_tool_opens_it(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "pipe")
    with socket.socket(socket.AF_UNIX) as listening:
        listening.bind(str(root / "sock"))
        sandbox = Sandbox([root])
        with pytest.raises(SpecialFile, match="named pipe"):
            sandbox.resolve(str(root / "pipe"))
        with pytest.raises(SpecialFile, match="socket"):
            sandbox.resolve(str(root / "sock"), follow_last=False)
    (root / "to-pipe").symlink_to(root / "pipe")
    with pytest.raises(SpecialFile):
        sandbox.resolve(str(root / "to-pipe"))
    # The link itself (to move or delete it) is no special file.
    assert sandbox.resolve(str(root / "to-pipe"), follow_last=False) == root / "to-pipe"
    assert sandbox.resolve(str(root / "new-file.txt")) == root / "new-file.txt"


def test_a_file_with_another_name_is_not_changed_in_place(tmp_path: Path) -> None:
    root, elsewhere = tmp_path / "root", tmp_path / "elsewhere"
    root.mkdir()
    elsewhere.mkdir()
    (elsewhere / "ledger.sqlite").write_bytes(b"x")
    os.link(elsewhere / "ledger.sqlite", root / "ledger.sqlite")
    (root / "own.sqlite").write_bytes(b"y")
    sandbox = Sandbox([root])
    with pytest.raises(SharedFile, match="2 names"):
        sandbox.in_place(sandbox.resolve(str(root / "ledger.sqlite")))
    assert sandbox.in_place(root / "own.sqlite") == root / "own.sqlite"
    assert sandbox.in_place(root / "not-yet.sqlite") == root / "not-yet.sqlite"


# --- audit replies ----------------------------------------------------------------------------------------


def test_an_audit_reply_fits_a_grpc_message_however_large_the_logged_arguments() -> None:
    entries = [pb.AuditEntry(id=i, tool="filesystem.write_file", arguments_json="x" * 1_000_000) for i in range(50)]
    fitted = fitted_audit(entries)
    assert fitted and pb.AuditResponse(entries=fitted).ByteSize() <= AUDIT_REPLY_BYTES
    assert [e.id for e in fitted] == list(range(len(fitted)))  # the newest first, none skipped
    assert fitted[0].arguments_json.startswith("x" * AUDIT_TEXT_CHARS)
    assert fitted[0].arguments_json.endswith("more characters in the audit log)")
    many = [pb.AuditEntry(id=i, arguments_json="\U0001f600" * AUDIT_TEXT_CHARS) for i in range(2000)]
    assert pb.AuditResponse(entries=fitted_audit(many)).ByteSize() <= AUDIT_REPLY_BYTES
    small = [pb.AuditEntry(id=1, arguments_json='{"path": "/a"}', error="")]
    assert fitted_audit(small) == small


# --- requests that do not decode -----------------------------------------------------------------------


class Runs(pb_grpc.GatewayServicer):
    async def GetRun(self, request: pb.GetRunRequest, context: grpc.aio.ServicerContext) -> pb.Run:
        return pb.Run(run_id=request.run_id)

    async def WatchRun(
        self, request: pb.WatchRunRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.RunEvent]:
        yield pb.RunEvent(run_id=request.run_id)


async def test_bytes_that_are_no_request_are_invalid_argument_after_the_credential_check() -> None:
    server = grpc.aio.server(interceptors=[BearerAuth(["key"], "the key"), RefuseUndecodable()])
    pb_grpc.add_GatewayServicer_to_server(Runs(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            for method, call in (
                ("GetRun", channel.unary_unary("/switchboard.v1.Gateway/GetRun")),
                ("WatchRun", channel.unary_stream("/switchboard.v1.Gateway/WatchRun")),
            ):
                for credential, expected in (
                    ("key", grpc.StatusCode.INVALID_ARGUMENT),
                    ("", grpc.StatusCode.UNAUTHENTICATED),
                ):
                    with pytest.raises(grpc.aio.AioRpcError) as refused:
                        reply = call(
                            b"\x0a\x02\xff\xfe", metadata=[("authorization", f"Bearer {credential}")], timeout=10
                        )
                        if method == "WatchRun":
                            [_ async for _ in reply]  # type: ignore[union-attr]
                        else:
                            await reply
                    assert refused.value.code() == expected, (method, credential, refused.value.details())
                good = pb.GetRunRequest(run_id="r1").SerializeToString()
                reply = call(good, metadata=[("authorization", "Bearer key")], timeout=10)
                if method == "WatchRun":
                    assert [pb.RunEvent.FromString(r).run_id async for r in reply] == ["r1"]  # type: ignore[union-attr]
                else:
                    assert pb.Run.FromString(await reply).run_id == "r1"
    finally:
        await server.stop(None)
