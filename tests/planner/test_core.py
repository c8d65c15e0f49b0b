from dataclasses import replace

from services.planner.answer import compose, settled_lines
from services.planner.context import SessionMemory, TurnMemory
from services.planner.core import (
    advance,
    context_left_out,
    finish,
    guess_server,
    parse_model_plan,
    plan_grammar,
    plan_request,
    record,
    start_run,
    summarise_content,
    vocabulary,
)
from services.planner.state import Done, PlannedStep, RunOutcome, RunState, StepOrder, StepOutcome, StepState

SEARCH = "filesystem.search_files"
EXTRACT = "document.extract_text"
WRITE = "filesystem.write_file"
MUTATING = {WRITE, "filesystem.delete_file"}


def run_of(*intents: str, for_each: tuple[int, ...] = (), dry_run: bool = False) -> RunState:
    plan = [PlannedStep(i, text, for_each=i in for_each) for i, text in enumerate(intents, start=1)]
    return start_run(" and ".join(intents), "s1", dry_run, plan, SessionMemory())


def step(state: RunState) -> StepOrder:
    action = advance(state)
    assert isinstance(action, StepOrder), action
    return action


def done(state: RunState) -> Done:
    action = advance(state)
    assert isinstance(action, Done), action
    return action


def succeed(state: RunState, order: StepOrder, tool: str, content: object, **arguments: object) -> None:
    record(state, StepOutcome(order.number, tool, StepState.SUCCEEDED, dict(arguments), content))


def test_empty_request_needs_clarification() -> None:
    assert plan_request("   ") == []
    state = start_run("", "s", False, [], SessionMemory())
    result = done(state)
    assert result.outcome is RunOutcome.NEEDS_CLARIFICATION
    assert "empty" in compose(state, result, MUTATING).answer


def test_next_step_only_when_the_previous_result_is_in() -> None:
    state = run_of("list ~/a", "read ~/a/x.txt")
    first = step(state)
    assert first.number == 1
    assert advance(state) is None  # waiting for step 1
    succeed(state, first, "filesystem.list_dir", {"entries": []}, path="~/a")
    second = step(state)
    assert second.number == 2 and "Step 1 (list ~/a)" in second.context and "filesystem" not in second.context


def test_a_step_for_each_item_expands_into_one_step_per_found_path() -> None:
    state = run_of("find the PDFs in ~/d", "extract the text of each", "save a summary to notes.md", for_each=(2,))
    search = step(state)
    found = {"matches": [{"name": "a.pdf", "path": "/d/a.pdf"}, {"name": "b.pdf", "path": "/d/b.pdf"}]}
    succeed(state, search, SEARCH, found, path="~/d", pattern="*.pdf")
    per_item = []
    for path in ("/d/a.pdf", "/d/b.pdf"):
        order = step(state)
        assert order.item == path and order.inputs["paths"][0] == path
        assert order.context.startswith(f"This step is about {path}")
        succeed(state, order, EXTRACT, {"path": path, "text": f"Text of {path}. More words."}, path=path)
        per_item.append(order)
    save = step(state)
    assert save.number == 4
    assert "Text of /d/a.pdf" in save.inputs["text"] and "Text of /d/b.pdf" in save.inputs["text"]
    assert save.inputs["base_dir"] == "~/d"


def test_for_each_over_an_empty_result_is_skipped_and_said() -> None:
    state = run_of("find the PDFs in ~/d", "extract the text of each", for_each=(2,))
    succeed(state, step(state), SEARCH, {"matches": []}, path="~/d")
    result = done(state)
    assert result.outcome is RunOutcome.ANSWERED
    assert "found nothing to apply it to" in compose(state, result, MUTATING).answer


def test_a_failed_step_is_retried_once_with_the_correction_then_the_run_fails() -> None:
    state = run_of("read ~/notes/todo.md")
    first = step(state)
    error = "'~/notes/todo.md' does not exist. Did you mean '~/notes/todo.txt'?"
    correction = {"parameter": "path", "problem": "does not exist", "suggested_value": "~/notes/todo.txt"}
    failed = StepOutcome(1, "filesystem.read_file", StepState.FAILED, {"path": "~/notes/todo.md"}, None, error)
    record(state, replace(failed, failure="tool_error", correction=correction))
    retry = step(state)
    assert retry.attempt == 2 and retry.plan_number == first.plan_number
    assert retry.intent == "read ~/notes/todo.txt"
    assert retry.inputs["paths"][0] == "~/notes/todo.txt" and "Correction" in retry.context
    record(state, StepOutcome(2, "filesystem.read_file", StepState.FAILED, {"path": "~/notes/todo.txt"}, None, "gone"))
    result = done(state)
    assert result.outcome is RunOutcome.FAILED
    answer = compose(state, result, MUTATING).answer
    assert "gone" in answer and "retry" in answer


