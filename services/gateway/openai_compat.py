"""The OpenAI-compatible endpoint: `POST /v1/chat/completions`, `GET /v1/models`.

Any OpenAI client, or an agent harness built on one, can use Switchboard as a small, fast model that
calls tools:

- With `tools`, the filter ranks the caller's own tools for the last user message (the same encoder,
  score and "no tool fits" threshold as for Switchboard's catalogue) and the router picks one and
  fills its arguments from the words. The reply carries that call in OpenAI's `tool_calls`; the
  caller runs it, and may send the result back as a `tool` message, which is answered from as it is.
- Without `tools`, or with `tool_choice` "none", the last user message runs as a Switchboard turn on
  Switchboard's own tools, confirmation policy included, and the reply is the run's answer (or, for a
  change that waits for a person, how to confirm it).

Errors take OpenAI's shape, `{"error": {"message", "type", "param", "code"}}`, so OpenAI clients raise
their usual exceptions (and retry a 429 or 503 after its `Retry-After`: a turn refused while too much
work waits, or while Redis does not answer). Nothing here makes a value up: a required argument the
words do not give is named in the reply, never filled.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import grpc
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from jsonschema.exceptions import SchemaError
from jsonschema.validators import validator_for
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from services.gateway.app import API_OPENAI, REFUSED_BUSY, REFUSED_REDIS
from services.gateway.app import STAGE as GATEWAY
from services.gateway.core import REDIS_AWAY, REDIS_AWAY_RETRY_SECONDS, Busy
from switchboard import runs
from switchboard.auth import channel
from switchboard.errors import InvalidRequest, MalformedMessage, NotFound, UpstreamUnavailable
from switchboard.jsontext import DEFAULT_MAX_JSON_DEPTH, parse_limited_json
from switchboard.metrics import FAILURE_MODES, REQUESTS_REFUSED, FailureMode
from switchboard.streams import REDIS_DOWN
from switchboard.v1 import switchboard_pb2 as pb
from switchboard.v1 import switchboard_pb2_grpc as pb_grpc

__all__ = [
    "MODEL_ID",
    "ChatCompletionRequest",
    "GrpcToolRanking",
    "OpenAIError",
    "Reply",
    "ToolRanking",
    "TurnFollower",
    "TurnGateway",
    "build_openai_router",
    "decide_with_tools",
]

# The one model this endpoint serves, and when it was first listed (OpenAI's `created`, in unix seconds).
MODEL_ID = "switchboard"
MODEL_CREATED = 1767225600
# OpenAI accepts at most 128 tools per request; so does this endpoint.
MAX_TOOLS = 128
MAX_TOOL_NAME_CHARS = 256
MAX_SESSION_CHARS = 200
# How long a request without tools waits for its run before it answers with the run's progress.
TURN_WAIT_SECONDS = 300.0


# ---- errors ----


class OpenAIError(Exception):
    """A failure answered in OpenAI's error shape with `status`."""

    def __init__(
        self,
        status: int,
        message: str,
        param: str | None = None,
        code: str | None = None,
        kind: str = "invalid_request_error",
        retry_after_seconds: int = 0,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.code = code
        self.kind = kind
        self.retry_after_seconds = retry_after_seconds

    def body(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}

    def response(self) -> JSONResponse:
        headers = {"Retry-After": str(self.retry_after_seconds)} if self.retry_after_seconds else None
        return JSONResponse(self.body(), status_code=self.status, headers=headers)


def unavailable(message: str, retry_after_seconds: int = 0) -> OpenAIError:
    return OpenAIError(
        503, message, kind="service_unavailable", code="service_unavailable", retry_after_seconds=retry_after_seconds
    )


# What turns a request away for a while (`come_back_later`), and what ends a streamed turn early.
TURNED_AWAY: tuple[type[Exception], ...] = (Busy, *REDIS_DOWN)
FOLLOWING_FAILED: tuple[type[Exception], ...] = (NotFound, UpstreamUnavailable, *TURNED_AWAY)


def come_back_later(exc: Exception) -> OpenAIError:
    """The answer to a request turned away for a while: too much work waits (429), or Redis does not
    answer (503), each with when to try again."""
    if isinstance(exc, Busy):
        REQUESTS_REFUSED.labels(api=API_OPENAI, reason=REFUSED_BUSY).inc()
        return OpenAIError(
            429, str(exc), kind="requests", code="server_busy", retry_after_seconds=exc.retry_after_seconds
        )
    REQUESTS_REFUSED.labels(api=API_OPENAI, reason=REFUSED_REDIS).inc()
    return unavailable(REDIS_AWAY, REDIS_AWAY_RETRY_SECONDS)


# ---- the request ----


class FunctionDefinition(BaseModel):
    """A caller's tool: its name (kept exactly as given), what it does, and its parameters' JSON schema."""

    model_config = ConfigDict(extra="ignore")

    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None

    @field_validator("name")
    @classmethod
    def _named(cls, name: str) -> str:
        if not name.strip():
            raise ValueError("a function needs a name")
        if len(name) > MAX_TOOL_NAME_CHARS:
            raise ValueError(f"a function name may be at most {MAX_TOOL_NAME_CHARS} characters")
        return name

    @field_validator("parameters")
    @classmethod
    def _a_json_schema(cls, parameters: dict[str, Any] | None) -> dict[str, Any] | None:
        if parameters is None:
            return None
        # A $schema must name a dialect jsonschema knows: anything else fails its lookup (a TypeError for
        # a list) or falls back to the latest dialect with a warning.
        dialect = parameters.get("$schema")
        if dialect is not None and not isinstance(dialect, str):
            raise ValueError("parameters' $schema must be the URI of a JSON Schema dialect")
        validator = validator_for(parameters) if dialect is None else validator_for(parameters, default=None)
        if validator is None:
            raise ValueError(f"parameters name a JSON Schema dialect this endpoint does not know: {dialect}")
        try:
            validator.check_schema(parameters)
        except SchemaError as exc:
            raise ValueError(f"parameters are not a valid JSON schema: {exc.message}") from exc
        if parameters.get("type", "object") != "object":
            raise ValueError('parameters must describe an object (type "object")')
        return parameters


class ToolDefinition(BaseModel):
    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: FunctionDefinition


class ContentPart(BaseModel):
    """A part of a message's content; only text is read."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["text"]
    text: str = ""


class CalledFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str
    arguments: str = ""


class MessageToolCall(BaseModel):
    """A call an earlier assistant message made (as this endpoint, or another model, returned it)."""

    model_config = ConfigDict(extra="ignore")

    id: str
    type: Literal["function"] = "function"
    function: CalledFunction


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None
    tool_calls: list[MessageToolCall] | None = None
    tool_call_id: str | None = None

    @field_validator("content", mode="before")
    @classmethod
    def _text_parts_only(cls, content: Any) -> Any:
        for part in content if isinstance(content, list) else ():
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            if kind != "text":
                raise ValueError(f"only text content parts are read, not {kind!r}")
        return content

    def text(self) -> str:
        """The message's words: its content, or its text parts one after the other."""
        if self.content is None:
            return ""
        if isinstance(self.content, str):
            return self.content
        return "\n".join(part.text for part in self.content)


class NamedFunction(BaseModel):
    model_config = ConfigDict(extra="ignore")

    name: str


class NamedToolChoice(BaseModel):
    """`{"type": "function", "function": {"name": …}}`: call this tool and no other."""

    model_config = ConfigDict(extra="ignore")

    type: Literal["function"]
    function: NamedFunction


class ChatCompletionRequest(BaseModel):
    """The part of OpenAI's chat completion request Switchboard reads. Sampling settings
    (`temperature`, `max_tokens` …) are accepted and ignored: nothing here samples free text."""

    model_config = ConfigDict(extra="ignore")

    model: str
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDefinition] | None = Field(None, max_length=MAX_TOOLS)
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    stream: bool = False
    n: int | None = None
    # OpenAI's `user` names the person the caller acts for; a turn without tools continues their
    # session. `session_id` (not OpenAI's; send it with `extra_body`) names the session directly.
    user: str | None = None
    session_id: str | None = None

    @field_validator("tool_choice", mode="before")
    @classmethod
    def _a_known_choice(cls, choice: Any) -> Any:
        if isinstance(choice, dict):
            try:
                return NamedToolChoice.model_validate(choice)
            except ValidationError as exc:
                raise ValueError('a named tool_choice is {"type": "function", "function": {"name": …}}') from exc
        if choice is not None and choice not in ("none", "auto", "required"):
            raise ValueError('expected "none", "auto", "required" or {"type": "function", "function": {…}}')
        return choice

    def tool_names(self) -> list[str]:
        return [tool.function.name for tool in self.tools or []]

    def choice(self) -> Literal["none", "auto", "required"] | NamedToolChoice:
        """`tool_choice` as given, or OpenAI's default: "auto" with tools, "none" without."""
        if self.tool_choice is not None:
            return self.tool_choice
        return "auto" if self.tools else "none"

    def session(self) -> str:
        """The Switchboard session a turn continues ('' starts a new one)."""
        return self.session_id or self.user or ""


