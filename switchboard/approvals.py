"""Approvals: the permission for one execution of one exact call, and its single use.

Two parties grant them, each with a key of its own:

- the planner, when the confirmation policy lets a call through at once (`GRANT_KIND_POLICY`), with
  the policy key; the tool host honours such an approval only for a tool that changes nothing;
- the gateway, when a person confirms a call (`GRANT_KIND_PERSON`), with the approval key, which only
  the gateway and the tool host hold;
- the planner again, when a person's standing grant covers the call (`GRANT_KIND_STANDING`): the
  approval names the grant, which the gateway signed with the approval key when the person gave it, and
  the tool host checks that the grant is still there and covers the call (`switchboard.grants`).

Which kinds the tool host accepts for a call follows from the call's confirmation tier, which the tool
host works out itself (`switchboard.confirmation`): any kind for a call the policy runs at once, a
person's or a standing grant for one that asks for a click, only a person's for a typed confirmation.
So the stage that reads requests and tool results can at most run what the policy lets through; a
change runs only with the person's word, given now or standing.

An approval names the run, step, tool, the SHA-256 of the exact arguments, the message's idempotency
key, a random nonce, an expiry, its kind and any grant it relies on, and is signed over all of them. The
tool host runs a call only after `refusal` finds nothing wrong with it and `consume` has recorded its
nonce as used, in one atomic Redis command; a second use of the same approval, on the stream or over
gRPC, is refused as a replay.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping
from enum import StrEnum

import redis.asyncio as aioredis

from switchboard import keys
from switchboard.v1 import switchboard_pb2 as pb

# The tool name an undo of a step is approved for.
UNDO = "undo"


class Refusal(StrEnum):
    """Why the tool host would not honour an approval (also its audit and metric label)."""

    MISSING = "missing"
    FORGED = "forged"
    MISMATCHED = "mismatched"
    EXPIRED = "expired"
    REPLAYED = "replayed"
    INSUFFICIENT = "insufficient"
    UNGRANTED = "ungranted"


EXPLANATIONS = {
    Refusal.MISSING: "the call carries no approval from the gateway",
    Refusal.FORGED: "the approval's signature is not the gateway's",
    Refusal.MISMATCHED: "the approval was given for a different call",
    Refusal.EXPIRED: "the approval has expired; confirm the step again",
    Refusal.REPLAYED: "the approval was already used once; an approval runs a call only once",
    Refusal.INSUFFICIENT: "this call needs a person's confirmation, not the policy's or a standing grant",
    Refusal.UNGRANTED: "the standing grant it names is revoked, or does not cover this call",
}

# The kinds of approval the tool host accepts for a call, by the call's confirmation tier.
ACCEPTED_KINDS: dict[int, frozenset[int]] = {
    pb.CONFIRM_TIER_RUN: frozenset({pb.GRANT_KIND_POLICY, pb.GRANT_KIND_STANDING, pb.GRANT_KIND_PERSON}),
    pb.CONFIRM_TIER_CONFIRM: frozenset({pb.GRANT_KIND_STANDING, pb.GRANT_KIND_PERSON}),
    pb.CONFIRM_TIER_TYPED: frozenset({pb.GRANT_KIND_PERSON}),
}


class ApprovalRefused(Exception):
    """A call's approval was not honoured; `reason` says which check failed."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(EXPLANATIONS[reason])
        self.reason = reason


def now_ms() -> int:
    return int(time.time() * 1000)


def arguments_digest(arguments_json: str) -> str:
    return hashlib.sha256(arguments_json.encode()).hexdigest()


def _signed_part(approval: pb.Approval) -> bytes:
    fields = (
        approval.run_id,
        str(approval.step),
        approval.tool,
        approval.arguments_sha256,
        approval.idempotency_key,
        approval.nonce,
        str(approval.expires_unix_ms),
        str(int(approval.kind)),
        approval.grant_id,
    )
    return "\x1f".join(fields).encode()


def _signature(key: str, approval: pb.Approval) -> str:
    return hmac.new(key.encode(), _signed_part(approval), hashlib.sha256).hexdigest()