def test_an_argument_the_tool_host_asks_for_is_added_on_retry() -> None:
    state = run_of("write hi to ~/new/a.txt")
    step(state)
    error = "Folder ~/new does not exist. Call again with create_dirs true."
    correction = {"parameter": "create_dirs", "problem": "the folder does not exist", "suggested_value": True}
    failed = StepOutcome(1, WRITE, StepState.FAILED, {"path": "~/new/a.txt", "content": "hi"}, None, error)
    record(state, replace(failed, correction=correction))
    assert step(state).inputs["arguments"] == {"path": "~/new/a.txt", "content": "hi", "create_dirs": True}


def test_a_failure_without_a_structured_correction_is_retried_on_its_words_alone() -> None:
    state = run_of("read ~/a.txt")
    step(state)
    # The same words as a correction, but nothing structured: no value is guessed from the prose.
    error = "'~/a.txt' does not exist. Did you mean '~/b.txt'?"
    record(state, StepOutcome(1, "filesystem.read_file", StepState.FAILED, {"path": "~/a.txt"}, None, error))
    retry = step(state)
    assert retry.intent == "read ~/a.txt" and "paths" not in retry.inputs and error in retry.context


def test_an_intercepted_repeat_is_not_retried() -> None:
    state = run_of("read ~/a.txt")
    step(state)
    repeated = "repeated call: step 1 already called filesystem.read_file with the same arguments"
    failed = StepOutcome(1, "filesystem.read_file", StepState.FAILED, {"path": "~/a.txt"}, None, repeated)
    record(state, replace(failed, failure="repeated_call"))
    assert done(state).outcome is RunOutcome.FAILED


def test_rejection_and_clarification_end_the_run_and_say_what_was_not_run() -> None:
    state = run_of("delete ~/a.txt", "list ~")
    step(state)
    record(state, StepOutcome(1, "filesystem.delete_file", StepState.REJECTED, {"path": "~/a.txt"}, None, "keep it"))
    result = done(state)
    assert result.outcome is RunOutcome.REFUSED
    answer = compose(state, result, MUTATING).answer
    assert "keep it" in answer and "Not run" in answer and "list ~" in answer

    vague = run_of("convert it")
    step(vague)
    record(vague, StepOutcome(1, "document.convert_format", StepState.NEEDS_CLARIFICATION, error="needs path"))
    assert done(vague).outcome is RunOutcome.NEEDS_CLARIFICATION


def test_a_dry_run_goes_past_a_step_that_needs_more_and_ends_needing_it() -> None:
    state = run_of("create a task", "list ~/a", dry_run=True)
    step(state)
    record(state, StepOutcome(1, "task.create_task", StepState.NEEDS_CLARIFICATION, error="needs title"))
    order = step(state)
    record(state, StepOutcome(order.number, "filesystem.list_dir", StepState.SKIPPED, {"path": "~/a"}))
    result = done(state)
    assert result.outcome is RunOutcome.NEEDS_CLARIFICATION
    assert "needs title" in compose(state, result, MUTATING).answer


def test_the_step_limit_ends_the_run_and_says_how_much_was_left() -> None:
    state = run_of("find the files in ~/d", "read each", for_each=(2,))
    found = {"matches": [{"name": f"{i}.txt", "path": f"/d/{i}.txt"} for i in range(20)]}
    succeed(state, step(state), SEARCH, found, path="~/d")
    for _ in range(3):
        order = step(state)
        succeed(state, order, "filesystem.read_file", {"path": order.item, "content": "x"}, path=order.item)
    action = advance(state, max_steps=4)
    assert isinstance(action, Done) and action.cut_short == 17
    assert any("Stopped after 4 steps" in note and "17 more" in note for note in state.notes)


def test_a_run_that_ends_within_the_limit_is_not_cut_short() -> None:
    state = run_of("list ~/a")
    succeed(state, step(state), "filesystem.list_dir", {"entries": []}, path="~/a")
    done = advance(state, max_steps=4)
    assert isinstance(done, Done) and done.cut_short == 0


def test_earlier_work_left_out_of_a_steps_context_is_counted() -> None:
    state = run_of("list ~/a", "list ~/b")
    first = step(state)
    succeed(state, first, "filesystem.list_dir", {"entries": [{"name": "x" * 3000}]}, path="~/a")
    state.history = SessionMemory([TurnMemory("an earlier request " * 40, "answered", [], [], "gist " * 40)])
    second = step(state)
    assert context_left_out(state, second) >= 1
    assert context_left_out(state, replace(second, attempt=2)) == 0  # a retry's context is its correction


def test_dry_run_steps_continue_and_the_answer_says_nothing_ran() -> None:
    state = run_of("list ~/a", "delete ~/a/x", dry_run=True)
    for tool in ("filesystem.list_dir", "filesystem.delete_file"):
        order = step(state)
        record(state, StepOutcome(order.number, tool, StepState.SKIPPED, {"path": "~/a"}))
    result = done(state)
    answer = compose(state, result, MUTATING).answer
    assert result.outcome is RunOutcome.ANSWERED and "nothing was executed" in answer and "Dry run" in answer


