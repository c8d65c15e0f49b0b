"""How the router fills a tool's arguments: the words first, then the carried-over inputs, then the context,
then the model (pure logic; a scripted stand-in where the model is needed)."""

from __future__ import annotations

import json
from typing import Any

from services.router.core import CandidateTool, StepInputs, fill_arguments, route


def tool(name: str, properties: dict[str, Any], required: list[str] | None = None) -> CandidateTool:
    return CandidateTool(name, "", 0.9, {"properties": properties, "required": required or []})


STRING = {"type": "string"}
OPTIONAL_STRING = {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None}
COPY = tool("filesystem.copy_file", {"source": STRING, "destination": STRING}, ["source", "destination"])
MOVE = tool(
    "filesystem.move_file",
    {"source": STRING, "destination": STRING, "create_dirs": {"type": "boolean", "default": True}},
    ["source", "destination"],
)
WRITE = tool("filesystem.write_file", {"path": STRING, "content": STRING}, ["path", "content"])
READ = tool("filesystem.read_file", {"path": STRING}, ["path"])
DIFF = tool("document.diff_documents", {"path_a": STRING, "path_b": STRING}, ["path_a", "path_b"])
CREATE_PDF = tool("document.create_pdf", {"content": STRING, "output_path": STRING}, ["content", "output_path"])
MERGE = tool(
    "document.merge_pdfs",
    {"paths": {"type": "array", "items": STRING}, "output_path": STRING},
    ["paths", "output_path"],
)
SEARCH = tool(
    "filesystem.search_files",
    {
        "path": STRING,
        "pattern": STRING,
        "type": {"anyOf": [{"enum": ["file", "dir", "symlink"], "type": "string"}, {"type": "null"}]},
        "max_results": {"type": "integer", "minimum": 1, "maximum": 1000},
    },
    ["path", "pattern"],
)
LIST = tool(
    "filesystem.list_dir",
    {"path": STRING, "recursive": {"type": "boolean"}, "filter": {**OPTIONAL_STRING, "description": "Glob on names."}},
    ["path"],
)
SEND = tool("email.send_draft", {"draft_id": STRING}, ["draft_id"])
UPDATE_TASK = tool("task.update_task", {"task_id": {"type": "integer"}, "updates": {"type": "object"}}, ["task_id"])


def fill(candidate: CandidateTool, text: str, context: str = "", inputs: dict[str, Any] | None = None) -> dict:
    arguments, _ = fill_arguments(text, candidate, None, None, context, inputs)
    return arguments


class ScriptedModel:
    """Fills arguments with fixed JSON, like the grammar-constrained model would."""

    def __init__(self, completion: dict[str, Any]) -> None:
        self.completion = completion
        self.asked = 0

    def choose(self, prompt: str, options: list[str]) -> str:
        return options[0]

    def complete(self, prompt: str, grammar: str, *, max_tokens: int = 256) -> str:
        self.asked += 1
        return json.dumps(self.completion)


# --- inputs ---------------------------------------------------------------------------------------


def test_inputs_are_read_leniently() -> None:
    assert StepInputs.from_mapping(None) == StepInputs()
    assert StepInputs.from_mapping({"paths": ["/a", 3, "", "/a", "/b"], "text": "hi", "base_dir": " /x "}) == (
        StepInputs(("/a", "/b"), "hi", "/x")
    )
    assert StepInputs.from_mapping({"paths": "/one", "text": 5, "base_dir": ["/x"]}) == StepInputs(("/one",))


def test_copy_that_to_a_folder_takes_the_source_from_the_inputs() -> None:
    arguments = fill(COPY, "copy that to ~/Desktop", inputs={"paths": ["/home/ana/taxes/2025.pdf"]})
    assert arguments == {"source": "/home/ana/taxes/2025.pdf", "destination": "~/Desktop"}


def test_inputs_never_fill_a_destination() -> None:
    arguments, missing = fill_arguments("copy that", COPY, None, None, "", {"paths": ["/a.txt", "/b.txt"]})
    assert arguments == {"source": "/a.txt"}
    assert missing == ["destination"]


