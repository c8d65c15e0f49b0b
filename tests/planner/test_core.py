from services.planner.core import (
    Finish,
    PlannedStep,
    RunOutcome,
    StepOutcome,
    StepState,
    next_step,
    plan_turn,
    summarise_content,
)


def test_one_step_per_request_with_the_guessed_server() -> None:
    assert plan_turn("  list   my files ", lambda text: "filesystem") == [PlannedStep(1, "list my files", "filesystem")]


def test_empty_request_has_no_steps_and_asks_for_more() -> None:
    assert plan_turn("   ") == []
    finish = next_step([], {})
    assert isinstance(finish, Finish) and finish.outcome is RunOutcome.NEEDS_CLARIFICATION


def test_next_step_waits_for_results_in_order() -> None:
    plan = [PlannedStep(1, "a"), PlannedStep(2, "b")]
    assert next_step(plan, {}) == plan[0]
    done = {1: StepOutcome(1, "t.a", StepState.SUCCEEDED, content={"ok": True})}
    assert next_step(plan, done) == plan[1]


def test_answer_lists_the_real_names_found() -> None:
    content = {"entries": [{"name": "a.txt"}, {"name": "b.txt"}], "truncated": False}
    finish = next_step(
        [PlannedStep(1, "list")],
        {1: StepOutcome(1, "filesystem.list_dir", StepState.SUCCEEDED, {"path": "/d"}, content)},
    )
    assert isinstance(finish, Finish)
    assert finish.outcome is RunOutcome.ANSWERED
    assert "a.txt" in finish.answer and "b.txt" in finish.answer
    assert 'filesystem.list_dir(path="/d")' in finish.answer


def test_a_failed_step_ends_the_run_as_failed_and_says_why() -> None:
    plan = [PlannedStep(1, "a"), PlannedStep(2, "b")]
    finish = next_step(plan, {1: StepOutcome(1, "t.a", StepState.FAILED, error="no such file")})
    assert isinstance(finish, Finish) and finish.outcome is RunOutcome.FAILED
    assert "no such file" in finish.answer and "Step 2 (b) did not run." in finish.answer


def test_rejected_and_dry_run_steps_are_reported_plainly() -> None:
    rejected = next_step([PlannedStep(1, "a")], {1: StepOutcome(1, "t.a", StepState.REJECTED, error="no")})
    assert isinstance(rejected, Finish) and rejected.outcome is RunOutcome.REFUSED
    dry = next_step([PlannedStep(1, "a")], {1: StepOutcome(1, "t.a", StepState.SKIPPED)})
    assert isinstance(dry, Finish) and dry.outcome is RunOutcome.ANSWERED and "nothing was executed" in dry.answer


def test_summaries_are_bounded() -> None:
    many = [{"name": f"f{i}"} for i in range(80)]
    assert summarise_content(many).endswith("and 30 more.")
    assert len(summarise_content({"blob": "x" * 5000})) <= 600
