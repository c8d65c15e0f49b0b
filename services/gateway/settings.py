"""The gateway's settings."""

from __future__ import annotations

from pydantic import Field

from services.gateway.core import DEFAULT_MAX_BACKLOG, DEFAULT_MAX_WATCHERS
from services.gateway.limits import DEFAULT_MAX_BODY_BYTES, DEFAULT_MAX_JSON_DEPTH, DEFAULT_RATE_PER_MINUTE
from switchboard.settings import CommonSettings


class GatewaySettings(CommonSettings):
    """The common settings (the HTTP port, runs kept, the confirmation deadline among them), the
    limits the API puts on each request, and how much work it lets wait."""

    max_body_bytes: int = Field(
        DEFAULT_MAX_BODY_BYTES, ge=1024, description="Largest request body (HTTP) or message (gRPC) accepted."
    )
    max_json_depth: int = Field(DEFAULT_MAX_JSON_DEPTH, ge=2, description="Deepest nesting a JSON body may have.")
    rate_per_minute: int = Field(
        DEFAULT_RATE_PER_MINUTE, ge=1, description="Requests a minute one token may make, over HTTP and gRPC together."
    )
    max_backlog: int = Field(
        DEFAULT_MAX_BACKLOG,
        ge=1,
        description="Turns that may wait for the planner (unread or unfinished on sb:turns); past it a new one is "
        "refused with 429 / RESOURCE_EXHAUSTED and a Retry-After.",
    )
    max_watchers: int = Field(
        DEFAULT_MAX_WATCHERS,
        ge=1,
        description="Run event streams (SSE, WatchRun, OpenAI turns) open at once; past it a new one is refused.",
    )
