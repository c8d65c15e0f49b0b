"""The router's decisions with a scripted stand-in for the model (pure logic only)."""

from __future__ import annotations

import json

from services.router.core import CandidateTool, fill_arguments, named_by_the_words, route

LIST = CandidateTool(
    "filesystem.list_dir",
    "List what a folder contains.",
    0.61,
    {"properties": {"path": {"type": "string"}, "recursive": {"type": "boolean"}}, "required": ["path"]},
)
SEARCH = CandidateTool(
    "filesystem.search_files",
    "Find files by name pattern.",
    0.55,
    {"properties": {"path": {"type": "string"}, "pattern": {"type": "string"}}, "required": ["path", "pattern"]},
)
OTHERS = [CandidateTool(f"x.t{i}", "other", 0.1 - i / 100) for i in range(4)]


class ScriptedModel:
    """Answers `choose` with a fixed pick and `complete` with fixed JSON; records what it was asked."""

    def __init__(self, pick: str, completion: dict | None = None) -> None:
        self.pick = pick
        self.completion = completion or {}
        self.prompts: list[str] = []

    def choose(self, prompt: str, options: list[str]) -> str:
        self.prompts.append(prompt)
        assert self.pick in options or self.pick == "", "the router must only offer candidates"
        return self.pick

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str:
        return json.dumps(self.completion)


def test_clear_retrieval_winner_is_chosen_without_asking_the_model() -> None:
    model = ScriptedModel("filesystem.search_files")
    decision = route("List the files in /srv/reports", [LIST, SEARCH], model, schema_grammar=lambda s: "")
    assert decision.tool == "filesystem.list_dir" and decision.reason == "retrieval"
    assert decision.arguments == {"path": "/srv/reports"}
    assert model.prompts == []


def test_model_breaks_a_near_tie_among_close_candidates_only() -> None:
    close = CandidateTool("filesystem.read_file", "Read a text file.", LIST.score - 0.01, LIST.input_schema)
    model = ScriptedModel("filesystem.read_file")
    decision = route("show /srv/a.txt", [LIST, close, SEARCH, *OTHERS], model)
    assert decision.tool == "filesystem.read_file"
    assert "filesystem.search_files" not in model.prompts[0]  # 0.06 behind: not offered


def test_missing_required_argument_asks_for_clarification() -> None:
    decision = route("list my files", [LIST], ScriptedModel("filesystem.list_dir"), schema_grammar=None)
    assert decision.needs_clarification
    assert "path" in decision.reason


def test_placeholder_from_the_model_is_not_accepted() -> None:
    model = ScriptedModel("filesystem.search_files", {"pattern": "<pattern>"})
    decision = route("search /srv for it", [SEARCH, LIST], model, schema_grammar=lambda s: "")
    assert decision.needs_clarification
    assert "pattern" in decision.reason


def test_values_come_from_the_words_before_the_model() -> None:
    model = ScriptedModel("filesystem.search_files", {"pattern": "*.txt"})
    decision = route("find all PDFs under /srv", [SEARCH, LIST], model, schema_grammar=lambda s: "")
    assert decision.arguments == {"path": "/srv", "pattern": "*.pdf"}


def test_model_fills_what_the_words_do_not_give() -> None:
    model = ScriptedModel("filesystem.search_files", {"pattern": "report*"})
    decision = route("find the report under /srv", [SEARCH, LIST], model, schema_grammar=lambda s: "")
    assert decision.arguments == {"path": "/srv", "pattern": "report*"}


def test_paths_of_a_referring_step_come_from_the_context() -> None:
    decision = route("now list it", [LIST], None, context="Found /home/ana/taxes")
    assert decision.arguments == {"path": "/home/ana/taxes"}


def test_emails_dates_and_quoted_text_fill_their_parameters() -> None:
    draft = CandidateTool(
        "email.draft_email",
        "Write a draft.",
        0.9,
        {"properties": {"to": {"type": "array"}, "subject": {"type": "string"}}, "required": ["to", "subject"]},
    )
    decision = route('draft a mail to ana@example.org titled "Budget"', [draft], None)
    assert decision.arguments == {"to": ["ana@example.org"], "subject": "Budget"}