def grant(
    key: str,
    *,
    run_id: str,
    step: int,
    tool: str,
    arguments_json: str,
    idempotency_key: str,
    kind: pb.GrantKind,
    ttl_seconds: float,
    grant_id: str = "",
) -> pb.Approval:
    """A signed approval of exactly this call, usable once within `ttl_seconds`."""
    approval = pb.Approval(
        grant_id=grant_id,
        run_id=run_id,
        step=step,
        tool=tool,
        arguments_sha256=arguments_digest(arguments_json),
        idempotency_key=idempotency_key,
        nonce=secrets.token_hex(16),
        expires_unix_ms=now_ms() + int(ttl_seconds * 1000),
        kind=kind,
    )
    approval.signature = _signature(key, approval)
    return approval


def approved_call(
    key: str,
    kind: pb.GrantKind,
    ttl_seconds: float,
    *,
    run_id: str,
    step: int,
    tool: str,
    arguments_json: str,
    idempotency_key: str,
    session_id: str,
    hops: list[str],
    grant_id: str = "",
) -> pb.ToolCall:
    """The call for the tool host (`sb:approved`), with an approval of this one execution."""
    return pb.ToolCall(
        run_id=run_id,
        step=step,
        tool=tool,
        arguments_json=arguments_json,
        outcome=pb.ROUTE_OUTCOME_ROUTED,
        approval=grant(
            key,
            run_id=run_id,
            step=step,
            tool=tool,
            arguments_json=arguments_json,
            idempotency_key=idempotency_key,
            kind=kind,
            ttl_seconds=ttl_seconds,
            grant_id=grant_id,
        ),
        hops=hops,
        session_id=session_id,
    )


def refusal(
    keys_by_kind: Mapping[int, str],
    approval: pb.Approval,
    *,
    run_id: str,
    step: int,
    tool: str,
    arguments_json: str,
    tier: pb.ConfirmTier,
    at_ms: int | None = None,
) -> Refusal | None:
    """What is wrong with `approval` for this call (None: nothing). Checks everything but single use,
    which `consume` settles, and a standing grant's existence, which the tool host looks up. The
    signature is checked with the key of the approval's kind; the call's confirmation `tier` says which
    kinds may approve it (`ACCEPTED_KINDS`)."""
    if not approval.signature:
        return Refusal.MISSING
    key = keys_by_kind.get(approval.kind, "")
    # As bytes: compare_digest refuses str with anything but ASCII, and a signature may hold anything.
    if not key or not hmac.compare_digest(approval.signature.encode(), _signature(key, approval).encode()):
        return Refusal.FORGED
    named = (approval.run_id, approval.step, approval.tool, approval.arguments_sha256)
    if named != (run_id, step, tool, arguments_digest(arguments_json)):
        return Refusal.MISMATCHED
    if (at_ms if at_ms is not None else now_ms()) >= approval.expires_unix_ms:
        return Refusal.EXPIRED
    if approval.kind not in ACCEPTED_KINDS.get(tier, ACCEPTED_KINDS[pb.CONFIRM_TIER_TYPED]):
        return Refusal.INSUFFICIENT
    if approval.kind == pb.GRANT_KIND_STANDING and not approval.grant_id:
        return Refusal.UNGRANTED
    return None


async def consume(
    redis: aioredis.Redis, approval: pb.Approval, message_key: str | None = None, *, resume: bool = False
) -> Refusal | None:
    """Use the approval up, or say why it cannot be: it was used before (REPLAYED), or it arrived in a
    stream message other than the one it was given for (MISMATCHED, and it stays unused). The use is
    one `SET NX`, so of two uses racing on any path exactly one wins. The record outlives the expiry,
    after which the approval is refused anyway.

    With `resume` (the tool host taking up the same stream message after an attempt that stopped
    midway), that attempt's own use of the approval, recorded under this message's key, is no replay."""
    used = keys.approval_used_key(approval.nonce)
    if message_key is not None and approval.idempotency_key != message_key:
        return Refusal.REPLAYED if await redis.exists(used) else Refusal.MISMATCHED
    remaining_ms = max(1, approval.expires_unix_ms - now_ms())
    if await redis.set(used, approval.idempotency_key, nx=True, px=remaining_ms + 60_000):
        return None
    if resume and message_key is not None and await redis.get(used) == message_key.encode():
        return None
    return Refusal.REPLAYED