def parse_request(raw: bytes) -> ChatCompletionRequest:
    """The request in `raw`, checked; `OpenAIError` (400, or 404 for a model not served) otherwise."""
    try:
        # Limited here too: the middleware checks only a body sent as JSON, and this route reads any.
        decoded = parse_limited_json(raw, DEFAULT_MAX_JSON_DEPTH)
    except MalformedMessage as exc:
        raise OpenAIError(400, f"the body is not JSON: {exc}") from exc
    if not isinstance(decoded, dict):
        raise OpenAIError(400, "the body must be a JSON object")
    try:
        request = ChatCompletionRequest.model_validate(decoded)
    except ValidationError as exc:
        raise invalid_field(exc) from exc
    check_request(request)
    return request


def invalid_field(exc: ValidationError) -> OpenAIError:
    """The first problem pydantic found, said with where it is (`messages[0].role`)."""
    error = exc.errors()[0]
    param = ""
    for part in error["loc"]:
        param += f"[{part}]" if isinstance(part, int) else f".{part}" if param else str(part)
    cause = error.get("ctx", {}).get("error")
    message = str(cause) if isinstance(cause, ValueError) else error["msg"]
    return OpenAIError(400, f"{param}: {message}" if param else message, param or None)


def check_request(request: ChatCompletionRequest) -> None:
    """What the fields cannot say on their own: the model, the tools and tool_choice together, that
    there is something to answer."""
    if request.model != MODEL_ID:
        raise OpenAIError(
            404,
            f"The model `{request.model}` does not exist here; this endpoint serves `{MODEL_ID}`.",
            "model",
            "model_not_found",
        )
    if request.n not in (None, 1):
        raise OpenAIError(400, "n: only one choice (n=1) is made", "n")
    names = request.tool_names()
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise OpenAIError(400, f"tools: two tools are named {twice!r}", "tools")
    choice = request.choice()
    if choice == "required" or isinstance(choice, NamedToolChoice):
        if not names:
            raise OpenAIError(400, "tool_choice: a tool call was asked for, but no tools were given", "tool_choice")
    if isinstance(choice, NamedToolChoice) and choice.function.name not in names:
        raise OpenAIError(
            400, f"tool_choice: no tool named {choice.function.name!r} is among the tools given", "tool_choice"
        )
    if len(request.session()) > MAX_SESSION_CHARS:
        raise OpenAIError(400, f"user: a session may be named with at most {MAX_SESSION_CHARS} characters", "user")
    if request.messages[-1].role != "tool" and not last_user_text(request.messages):
        raise OpenAIError(400, "messages: there is no user message with text to answer", "messages")


