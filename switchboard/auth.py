"""Who may call a gRPC API: a bearer credential in the call's metadata, checked on every method.

Two credentials exist, both kept in the state directory (mode 0600):

- the API token, which a person (or `sb`) presents to the gateway's public API, HTTP or gRPC;
- the internal key, which the services present to each other (planner, filter, router, tool host).

A server built with `BearerAuth` refuses any call without one of the credentials it accepts with
UNAUTHENTICATED, before the method runs. Only `grpc.health.v1` stays open: it says whether a service
is up and nothing else, and orchestrators probe it without credentials. Credentials are compared in
constant time and never appear in an error, a log line or a metric.
"""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Any

import grpc

from switchboard.metrics import AUTH_REFUSALS
from switchboard.rpc_tracing import client_interceptors, with_metadata

METADATA_KEY = "authorization"
SCHEME = "Bearer "
OPEN_SERVICES = ("/grpc.health.v1.Health/",)
REFUSED = "missing or wrong credential"


def bearer(secret: str) -> tuple[tuple[str, str]]:
    """The call metadata that presents `secret`."""
    return ((METADATA_KEY, SCHEME + secret),)


def presented(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The credential a call's metadata presents ('' if none)."""
    for key, value in metadata or ():
        if key == METADATA_KEY:
            text = value.decode() if isinstance(value, bytes) else value
            return text[len(SCHEME) :].strip() if text.startswith(SCHEME) else ""
    return ""


def accepted(given: str, secrets: Sequence[str]) -> bool:
    """Whether `given` is one of `secrets` (every comparison runs, in constant time)."""
    ok = False
    for secret in secrets:
        ok |= bool(secret) and hmac.compare_digest(given.encode(), secret.encode())
    return ok


def refusal_handler(
    handler: grpc.RpcMethodHandler,
    why: str,
    code: grpc.StatusCode = grpc.StatusCode.UNAUTHENTICATED,
    trailing: Sequence[tuple[str, str]] = (),
) -> grpc.RpcMethodHandler:
    """A handler of the same shape as `handler` that refuses the call with `code` (and `trailing`
    metadata, such as when to retry)."""

    async def refuse(_request: Any, context: grpc.aio.ServicerContext) -> None:
        if trailing:
            context.set_trailing_metadata(tuple(trailing))
        await context.abort(code, why)

    async def refuse_stream(_request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        if trailing:
            context.set_trailing_metadata(tuple(trailing))
        await context.abort(code, why)
        yield  # pragma: no cover - abort raises

    shape = dict(request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
    if handler.unary_unary is not None:
        return grpc.unary_unary_rpc_method_handler(refuse, **shape)
    if handler.unary_stream is not None:
        return grpc.unary_stream_rpc_method_handler(refuse_stream, **shape)
    if handler.stream_unary is not None:
        return grpc.stream_unary_rpc_method_handler(refuse, **shape)
    return grpc.stream_stream_rpc_method_handler(refuse_stream, **shape)


class CallGate(grpc.aio.ServerInterceptor):
    """A check on every call but health checks, by its method and the credential it presents:
    `refuse` returns the handler that refuses the call, or None to let it through."""

    def refuse(self, method: str, given: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        raise NotImplementedError

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(OPEN_SERVICES):
            return handler
        given = presented(handler_call_details.invocation_metadata)  # type: ignore[attr-defined]
        return self.refuse(method, given, handler) or handler


class BearerAuth(CallGate):
    """Refuses every call (but health checks) that does not present one of `secrets`."""

    def __init__(self, secrets: Sequence[str], who: str) -> None:
        if not any(secrets):
            raise ValueError("a server needs at least one credential to accept")
        self.secrets = tuple(secrets)
        self.why = f"{REFUSED}: {who}"

    def refuse(self, method: str, given: str, handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        if accepted(given, self.secrets):
            return None
        AUTH_REFUSALS.labels(method=method).inc()
        return refusal_handler(handler, self.why)


# An asyncio channel sorts its interceptors by kind, taking each as one kind only: one class per kind.
class _PresentingUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, secret: str) -> None:
        self.metadata = bearer(secret)

    async def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(with_metadata(client_call_details, dict(self.metadata)), request)


class _PresentingStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, secret: str) -> None:
        self.metadata = bearer(secret)

    async def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return await continuation(with_metadata(client_call_details, dict(self.metadata)), request)


def channel(addr: str, secret: str, spread: bool = False) -> grpc.aio.Channel:
    """An asyncio channel to `addr` whose every call presents `secret` and is traced (a CLIENT span, its
    context in the call's metadata: `switchboard.rpc_tracing`); with `spread`, calls go round the
    addresses the name resolves to (every replica of a scaled service) instead of to the first."""
    # A callee that restarted is reached again within a second or two rather than after gRPC's
    # default reconnect backoff, which grows to two minutes.
    options: list[tuple[str, int | str]] = [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 2000),
    ]
    if spread:
        options.append(("grpc.lb_policy_name", "round_robin"))
    return grpc.aio.insecure_channel(
        addr,
        options=options,
        interceptors=[*client_interceptors(addr), _PresentingUnary(secret), _PresentingStream(secret)],
    )


class _PresentingSync(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds the credential to every call a blocking channel makes (the command line's)."""

    def __init__(self, secret: str) -> None:
        self.metadata = bearer(secret)

    def _with_credential(self, details: Any) -> Any:
        metadata = [*self.metadata, *((k, v) for k, v in (details.metadata or ()) if k != METADATA_KEY)]
        return _CallDetails(details.method, details.timeout, metadata, details.credentials)

    def intercept_unary_unary(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_credential(client_call_details), request)

    def intercept_unary_stream(self, continuation, client_call_details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_credential(client_call_details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method: str, timeout: float | None, metadata: Any, credentials: Any) -> None:
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = None
        self.compression = None


def blocking_channel(addr: str, secret: str) -> grpc.Channel:
    """A blocking channel to `addr` whose every call presents `secret`."""
    return grpc.intercept_channel(grpc.insecure_channel(addr), _PresentingSync(secret))