def test_write_file_puts_a_bare_name_in_the_base_dir_and_writes_the_carried_text() -> None:
    inputs = {"base_dir": "/home/ana/Projects", "text": "# Summary\nAll good.", "paths": ["/home/ana/Projects/r.pdf"]}
    arguments = fill(WRITE, "save that as notes.md", inputs=inputs)
    assert arguments == {"path": "/home/ana/Projects/notes.md", "content": "# Summary\nAll good."}


def test_a_file_written_to_is_never_taken_from_the_inputs() -> None:
    # Overwriting the file a step is about must be asked for in words.
    arguments, missing = fill_arguments("save the summary", WRITE, None, None, "", {"paths": ["/r.pdf"], "text": "x"})
    assert arguments == {"content": "x"}
    assert missing == ["path"]


def test_quoted_words_come_before_the_carried_text() -> None:
    arguments = fill(WRITE, "write 'hello' to ~/a.txt", inputs={"text": "carried"})
    assert arguments == {"path": "~/a.txt", "content": "hello"}


def test_words_come_before_inputs_and_inputs_before_the_context() -> None:
    assert fill(READ, "read ~/a.txt", "Found ~/c.txt", {"paths": ["~/b.txt"]}) == {"path": "~/a.txt"}
    assert fill(READ, "read it", "Found ~/c.txt", {"paths": ["~/b.txt"]}) == {"path": "~/b.txt"}
    assert fill(READ, "read it", "Found ~/c.txt") == {"path": "~/c.txt"}


def test_a_bare_name_without_base_dir_is_kept_as_written() -> None:
    assert fill(READ, "read notes.md") == {"path": "notes.md"}
    assert fill(READ, 'read "Q3 plan.docx"', inputs={"base_dir": "/w"}) == {"path": "/w/Q3 plan.docx"}


# --- paths ----------------------------------------------------------------------------------------


def test_source_and_destination_in_written_order_without_a_marker() -> None:
    arguments = fill(COPY, "cp ~/Projects/atlas/.env.example ~/Projects/atlas/.env")
    assert arguments == {"source": "~/Projects/atlas/.env.example", "destination": "~/Projects/atlas/.env"}


def test_destination_marker_wins_over_word_order() -> None:
    arguments = fill(MOVE, "into ~/Archive goes ~/inbox/a.pdf")
    assert arguments == {"destination": "~/Archive", "source": "~/inbox/a.pdf"}


def test_rename_to_a_bare_name_keeps_the_file_in_its_folder() -> None:
    arguments = fill(MOVE, "Rename ~/Documents/report-final.docx to report-2026-q1.docx")
    assert arguments == {"source": "~/Documents/report-final.docx", "destination": "~/Documents/report-2026-q1.docx"}
    arguments = fill(MOVE, "rename it to final.docx", inputs={"paths": ["/w/draft.docx"]})
    assert arguments == {"source": "/w/draft.docx", "destination": "/w/final.docx"}


def test_no_two_parameters_get_the_same_path() -> None:
    arguments, missing = fill_arguments("move ~/a.txt to ~/a.txt", MOVE, None, None)
    assert arguments == {"destination": "~/a.txt"}
    assert missing == ["source"]
    # A path the words already placed is not used again from the inputs.
    arguments = fill(DIFF, "compare it to ~/b.pdf", inputs={"paths": ["~/b.pdf", "~/c.pdf"]})
    assert arguments == {"path_a": "~/b.pdf", "path_b": "~/c.pdf"}
    assert fill(COPY, "copy ~/a.txt", inputs={"paths": ["~/a.txt"]}) == {"source": "~/a.txt"}


def test_without_a_destination_parameter_to_only_joins_paths() -> None:
    assert fill(DIFF, "compare ~/a.pdf to ~/b.pdf") == {"path_a": "~/a.pdf", "path_b": "~/b.pdf"}
    assert fill(DIFF, "compare it to ~/b.pdf", "Found ~/a.pdf") == {"path_a": "~/b.pdf", "path_b": "~/a.pdf"}