def last_user_text(messages: Sequence[ChatMessage]) -> str:
    """The words of the last user message ('' if there is none)."""
    for message in reversed(messages):
        if message.role == "user":
            return message.text().strip()
    return ""


# ---- the reply ----


@dataclass(frozen=True)
class Reply:
    """What the assistant answers: words, or one call of a caller's tool."""

    content: str | None
    finish_reason: Literal["stop", "tool_calls"] = "stop"
    tool_calls: tuple[dict[str, Any], ...] = ()
    # Switchboard's own account of the reply (the run, the ranking), under `switchboard` in the answer.
    switchboard: dict[str, Any] = field(default_factory=dict)


def completion_id() -> str:
    return f"chatcmpl-{uuid.uuid4().hex}"


def completion(reply: Reply, completion_id: str, created: int) -> dict[str, Any]:
    """A `chat.completion` object for `reply`. No `usage`: Switchboard does not count tokens."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.content, "refusal": None}
    if reply.tool_calls:
        message["tool_calls"] = list(reply.tool_calls)
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
        "system_fingerprint": None,
        "switchboard": reply.switchboard,
    }


def chunk(
    completion_id: str,
    created: int,
    delta: dict[str, Any],
    finish_reason: str | None = None,
    switchboard: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One `chat.completion.chunk` of a streamed answer."""
    shaped: dict[str, Any] = {
        "id": completion_id,
        "object": "chat.completion.chunk",
        "created": created,
        "model": MODEL_ID,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason, "logprobs": None}],
    }
    if switchboard is not None:
        shaped["switchboard"] = switchboard
    return shaped


