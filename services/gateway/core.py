"""The gateway's own rules for what it accepts at the edge."""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError

from services.gateway.limits import DEFAULT_MAX_JSON_DEPTH, json_depth_exceeds
from switchboard.errors import InvalidRequest

# The longest request the API accepts, in characters.
MAX_TEXT_CHARS = 4000


def json_object(raw: str, what: str) -> dict[str, Any]:
    """`raw` as a JSON object nesting at most as deep as the HTTP API allows, or `InvalidRequest`
    saying what `what` should have been (the gRPC API takes JSON inside its messages)."""
    if json_depth_exceeds(raw, DEFAULT_MAX_JSON_DEPTH):
        raise InvalidRequest(f"{what} nest deeper than {DEFAULT_MAX_JSON_DEPTH} levels")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
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