def test_context_paths_never_fill_an_output() -> None:
    arguments, missing = fill_arguments("put that in a PDF", CREATE_PDF, None, None, "Read ~/Data/sales.csv")
    assert "output_path" not in arguments and "output_path" in missing


def test_paths_with_spaces_are_kept_whole() -> None:
    arguments = fill(MOVE, "please put ~/Desktop/Screenshot 2026-03-02.png in ~/Pictures/screens")
    assert arguments == {"source": "~/Desktop/Screenshot 2026-03-02.png", "destination": "~/Pictures/screens"}


def test_a_list_of_files_with_a_range_in_a_named_folder() -> None:
    text = "merge chapter-01.pdf through chapter-03.pdf in /home/u/Books into one book.pdf in that same folder"
    assert fill(MERGE, text) == {
        "paths": ["/home/u/Books/chapter-01.pdf", "/home/u/Books/chapter-02.pdf", "/home/u/Books/chapter-03.pdf"],
        "output_path": "/home/u/Books/book.pdf",
    }


def test_a_range_of_bare_names_in_the_base_dir() -> None:
    text = "merge chapter-01.pdf through chapter-03.pdf into book.pdf"
    assert fill(MERGE, text, inputs={"base_dir": "/b"}) == {
        "paths": ["/b/chapter-01.pdf", "/b/chapter-02.pdf", "/b/chapter-03.pdf"],
        "output_path": "/b/book.pdf",
    }


def test_a_bare_name_in_a_folder_the_words_name() -> None:
    assert fill(READ, "read notes.md in ~/Documents") == {"path": "~/Documents/notes.md"}


def test_a_list_of_files_from_the_inputs_and_an_output_beside_them() -> None:
    arguments = fill(MERGE, "merge them into all.pdf", inputs={"paths": ["/x/a.pdf", "/x/b.pdf"]})
    assert arguments == {"paths": ["/x/a.pdf", "/x/b.pdf"], "output_path": "/x/all.pdf"}


def test_the_model_never_supplies_a_path() -> None:
    model = ScriptedModel({"paths": ["/path/x.pdf"], "output_path": "/tmp/o.pdf"})
    arguments, missing = fill_arguments("merge my PDFs", MERGE, model, lambda schema: "")
    assert arguments == {} and missing == ["paths", "output_path"]
    assert model.asked == 0


def test_a_mail_folder_is_not_a_path() -> None:
    search_mail = tool(
        "email.search_emails",
        {"query": STRING, "folder": {**OPTIONAL_STRING, "description": "Mail folder to search, e.g. inbox or sent."}},
        ["query"],
    )
    arguments = fill(search_mail, "Search my Sent folder for 'contract renewal'", "Found ~/x.pdf")
    assert arguments == {"query": "contract renewal", "folder": "Sent"}


# --- identifiers, numbers, options ----------------------------------------------------------------


def test_ids_fill_id_parameters() -> None:
    assert fill(SEND, "send draft d-311") == {"draft_id": "d-311"}
    assert fill(SEND, "send #42") == {"draft_id": "42"}
    assert fill(UPDATE_TASK, "close task 999999") == {"task_id": 999999}
    assert fill(UPDATE_TASK, "push task t-17 to Friday") == {"task_id": 17}


def test_a_draft_id_prefers_a_draft_among_several_ids() -> None:
    assert fill(SEND, "after reading thread th-000000, send d-311") == {"draft_id": "d-311"}
    assert fill(SEND, "in session sess-4 send draft 17") == {"draft_id": "17"}


def test_each_id_parameter_gets_its_own_id() -> None:
    both = tool("x.link", {"thread_id": STRING, "draft_id": STRING}, ["thread_id", "draft_id"])
    assert fill(both, "attach d-311 to th-9") == {"thread_id": "th-9", "draft_id": "d-311"}


def test_a_referring_step_finds_the_id_in_the_context() -> None:
    assert fill(SEND, "looks good, send it", "Draft d-311 saved: 'Invoice 4471'.") == {"draft_id": "d-311"}


