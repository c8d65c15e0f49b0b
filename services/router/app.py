"""The router's work on a ranked step: one proposed tool call (or a request for clarification)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from typing import Any

from services.router import core
from switchboard.metrics import FAILURE_MODES, STEP_OUTCOMES, FailureMode, start_failure_modes, timed_call
from switchboard.reading import read_step
from switchboard.v1 import switchboard_pb2 as pb

STAGE = "router"

# What the router catches a model doing, with a model to catch (an empty reply is LocalModel's own).
CAUGHT_WITH_A_MODEL = (
    FailureMode.MALFORMED_CALL,
    FailureMode.INVENTED_ARGUMENT,
    FailureMode.UNKNOWN_TOOL_RESOLVED,
    FailureMode.UNKNOWN_TOOL_UNRESOLVED,
)

log = logging.getLogger(__name__)


def candidate_tools(candidates: Sequence[pb.Candidate]) -> list[core.CandidateTool]:
    tools = []
    for c in candidates:
        try:
            schema = json.loads(c.input_schema_json) if c.input_schema_json else {}
        except json.JSONDecodeError:
            schema = {}
        tools.append(core.CandidateTool(c.tool, c.description, c.score, schema))
    return tools


def decode_inputs(raw: str) -> dict[str, Any]:
    """The values a step carries over from earlier results (`inputs_json`), as a JSON object.

    Empty means none. A malformed value is logged and ignored rather than failing the step: the inputs
    only fill what the words leave open, and routing on the words alone is still a sound decision.
    """
    if not raw.strip():
        return {}
    try:
        decoded = json.loads(raw)
    except json.JSONDecodeError as exc:
        log.warning("ignoring inputs_json that is not JSON: %s", exc)
        return {}
    if not isinstance(decoded, dict):
        log.warning("ignoring inputs_json that is a %s, not an object", type(decoded).__name__)
        return {}
    return decoded


def schema_grammar(schema: dict[str, Any]) -> str:
    """GBNF that only admits JSON matching `schema` (llama.cpp's own converter)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(json.dumps(schema))


class ToolRouter:
    def __init__(
        self,
        model: core.ChoiceModel | None,
        fusion: bool = True,
        model_choice: bool = True,
        span_copy: bool = True,
    ) -> None:
        self.model = model
        start_failure_modes(STAGE, [FailureMode.DEFLECTION])
        if model is not None:
            start_failure_modes(STAGE, CAUGHT_WITH_A_MODEL)
        self.fusion = fusion
        self.model_choice = model_choice
        self.span_copy = span_copy

    async def route(
        self,
        text: str,
        candidates: Sequence[pb.Candidate],
        context: str = "",
        inputs_json: str = "",
        reading_json: str = "",
    ) -> pb.ToolCall:
        """The tool call for one step; `inputs_json` holds values carried over from earlier results,
        `reading_json` the planner's reading of the words (read anew when empty or not of `text`)."""

        def decide() -> core.RouteDecision:
            # Reading the words (dates, the first time, load their language data) and the model both
            # block: off the event loop.
            return core.route(
                text,
                candidate_tools(candidates),
                self.model,
                schema_grammar,
                context,
                self.fusion,
                decode_inputs(inputs_json),
                self.model_choice,
                read_step(text, reading_json),
                self.span_copy,
            )

        start = time.perf_counter()
        decision = await timed_call(STAGE, decide)
        for mode in decision.caught:
            FAILURE_MODES.labels(stage=STAGE, mode=mode).inc()
        if decision.needs_clarification:
            # FM-3, asking the person back instead of acting: here never the model's free choice (the
            # grammar gives it none) but the router's own, for a value the words do not hold. Counted so
            # that a rise in ask-backs shows beside the other modes.
            FAILURE_MODES.labels(stage=STAGE, mode=FailureMode.DEFLECTION).inc()
        outcome = pb.ROUTE_OUTCOME_NEEDS_CLARIFICATION if decision.needs_clarification else pb.ROUTE_OUTCOME_ROUTED
        STEP_OUTCOMES.labels(
            stage=STAGE, outcome=pb.RouteOutcome.Name(outcome).removeprefix("ROUTE_OUTCOME_").lower()
        ).inc()
        return pb.ToolCall(
            tool=decision.tool,
            arguments_json=json.dumps(decision.arguments),
            outcome=outcome,
            reason=decision.reason,
            confidence=decision.confidence,
            # What was considered, by name and score: the caller has the descriptions and schemas.
            candidates=[
                pb.Candidate(tool=c.tool, server=c.server, score=c.score, similarity=c.similarity) for c in candidates
            ],
            missing=list(decision.missing),
            compute_ms=(time.perf_counter() - start) * 1000,
        )
