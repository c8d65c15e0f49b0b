from switchboard import keys
from switchboard.envelope import Envelope
from switchboard.failures import fail_step
from switchboard.v1 import switchboard_pb2 as pb

ENVELOPE = Envelope("run7", 2, "run7:2:filter", "", b"")


async def test_fail_step_reports_a_failed_result_for_the_planner() -> None:
    [out] = await fail_step("router")(ENVELOPE, RuntimeError("model crashed"))
    assert out.stream == keys.RESULTS
    result = pb.StepResult.FromString(out.envelope.body)
    assert (result.run_id, result.step, result.status) == ("run7", 2, pb.STEP_STATUS_FAILED)
    assert "router" in result.error and "model crashed" in result.error
    assert result.failure == pb.FAILURE_MODE_STAGE_GAVE_UP