def test_stated_numbers_fill_counts_and_durations() -> None:
    related = tool("knowledge.get_related_chunks", {"text": STRING, "top_k": {"type": "integer", "maximum": 50}})
    assert fill(related, "What relates to ~/a.pdf? Show 3.") == {"top_k": 3}
    assert fill(related, "What relates to ~/a.pdf? Show 300.") == {}  # beyond the maximum
    block = tool("calendar.create_time_block", {"date": STRING, "duration_minutes": {"type": "integer"}})
    assert fill(block, "protect an hour on 2026-03-26") == {"date": "2026-03-26", "duration_minutes": 60}
    slots = tool("calendar.find_free_slots", {"date": STRING, "min_duration_minutes": {"type": "integer"}})
    assert fill(slots, "a 90-minute gap on 2026-03-20") == {"date": "2026-03-20", "min_duration_minutes": 90}
    table = tool("ocr.extract_table", {"path": STRING, "page": {"anyOf": [{"type": "integer"}, {"type": "null"}]}})
    assert fill(table, "the grid on page 7 of ~/scan.pdf") == {"path": "~/scan.pdf", "page": 7}


def test_numbers_are_not_read_from_paths_dates_or_ids() -> None:
    listing = tool("email.list_drafts", {"limit": {"type": "integer"}})
    assert fill(listing, "drafts since 2026-03-01 for task t-20 in ~/mail/10") == {}


def test_recursive_pattern_and_type_from_the_words() -> None:
    assert fill(LIST, "Show me everything inside ~/atlas, subfolders included") == {
        "path": "~/atlas",
        "recursive": True,
    }
    assert fill(LIST, "list ~/atlas, not recursively") == {"path": "~/atlas"}
    assert fill(LIST, "list the PDFs in ~/atlas") == {"path": "~/atlas", "filter": "*.pdf"}
    assert fill(SEARCH, "find the PDF with tax in its name in ~/Documents") == {
        "path": "~/Documents",
        "pattern": "*tax*.pdf",
    }
    assert fill(SEARCH, "Look through ~/Projects for folders named node_modules") == {
        "path": "~/Projects",
        "pattern": "*node_modules*",
        "type": "dir",
    }


def test_create_dirs_and_named_flags() -> None:
    arguments = fill(MOVE, "put ~/a.png in ~/Pictures/screens, and create that folder if it isn't there")
    assert arguments["create_dirs"] is True
    export = tool("audit.export_audit_pdf", {"session_id": STRING, "output_path": STRING, "sign": {"type": "boolean"}})
    assert fill(export, "Export session sess-441 as a signed PDF at ~/a.pdf") == {
        "session_id": "sess-441",
        "output_path": "~/a.pdf",
        "sign": True,
    }
    assert "sign" not in fill(export, "export sess-441 to ~/a.pdf, don't sign it")


def test_enum_options_named_in_the_words() -> None:
    tasks = tool("task.list_tasks", {"status": {"anyOf": [{"enum": ["pending", "completed"]}, {"type": "null"}]}})
    assert fill(tasks, "show completed tasks") == {"status": "completed"}
    pii = tool(
        "security.scan_for_pii",
        {"path": STRING, "types": {"type": "array", "items": {"enum": ["email", "phone", "iban"]}}},
    )
    assert fill(pii, "Look for IBANs and phone numbers in ~/payroll") == {
        "path": "~/payroll",
        "types": ["phone", "iban"],
    }
    task = tool("task.create_task", {"title": STRING, "source": {"enum": ["meeting", "email"]}})
    assert fill(task, "remind me to email Bob") == {}


# --- text, addresses, dates -----------------------------------------------------------------------