def test_a_change_is_reported_only_when_its_result_confirms_it() -> None:
    state = run_of("write ~/a.txt", "write ~/b.txt")
    succeed(
        state, step(state), WRITE, {"success": True, "path": "/w/a.txt", "undo": [{"kind": "remove"}]}, path="~/a.txt"
    )
    succeed(state, step(state), WRITE, {"note": "nothing"}, path="~/b.txt")
    lines = settled_lines(state, MUTATING)
    assert "done (changed)" in lines[0]
    assert "cannot say it did" in lines[1] and "done (changed)" not in lines[1]


def test_quoted_tool_text_is_marked_as_quoted() -> None:
    state = run_of("read ~/a.txt")
    text = "I deleted /etc/passwd and wrote everything to the server. " * 3
    succeed(state, step(state), "filesystem.read_file", {"path": "/w/a.txt", "content": text}, path="~/a.txt")
    line = settled_lines(state, MUTATING)[0]
    assert "done (read)" in line and "“I deleted /etc/passwd" in line


def test_finish_judges_by_the_records() -> None:
    state = run_of("a", "b")
    assert finish(state).outcome is RunOutcome.ANSWERED
    order = step(state)
    record(state, StepOutcome(order.number, "t.a", StepState.FAILED, error="x"))
    assert finish(state).outcome is RunOutcome.FAILED


def test_session_history_gives_a_first_step_its_subject() -> None:
    history = SessionMemory()
    history.remember(
        TurnMemory("find tax pdf", "answered", ["filesystem.search_files(...)"], ["/d/tax.pdf"], "1 found")
    )
    state = start_run("now encrypt it", "s1", False, [PlannedStep(1, "now encrypt it")], history)
    order = step(state)
    assert order.inputs["paths"] == ["/d/tax.pdf"] and "find tax pdf" in order.context


def test_state_survives_a_round_trip_through_json() -> None:
    state = run_of("find the PDFs in ~/d", "extract the text of each", for_each=(2,))
    succeed(state, step(state), SEARCH, {"matches": [{"name": "a.pdf", "path": "/d/a.pdf"}]}, path="~/d")
    step(state)
    again = RunState.from_dict(state.to_dict())
    assert again == state


def test_model_plan_grammar_admits_only_known_servers_and_the_request_words() -> None:
    grammar = plan_grammar("find the PDFs, then merge them", ["filesystem", "document"], 3)
    assert '"filesystem"' in grammar and '"merge"' in grammar and '"PDFs"' in grammar and "{0,2}" in grammar
    assert parse_model_plan("filesystem: find the PDFs\nnope: x\ndocument: merge them", ["filesystem", "document"]) == [
        ("filesystem", "find the PDFs"),
        ("document", "merge them"),
    ]


def test_the_splitter_wins_when_the_model_under_decomposes() -> None:
    text = "Find the PDFs in ~/d, extract the text of each, and save a summary to ~/d/notes.md"
    steps = plan_request(text, model_plan=lambda t: [("filesystem", "Find the PDFs")])
    assert len(steps) == 3 and steps[1].for_each
    assert steps[0].server == "filesystem"


def test_a_model_plan_with_more_real_steps_is_kept() -> None:
    verbs = {"list", "read"}
    steps = plan_request("list ~/a read ~/a/x", verbs, model_plan=lambda t: [("fs", "list ~/a"), ("fs", "read ~/a/x")])
    assert [s.intent for s in steps] == ["list ~/a", "read ~/a/x"]
    # A model that repeats itself is not believed.
    steps = plan_request("list ~/a read ~/a/x", verbs, model_plan=lambda t: [("fs", "list ~/a"), ("fs", "list ~/a")])
    assert len(steps) == 1


def test_servers_are_guessed_from_the_tools_vocabulary() -> None:
    words, verbs = vocabulary(
        [("filesystem", "delete_file", "Delete a file"), ("meeting", "transcribe_audio", "Transcribe a recording")]
    )
    assert verbs == {"delete", "transcribe"}
    assert guess_server("transcribe the standup recording", words) == "meeting"
    assert guess_server("zzz", words) == ""


def test_summaries_are_bounded() -> None:
    many = [{"name": f"f{i}"} for i in range(80)]
    assert summarise_content(many).endswith("and 30 more.")
    assert len(summarise_content({"blob": "x" * 5000})) <= 600


def test_a_plan_longer_than_the_limit_runs_to_the_limit_and_says_what_was_left() -> None:
    state = run_of("list ~/a", "list ~/b", "list ~/c")
    for _ in range(2):
        order = step(state)
        succeed(state, order, "filesystem.list_dir", {"entries": []}, path="~/x")
    assert isinstance(advance(state, max_steps=2), Done)
    assert any("Stopped after 2 steps" in note and "1 more" in note for note in state.notes)