def test_no_candidates_means_clarification() -> None:
    decision = route("do the thing", [], ScriptedModel(""))
    assert decision.needs_clarification and decision.tool == ""


def test_without_fusion_the_model_picks_among_the_top_five() -> None:
    model = ScriptedModel("filesystem.search_files")
    decision = route("List the files in /srv/reports", [LIST, SEARCH, *OTHERS], model, fusion=False)
    assert decision.tool == "filesystem.search_files"
    assert "x.t2" in model.prompts[0] and "x.t3" not in model.prompts[0]


def test_a_retry_gets_the_argument_the_tool_host_asked_for_without_losing_the_words() -> None:
    tool = CandidateTool(
        "filesystem.write_file",
        "Write text to a file.",
        0.9,
        {
            "properties": {
                "path": {"type": "string"},
                "content": {"type": "string"},
                "create_dirs": {"type": "boolean"},
            },
            "required": ["path", "content"],
        },
    )
    inputs = {"arguments": {"path": "~/elsewhere.txt", "content": "hi", "create_dirs": True}}
    arguments, missing = fill_arguments("write 'hello' to ~/new/a.txt", tool, None, None, "", inputs)
    assert missing == []
    assert arguments == {"path": "~/new/a.txt", "content": "hello", "create_dirs": True}


def candidate(name: str, score: float, *required: str) -> CandidateTool:
    schema = {"properties": {p: {"type": "string"} for p in required}, "required": list(required)}
    return CandidateTool(name, name, score, schema)


def test_the_requests_own_verb_settles_a_close_call() -> None:
    close = [candidate("document.extract_text", 0.77, "path"), candidate("filesystem.delete_file", 0.68, "path")]
    assert named_by_the_words("Delete the plain ~/Shared/handover.docx", close)[0].name == "filesystem.delete_file"
    # Retrieval's best already carries the verb: no model is needed to break a tie with another verb.
    tied = [candidate("email.draft_email", 0.73, "to"), candidate("email.send_draft", 0.725, "draft_id")]
    assert named_by_the_words("Draft an email to a@b.example", tied)[0].name == "email.draft_email"
    # Loose verbs name no tool; a far runner-up is not picked whatever the verb.
    ocr = [candidate("ocr.extract_text_from_image", 0.745, "path"), candidate("filesystem.read_file", 0.63, "path")]
    assert named_by_the_words("Read the text on ~/p/receipt.jpg", ocr) is None
    far = [candidate("document.extract_text", 0.9, "path"), candidate("filesystem.delete_file", 0.6, "path")]
    assert named_by_the_words("Delete ~/a.docx", far) is None


def test_a_verb_many_candidates_start_with_names_none_of_them() -> None:
    crowded = [
        candidate("task.create_task", 0.70, "title"),
        candidate("filesystem.write_file", 0.69, "path"),
        candidate("calendar.create_event", 0.5, "title"),
        candidate("document.create_pdf", 0.5, "path"),
        candidate("document.create_docx", 0.5, "path"),
    ]
    assert named_by_the_words("Create ~/notes/ideas.md holding the text 'x'", crowded) is None


def test_an_id_in_the_words_picks_the_tool_that_takes_it() -> None:
    close = [candidate("task.create_task", 0.74, "title"), candidate("task.update_task", 0.73, "task_id")]
    assert named_by_the_words("Set task 8 to high priority", close)[0].name == "task.update_task"
    assert named_by_the_words("Add a task to call Bob", close) is None


def test_without_model_choice_the_model_is_not_asked_to_choose() -> None:
    close = CandidateTool("filesystem.read_file", "Read a text file.", LIST.score - 0.01, LIST.input_schema)
    model = ScriptedModel("filesystem.read_file")
    decision = route("show /srv/a.txt", [LIST, close, SEARCH, *OTHERS], model, model_choice=False)
    assert decision.tool == "filesystem.list_dir" and model.prompts == []
