"""One reading of a request: dates read relative to when it was asked, well-known folders, the JSON it
travels as (pure logic; dateparser is real)."""

from __future__ import annotations

from datetime import date, datetime, time

import pytest

from switchboard.dates import find_dates
from switchboard.reading import WELL_KNOWN_FOLDERS, Reading, folder_mentions, read_step

# A Monday afternoon.
NOW = datetime(2026, 11, 30, 14, 20)


def days(text: str) -> list[tuple[str, str | None]]:
    return [(w.as_moment(), w.end_moment()) for w in find_dates(text, NOW)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("due tomorrow", [("2026-12-01", None)]),
        ("what was on yesterday", [("2026-11-29", None)]),
        ("by the day after tomorrow", [("2026-12-02", None)]),
        ("in two weeks", [("2026-12-14", None)]),
        ("3 days from now", [("2026-12-03", None)]),
        ("next Friday", [("2026-12-04", None)]),
        ("on Monday", [("2026-11-30", None)]),
        ("last Tuesday", [("2026-11-24", None)]),
        ("this week", [("2026-11-30", "2026-12-06")]),
        ("next month", [("2026-12-01", "2026-12-31")]),
        ("tomorrow at 3pm", [("2026-12-01T15:00:00", None)]),
        ("at noon the day after tomorrow", [("2026-12-02T12:00:00", None)]),
        ("on 3 December 2026 from 2pm to 3pm", [("2026-12-03T14:00:00", "2026-12-03T15:00:00")]),
        ("January 17, 6:30 PM until 8 PM", [("2026-01-17T18:30:00", "2026-01-17T20:00:00")]),
        ("2026-12-09 09:30 until 10:15", [("2026-12-09T09:30:00", "2026-12-09T10:15:00")]),
        ("from 9am to 11am", [("2026-11-30T09:00:00", "2026-11-30T11:00:00")]),
        ("at 2pm on Friday", [("2026-12-04T14:00:00", None)]),
    ],
)
def test_dates_are_read_relative_to_when_the_person_asked(text: str, expected: list) -> None:
    assert days(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "email Sam about the May budget",
        "may I see the report",
        "the office on the 5th floor",
        "copy 3 files to the backup",
        "version 2.1 of the spec",
        "top 10 results",
    ],
)
def test_words_that_only_look_like_dates_are_not_dates(text: str) -> None:
    assert days(text) == []


def test_a_day_without_a_time_is_never_given_one() -> None:
    (when,) = find_dates("tomorrow afternoon", NOW)
    assert when.at is None and when.as_moment() == "2026-12-01"


@pytest.mark.parametrize("name", sorted(n for n in WELL_KNOWN_FOLDERS if n != "home"))
def test_each_well_known_folder_resolves_under_home(name: str) -> None:
    expected = WELL_KNOWN_FOLDERS[name]
    for text in (f"list my {name} folder", f"what is in {name.title()}", f"move it to my {name}"):
        assert [m.value for m in folder_mentions(text)] == [expected], text


def test_the_home_folder_is_home() -> None:
    assert [m.value for m in folder_mentions("clean up my home folder")] == ["~"]


def test_common_words_are_not_folders() -> None:
    for text in ("download the report", "music to my ears", "go home", "print two documents", "Desktop/notes.txt"):
        assert folder_mentions(text) == [], text


def test_a_folder_after_to_is_where_something_goes() -> None:
    (mention,) = folder_mentions("copy the invoice to my Downloads folder")
    assert mention.value == "~/Downloads" and mention.to_destination


def test_folders_inside_quotes_or_paths_are_left_alone() -> None:
    reading = Reading.of('save "Desktop ideas" as ~/Documents/notes.txt', NOW)
    assert [m.value for m in reading.paths] == ["~/Documents/notes.txt"]


def test_a_reading_travels_as_json_and_comes_back_the_same() -> None:
    reading = Reading.of("Email ana@x.org the notes.md from Downloads, draft d-12, tomorrow at 9am", NOW)
    back = Reading.from_json(reading.to_json())
    assert back == reading
    assert back.dates[0].day == date(2026, 12, 1) and back.dates[0].at == time(9, 0)
    assert [m.value for m in back.paths] == ["notes.md", "~/Downloads"]


def test_a_reading_of_other_words_or_a_broken_one_is_read_anew() -> None:
    stale = Reading.of("due tomorrow", NOW).to_json()
    assert read_step("due today", stale).text == "due today"
    assert read_step("due tomorrow", "{not json").text == "due tomorrow"
    with pytest.raises(ValueError):
        Reading.from_json('{"text": "x"}')
