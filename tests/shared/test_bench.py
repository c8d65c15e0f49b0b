"""The scoring rules of `sb bench` (pure functions)."""

import pytest

from switchboard.bench import edge_passed, longest_in_order, observed_behaviour, percentile, rate


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
