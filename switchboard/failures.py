"""What a stage publishes when it gives up on a message, so no run waits forever on it."""

from __future__ import annotations

from collections.abc import Sequence

from switchboard import keys
from switchboard.envelope import Envelope, step_key
from switchboard.streams import Emit, FailureHandler, emit
from switchboard.v1 import switchboard_pb2 as pb

# How the error of a call the gateway would not run again begins (the same tool with the same
# arguments as an earlier step, nothing changed since); such a step's result says REPEATED_CALL.
REPEATED_CALL = "repeated call"


def fail_step(stage: str) -> FailureHandler:
    """A failure handler that reports the step as FAILED, which lets the planner end the run."""

    async def handle(envelope: Envelope, exc: BaseException) -> Sequence[Emit]:
        result = pb.StepResult(
            run_id=envelope.run_id,
            step=envelope.step,
            status=pb.STEP_STATUS_FAILED,
            failure=pb.FAILURE_MODE_STAGE_GAVE_UP,
            error=f"the {stage} could not process this step after repeated attempts ({type(exc).__name__}: {exc})",
        )
        key = step_key(envelope.run_id, envelope.step, f"{stage}-failed")
        return [emit(keys.RESULTS, envelope.run_id, envelope.step, key, result.SerializeToString())]

    return handle
