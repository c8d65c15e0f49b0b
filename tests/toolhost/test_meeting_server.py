"""The meeting MCP server: real speech made with espeak-ng, transcripts and minutes written by the tests."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import wave
from pathlib import Path

import docx
import pytest
from mcp import Client

from services.toolhost.servers.meeting import build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, ok, refused, stdio_parameters

TRANSCRIPT = """Title: Q3 planning
Date: 2025-03-14
Attendees: Alice, Bob and Carol

[00:00:05] Alice: Thanks for joining. We decided to move the launch to October.
Bob: I'll send the updated budget by Friday. It will be fine, I think.
Carol: Can you share the slides with the team? Will the venue be ready in time?
Alice: Bob will book the venue before next Monday. We haven't decided on the caterer yet.
Action: Carol to draft the press release by March 20.
Alice: We agreed to hire two contractors. Please review the contract terms.
"""


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = (tmp_path / "root").resolve()
    folder.mkdir()
    (folder / "q3.txt").write_text(TRANSCRIPT)
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = (tmp_path / "outside").resolve()
    folder.mkdir()
    (folder / "notes.txt").write_text(TRANSCRIPT)
    return folder


async def test_tools_match_the_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "meeting")


# transcription


async def test_transcribe_synthetic_speech(settings: ToolHostSettings, root: Path) -> None:
    if shutil.which("espeak-ng") is None or shutil.which("sox") is None:
        pytest.fail("espeak-ng and sox are needed for this test (apt-get install espeak-ng sox)")
    speech = root / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(speech), "please send the report by friday"], check=True)
    with wave.open(str(speech)) as w:
        assert w.getframerate() != 16000  # so the sox conversion is exercised
    result = await ok(build_server, settings, "transcribe_audio", path=str(speech))
    assert "report" in result["text"].split()
    assert result["engine"] == "pocketsphinx (en-us)" and result["language"] == "en"
    assert 1.5 < result["duration_seconds"] < 3.0
    [segment] = result["transcript"]
    assert 0 <= segment["start"] < segment["end"] <= result["duration_seconds"] + 0.1
    assert segment["text"] == result["text"] and result["note"] is None
    assert sorted(p.name for p in root.iterdir()) == ["q3.txt", "speech.wav"]  # no converted copy left behind


async def test_transcribe_silence_in_16k_wav_reports_no_speech(settings: ToolHostSettings, root: Path) -> None:
    silence = root / "silence.wav"
    with wave.open(str(silence), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"\0\0" * 16000)
    result = await ok(build_server, settings, "transcribe_audio", path=str(silence))
    assert result["text"] == "" and result["transcript"] == [] and result["duration_seconds"] == 1.0
    assert "No speech" in result["note"]


async def test_transcribe_refuses_what_it_cannot_do(
    settings: ToolHostSettings, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (root / "broken.wav").write_text("not audio")
    assert "sox could not read" in await refused(
        build_server, settings, "transcribe_audio", path=str(root / "broken.wav")
    )
    text = await refused(build_server, settings, "transcribe_audio", path=str(root / "broken.wav"), diarize=True)
    assert "diarize false" in text
    text = await refused(build_server, settings, "transcribe_audio", path=str(root / "broken.wav"), language="de")
    assert "SWITCHBOARD_WHISPER_MODEL" in text
    assert "does not exist" in await refused(build_server, settings, "transcribe_audio", path=str(root / "x.wav"))
    monkeypatch.setenv("SWITCHBOARD_WHISPER_MODEL", str(root / "whisper-small"))
    text = await refused(build_server, settings, "transcribe_audio", path=str(root / "broken.wav"))
    assert "faster-whisper" in text and "SWITCHBOARD_WHISPER_MODEL" in text


# extraction


async def test_extract_action_items_quotes_exact_sentences(settings: ToolHostSettings) -> None:
    result = await ok(build_server, settings, "extract_action_items", transcript=TRANSCRIPT)
    items = [(i["assignee"], i["due"], i["sentence"]) for i in result["items"]]
    assert items == [
        ("Bob", "by Friday", "I'll send the updated budget by Friday."),
        (None, None, "Can you share the slides with the team?"),
        ("Bob", "before next Monday", "Bob will book the venue before next Monday."),
        ("Carol", "by March 20", "Action: Carol to draft the press release by March 20."),
        (None, None, "Please review the contract terms."),
    ]
    for item in result["items"]:
        assert item["sentence"] in TRANSCRIPT  # nothing invented: every item is a sentence of the transcript
    marked = result["items"][3]
    assert marked["task"] == "Carol to draft the press release by March 20." and marked["line"] == 9
    assert result["items"][0]["speaker"] == "Bob" and result["source"] == "text"


async def test_extract_from_a_transcript_file(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    result = await ok(build_server, settings, "extract_action_items", transcript=str(root / "q3.txt"))
    assert result["source"] == str(root / "q3.txt") and len(result["items"]) == 5
    text = await refused(build_server, settings, "extract_action_items", transcript=str(outside / "notes.txt"))
    assert "outside the allowed folders" in text and str(root) in text
    assert "does not exist" in await refused(
        build_server, settings, "extract_commitments", transcript=str(root / "nope.txt")
    )
    assert "empty" in await refused(build_server, settings, "extract_action_items", transcript="  ")


async def test_extract_commitments_decisions_and_open_questions(settings: ToolHostSettings) -> None:
    result = await ok(build_server, settings, "extract_commitments", transcript=TRANSCRIPT)
    assert [(c["who"], c["due"], c["sentence"]) for c in result["commitments"]] == [
        ("Bob", "by Friday", "I'll send the updated budget by Friday."),
        ("Bob", "before next Monday", "Bob will book the venue before next Monday."),
    ]
    assert [d["sentence"] for d in result["decisions"]] == [
        "We decided to move the launch to October.",
        "We agreed to hire two contractors.",
    ]
    assert result["open_questions"] == [
        "Will the venue be ready in time?",
        "We haven't decided on the caterer yet.",
    ]


async def test_small_talk_yields_nothing(settings: ToolHostSettings) -> None:
    chatter = "Alice: Good morning everyone.\nBob: The weather is lovely. It will be sunny all week.\n"
    assert (await ok(build_server, settings, "extract_action_items", transcript=chatter))["items"] == []
    result = await ok(build_server, settings, "extract_commitments", transcript=chatter)
    assert result["commitments"] == result["decisions"] == result["open_questions"] == []


# minutes


async def test_generate_minutes_as_markdown_then_overwrite(settings: ToolHostSettings, root: Path) -> None:
    target = root / "minutes" / "q3.md"
    result = await ok(
        build_server, settings, "generate_minutes", transcript=str(root / "q3.txt"), output_path=str(target)
    )
    text = target.read_text()
    assert result["format"] == "markdown" and result["template"] == "standard"
    assert result["attendees"] == ["Alice", "Bob", "Carol"] and result["attendees_from"] == "list"
    assert (result["decisions"], result["action_items"], result["commitments"], result["open_questions"]) == (
        2,
        5,
        2,
        2,
    )
    assert text.startswith("# Q3 planning\n") and "Date: 2025-03-14" in text
    for heading in ("## Attendees", "## Decisions", "## Action items", "## Commitments", "## Open questions"):
        assert heading in text
    assert "- Bob will book the venue before next Monday. (owner: Bob; due: before next Monday)" in text
    assert result["undo"] == [
        {
            "kind": "remove_created",
            "path": str(target),
            "sha256": hashlib.sha256(target.read_bytes()).hexdigest(),
            "original_path": "",
            "trash_id": "",
            "replace": False,
        }
    ]

    again = await ok(
        build_server, settings, "generate_minutes", transcript=TRANSCRIPT, output_path=str(target), template="brief"
    )
    assert again["overwrote"] is True and "## Commitments" not in target.read_text()
    [undo] = again["undo"]
    assert undo["kind"] == "restore_trash" and undo["replace"] is True
    manifest = json.loads((settings.trash_dir / undo["trash_id"] / "manifest.json").read_text())
    assert (settings.trash_dir / undo["trash_id"] / manifest["stored_as"]).read_text() == text


async def test_generate_minutes_as_docx_with_speakers_as_attendees(settings: ToolHostSettings, root: Path) -> None:
    spoken = "Dana: We agreed to ship on Tuesday.\nEli: I will write the release notes by tomorrow.\n"
    target = root / "minutes.docx"
    result = await ok(
        build_server, settings, "generate_minutes", transcript=spoken, output_path=str(target), template="detailed"
    )
    assert result["format"] == "docx" and result["attendees"] == ["Dana", "Eli"]
    assert result["attendees_from"] == "speakers"
    paragraphs = [p.text for p in docx.Document(str(target)).paragraphs]
    assert "Meeting minutes" in paragraphs and "Action items" in paragraphs and "Transcript" in paragraphs
    assert "I will write the release notes by tomorrow. (owner: Eli; due: by tomorrow) [Eli, line 2]" in paragraphs
    assert "We agreed to ship on Tuesday. (Dana, line 1)" in paragraphs


async def test_generate_minutes_refusals(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    assert ".md or .docx" in await refused(
        build_server, settings, "generate_minutes", transcript=TRANSCRIPT, output_path=str(root / "m.pdf")
    )
    assert "transcript file itself" in await refused(
        build_server, settings, "generate_minutes", transcript=str(root / "q3.txt"), output_path=str(root / "q3.txt")
    )
    text = await refused(
        build_server, settings, "generate_minutes", transcript=TRANSCRIPT, output_path=str(outside / "m.md")
    )
    assert "outside the allowed folders" in text
    assert "standard" in await refused(
        build_server,
        settings,
        "generate_minutes",
        transcript=TRANSCRIPT,
        output_path=str(root / "m.md"),
        template="fancy",
    )
    assert sorted(p.name for p in outside.iterdir()) == ["notes.txt"] and not (root / "m.md").exists()


async def test_server_runs_over_stdio(settings: ToolHostSettings, root: Path) -> None:
    params = stdio_parameters("meeting", settings)
    async with Client(params) as client:
        result = await client.call_tool("extract_action_items", {"transcript": str(root / "q3.txt")})
    assert not result.is_error and result.structured_content is not None
    assert len(result.structured_content["items"]) == 5
