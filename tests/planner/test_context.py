from services.planner.context import (
    SessionMemory,
    TurnMemory,
    clip_to_tokens,
    common_folder,
    estimate_tokens,
    fit_lines,
    lines_left_out,
    listed_paths,
    mentioned_paths,
    result_text,
)


def test_tokens_are_estimated_by_kind_of_text() -> None:
    assert estimate_tokens("a" * 35) == 10  # prose: 3.5 characters a token
    assert estimate_tokens("[" + "a" * 27) == 10  # JSON: 2.8
    clipped = clip_to_tokens("word " * 200, 20)
    assert estimate_tokens(clipped) <= 21 and clipped.endswith("…")


def test_lines_are_kept_in_order_of_importance_within_the_budget() -> None:
    assert fit_lines(["first", "second", "x" * 400], 10) == "first\nsecond"
    assert fit_lines(["y" * 400], 10).endswith("…")  # the most important line is cut, never dropped


def test_what_results_name_and_say() -> None:
    found = {"path": "/d", "matches": [{"name": "a.pdf", "path": "/d/a.pdf"}, {"name": "b", "path": "/d/b"}]}
    assert listed_paths(found) == ["/d/a.pdf", "/d/b"]
    assert listed_paths({"text": "no list"}) == []
    assert mentioned_paths({"path": "/d/a", "undo": [{"path": "/trash/1"}], "new_path": "/d/b"}) == ["/d/a", "/d/b"]
    assert result_text({"path": "/d/a", "text": "Hello."}) == "Hello."
    assert result_text([{"task": "Call Bob"}, {"task": "Pay rent"}]) == "- Call Bob\n- Pay rent"


def test_the_folder_a_request_is_about() -> None:
    assert common_folder(["/w/papers"]) == "/w/papers"
    assert common_folder(["/w/a.pdf", "/w/b.pdf"]) == "/w"
    assert common_folder(["~/d", "/x"]) == "" and common_folder([]) == ""


def test_a_session_folds_its_oldest_turns_into_a_summary_when_over_budget() -> None:
    memory = SessionMemory()
    for i in range(30):
        memory.remember(TurnMemory(f"request number {i} " * 3, "answered", [], [f"/d/f{i}.txt"], "gist"), budget=300)
    assert memory.tokens() <= 300 + 120  # the latest turn is always kept whole
    assert memory.turns[-1].text.startswith("request number 29")
    assert "request number" in memory.summary and len(memory.turns) < 30
    assert memory.subjects()[0] == "/d/f29.txt"
    again = SessionMemory.from_json(memory.to_json())
    assert again == memory
    assert "Earlier in this session" in again.context_lines()[-1]


def test_remembering_says_how_many_turns_were_folded() -> None:
    memory = SessionMemory()
    turn = TurnMemory("request " * 20, "answered", [], [], "gist")
    assert memory.remember(turn, budget=40) == 0  # the latest turn is always kept whole
    assert memory.remember(turn, budget=40) == 1
    assert memory.remember(turn, budget=100_000) == 0


def test_lines_left_out_are_those_fit_lines_drops() -> None:
    lines = ["a" * 35, "b" * 35, "c" * 35]  # 10 tokens each, 11 with the line break
    assert fit_lines(lines, 22) == "\n".join(lines[:2]) and lines_left_out(lines, 22) == 1
    assert lines_left_out(lines, 1000) == 0 and lines_left_out([], 5) == 0
    assert lines_left_out(["a" * 3500], 5) == 0  # a first line too long is cut, not left out
