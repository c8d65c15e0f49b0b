import stat
from pathlib import Path

import redis.asyncio as aioredis

from switchboard.approvals import Refusal, consume, grant, refusal
from switchboard.secrets import read_or_create_secret
from switchboard.v1 import switchboard_pb2 as pb


def test_secret_is_created_once_private_and_kept(tmp_path: Path) -> None:
    path = tmp_path / "state" / "token"
    first = read_or_create_secret(path)
    assert len(first) >= 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_secret(path) == first
    assert [p.name for p in path.parent.iterdir()] == ["token"]


CALL = {"run_id": "run", "step": 1, "tool": "filesystem.delete_file", "arguments_json": '{"path": "/a"}'}


# The person's key (the gateway's) and the policy's (the planner's).
KEYS = {pb.GRANT_KIND_PERSON: "k", pb.GRANT_KIND_POLICY: "p"}


def given(kind: pb.GrantKind = pb.GRANT_KIND_PERSON, ttl: float = 60, key: str = "") -> pb.Approval:
    return grant(key or KEYS[kind], **CALL, idempotency_key="run:1:gateway", kind=kind, ttl_seconds=ttl)


def test_an_approval_is_refused_for_any_other_call_key_time_or_granter() -> None:
    approval = given()
    assert refusal(KEYS, approval, **CALL, tier=pb.CONFIRM_TIER_CONFIRM) is None
    assert (
        refusal(KEYS, approval, **{**CALL, "arguments_json": '{"path": "/b"}'}, tier=pb.CONFIRM_TIER_CONFIRM)
        is Refusal.MISMATCHED
    )
    assert refusal(KEYS, approval, **{**CALL, "step": 2}, tier=pb.CONFIRM_TIER_CONFIRM) is Refusal.MISMATCHED
    assert (
        refusal({**KEYS, pb.GRANT_KIND_PERSON: "other"}, approval, **CALL, tier=pb.CONFIRM_TIER_CONFIRM)
        is Refusal.FORGED
    )
    assert refusal(KEYS, pb.Approval(), **CALL, tier=pb.CONFIRM_TIER_CONFIRM) is Refusal.MISSING
    assert (
        refusal(KEYS, approval, **CALL, tier=pb.CONFIRM_TIER_CONFIRM, at_ms=approval.expires_unix_ms) is Refusal.EXPIRED
    )
    # The policy's approval (the planner's key) is good for a read, never for a change.
    assert refusal(KEYS, given(pb.GRANT_KIND_POLICY), **CALL, tier=pb.CONFIRM_TIER_CONFIRM) is Refusal.INSUFFICIENT
    assert refusal(KEYS, given(pb.GRANT_KIND_POLICY), **CALL, tier=pb.CONFIRM_TIER_RUN) is None
    # Whoever holds only the policy's key cannot pass off an approval as a person's.
    assert refusal(KEYS, given(pb.GRANT_KIND_PERSON, key="p"), **CALL, tier=pb.CONFIRM_TIER_CONFIRM) is Refusal.FORGED
    for field, value in (("expires_unix_ms", approval.expires_unix_ms + 10**9), ("kind", pb.GRANT_KIND_POLICY)):
        tampered = pb.Approval()
        tampered.CopyFrom(approval)
        setattr(tampered, field, value)
        assert refusal(KEYS, tampered, **CALL, tier=pb.CONFIRM_TIER_RUN) is Refusal.FORGED
    assert given().nonce != approval.nonce


async def test_an_approval_is_used_once(redis: aioredis.Redis) -> None:
    approval = given()
    assert await consume(redis, approval, "another:1:gateway") is Refusal.MISMATCHED  # and it stays unused
    assert await consume(redis, approval, "run:1:gateway") is None
    assert await consume(redis, approval) is Refusal.REPLAYED
    assert await consume(redis, approval, "run:1:gateway") is Refusal.REPLAYED


def test_the_tier_decides_which_kinds_of_approval_are_good() -> None:
    keys = {**KEYS, pb.GRANT_KIND_STANDING: "p"}
    standing = grant("p", **CALL, idempotency_key="run:1:planner", kind=pb.GRANT_KIND_STANDING, ttl_seconds=60)
    named = grant(
        "p", **CALL, idempotency_key="run:1:planner", kind=pb.GRANT_KIND_STANDING, ttl_seconds=60, grant_id="g1"
    )
    # A standing grant lets through a call that asks for a click, never one that asks for a typed name.
    assert refusal(keys, named, **CALL, tier=pb.CONFIRM_TIER_CONFIRM) is None
    assert refusal(keys, named, **CALL, tier=pb.CONFIRM_TIER_TYPED) is Refusal.INSUFFICIENT
    assert refusal(keys, standing, **CALL, tier=pb.CONFIRM_TIER_CONFIRM) is Refusal.UNGRANTED
    # Only a person's approval is good for a typed confirmation; the policy's only for what runs at once.
    assert refusal(keys, given(), **CALL, tier=pb.CONFIRM_TIER_TYPED) is None
    assert refusal(keys, given(pb.GRANT_KIND_POLICY), **CALL, tier=pb.CONFIRM_TIER_TYPED) is Refusal.INSUFFICIENT
    # The grant an approval names is signed with it: naming another grant breaks the signature.
    swapped = pb.Approval()
    swapped.CopyFrom(named)
    swapped.grant_id = "g2"
    assert refusal(keys, swapped, **CALL, tier=pb.CONFIRM_TIER_CONFIRM) is Refusal.FORGED
