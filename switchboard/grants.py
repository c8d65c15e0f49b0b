"""Standing grants: a person's "yes" to a tool for the rest of a session, or always.

The gateway makes a grant when a person allows a step with scope `session` or `always`, signed with
the approval key (which the planner does not hold), and keeps every grant in one Redis hash
(`sb:grants`, grant id → the `Grant` message), so making, listing and revoking one are each a single
atomic command. The planner, finding a grant that covers a call asking for a click, lets the call
through with an approval naming the grant (`GRANT_KIND_STANDING`); the tool host looks the grant up
itself and checks its signature, so a grant nobody gave, or one since revoked, lets nothing run.

A grant never covers a call that asks for a typed confirmation (a delete, a send, an overwrite): those
are asked every time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable

import redis.asyncio as aioredis

from switchboard import keys
from switchboard.errors import InvalidRequest
from switchboard.v1 import switchboard_pb2 as pb

SESSION = "session"
ALWAYS = "always"
ONCE = "once"
SCOPES = (ONCE, SESSION, ALWAYS)


def _signed_part(grant: pb.Grant) -> bytes:
    fields = (
        grant.grant_id,
        grant.tool,
        grant.scope,
        grant.session_id,
        str(grant.created_unix_ms),
        grant.run_id,
        str(grant.step),
    )
    return "\x1f".join(fields).encode()


def _signature(key: str, grant: pb.Grant) -> str:
    return hmac.new(key.encode(), _signed_part(grant), hashlib.sha256).hexdigest()


def check_scope(scope: str) -> str:
    """`scope` as given ('' means once), or `InvalidRequest` naming the choices."""
    scope = scope.strip().lower() or ONCE
    if scope not in SCOPES:
        raise InvalidRequest(f"scope {scope!r} is not one of {', '.join(SCOPES)}")
    return scope


def make(key: str, *, tool: str, scope: str, session_id: str, run_id: str, step: int, created_unix_ms: int) -> pb.Grant:
    """A signed grant of `tool` for `scope` (`session` or `always`)."""
    if scope not in (SESSION, ALWAYS):
        raise InvalidRequest(f"a standing grant is for the session or always, not {scope!r}")
    grant = pb.Grant(
        grant_id=secrets.token_hex(8),
        tool=tool,
        scope=scope,
        session_id=session_id if scope == SESSION else "",
        created_unix_ms=created_unix_ms,
        run_id=run_id,
        step=step,
    )
    grant.signature = _signature(key, grant)
    return grant


def genuine(key: str, grant: pb.Grant) -> bool:
    # As bytes: compare_digest refuses str with anything but ASCII, and a stored signature may hold anything.
    return bool(grant.signature) and hmac.compare_digest(grant.signature.encode(), _signature(key, grant).encode())


def covers(grant: pb.Grant, tool: str, session_id: str) -> bool:
    """Whether `grant` lets `tool` run in `session_id` without asking."""
    if grant.tool != tool:
        return False
    return grant.scope == ALWAYS or (grant.scope == SESSION and bool(session_id) and grant.session_id == session_id)


def covering(grants: Iterable[pb.Grant], tool: str, session_id: str) -> pb.Grant | None:
    """The first grant that covers `tool` in `session_id` (a session's before a lasting one)."""
    found = [g for g in grants if covers(g, tool, session_id)]
    found.sort(key=lambda g: (g.scope != SESSION, g.created_unix_ms))
    return found[0] if found else None


async def load(redis: aioredis.Redis) -> list[pb.Grant]:
    """Every grant, oldest first."""
    raw = await redis.hgetall(keys.GRANTS)
    grants = [pb.Grant.FromString(value) for value in raw.values()]
    return sorted(grants, key=lambda g: g.created_unix_ms)


async def find(redis: aioredis.Redis, grant_id: str) -> pb.Grant | None:
    raw = await redis.hget(keys.GRANTS, grant_id)
    return pb.Grant.FromString(raw) if raw else None


async def revoke(redis: aioredis.Redis, grant_id: str) -> bool:
    """Delete the grant; False when there was none by that id."""
    return bool(await redis.hdel(keys.GRANTS, grant_id))
