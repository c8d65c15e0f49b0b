"""What a stage publishes when it gives up on a message, so no run waits forever on it."""

from __future__ import annotations

from collections.abc import Sequence

from switchboard import keys
from switchboard.envelope import Envelope, step_key
from switchboard.streams import Emit, FailureHandler, emit
from switchboard.v1 import switchboard_pb2 as pb

# How the error of a call the gateway would not run again begins (the same tool with the same
# arguments as an earlier step, nothing changed since). The planner does not retry such a step.
REPEATED_CALL = "repeated call"
# The failure mode counted when the filter finds no tool close enough to a step to route it.
NO_TOOL_FITS = "no_tool_fits"


def fail_step(stage: str) -> FailureHandler:
    """A failure handler that reports the step as FAILED, which lets the planner end the run."""

    async def handle(envelope: Envelope, exc: BaseException) -> Sequence[Emit]:
        result = pb.StepResult(
            run_id=envelope.run_id,
            step=envelope.step,
            status=pb.STEP_STATUS_FAILED,
            error=f"the {stage} could not process this step after repeated attempts ({type(exc).__name__}: {exc})",
        )
        key = step_key(envelope.run_id, envelope.step, f"{stage}-failed")
        return [emit(keys.RESULTS, envelope.run_id, envelope.step, key, result.SerializeToString())]

    return handle


def fail_run(stage: str) -> FailureHandler:
    """A failure handler that ends the whole run as FAILED, saying which stage gave up and why."""

    async def handle(envelope: Envelope, exc: BaseException) -> Sequence[Emit]:
        finished = pb.RunFinished(
            run_id=envelope.run_id,
            status=pb.RUN_STATUS_FAILED,
            answer=f"The {stage} could not continue this request ({type(exc).__name__}: {exc}).",
        )
        key = f"{envelope.run_id}:finished"
        return [emit(keys.FINISHED, envelope.run_id, 0, key, finished.SerializeToString())]

    return handle
