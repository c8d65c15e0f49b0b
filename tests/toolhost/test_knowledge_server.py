"""The knowledge MCP server with the real all-MiniLM-L6-v2 model, on documents the tests write.

The model loads once per process (the server's own cache), so only the first test that embeds pays for it.
"""

from __future__ import annotations

import functools
import hashlib
import os
import sqlite3
from pathlib import Path

import docx
import pytest
from fpdf import FPDF

from services.toolhost.servers.knowledge import KnowledgeSettings, build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, ok, refused

DIMENSION = 384  # all-MiniLM-L6-v2


def write_pdf(path: Path, pages: list[str]) -> None:
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        if text:
            pdf.multi_cell(0, 10, text)
        else:
            pdf.rect(20, 20, 50, 50)  # a page with a drawing and no text, like a scan
    pdf.output(str(path))


@pytest.fixture
def root(tmp_path: Path) -> Path:
    folder = (tmp_path / "root").resolve()
    notes = folder / "notes"
    (notes / "sub").mkdir(parents=True)
    (notes / "budget.md").write_text(
        "# Budget\n\nThe marketing budget for 2025 is forty thousand euros, approved by the finance team.\n"
    )
    (notes / "garden.txt").write_text("Tomatoes need full sun and regular watering. Plant them after the last frost.\n")
    document = docx.Document()
    document.add_paragraph("The team offsite will take place in Lisbon in October.")
    document.add_paragraph("Flights are booked through the travel office.")
    document.save(str(notes / "sub" / "travel.docx"))
    write_pdf(
        notes / "sub" / "servers.pdf", ["Server handbook", "The database backups run every night at two o'clock."]
    )
    (notes / "inventory.csv").write_text("item,quantity\nlaptops,12\nmonitors,30\n")
    write_pdf(notes / "scan.pdf", [""])
    (notes / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = (tmp_path / "outside").resolve()
    folder.mkdir()
    (folder / "private.txt").write_text("private notes\n")
    return folder


async def test_tools_match_the_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "knowledge")


async def test_index_search_ask_relate_and_update(settings: ToolHostSettings, root: Path) -> None:
    notes = root / "notes"
    indexed = await ok(build_server, settings, "index_folder", path=str(notes))
    assert indexed["documents_indexed"] == 5 and indexed["total_documents"] == 5
    assert indexed["chunks_created"] >= 5
    [failed] = indexed["failed"]
    assert failed["path"] == str(notes / "scan.pdf") and "ocr.extract_text_from_pdf" in failed["reason"]

    with sqlite3.connect(settings.state_dir / "knowledge.db") as db:
        rows = db.execute("SELECT f.path, f.sha256, c.embedding FROM files f JOIN chunks c USING (path)").fetchall()
    assert {Path(p).name for p, _, _ in rows} == {
        "budget.md",
        "garden.txt",
        "travel.docx",
        "servers.pdf",
        "inventory.csv",
    }
    assert all(len(blob) == DIMENSION * 4 for _, _, blob in rows)
    garden_hash = next(h for p, h, _ in rows if p.endswith("garden.txt"))
    assert garden_hash == hashlib.sha256((notes / "garden.txt").read_bytes()).hexdigest()

    found = await ok(build_server, settings, "search_documents", query="when are the backups made?", top_k=3)
    best = found["results"][0]
    assert best["path"] == str(notes / "sub" / "servers.pdf") and best["page"] == 2
    assert "backups" in best["text"] and len(found["results"]) == 3
    assert found["results"][0]["score"] >= found["results"][1]["score"]

    only_sub = await ok(build_server, settings, "search_documents", query="money", filter_path=str(notes / "sub"))
    assert {Path(r["path"]).parent for r in only_sub["results"]} == {notes / "sub"}

    asked = await ok(build_server, settings, "ask_about_files", question="Where is the team offsite?", context_docs=2)
    assert asked["sources"][0]["path"] == str(notes / "sub" / "travel.docx")
    assert "Lisbon" in asked["answer"] and str(notes / "sub" / "travel.docx") in asked["answer"]
    assert len(asked["sources"]) == 2 and asked["weak_match"] is False

    related = await ok(build_server, settings, "get_related_chunks", text="growing vegetables in sunlight", top_k=2)
    assert related["reference"] == "text" and related["chunks"][0]["path"] == str(notes / "garden.txt")
    by_file = await ok(build_server, settings, "get_related_chunks", text=str(notes / "garden.txt"))
    assert by_file["reference"] == "file"
    assert str(notes / "garden.txt") not in {c["path"] for c in by_file["chunks"]}

    again = await ok(build_server, settings, "index_folder", path=str(notes))
    assert again["documents_indexed"] == 0 and again["documents_unchanged"] == 5 and again["chunks_created"] == 0

    (notes / "garden.txt").write_text("Roses want pruning in early spring and a sheltered spot.\n")
    (notes / "inventory.csv").unlink()
    (notes / "sub" / "deep").mkdir()
    (notes / "sub" / "deep" / "pets.md").write_text("Our cat Miso eats twice a day and sleeps on the sofa.\n")
    os.utime(notes / "budget.md")  # touched, not changed: no new embedding
    updated = await ok(build_server, settings, "update_index", path=str(notes))
    assert (updated["added"], updated["updated"], updated["removed"], updated["unchanged"]) == (1, 1, 1, 3)

    pets = await ok(build_server, settings, "search_documents", query="what does the cat eat", top_k=1)
    assert pets["results"][0]["path"] == str(notes / "sub" / "deep" / "pets.md")
    roses = await ok(build_server, settings, "search_documents", query="pruning roses", top_k=10)
    assert "Roses" in roses["results"][0]["text"]
    assert str(notes / "inventory.csv") not in {r["path"] for r in roses["results"]}


async def test_errors_that_need_no_model(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    assert "knowledge.index_folder" in await refused(build_server, settings, "search_documents", query="budget")
    assert "knowledge.index_folder" in await refused(build_server, settings, "ask_about_files", question="why?")
    text = await refused(build_server, settings, "index_folder", path=str(root), file_types=["xlsx"])
    assert "txt" in text and "pdf" in text
    assert "does not exist" in await refused(build_server, settings, "index_folder", path=str(root / "nope"))
    assert "does not exist" in await refused(build_server, settings, "update_index", path=str(root / "nope"))
    attempts = [
        ("index_folder", {"path": str(outside)}),
        ("update_index", {"path": str(outside)}),
        ("search_documents", {"query": "notes", "filter_path": str(outside)}),
        ("get_related_chunks", {"text": str(outside / "private.txt")}),
    ]
    for tool, arguments in attempts:
        text = await refused(build_server, settings, tool, **arguments)
        assert "outside the allowed folders" in text and str(root) in text, (tool, text)


async def test_a_missing_model_is_a_clear_error(
    settings: ToolHostSettings, root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SWITCHBOARD_EMBEDDING_MODEL", str(tmp_path / "no-model"))
    assert KnowledgeSettings().embedding_model == tmp_path / "no-model"
    build = functools.partial(build_server, knowledge=KnowledgeSettings())
    text = await refused(build, settings, "index_folder", path=str(root / "notes"), file_types=["md"])
    assert "embedding model is missing" in text and "SWITCHBOARD_EMBEDDING_MODEL" in text
