"""The scoring rules of `sb bench` (pure functions)."""

from switchboard.bench import longest_in_order, observed_behaviour, percentile, rate


def test_chain_steps_match_in_order_with_extra_steps_allowed() -> None:
    expected = [{"a"}, {"b"}, {"c", "c2"}]
    assert longest_in_order(expected, ["a", "x", "b", "c2"]) == 3
    assert longest_in_order(expected, ["b", "a", "c"]) == 2  # a then c, in order
    assert longest_in_order(expected, []) == 0


def test_edge_behaviour_is_read_from_the_run() -> None:
    step = {"tool": "filesystem.delete_file", "confirmation_required": True}
    assert observed_behaviour({"status": "needs_clarification", "steps": []}) == "clarify"
    assert observed_behaviour({"status": "refused", "steps": [step]}) == "refuse"
    assert observed_behaviour({"status": "answered", "steps": [step]}) == "suggest_alternative"
    assert observed_behaviour({"status": "failed", "steps": [{**step, "confirmation_required": False}]}) == "fallback"


def test_percentile_and_rate() -> None:
    assert percentile([5.0, 1.0, 3.0], 0.5) == 3.0
    assert percentile([], 0.95) == 0.0
    assert rate([True, False, True, True]) == 0.75
