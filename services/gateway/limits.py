"""The limits the gateway's HTTP API puts on every request, as one ASGI middleware.

`RequestLimits` sits in front of the FastAPI app and checks a request in this order, answering the
first failure with a JSON error and never calling the app:

1. the bearer token, for `/v1/...` and `/openapi.json` (401);
2. the token's request rate (429 with `Retry-After`);
3. the body's size, first by `Content-Length`, then by counting the bytes as they arrive (413);
4. for a JSON body, that it parses and that its arrays and objects nest at most so deep (400).

The middleware reads the whole body (at most `max_body_bytes`) before the app runs and hands it to
the app unchanged, then passes the server's later messages (a disconnect) straight through. It never
touches what the app sends, so streamed responses such as Server-Sent Events stream as before.

The JSON checks are `switchboard.jsontext`'s, shared by every edge that takes JSON (re-exported here).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from switchboard.auth import CallGate, accepted, refusal_handler
from switchboard.jsontext import (
    DEFAULT_MAX_JSON_DEPTH,
    InvalidJson,
    JsonTooDeep,
    parse_limited_json,
)
from switchboard.jsontext import json_depth_exceeds as json_depth_exceeds  # re-exported

log = logging.getLogger(__name__)

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
DEFAULT_RATE_PER_MINUTE = 6000
DEFAULT_MAX_BUCKETS = 1024

API_PREFIX = "/v1/"
OPENAPI_PATH = "/openapi.json"
# Routes an OpenAI client calls; it expects errors in OpenAI's shape.
OPENAI_PATHS = ("/v1/chat/completions", "/v1/models")
TOKEN_REFUSED = "missing or wrong bearer token (see the token file in the state directory)"

# OpenAI's error `type` and `code` for each status this middleware answers with.
_OPENAI_KINDS: dict[int, tuple[str, str | None]] = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    413: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def token_key(token: str) -> bytes:
    """The key a token's rate is kept under: its SHA-256, so the token itself is never stored."""
    return hashlib.sha256(token.encode()).digest()


@dataclass
class _Bucket:
    level: float
    updated: float


class TokenBuckets:
    """A token bucket per key: `per_minute` requests a minute, with bursts of up to `per_minute`.

    At most `max_keys` buckets are kept; the least recently used one goes first, and a key whose
    bucket went starts again with a full one.
    """

    def __init__(self, per_minute: int, max_keys: int, clock: Callable[[], float] = time.monotonic) -> None:
        if per_minute < 1 or max_keys < 1:
            raise ValueError("a rate limit needs at least one request a minute and room for one bucket")
        self.capacity = float(per_minute)
        self.per_second = per_minute / 60
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[bytes, _Bucket] = OrderedDict()

    def __len__(self) -> int:
        return len(self._buckets)

    def take(self, key: bytes) -> float:
        """Spend one request from `key`'s bucket: 0 if it may go ahead, else the seconds until it may."""
        now = self.clock()
        bucket = self._buckets.pop(key, None)
        if bucket is None:
            bucket = _Bucket(self.capacity, now)
        else:
            refill = max(0.0, now - bucket.updated) * self.per_second
            bucket.level = min(self.capacity, bucket.level + refill)
            bucket.updated = now
        self._buckets[key] = bucket  # the end of the order is the most recently used
        if len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)
        # The slack lets through a client that waited exactly as long as told, despite float rounding.
        if bucket.level >= 1 - 1e-9:
            bucket.level = max(0.0, bucket.level - 1)
            return 0.0
        return (1 - bucket.level) / self.per_second


