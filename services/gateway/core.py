"""The gateway's own rules for what it accepts at the edge."""

from __future__ import annotations

import hashlib
import math
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from switchboard.errors import InvalidRequest, SwitchboardError
from switchboard.jsontext import DEFAULT_MAX_JSON_DEPTH, InvalidJson, JsonTooDeep, parse_limited_json

# The longest request the API accepts, in characters.
MAX_TEXT_CHARS = 4000


# How many turns may wait for the planner, and run event streams be open, before more are refused.
DEFAULT_MAX_BACKLOG = 256
DEFAULT_MAX_WATCHERS = 512


class Busy(SwitchboardError):
    """The gateway takes no more work for now, because too much already waits; the client should try
    again after `retry_after_seconds` (HTTP 429 with `Retry-After`, gRPC RESOURCE_EXHAUSTED)."""

    def __init__(self, message: str, retry_after_seconds: int) -> None:
        super().__init__(message)
        self.retry_after_seconds = retry_after_seconds


# What a refusal tells the client to wait when nothing better is known, and at most.
RETRY_AFTER_UNKNOWN_SECONDS = 5
RETRY_AFTER_MAX_SECONDS = 60

# What the API answers while Redis does not (restarting, loading its data, down): the services wait
# for it with backoff capped at about this long, so a client may try again as soon.
REDIS_AWAY_RETRY_SECONDS = 5
REDIS_AWAY = (
    f"Switchboard's store (Redis) is not answering: it is restarting or down; retry after {REDIS_AWAY_RETRY_SECONDS} s"
)


def retry_after_seconds(waiting: int, bound: int, per_second: float | None) -> int:
    """When a turn refused because `waiting` turns wait (the most allowed being `bound`) may come back:
    the time the planner needs, at the rate it has been taking turns, to bring the backlog under the
    bound; 1 to 60 s, 5 s while the rate is not known, 60 s when it has taken none lately."""
    if per_second is None:
        return RETRY_AFTER_UNKNOWN_SECONDS
    if per_second <= 0:
        return RETRY_AFTER_MAX_SECONDS
    return max(1, min(RETRY_AFTER_MAX_SECONDS, math.ceil((waiting - bound + 1) / per_second)))


class DrainRate:
    """How fast the planner takes turns, from readings of its consumer group's `entries-read` (a
    counter Redis keeps per group) over the last `window_seconds`. Readings closer together than
    `every_seconds` are not kept, so a burst of requests does not crowd the window out."""

    def __init__(
        self, window_seconds: float = 60.0, every_seconds: float = 0.5, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.window_seconds = window_seconds
        self.every_seconds = every_seconds
        self.clock = clock
        self._readings: deque[tuple[float, int]] = deque(maxlen=math.ceil(window_seconds / every_seconds) + 1)

    def observe(self, entries_read: int) -> None:
        now = self.clock()
        if self._readings and entries_read < self._readings[-1][1]:
            self._readings.clear()  # the group was made again (Redis lost its data): start over
        if self._readings and now - self._readings[-1][0] < self.every_seconds:
            return
        while self._readings and now - self._readings[0][0] > self.window_seconds:
            self._readings.popleft()
        self._readings.append((now, entries_read))

    def per_second(self) -> float | None:
        """Turns taken a second over the readings kept; None before two readings a second apart."""
        if len(self._readings) < 2:
            return None
        (first_at, first), (last_at, last) = self._readings[0], self._readings[-1]
        if last_at - first_at < 1.0:
            return None
        return (last - first) / (last_at - first_at)


def json_object(raw: str, what: str) -> dict[str, Any]:
    """`raw` as a JSON object nesting at most as deep as the HTTP API allows, or `InvalidRequest`
    saying what `what` should have been (the gRPC API takes JSON inside its messages)."""
    try:
        value = parse_limited_json(raw, DEFAULT_MAX_JSON_DEPTH)
    except JsonTooDeep as exc:
        raise InvalidRequest(f"{what} nest deeper than {DEFAULT_MAX_JSON_DEPTH} levels") from exc
    except InvalidJson as exc:  # not JSON, a number too long to read, half a surrogate pair
        raise InvalidRequest(f"{what} are not valid JSON: {exc}") from exc
    if not isinstance(value, dict):
        raise InvalidRequest(f"{what} must be a JSON object of parameter names to values")
    return value


def check_arguments(tool: str, schema: dict[str, Any], arguments: dict[str, Any]) -> None:
    """`InvalidRequest` naming every way `arguments` do not fit the tool's input schema."""
    properties = schema.get("properties") or {}
    unknown = sorted(set(arguments) - set(properties)) if properties else []
    if unknown:
        raise InvalidRequest(
            f"{tool} has no parameter {', '.join(unknown)}; its parameters are: {', '.join(properties)}"
        )
    try:
        validator = Draft202012Validator(schema)
        problems = sorted(validator.iter_errors(arguments), key=lambda e: list(e.absolute_path))
    except SchemaError:  # a tool whose schema is broken is judged by the tool host when it runs
        return
    if problems:
        said = "; ".join(
            f"{'.'.join(str(p) for p in problem.absolute_path) or 'arguments'}: {problem.message}"
            for problem in problems[:5]
        )
        raise InvalidRequest(f"the arguments do not fit {tool}: {said}")


def run_id_for(idempotency_key: str) -> str:
    """The run id a request sent under `idempotency_key` gets: the same for every copy of it, and not
    one a random run id could take (those are uuid4 hex; this one has a prefix)."""
    return "k" + hashlib.sha256(idempotency_key.encode()).hexdigest()[:31]
