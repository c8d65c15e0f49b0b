"""The gateway's JSON HTTP API. Every route but `/healthz` needs the bearer token."""

from __future__ import annotations

import hmac
import json
from collections.abc import AsyncIterator

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from services.gateway.app import Gateway, event_to_dict, run_to_dict, tool_to_dict
from switchboard.errors import InvalidRequest, NotFound, UpstreamUnavailable


class SubmitBody(BaseModel):
    text: str = Field(description="What the person asks for, in plain words.")
    session_id: str = Field("", description="Continue this session; empty starts a new one.")
    dry_run: bool = Field(False, description="Plan and route, but execute nothing.")


class ConfirmBody(BaseModel):
    approve: bool = Field(True, description="True to let the step run, false to reject it.")
    reason: str = Field("", description="Why it was rejected (kept in the run record).")


def build_app(gateway: Gateway, token: str) -> FastAPI:
    app = FastAPI(title="Switchboard gateway", version="1")

    def authorised(request: Request) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip(), token):
            raise HTTPException(401, "missing or wrong bearer token (see the token file in the state directory)")

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=404)

    @app.exception_handler(InvalidRequest)
    async def invalid(_: Request, exc: InvalidRequest) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=400)

    @app.exception_handler(UpstreamUnavailable)
    async def unavailable(_: Request, exc: UpstreamUnavailable) -> JSONResponse:
        return JSONResponse({"error": str(exc)}, status_code=503)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"ok": True}

    @app.post("/v1/turns", status_code=202, dependencies=[Depends(authorised)])
    async def submit(body: SubmitBody) -> dict:
        run = await gateway.submit(body.text, body.session_id, body.dry_run)
        return {"run_id": run.run_id, "session_id": run.session_id, "status": run_to_dict(run)["status"]}

    @app.get("/v1/runs", dependencies=[Depends(authorised)])
    async def list_runs(limit: int = 20) -> dict:
        return {"runs": [run_to_dict(run) for run in await gateway.list_runs(max(1, min(limit, 500)))]}

    @app.get("/v1/runs/{run_id}", dependencies=[Depends(authorised)])
    async def get_run(run_id: str) -> dict:
        return run_to_dict(await gateway.get_run(run_id))

    @app.get("/v1/runs/{run_id}/events", dependencies=[Depends(authorised)])
    async def watch(run_id: str) -> StreamingResponse:
        await gateway.get_run(run_id)  # 404 before the stream starts

        async def stream() -> AsyncIterator[str]:
            async for event in gateway.watch(run_id):
                shown = event_to_dict(event)
                yield f"event: {shown['kind']}\ndata: {json.dumps(shown)}\n\n"

        return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})

    @app.post("/v1/runs/{run_id}/steps/{step}/confirm", dependencies=[Depends(authorised)])
    async def confirm(run_id: str, step: int, body: ConfirmBody) -> dict:
        return run_to_dict(await gateway.confirm(run_id, step, body.approve, body.reason))

    @app.post("/v1/runs/{run_id}/steps/{step}/undo", dependencies=[Depends(authorised)])
    async def undo(run_id: str, step: int) -> dict:
        return run_to_dict(await gateway.undo(run_id, step))

    @app.get("/v1/tools", dependencies=[Depends(authorised)])
    async def tools() -> dict:
        return {"tools": [tool_to_dict(tool) for tool in await gateway.list_tools()]}

    return app
