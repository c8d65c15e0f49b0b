"""Standing grants: made and signed by the gateway, covering one tool for a session or always."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from switchboard import grants, keys
from switchboard.errors import InvalidRequest
from switchboard.v1 import switchboard_pb2 as pb

KEY = "person-key"


def made(scope: str, session_id: str = "s1", tool: str = "filesystem.write_file", at: int = 1) -> pb.Grant:
    return grants.make(KEY, tool=tool, scope=scope, session_id=session_id, run_id="r", step=1, created_unix_ms=at)


def test_a_session_grant_covers_its_tool_in_its_session_only() -> None:
    grant = made(grants.SESSION)
    assert grants.covers(grant, "filesystem.write_file", "s1")
    assert not grants.covers(grant, "filesystem.write_file", "s2")
    assert not grants.covers(grant, "filesystem.write_file", "")
    assert not grants.covers(grant, "filesystem.move_file", "s1")


def test_a_lasting_grant_covers_every_session_and_a_sessions_own_comes_first() -> None:
    always = made(grants.ALWAYS, at=1)
    assert always.session_id == ""
    assert grants.covers(always, "filesystem.write_file", "any")
    session = made(grants.SESSION, at=2)
    assert grants.covering([always, session], "filesystem.write_file", "s1") == session
    assert grants.covering([always, session], "filesystem.write_file", "s9") == always
    assert grants.covering([always, session], "email.send_draft", "s1") is None


def test_a_grant_is_genuine_only_as_signed() -> None:
    grant = made(grants.ALWAYS)
    assert grants.genuine(KEY, grant)
    assert not grants.genuine("another key", grant)
    for field, value in (("tool", "email.send_draft"), ("scope", grants.SESSION), ("session_id", "s2")):
        forged = pb.Grant()
        forged.CopyFrom(grant)
        setattr(forged, field, value)
        assert not grants.genuine(KEY, forged)
    assert not grants.genuine(KEY, pb.Grant(tool="filesystem.write_file", scope=grants.ALWAYS))


def test_scopes_are_checked() -> None:
    assert grants.check_scope("") == grants.ONCE
    assert grants.check_scope(" Session ") == grants.SESSION
    with pytest.raises(InvalidRequest, match="once, session, always"):
        grants.check_scope("forever")
    with pytest.raises(InvalidRequest):
        made(grants.ONCE)


async def test_grants_are_kept_listed_and_revoked_in_redis(redis: aioredis.Redis) -> None:
    first, second = made(grants.SESSION, at=5), made(grants.ALWAYS, at=3)
    for grant in (first, second):
        await redis.hset(keys.GRANTS, grant.grant_id, grant.SerializeToString())
    assert [g.grant_id for g in await grants.load(redis)] == [second.grant_id, first.grant_id]
    assert await grants.find(redis, first.grant_id) == first
    assert await grants.revoke(redis, first.grant_id)
    assert not await grants.revoke(redis, first.grant_id)
    assert await grants.find(redis, first.grant_id) is None
    assert [g.grant_id for g in await grants.load(redis)] == [second.grant_id]