def reply_chunks(reply: Reply, completion_id: str, created: int) -> list[dict[str, Any]]:
    """A whole reply as chunks: the role, then the call or the words, then why it ended."""
    body: dict[str, Any]
    if reply.tool_calls:
        first = chunk(completion_id, created, {"role": "assistant", "content": None})
        body = {"tool_calls": [{"index": i, **call} for i, call in enumerate(reply.tool_calls)]}
    else:
        first = chunk(completion_id, created, {"role": "assistant", "content": ""})
        body = {"content": reply.content or ""}
    return [
        first,
        chunk(completion_id, created, body),
        chunk(completion_id, created, {}, reply.finish_reason, reply.switchboard),
    ]


def server_sent(data: dict[str, Any] | str) -> str:
    """One server-sent event as OpenAI streams them: `data: …` and a blank line."""
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


DONE = server_sent("[DONE]")


async def as_events(chunks: Iterable[dict[str, Any]]) -> AsyncIterator[str]:
    for shaped in chunks:
        yield server_sent(shaped)
    yield DONE


def stream_response(events: AsyncIterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


# ---- with tools: rank the caller's, route to one ----


class ToolRanking(Protocol):
    """The filter and the router, as the endpoint asks them about a caller's tools."""

    async def rank(self, text: str, tools: Sequence[pb.Candidate]) -> pb.RankResponse:
        """`tools` ranked for `text`, best first; no candidates when none fits the words."""
        ...

    async def route(self, text: str, candidates: Sequence[pb.Candidate]) -> pb.ToolCall:
        """One of `candidates` and its arguments, filled from `text`."""
        ...


def tool_candidate(tool: ToolDefinition) -> pb.Candidate:
    """A caller's tool as the filter and the router take one."""
    parameters = tool.function.parameters or {"type": "object", "properties": {}}
    return pb.Candidate(
        tool=tool.function.name, description=tool.function.description, input_schema_json=json.dumps(parameters)
    )


def tool_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def listed(names: Sequence[str]) -> str:
    """`a`, `a and b`, `a, b and c`."""
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def no_tool_fits(text: str) -> str:
    return f"None of the tools given fits the request “{text}”, so no tool was called."


def values_missing(tool: str, missing: Sequence[str], text: str) -> str:
    what = listed(list(missing))
    value = "a value" if len(missing) == 1 else "values"
    return (
        f"To call {tool} I need {value} for {what}, and the request “{text}” does not give "
        f"{'it' if len(missing) == 1 else 'them'}, so no call was made. Say {what} and ask again."
    )


async def decide_with_tools(request: ChatCompletionRequest, ranking: ToolRanking) -> Reply:
    """The reply to a request whose tools Switchboard chooses among (tool_choice other than "none").

    "auto" calls a tool only when the filter finds one that fits the last user message; "required"
    always calls one: the best the filter ranks, or, when it finds none close enough, the one the
    router picks among all of them in the order given; a named function is the only candidate. A
    tool whose required values the words do not give is not called: the reply names what is missing.
    """
    text = last_user_text(request.messages)
    tools = [tool_candidate(tool) for tool in request.tools or []]
    choice = request.choice()
    account: dict[str, Any] = {"tool_choice": choice if isinstance(choice, str) else choice.function.name}
    if isinstance(choice, NamedToolChoice):
        candidates = [t for t in tools if t.tool == choice.function.name]
    else:
        ranked = await ranking.rank(text, tools)
        account["candidates"] = [{"name": c.tool, "score": round(c.score, 4)} for c in ranked.candidates]
        if ranked.candidates:
            candidates = list(ranked.candidates)
        elif choice == "auto":
            return Reply(no_tool_fits(text), switchboard={**account, "outcome": "no_tool_fits"})
        else:
            candidates = tools
    call = await ranking.route(text, candidates)
    if not call.tool:
        return Reply(no_tool_fits(text), switchboard={**account, "outcome": "no_tool_fits", "reason": call.reason})
    if call.tool not in {t.tool for t in candidates}:
        FAILURE_MODES.labels(stage=GATEWAY, mode=FailureMode.UNKNOWN_TOOL_UNRESOLVED).inc()
        raise UpstreamUnavailable(f"the router proposed {call.tool!r}, which is not among the tools given")
    account |= {"tool": call.tool, "reason": call.reason}
    if call.outcome == pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION:
        missing = list(call.missing)
        if not missing:
            return Reply(
                f"I could not settle a call of {call.tool} from the request “{text}”: {call.reason}",
                switchboard={**account, "outcome": "needs_clarification"},
            )
        return Reply(
            values_missing(call.tool, missing, text),
            switchboard={**account, "outcome": "needs_clarification", "missing": missing},
        )
    made = {
        "id": tool_call_id(),
        "type": "function",
        "function": {"name": call.tool, "arguments": call.arguments_json or "{}"},
    }
    return Reply(None, "tool_calls", (made,), {**account, "outcome": "tool_call"})


def answer_from_tool_results(messages: Sequence[ChatMessage]) -> Reply:
    """The reply to the results a caller sent back (the `tool` messages that end the conversation):
    what each tool returned, as it returned it. Nothing is routed again."""
    results: list[ChatMessage] = []
    for message in reversed(messages):
        if message.role != "tool":
            break
        results.insert(0, message)
    called = {
        call.id: call.function.name
        for message in messages
        if message.role == "assistant"
        for call in message.tool_calls or []
    }
    lines = []
    for result in results:
        name = called.get(result.tool_call_id or "") or result.name or "The tool"
        said = result.text().strip()
        lines.append(f"{name} returned: {said}" if said else f"{name} returned nothing.")
    return Reply("\n".join(lines), switchboard={"outcome": "tool_result", "results": len(results)})


class GrpcToolRanking:
    """The filter and the router over gRPC, with the services' internal key. A failure to reach
    either is `UpstreamUnavailable`; a request either refuses is `InvalidRequest`."""

    def __init__(self, filter_addr: str, router_addr: str, internal_key: str, timeout: float = 120.0) -> None:
        self.timeout = timeout
        self._addresses = {"filter": filter_addr, "router": router_addr}
        # Round robin: every replica of a scaled filter or router takes its share.
        self._channels = [
            channel(filter_addr, internal_key, spread=True),
            channel(router_addr, internal_key, spread=True),
        ]
        self._filter = pb_grpc.FilterStub(self._channels[0])
        self._router = pb_grpc.RouterStub(self._channels[1])

    async def rank(self, text: str, tools: Sequence[pb.Candidate]) -> pb.RankResponse:
        try:
            # Every tool comes back ranked (unless none fits), so the router sees them all.
            request = pb.RankRequest(text=text, k=len(tools), tools=list(tools))
            return await self._filter.Rank(request, timeout=self.timeout)
        except grpc.aio.AioRpcError as exc:
            raise self._failure("filter", exc) from exc

    async def route(self, text: str, candidates: Sequence[pb.Candidate]) -> pb.ToolCall:
        try:
            return await self._router.Route(
                pb.RouteRequest(text=text, candidates=list(candidates)), timeout=self.timeout
            )
        except grpc.aio.AioRpcError as exc:
            raise self._failure("router", exc) from exc

    def _failure(self, stage: str, exc: grpc.aio.AioRpcError) -> Exception:
        if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
            return InvalidRequest(f"the {stage} refused the request: {exc.details()}")
        return UpstreamUnavailable(
            f"Switchboard's {stage} at {self._addresses[stage]} did not answer "
            f"({exc.code().name}: {exc.details()}); try again when it is up"
        )

    async def close(self) -> None:
        for open_channel in self._channels:
            await open_channel.close()


# ---- without tools: a Switchboard turn ----


class TurnGateway(Protocol):
    """What the endpoint needs of the gateway to run a turn and follow it."""

    async def submit(self, text: str, session_id: str = "", dry_run: bool = False, *, api: str) -> pb.Run: ...

    def watch(self, run_id: str) -> AsyncIterator[pb.RunEvent]: ...

    async def get_run(self, run_id: str) -> pb.Run: ...


class TurnFollower:
    """The reply's words, as a run's events bring them.

    The answer's lines come as steps settle (`answer` events) and the whole answer at the end
    (`finished`); the pieces handed out join the lines with newlines, so together they are the run's
    answer. A step that waits for the person ends the reply (the run waits too)."""

    def __init__(self) -> None:
        self.sent = ""
        self.lines = 0
        self.status = "planning"
        self.answer: str | None = None
        self.waiting_step = 0

    @property
    def done(self) -> bool:
        return self.answer is not None or self.waiting_step > 0

    def take(self, event: pb.RunEvent) -> str:
        """The words `event` adds to the reply ('' for none)."""
        if event.status:
            self.status = runs.status_name(event.status)
        if event.kind == pb.EVENT_KIND_ANSWER:
            return self.add_line(event.message.removesuffix("\n"))
        if event.kind == pb.EVENT_KIND_FINISHED:
            return self.finish(event.message, runs.status_name(event.status))
        if event.kind == pb.EVENT_KIND_AWAITING_CONFIRMATION:
            self.status = runs.status_name(pb.RUN_STATUS_AWAITING_CONFIRMATION)
            self.waiting_step = event.step
        return ""

    def add_line(self, line: str) -> str:
        piece = ("\n" if self.lines else "") + line
        self.lines += 1
        self.sent += piece
        return piece

    def finish(self, answer: str, status: str) -> str:
        """The rest of the whole `answer`: what the lines sent so far do not already say."""
        self.answer = answer
        self.status = status
        if answer.startswith(self.sent):
            piece = answer[len(self.sent) :]
        else:  # the end of the run rewrote its lines: the whole answer follows what was sent
            piece = ("\n" if self.sent else "") + answer
        self.sent += piece
        return piece

    def content(self) -> str:
        """The reply's words once it ends: the run's answer when it finished, else what was sent."""
        return self.answer if self.answer is not None else self.sent


def waiting_message(run_id: str, record: pb.StepRecord | None, step: int) -> str:
    """What a reply says of a step that waits for the person: what it would do, and how to decide."""
    if record is not None and record.preview.text:
        what = record.preview.text
    elif record is not None and record.tool:
        what = f"{record.tool} {record.arguments_json or '{}'}"
    else:
        what = "a change"
    return (
        f"Step {step} waits for your confirmation before it runs: {what}. Nothing has been changed by it yet. "
        f'To let it run, POST /v1/runs/{run_id}/steps/{step}/confirm with {{"approve": true}} '
        f'(or `sb confirm {run_id} {step}`); {{"approve": false}} rejects it. Run: {run_id}.'
    )


def still_running_message(run_id: str, seconds: float) -> str:
    return (
        f"The run is still going after {seconds:.0f} seconds; its answer will be at GET /v1/runs/{run_id} "
        f"(events at GET /v1/runs/{run_id}/events). Run: {run_id}."
    )


# ---- the routes ----


def authorised(request: Request, token: str) -> None:
    """The same bearer token as the rest of the API; OpenAI clients send their api_key as it."""
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise OpenAIError(
            401,
            "Missing or wrong API key: use Switchboard's API token (the `token` file in the state directory).",
            code="invalid_api_key",
        )


def model_entry() -> dict[str, Any]:
    return {"id": MODEL_ID, "object": "model", "created": MODEL_CREATED, "owned_by": "switchboard"}


def build_openai_router(
    gateway: TurnGateway, ranking: ToolRanking, token: str, turn_wait_seconds: float = TURN_WAIT_SECONDS
) -> APIRouter:
    """The OpenAI-compatible routes, authenticating with `token`; a turn is waited for at most
    `turn_wait_seconds` before the reply says it is still going."""
    router = APIRouter(tags=["OpenAI-compatible"])

    @router.get("/v1/models")
    async def list_models(request: Request) -> Response:
        """The models this endpoint serves (one: `switchboard`)."""
        try:
            authorised(request, token)
        except OpenAIError as exc:
            return exc.response()
        return JSONResponse({"object": "list", "data": [model_entry()]})

    @router.get("/v1/models/{model_id}")
    async def get_model(model_id: str, request: Request) -> Response:
        """One model; 404 for any but `switchboard`."""
        try:
            authorised(request, token)
            if model_id != MODEL_ID:
                raise OpenAIError(404, f"The model `{model_id}` does not exist here.", "model", "model_not_found")
        except OpenAIError as exc:
            return exc.response()
        return JSONResponse(model_entry())

    @router.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        """OpenAI's chat completion: a call of one of the request's tools, or a Switchboard turn."""
        try:
            authorised(request, token)
            body = parse_request(await request.body())
            return await answer(body)
        except OpenAIError as exc:
            return exc.response()
        except InvalidRequest as exc:
            return OpenAIError(400, str(exc)).response()
        except NotFound as exc:
            return OpenAIError(404, str(exc), code="not_found").response()
        except UpstreamUnavailable as exc:
            return unavailable(str(exc)).response()
        except TURNED_AWAY as exc:
            return come_back_later(exc).response()

    async def answer(body: ChatCompletionRequest) -> Response:
        made, created = completion_id(), int(time.time())
        if body.messages[-1].role == "tool":
            reply = answer_from_tool_results(body.messages)
        elif body.choice() != "none":
            reply = await decide_with_tools(body, ranking)
        else:
            run = await gateway.submit(last_user_text(body.messages), body.session(), api=API_OPENAI)
            if body.stream:
                return stream_response(stream_turn(run, made, created))
            reply = await wait_for_turn(run)
        if body.stream:
            return stream_response(as_events(reply_chunks(reply, made, created)))
        return JSONResponse(completion(reply, made, created))

    def turn_account(run: pb.Run, follower: TurnFollower) -> dict[str, Any]:
        account: dict[str, Any] = {"run_id": run.run_id, "session_id": run.session_id, "status": follower.status}
        if follower.waiting_step:
            account["awaiting_step"] = follower.waiting_step
        return account

    async def follow(run_id: str, follower: TurnFollower) -> AsyncIterator[str]:
        """The reply's words as the run's events bring them, until it finishes, a step waits for the
        person, or `turn_wait_seconds` pass."""
        events = gateway.watch(run_id)
        deadline = time.monotonic() + turn_wait_seconds
        try:
            while not follower.done:
                try:
                    async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                        event = await anext(events)
                except (StopAsyncIteration, TimeoutError):
                    break
                piece = follower.take(event)
                if piece:
                    yield piece
        finally:
            close = getattr(events, "aclose", None)
            if close is not None:
                await close()
        if follower.waiting_step:
            run = await gateway.get_run(run_id)
            record = next((r for r in run.steps if r.number == follower.waiting_step), None)
            yield follower.add_line(waiting_message(run_id, record, follower.waiting_step))
        elif not follower.done:
            run = await gateway.get_run(run_id)
            if run.status in runs.FINAL_STATUSES:
                piece = follower.finish(run.answer, runs.status_name(run.status))
                if piece:
                    yield piece
            else:
                follower.status = runs.status_name(run.status)
                yield follower.add_line(still_running_message(run_id, turn_wait_seconds))

    async def wait_for_turn(run: pb.Run) -> Reply:
        follower = TurnFollower()
        async for _ in follow(run.run_id, follower):
            pass
        return Reply(follower.content(), switchboard=turn_account(run, follower))

    async def stream_turn(run: pb.Run, made: str, created: int) -> AsyncIterator[str]:
        follower = TurnFollower()
        yield server_sent(chunk(made, created, {"role": "assistant", "content": ""}, None, turn_account(run, follower)))
        try:
            async for piece in follow(run.run_id, follower):
                yield server_sent(chunk(made, created, {"content": piece}))
        except FOLLOWING_FAILED as exc:
            # The status line went out with the first chunk: the failure can only be told in the stream.
            if isinstance(exc, NotFound):
                failure = OpenAIError(404, str(exc))
            elif isinstance(exc, UpstreamUnavailable):
                failure = unavailable(str(exc))
            else:
                failure = come_back_later(exc)
            yield server_sent(failure.body())
            return
        yield server_sent(chunk(made, created, {}, "stop", turn_account(run, follower)))
        yield DONE

    return router
