"""The gateway's JSON HTTP API (routes under `/v1/` and `/openapi.json` need the bearer token, which
`RequestLimits` checks with the request's size, depth and rate before any route runs).

A client told to come back later gets a `Retry-After` with its error: 429 while too much work waits
(`core.Busy`), 503 while Redis does not answer."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, FastAPI, Header, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from services.gateway import core
from services.gateway.app import (
    API_HTTP,
    REFUSED_BUSY,
    REFUSED_REDIS,
    Gateway,
    audit_to_dict,
    event_to_dict,
    grant_to_dict,
    run_to_dict,
    tool_to_dict,
)
from services.gateway.limits import (
    DEFAULT_MAX_BODY_BYTES,
    DEFAULT_MAX_JSON_DEPTH,
    RequestLimits,
    TokenBuckets,
)
from services.gateway.tracing import HttpTracing
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable
from switchboard.metrics import REQUESTS_REFUSED
from switchboard.streams import REDIS_DOWN

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


class SubmitBody(BaseModel):
    text: str = Field(description="What the person asks for, in plain words.")
    session_id: str = Field("", description="Continue this session; empty starts a new one.")
    dry_run: bool = Field(False, description="Plan and route, but execute nothing.")


class ConfirmBody(BaseModel):
    approve: bool = Field(True, description="True to let the step run, false to reject it.")
    reason: str = Field("", description="Why it was rejected (kept in the run record).")
    scope: Literal["once", "session", "always"] = Field(
        "once", description="Allow this step once, or also the same tool for the rest of the session, or always."
    )
    arguments: dict[str, Any] | None = Field(
        None, description="Corrected arguments to run the step with instead (checked against the tool's schema)."
    )
    typed: str = Field("", description="For a step whose preview asks for it: the target's name, typed.")


class FillBody(BaseModel):
    values: dict[str, Any] = Field(description="The values the step waits for, by parameter name.")


def build_app(
    gateway: Gateway,
    token: str,
    routers: Sequence[APIRouter] = (),
    *,
    buckets: TokenBuckets | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    max_json_depth: int = DEFAULT_MAX_JSON_DEPTH,
) -> FastAPI:
    """The HTTP API, behind `RequestLimits` (the token, the rate in `buckets`, which the gRPC API shares,
    the body's size and depth); `routers` are mounted beside the gateway's own routes."""
    # The OpenAPI document is served at /openapi.json; the interactive viewers FastAPI would add load
    # scripts from a CDN, so they are off.
    app = FastAPI(title="Switchboard gateway", version="1", docs_url=None, redoc_url=None)

    app.add_middleware(
        RequestLimits,
        token=token,
        max_body_bytes=max_body_bytes,
        max_json_depth=max_json_depth,
        buckets=buckets,
    )
    # Added last, so outermost: refused requests are traced too, and every response says its trace.
    app.add_middleware(HttpTracing)

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(InvalidRequest)
    async def invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(UpstreamUnavailable)
    async def unavailable(_: Request, exc: UpstreamUnavailable) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.exception_handler(core.Busy)
    async def busy(_: Request, exc: core.Busy) -> JSONResponse:
        REQUESTS_REFUSED.labels(api=API_HTTP, reason=REFUSED_BUSY).inc()
        return JSONResponse({"error": str(exc)}, status_code=429, headers={"Retry-After": str(exc.retry_after_seconds)})

    async def redis_away(request: Request, exc: Exception) -> JSONResponse:
        log.debug("%s %s: Redis does not answer: %s", request.method, request.url.path, exc)
        REQUESTS_REFUSED.labels(api=API_HTTP, reason=REFUSED_REDIS).inc()
        return JSONResponse(
            {"error": core.REDIS_AWAY},
            status_code=503,
            headers={"Retry-After": str(core.REDIS_AWAY_RETRY_SECONDS)},
        )

    for kind in REDIS_DOWN:
        app.add_exception_handler(kind, redis_away)

    @app.exception_handler(StarletteHTTPException)
    async def no_such_route(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        # An unknown path or a method a route does not take: the API's error shape, not Starlette's.
        return JSONResponse({"error": str(exc.detail)}, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def malformed(_: Request, exc: RequestValidationError) -> JSONResponse:
        said = "; ".join(
            f"{'.'.join(str(p) for p in problem.get('loc', ()) if p != 'body') or 'body'}: {problem.get('msg', '')}"
            for problem in exc.errors()[:5]
        )
        return JSONResponse({"error": f"the request does not fit: {said}"}, status_code=422)

    @app.exception_handler(Exception)
    async def failed(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s failed", request.method, request.url.path)
        return JSONResponse({"error": f"the gateway failed ({type(exc).__name__}); see its log"}, status_code=500)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True}

    @app.post("/v1/turns", status_code=202)
    async def submit(
        body: SubmitBody,
        idempotency_key: Annotated[
            str, Header(alias="Idempotency-Key", max_length=200, description="Send a request again safely.")
        ] = "",
    ) -> dict:
        run = await gateway.submit(body.text, body.session_id, body.dry_run, idempotency_key, api=API_HTTP)
        return {"run_id": run.run_id, "session_id": run.session_id, "status": run_to_dict(run)["status"]}

    @app.get("/v1/runs")
    async def list_runs(limit: int = 20, session_id: str = "") -> dict:
        runs = await gateway.list_runs(max(1, min(limit, 500)), session_id)
        return {"runs": [run_to_dict(run) for run in runs]}

    @app.get("/v1/runs/{run_id}")
    async def get_run(run_id: str) -> dict:
        return run_to_dict(await gateway.get_run(run_id))

    @app.get("/v1/runs/{run_id}/events")
    async def watch(run_id: str) -> StreamingResponse:
        await gateway.get_run(run_id)  # 404 before the stream starts
        events = gateway.watch(run_id)  # and 429 while too many are open

        async def stream() -> AsyncIterator[str]:
            try:
                async for event in events:
                    shown = event_to_dict(event)
                    yield f"event: {shown['kind']}\ndata: {json.dumps(shown)}\n\n"
            except REDIS_DOWN:
                # The status went out with the first event: the stream can only say why it ends.
                yield f"event: error\ndata: {json.dumps({'error': core.REDIS_AWAY})}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/runs/{run_id}/steps/{step}/confirm")
    async def confirm(run_id: str, step: int, body: ConfirmBody) -> dict:
        arguments = json.dumps(body.arguments) if body.arguments is not None else ""
        run = await gateway.confirm(run_id, step, body.approve, body.reason, body.scope, arguments, body.typed)
        return run_to_dict(run)

    @app.post("/v1/runs/{run_id}/steps/{step}/fill")
    async def fill(run_id: str, step: int, body: FillBody) -> dict:
        return run_to_dict(await gateway.fill(run_id, step, json.dumps(body.values)))

    @app.post("/v1/runs/{run_id}/steps/{step}/undo")
    async def undo(run_id: str, step: int) -> dict:
        return run_to_dict(await gateway.undo(run_id, step))

    @app.get("/v1/tools")
    async def tools() -> dict:
        return {"tools": [tool_to_dict(tool) for tool in await gateway.list_tools()]}

    @app.get("/v1/grants")
    async def list_grants() -> dict:
        return {"grants": [grant_to_dict(grant) for grant in await gateway.list_grants()]}

    @app.delete("/v1/grants/{grant_id}")
    async def revoke_grant(grant_id: str) -> dict:
        if not await gateway.revoke_grant(grant_id):
            raise NotFound(f"no standing grant {grant_id!r} (already revoked?)")
        return {"revoked": True}

    @app.get("/v1/audit")
    async def audit(session_id: str = "", run_id: str = "", limit: int = 50) -> dict:
        entries = await gateway.audit(session_id, run_id, limit)
        return {"entries": [audit_to_dict(entry) for entry in entries]}

    # The page and its files carry no data, so they need no token; the page asks for it. It may load
    # and talk to nothing but this gateway, and no other site may frame it.
    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html", headers=PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

    for router in routers:
        app.include_router(router)
    return app
