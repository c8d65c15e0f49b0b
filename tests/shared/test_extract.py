from switchboard.extract import (
    Identifier,
    PathMention,
    expand_name_range,
    extract_app_name,
    extract_cc_emails,
    extract_choices,
    extract_count,
    extract_duration,
    extract_file_names,
    extract_file_pattern,
    extract_file_patterns,
    extract_identifiers,
    extract_name_pattern,
    extract_named,
    extract_number_after,
    extract_page_numbers,
    extract_path_mentions,
    extract_paths,
    extract_quoted,
    extract_target_format,
    extract_time_span,
    extract_tool_names,
    looks_like_placeholder,
    mentions_folder_creation,
    mentions_recursion,
    mentions_word,
)


def test_absolute_and_home_paths_in_order() -> None:
    assert extract_paths("move /tmp/a.txt to ~/Documents/b.txt.") == ["/tmp/a.txt", "~/Documents/b.txt"]


def test_quoted_path_keeps_its_spaces() -> None:
    assert extract_paths('list "/tmp/my files" please') == ["/tmp/my files"]


def test_trailing_punctuation_is_not_part_of_a_path() -> None:
    assert extract_paths("What is in /srv/data?") == ["/srv/data"]


def test_words_with_slashes_are_not_paths() -> None:
    assert extract_paths("read and/or write 1/2 of it") == []


def test_unquoted_file_name_with_spaces_is_kept_whole() -> None:
    assert extract_paths("trash ~/Desktop/untitled (3).txt") == ["~/Desktop/untitled (3).txt"]
    assert extract_paths("put ~/Desktop/Screenshot 2026-03-02.png in ~/Pictures") == [
        "~/Desktop/Screenshot 2026-03-02.png",
        "~/Pictures",
    ]


def test_a_path_does_not_swallow_the_rest_of_the_sentence() -> None:
    assert extract_paths("move ~/Documents/a to b.txt") == ["~/Documents/a"]
    assert extract_paths("list ~/Projects and stop") == ["~/Projects"]


def test_placeholders() -> None:
    assert looks_like_placeholder("/path/to/file")
    assert looks_like_placeholder("<your file>")
    assert looks_like_placeholder("")
    assert not looks_like_placeholder("/home/ana/report.pdf")
    assert not looks_like_placeholder(3)


def test_bare_file_names_quoted_or_not() -> None:
    assert extract_file_names('save it as notes.md, then open "Q3 plan.docx"') == ["notes.md", "Q3 plan.docx"]


def test_file_names_inside_paths_addresses_and_prose_do_not_count() -> None:
    assert extract_file_names("read ~/notes/todo.md and mail ana@report.pdf.example.org, e.g. v1.2") == []


def test_a_quoted_sentence_ending_in_a_file_name_is_no_file_name() -> None:
    assert extract_file_names("reply 'I have attached the scan of the signed form.pdf'") == []


def test_paths_after_to_into_as_onto_over_are_destinations() -> None:
    mentions = extract_path_mentions("copy ~/a.txt to the folder ~/Desktop, save it as b.md")
    assert [(m.value, m.bare, m.to_destination) for m in mentions] == [
        ("~/a.txt", False, False),
        ("~/Desktop", False, True),
        ("b.md", True, True),
    ]
    assert extract_path_mentions("merge a.pdf into one book.pdf")[1] == PathMention("book.pdf", 21, 29, True, True)


def test_identifiers_of_every_shape() -> None:
    found = extract_identifiers("send d-311, th-000000, sess-441, #42, task 999999 and draft 17")
    assert found == [
        Identifier("d-311", "d"),
        Identifier("th-000000", "th"),
        Identifier("sess-441", "sess"),
        Identifier("42", ""),
        Identifier("999999", "task"),
        Identifier("17", "draft"),
    ]


def test_identifiers_skip_paths_file_names_dates_and_words() -> None:
    text = "read /var/backup-2026-02-14.log and report-2026-q1.docx on event 2026-03-20, a follow-up e-mail"
    assert extract_identifiers(text) == []
    assert extract_identifiers("the totals of sess-2026-03-10, please") == [Identifier("sess-2026-03-10", "sess")]


def test_identifier_as_a_number() -> None:
    assert Identifier("t-17", "t").number == 17
    assert Identifier("42", "").number == 42
    assert Identifier("sess-2026-03-10", "sess").number is None
    assert Identifier("t-1a2b", "t").number is None


def test_quoted_text_ignores_apostrophes() -> None:
    text = "Don't send it yet, just a note titled 'Friday demo' about what I'll say"
    assert extract_quoted(text) == ["Friday demo"]
    assert extract_quoted("transcript: 'Ben will send it, and I'll book the venue.' Thanks") == [
        "Ben will send it, and I'll book the venue."
    ]
    assert extract_quoted('search for "contract renewal"') == ["contract renewal"]


def test_counts_need_a_word_that_asks_for_a_number() -> None:
    assert extract_count("related to ~/a.pdf? Show 3.") == 3
    assert extract_count("top 5 results") == 5
    assert extract_count("the last 10 emails from Bob") == 10
    assert extract_count("at most 20") == 20
    assert extract_count("a 2-hour workshop on 2026-03-25") is None
    assert extract_count("read ~/notes/2024/list-2.txt") is None