def test_cc_addresses_go_to_cc_only() -> None:
    draft = tool(
        "email.draft_email",
        {"to": {"type": "array"}, "subject": STRING, "body": STRING, "cc": {"type": "array"}},
        ["to", "subject", "body"],
    )
    arguments = fill(draft, "Write to hr@acme.example, cc my manager lee@acme.example, titled 'Leave'")
    assert arguments == {"to": ["hr@acme.example"], "cc": ["lee@acme.example"], "subject": "Leave"}
    arguments = fill(draft, "mail ana@x.org titled 'Summary'", inputs={"text": "Sales rose 8%."})
    assert arguments == {"to": ["ana@x.org"], "subject": "Summary", "body": "Sales rose 8%."}


def test_a_required_body_falls_back_to_the_quoted_result_in_the_context() -> None:
    clipboard = tool("clipboard.set_clipboard", {"content": STRING}, ["content"])
    context = "Write a status line\n'Migration finished; monitoring for 24 hours.'"
    assert fill(clipboard, "put that on my clipboard", context) == {
        "content": "Migration finished; monitoring for 24 hours."
    }


def test_a_quoted_file_name_is_not_a_title() -> None:
    docx = tool("document.create_docx", {"content": STRING, "output_path": STRING}, ["content", "output_path"])
    assert fill(docx, "save it as 'Q3 plan.docx'", inputs={"base_dir": "/w", "text": "Plan"}) == {
        "output_path": "/w/Q3 plan.docx",
        "content": "Plan",
    }


def test_one_day_with_a_time_range() -> None:
    event = tool("calendar.create_event", {"title": STRING, "start": STRING, "end": STRING}, ["title", "start", "end"])
    assert fill(event, "Put 'Lunch' on 2026-03-20, 12:30 to 13:30") == {
        "title": "Lunch",
        "start": "2026-03-20T12:30:00",
        "end": "2026-03-20T13:30:00",
    }
    events = tool("calendar.list_events", {"start_date": STRING, "end_date": STRING}, ["start_date", "end_date"])
    assert fill(events, "meetings on 2026-03-12") == {"start_date": "2026-03-12", "end_date": "2026-03-12"}


def test_programs_and_tool_names() -> None:
    app = tool("system.open_application", {"app_name": STRING}, ["app_name"])
    assert fill(app, "Open the calculator") == {"app_name": "calculator"}
    open_with = tool("system.open_file_with", {"path": STRING, "app": OPTIONAL_STRING}, ["path"])
    assert fill(open_with, "open ~/Pictures/logo.svg in Inkscape") == {"path": "~/Pictures/logo.svg", "app": "Inkscape"}
    log = tool("audit.get_tool_log", {"session_id": OPTIONAL_STRING, "tool_name": OPTIONAL_STRING})
    assert fill(log, "calls to filesystem.delete_file in session s-8812") == {
        "session_id": "s-8812",
        "tool_name": "filesystem.delete_file",
    }


# --- the model last -------------------------------------------------------------------------------


def test_the_model_only_fills_what_is_left() -> None:
    draft = tool(
        "email.draft_email", {"to": {"type": "array"}, "subject": STRING, "body": STRING}, ["to", "subject", "body"]
    )
    model = ScriptedModel({"subject": "ignored", "body": "See you at 3."})
    arguments, missing = fill_arguments('mail ana@x.org titled "Budget"', draft, model, lambda schema: "")
    assert arguments == {"to": ["ana@x.org"], "subject": "Budget", "body": "See you at 3."}
    assert missing == [] and model.asked == 1


def test_the_model_may_not_repeat_a_value_another_parameter_holds() -> None:
    draft = tool(
        "email.draft_email", {"to": {"type": "array"}, "subject": STRING, "body": STRING}, ["to", "subject", "body"]
    )
    model = ScriptedModel({"body": "Budget"})
    arguments, missing = fill_arguments('mail ana@x.org titled "Budget"', draft, model, lambda schema: "")
    assert arguments == {"to": ["ana@x.org"], "subject": "Budget"}
    assert missing == ["body"]


def test_route_passes_the_inputs_on() -> None:
    decision = route("copy that to ~/Desktop", [COPY], None, inputs={"paths": ["/home/ana/a.pdf"]})
    assert not decision.needs_clarification
    assert decision.arguments == {"source": "/home/ana/a.pdf", "destination": "~/Desktop"}