class RequestRefused(Exception):
    """A request the middleware answers itself, with `status` and a JSON error saying `reason`."""

    def __init__(self, status: int, reason: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = tuple(headers)

    def payload(self, openai_shape: bool) -> dict[str, Any]:
        """The error body: `{"error": reason}`, or OpenAI's `{"error": {"message": ..., ...}}`."""
        if not openai_shape:
            return {"error": self.reason}
        kind, code = _OPENAI_KINDS.get(self.status, ("invalid_request_error", None))
        return {"error": {"message": self.reason, "type": kind, "param": None, "code": code}}

    async def send(self, send: Send, openai_shape: bool) -> None:
        """Send the whole refusal as an HTTP response."""
        body = json.dumps(self.payload(openai_shape)).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *self.headers,
        ]
        await send({"type": "http.response.start", "status": self.status, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def needs_token(path: str) -> bool:
    """Whether a request for `path` must present the bearer token."""
    return path.startswith(API_PREFIX) or path == API_PREFIX.rstrip("/") or path == OPENAPI_PATH


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of header `name` (lower case), as ASGI servers pass it."""
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value).decode("latin-1")
    return None


def _is_json(content_type: str | None) -> bool:
    """Whether FastAPI would parse a body of `content_type` as JSON: `application/json`,
    `application/...+json`, or no content type at all."""
    if content_type is None or not content_type.strip():
        return True
    media_type = content_type.split(";", 1)[0].strip().lower()
    main, _, sub = media_type.partition("/")
    return main == "application" and (sub == "json" or sub.endswith("+json"))


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives the app `body` as one message, then whatever the server sends next."""
    given = False

    async def replayed() -> Message:
        nonlocal given
        if given:
            return await receive()
        given = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replayed


class RequestLimits:
    """ASGI middleware: the bearer token, a rate per token, and the size and depth of request bodies.

    Arguments (all keyword-only, so `app.add_middleware(RequestLimits, token=...)` works):

    - `token`: the bearer token the API accepts, or several; the rate is kept per token.
    - `max_body_bytes`: the largest body accepted, in bytes (1 MiB).
    - `max_json_depth`: how deep arrays and objects may nest in a JSON body (32).
    - `rate_per_minute`: requests a minute for one token, also the largest burst (6000).
    - `max_buckets`: how many tokens' rates are kept at once (1024).
    - `clock`: seconds from any fixed point, `time.monotonic` unless a test steers time.
    - `openai_paths`: routes whose errors take OpenAI's shape, for OpenAI clients.
    - `buckets`: the rate buckets to spend from, when they are shared (instead of `rate_per_minute`,
      `max_buckets` and `clock`).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str | Sequence[str],
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
        max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
        rate_per_minute: int = DEFAULT_RATE_PER_MINUTE,
        max_buckets: int = DEFAULT_MAX_BUCKETS,
        clock: Callable[[], float] = time.monotonic,
        openai_paths: Sequence[str] = OPENAI_PATHS,
        buckets: TokenBuckets | None = None,
    ) -> None:
        tokens = (token,) if isinstance(token, str) else tuple(token)
        if not any(tokens):
            raise ValueError("the API needs a non-empty token to accept")
        for name, value in (("max_body_bytes", max_body_bytes), ("max_json_depth", max_json_depth)):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, not {value}")
        self.app = app
        self.tokens = tokens
        self.max_body_bytes = max_body_bytes
        self.max_json_depth = max_json_depth
        self.rate_per_minute = rate_per_minute
        # Given buckets are shared with another door to the same API (the gateway's gRPC server).
        self.buckets = buckets if buckets is not None else TokenBuckets(rate_per_minute, max_buckets, clock)
        self.openai_paths = tuple(openai_paths)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and needs_token(scope["path"]) and self._presented(scope) is None:
            await send({"type": "websocket.close", "code": 1008, "reason": TOKEN_REFUSED})
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        try:
            body = await self._admit(scope, receive)
        except RequestRefused as refusal:
            await refusal.send(send, self._openai_route(scope["path"]))
            return
        if body is None:
            return  # the client left while sending; nobody is waiting for an answer
        await self.app(scope, _replay(body, receive), send)

    def _openai_route(self, path: str) -> bool:
        return any(path == route or path.startswith(route + "/") for route in self.openai_paths)

    def _presented(self, scope: Scope) -> str | None:
        """The accepted token the request presents, or None."""
        scheme, _, given = (_header(scope, b"authorization") or "").partition(" ")
        given = given.strip()
        if scheme.lower() != "bearer" or not accepted(given, self.tokens):
            return None
        return given

    async def _admit(self, scope: Scope, receive: Receive) -> bytes | None:
        """The request's body once every check passed (None if the client left); raises
        `RequestRefused` at the first check that fails."""
        if needs_token(scope["path"]):
            token = self._presented(scope)
            if token is None:
                raise RequestRefused(401, TOKEN_REFUSED, [(b"www-authenticate", b"Bearer")])
            wait = self.buckets.take(token_key(token))
            if wait > 0:
                seconds = max(1, math.ceil(wait))
                log.debug("rate limit reached for token %s", token_key(token).hex()[:12])
                raise RequestRefused(
                    429,
                    f"too many requests: at most {self.rate_per_minute} a minute for one token; "
                    f"retry after {seconds} s",
                    [(b"retry-after", str(seconds).encode())],
                )
        self._check_declared_length(scope)
        body = await self._read_body(receive)
        if body and _is_json(_header(scope, b"content-type")):
            try:
                parse_limited_json(body, self.max_json_depth)
            except JsonTooDeep as exc:
                raise RequestRefused(400, f"the body's JSON is too deep: {exc}; send flatter JSON") from exc
            except InvalidJson as exc:
                raise RequestRefused(400, f"the body is not valid JSON: {exc}") from exc
        return body

    def _too_large(self) -> RequestRefused:
        # Closing the connection spares the server reading the rest of a body nobody wants.
        return RequestRefused(
            413,
            f"the request body is larger than {self.max_body_bytes} bytes; send at most that much",
            [(b"connection", b"close")],
        )

    def _check_declared_length(self, scope: Scope) -> None:
        declared = _header(scope, b"content-length")
        if declared is None:
            return
        if not re.fullmatch(r"[0-9]+", declared.strip()):
            raise RequestRefused(400, "the Content-Length header is not a whole number of bytes")
        if int(declared) > self.max_body_bytes:
            raise self._too_large()

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The whole body, counted as it arrives, so a body without (or lying in) its Content-Length
        is cut off at the limit too."""
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = bytes(message.get("body", b""))
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)


class GrpcLimits(CallGate):
    """The same rate limit on the gateway's gRPC API, spending from the buckets the HTTP API uses:
    over it, RESOURCE_EXHAUSTED with a `retry-after` (seconds) in the trailing metadata. It runs after
    authentication, so only an accepted token reaches the buckets; health checks are not counted."""

    def __init__(self, buckets: TokenBuckets) -> None:
        self.buckets = buckets

    def refuse(self, method: str, given: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        wait = self.buckets.take(token_key(given))
        if not wait:
            return None
        seconds = max(1, math.ceil(wait))
        return refusal_handler(
            handler,
            f"too many requests: retry after {seconds} s",
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            [("retry-after", str(seconds))],
        )
