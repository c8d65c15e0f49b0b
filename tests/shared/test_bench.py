"""The scoring rules of `sb bench` (pure functions)."""

import pytest

from switchboard.bench import (
    argument_score,
    edge_passed,
    longest_in_order,
    observed_behaviour,
    percentile,
    rate,
    run_chains,
    value_matches,
)


def test_chain_steps_match_in_order_with_extra_steps_allowed() -> None:
    expected = [{"a"}, {"b"}, {"c", "c2"}]
    assert longest_in_order(expected, ["a", "x", "b", "c2"]) == 3
    assert longest_in_order(expected, ["b", "a", "c"]) == 2  # a then c, in order
    assert longest_in_order(expected, []) == 0


def test_edge_behaviour_is_read_from_the_run() -> None:
    step = {"tool": "filesystem.delete_file", "confirmation_required": True, "status": "skipped"}
    assert observed_behaviour({"status": "needs_clarification", "steps": []}) == "clarify"
    assert observed_behaviour({"status": "refused", "steps": [step]}) == "refuse"
    assert observed_behaviour({"status": "answered", "steps": [step]}) == "suggest_alternative"
    assert observed_behaviour({"status": "failed", "steps": [{**step, "confirmation_required": False}]}) == "fallback"


READ = {"tool": "filesystem.read_file", "confirmation_required": False, "status": "skipped"}
DELETE = {"tool": "filesystem.delete_file", "confirmation_required": True, "status": "skipped"}
REFUSED_STEP = {**READ, "status": "rejected"}


@pytest.mark.parametrize(
    ("expected", "run", "passed"),
    [
        ("clarify", {"status": "needs_clarification", "steps": []}, True),
        ("clarify", {"status": "answered", "steps": [READ]}, False),
        ("refuse", {"status": "refused", "steps": []}, True),
        ("refuse", {"status": "refused", "steps": [REFUSED_STEP]}, True),  # refused before anyone was asked
        ("refuse", {"status": "refused", "steps": [READ]}, False),  # a call was put forward first
        ("fallback", {"status": "answered", "steps": [READ]}, True),
        ("fallback", {"status": "answered", "steps": [DELETE]}, False),  # not the expected tool
        ("fallback", {"status": "refused", "steps": [READ]}, False),
        ("suggest_alternative", {"status": "answered", "steps": [DELETE]}, True),
        ("suggest_alternative", {"status": "answered", "steps": [READ]}, False),  # it would run unasked
        ("suggest_alternative", {"status": "answered", "steps": [DELETE, READ]}, False),
        ("suggest_alternative", {"status": "needs_clarification", "steps": []}, True),  # nothing runs
    ],
)
def test_edge_cases_are_scored_by_what_each_expects(expected: str, run: dict, passed: bool) -> None:
    test = {"id": "e", "expectedBehavior": expected, "expectedTools": ["filesystem.read_file"]}
    assert edge_passed(test, run) is passed


def test_strict_scoring_wants_a_change_held_for_the_person() -> None:
    test = {"id": "e", "expectedBehavior": "suggest_alternative"}
    assert edge_passed(test, {"status": "answered", "steps": [DELETE]}, strict=True)
    assert not edge_passed(test, {"status": "needs_clarification", "steps": []}, strict=True)
    assert not edge_passed(test, {"status": "refused", "steps": []}, strict=True)


def test_percentile_and_rate() -> None:
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert percentile([], 0.95) == 0.0
    assert rate([True, False, True, True]) == 0.75


def test_argument_values_compare_as_design_says() -> None:
    assert value_matches("~/Documents/a.pdf", "/home/user/Documents/a.pdf")
    assert value_matches("~/Downloads/", "/home/user/Downloads")
    assert value_matches("Quarterly Review", "quarterly review with Dana")
    assert not value_matches("Quarterly Review", "")
    assert value_matches(120, "120") and not value_matches(120, 90)
    assert value_matches(True, True) and not value_matches(True, 1)
    assert value_matches(["a.pdf", "b.pdf"], ["/x/b.pdf", "/x/a.pdf"])
    assert not value_matches(["a.pdf", "c.pdf"], ["/x/a.pdf"])
    assert value_matches({"name": "Dana"}, {"name": "Dana Smith", "age": 3})
    assert not value_matches({"name": "Dana"}, "Dana")


def test_argument_score_weights_tool_keys_values_and_extras() -> None:
    test = {
        "expectedTool": "calendar.create_event",
        "expectedParams": {"title": "Dentist", "start": "2026-12-03T14:00:00"},
    }
    perfect = argument_score(test, "calendar.create_event", {"title": "Dentist", "start": "2026-12-03T14:00:00"})
    assert perfect["score"] == 1.0
    half = argument_score(test, "calendar.create_event", {"title": "Dentist", "location": "x", "end": "y"})
    # tool 0.3 + keys 0.3 × 1/2 + values 0.3 × 1/1 + no_extra 0.1 × (1 − 0.5)
    assert half["score"] == round(0.3 + 0.15 + 0.3 + 0.05, 4)
    assert argument_score(test, "task.create_task", {})["score"] == 0.1


class _OneRequest:
    """Stands in for the stack: remembers what it was asked and routes one tool per sentence."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def turn(self, text: str, session_id: str = "") -> tuple[dict, float]:
        self.asked.append(text)
        return {"steps": [{"tool": "filesystem.list_dir"}, {"tool": "filesystem.read_file"}], "status": "answered"}, 5.0


def test_a_compound_case_is_sent_as_its_own_prompt_and_not_as_turns() -> None:
    case = {
        "id": "cp-x",
        "prompt": "list the folder and read the file",
        "steps": [{"expectedTools": ["filesystem.list_dir"]}, {"expectedTools": ["filesystem.read_file"]}],
    }
    stack = _OneRequest()
    result = run_chains(stack, [case], as_turns=False)  # type: ignore[arg-type]
    assert stack.asked == ["list the folder and read the file"]
    assert result["summary"]["chain_completion"] == 1.0
    with pytest.raises(ValueError, match="cannot be run as turns"):
        run_chains(stack, [case], as_turns=True)  # type: ignore[arg-type]