def test_durations_in_the_unit_asked_for() -> None:
    assert extract_duration("a 90-minute gap", "minutes") == 90
    assert extract_duration("a 2-hour workshop", "minutes") == 120
    assert extract_duration("protect an hour for review", "minutes") == 60
    assert extract_duration("half an hour", "minutes") == 30
    assert extract_duration("45 minutes on 2026-03-18 at 10:30", "minutes") == 45
    assert extract_duration("30 seconds", "minutes") is None
    assert extract_duration("no length here", "minutes") is None


def test_page_numbers() -> None:
    assert extract_page_numbers("OCR pages 2 to 3 of /x/scan.pdf") == [2, 3]
    assert extract_page_numbers("the grid on page 7 of /x/report.pdf") == [7]
    assert extract_page_numbers("pages 1, 3 and 5") == [1, 3, 5]
    assert extract_page_numbers("read /x/page-2.pdf") == []


def test_number_after_a_word() -> None:
    assert extract_number_after("set it to priority 2", "priority") == 2
    assert extract_number_after("volume to 40", "volume") == 40
    assert extract_number_after("high priority", "priority") is None


def test_named_things() -> None:
    assert extract_named("rows of /x/budget.xlsx, sheet March", "sheet") == "March"
    assert extract_named("into a SQLite table called customers in /x/crm.db", "table") == "customers"
    assert extract_named("on my personal calendar", "calendar") == "personal"
    assert extract_named("search my Sent folder", "folder") == "Sent"
    assert extract_named("in the same folder", "folder") is None
    assert extract_named("the table of contents", "table") is None


def test_target_format() -> None:
    assert extract_target_format("Convert ~/Documents/proposal.docx to PDF") == "pdf"
    assert extract_target_format("my notes ~/notes/howto.md as a Word document") == "docx"
    assert extract_target_format("open ~/a.docx") is None


def test_file_type_globs() -> None:
    assert extract_file_pattern("find all PDFs under /srv") == "*.pdf"
    assert extract_file_patterns("watch ~/scans for .jpg and .png files") == ["*.jpg", "*.png"]
    assert extract_file_patterns("log every new PDF that lands there") == ["*.pdf"]
    assert extract_file_patterns("list /srv/*.csv") == ["*.csv"]
    assert extract_file_patterns("read ~/Documents/proposal.docx") == []


def test_name_globs() -> None:
    assert extract_name_pattern("Find every file with 'invoice' in its name under /srv") == "*invoice*"
    assert extract_name_pattern("folders named node_modules") == "*node_modules*"
    assert extract_name_pattern("the PDF with tax in its name") == "*tax*.pdf"
    assert extract_name_pattern("files named report-*.csv") == "report-*.csv"
    assert extract_name_pattern("find my taxes") is None


def test_recursion_and_other_flags_respect_negation() -> None:
    assert mentions_recursion("everything inside ~/atlas, subfolders included")
    assert mentions_recursion("list everything under ~/x")
    assert not mentions_recursion("list ~/x, not recursively")
    assert not mentions_recursion("list everything in ~/x")
    assert mentions_word("export the form as a signed PDF", "sign")
    assert not mentions_word("don't sign it", "sign")
    assert not mentions_word("an unsigned copy", "sign")
    assert mentions_folder_creation("and create that folder if it isn't there yet")
    assert not mentions_folder_creation("move ~/a.txt to ~/b")


def test_time_span_on_one_day() -> None:
    assert extract_time_span("on 2026-03-20, 12:30 to 13:30") == ("2026-03-20T12:30", "2026-03-20T13:30")
    assert extract_time_span("from 2026-03-20 to 2026-03-21") is None
    assert extract_time_span("at 12:30 to 13:30") is None


def test_cc_addresses() -> None:
    text = "Write to hr@acme.example, cc my manager lee@acme.example, about leave"
    assert extract_cc_emails(text) == ["lee@acme.example"]


def test_app_names() -> None:
    assert extract_app_name("Open the calculator") == "calculator"
    assert extract_app_name("start Spotify for me") == "Spotify"
    assert extract_app_name("show ~/Pictures/logo.svg in Inkscape", allow_open_verb=False) == "Inkscape"
    assert extract_app_name("open ~/a.pdf", allow_open_verb=False) is None


def test_tool_names() -> None:
    assert extract_tool_names("calls to filesystem.delete_file in s-1, not notes.md") == ["filesystem.delete_file"]


def test_name_ranges() -> None:
    assert expand_name_range("chapter-01.pdf", "chapter-04.pdf") == [
        "chapter-01.pdf",
        "chapter-02.pdf",
        "chapter-03.pdf",
        "chapter-04.pdf",
    ]
    assert expand_name_range("a1.pdf", "b3.pdf") == []
    assert expand_name_range("p9.txt", "p2.txt") == []


def test_choices_among_enum_options() -> None:
    assert extract_choices("show completed tasks", ["pending", "completed", "overdue"]) == ["completed"]
    assert extract_choices("folders named x", ["file", "dir", "symlink"]) == ["dir"]
    assert extract_choices("IBANs and phone numbers", ["email", "phone", "credit_card", "iban"]) == ["phone", "iban"]
    assert extract_choices("credit card or social security numbers", ["credit_card", "ssn"]) == ["credit_card", "ssn"]
    # A capitalised word mid-sentence is a name, and quoted text is content.
    assert extract_choices("compare the two Word files", ["paragraph", "sentence", "word"]) == []
    assert extract_choices("a task 'email Bob'", ["meeting", "email"]) == []
