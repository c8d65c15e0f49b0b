"""The document MCP server, called through the SDK's in-memory client on real PDF, DOCX, XLSX and text files."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest
from fpdf import FPDF
from mcp import Client
from PIL import Image, ImageDraw
from pypdf import PdfReader, PdfWriter
from pypdf.generic import (
    ArrayObject,
    DecodedStreamObject,
    DictionaryObject,
    NameObject,
    NumberObject,
    RectangleObject,
    TextStringObject,
)

from services.toolhost.servers import META_UNDO_SUPPORTED, document
from services.toolhost.servers.document import MAX_SPREADSHEET_ROWS, build_server
from services.toolhost.settings import ToolHostSettings
from tests.files import text_pdf
from tests.toolhost.mcp_helpers import assert_matches_contract, connected, ok, refused, stdio_parameters

DEJAVU = Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf")


def scanned_pdf(path: Path) -> Path:
    """A PDF whose only page is a picture: no text layer at all."""
    image = Image.new("RGB", (400, 100), "white")
    ImageDraw.Draw(image).rectangle((20, 20, 380, 80), outline="black")
    picture = path.with_suffix(".png")
    image.save(picture)
    pdf = FPDF()
    pdf.add_page()
    pdf.image(str(picture), x=10, y=10, w=100)
    pdf.output(str(path))
    return path


def form_pdf(path: Path) -> Path:
    """A one-page AcroForm PDF with text fields `name` and `city` and a check box `agree`."""
    writer = PdfWriter()
    page = writer.add_blank_page(612, 792)
    font = writer._add_object(
        DictionaryObject(
            {
                NameObject("/Type"): NameObject("/Font"),
                NameObject("/Subtype"): NameObject("/Type1"),
                NameObject("/BaseFont"): NameObject("/Helvetica"),
            }
        )
    )
    widgets = ArrayObject()
    for i, name in enumerate(["name", "city"]):
        widgets.append(
            writer._add_object(
                DictionaryObject(
                    {
                        NameObject("/Type"): NameObject("/Annot"),
                        NameObject("/Subtype"): NameObject("/Widget"),
                        NameObject("/FT"): NameObject("/Tx"),
                        NameObject("/T"): TextStringObject(name),
                        NameObject("/Rect"): RectangleObject([72, 700 - 40 * i, 300, 720 - 40 * i]),
                        NameObject("/F"): NumberObject(4),
                        NameObject("/DA"): TextStringObject("/Helv 12 Tf 0 g"),
                        NameObject("/P"): page.indirect_reference,
                    }
                )
            )
        )
    appearances = DictionaryObject()
    for state in ("/Yes", "/Off"):
        stream = DecodedStreamObject()
        stream.set_data(b"")
        stream[NameObject("/BBox")] = RectangleObject([0, 0, 12, 12])
        appearances[NameObject(state)] = writer._add_object(stream)
    widgets.append(
        writer._add_object(
            DictionaryObject(
                {
                    NameObject("/Type"): NameObject("/Annot"),
                    NameObject("/Subtype"): NameObject("/Widget"),
                    NameObject("/FT"): NameObject("/Btn"),
                    NameObject("/T"): TextStringObject("agree"),
                    NameObject("/Rect"): RectangleObject([72, 600, 84, 612]),
                    NameObject("/F"): NumberObject(4),
                    NameObject("/V"): NameObject("/Off"),
                    NameObject("/AS"): NameObject("/Off"),
                    NameObject("/AP"): DictionaryObject({NameObject("/N"): appearances}),
                    NameObject("/P"): page.indirect_reference,
                }
            )
        )
    )
    page[NameObject("/Annots")] = widgets
    writer._root_object[NameObject("/AcroForm")] = DictionaryObject(
        {
            NameObject("/Fields"): ArrayObject(widgets),
            NameObject("/DA"): TextStringObject("/Helv 0 Tf 0 g"),
            NameObject("/DR"): DictionaryObject({NameObject("/Font"): DictionaryObject({NameObject("/Helv"): font})}),
        }
    )
    with path.open("wb") as f:
        writer.write(f)
    return path


def sample_docx(path: Path) -> Path:
    doc = docx.Document()
    doc.add_heading("Project Plan", level=1)
    doc.add_paragraph("The plan has three phases.")
    doc.add_paragraph("Design", style="List Bullet")
    doc.add_paragraph("Build", style="List Bullet")
    table = doc.add_table(rows=2, cols=2)
    for r, row in enumerate([("Phase", "Weeks"), ("Design", "4")]):
        for c, text in enumerate(row):
            table.cell(r, c).text = text
    doc.add_paragraph("Budget is approved.")
    doc.save(str(path))
    return path


def sample_xlsx(path: Path) -> Path:
    workbook = openpyxl.Workbook()
    people = workbook.active
    people.title = "People"
    people.append(["Name", "Age", "City"])
    people.append(["Ann", 31, "Oslo"])
    people.append(["Bo", 45, "Lima"])
    totals = workbook.create_sheet("Totals")
    totals.append([None])  # an empty first row: the header is the first non-empty row
    totals.append(["Region", "Sales"])
    totals.append(["North", 1200.5])
    workbook.save(path)
    return path


def pdf_text(path: Path) -> str:
    return "\n".join(page.extract_text() for page in PdfReader(path).pages)


def trashed(settings: ToolHostSettings, trash_id: str) -> Path:
    folder = settings.trash_dir / trash_id
    return folder / json.loads((folder / "manifest.json").read_text())["stored_as"]


def style_of(paragraph: Any) -> str:
    return str(paragraph.style.name) if paragraph.style is not None else ""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# tools/list


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "document")
    async with connected(build_server, settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["diff_documents"].input_schema["properties"]["granularity"]["default"] == "paragraph"
    readers = {"extract_text", "diff_documents", "read_spreadsheet"}
    for name, tool in tools.items():
        hints = tool.annotations
        assert hints is not None and hints.read_only_hint is (name in readers), name
        # Writers may replace an existing output file, but keep it in the trash and return its undo.
        assert hints.destructive_hint is False, name
        assert (tool.meta or {})[META_UNDO_SUPPORTED] is (name not in readers), name
    assert "ocr.extract_text_from_pdf" in (tools["extract_text"].description or "")


# extract_text


async def test_extract_text_of_a_pdf_counts_pages(settings: ToolHostSettings, root: Path) -> None:
    path = text_pdf(root / "report.pdf", "First page text.", "Second page text.")
    result = await ok(build_server, settings, "extract_text", path=str(path))
    assert result["format"] == "pdf" and result["pages"] == 2
    assert "First page text." in result["text"] and "Second page text." in result["text"]
    assert result["truncated"] is False and result["characters"] == len(result["text"])


async def test_extract_text_of_a_scanned_pdf_points_to_ocr(settings: ToolHostSettings, root: Path) -> None:
    path = scanned_pdf(root / "scan.pdf")
    error = await refused(build_server, settings, "extract_text", path=str(path))
    assert "no text layer" in error and "ocr.extract_text_from_pdf" in error


async def test_extract_text_of_docx_keeps_paragraphs_lists_and_tables(settings: ToolHostSettings, root: Path) -> None:
    path = sample_docx(root / "plan.docx")
    result = await ok(build_server, settings, "extract_text", path=str(path))
    assert result["format"] == "docx" and result["pages"] is None
    assert result["text"] == (
        "Project Plan\n\nThe plan has three phases.\n\n- Design\n- Build\n\nPhase\tWeeks\nDesign\t4\n\n"
        "Budget is approved.\n"
    )


async def test_extract_text_of_xlsx_goes_sheet_by_sheet(settings: ToolHostSettings, root: Path) -> None:
    path = sample_xlsx(root / "book.xlsx")
    text = (await ok(build_server, settings, "extract_text", path=str(path)))["text"]
    assert "Sheet: People" in text and "Ann\t31\tOslo" in text
    assert text.index("Sheet: People") < text.index("Sheet: Totals") < text.index("North\t1200.5")


async def test_extract_text_of_html_is_the_visible_text(settings: ToolHostSettings, root: Path) -> None:
    path = root / "page.html"
    path.write_text(
        "<html><head><title>T</title><style>p {color: red}</style></head><body>"
        "<h1>News</h1><script>var hidden = 1;</script><p>Hello&nbsp;<b>world</b> &amp; friends.</p>"
        "<ul><li>one</li><li>two</li></ul><table><tr><th>A</th><th>B</th></tr><tr><td>1</td><td>2</td></tr></table>"
        "</body></html>"
    )
    result = await ok(build_server, settings, "extract_text", path=str(path))
    assert result["text"] == "News\n\nHello world & friends.\n\n- one\n- two\n\nA\tB\n1\t2\n"


async def test_extract_text_of_markdown_text_and_csv_is_the_file_text(settings: ToolHostSettings, root: Path) -> None:
    for name, content in [("a.md", "# Title\n\n- item\n"), ("b.txt", "plain\ntext\n"), ("c.csv", "x,y\n1,2\n")]:
        (root / name).write_text(content)
        result = await ok(build_server, settings, "extract_text", path=str(root / name))
        assert result["text"] == content and result["format"] == name.rsplit(".", 1)[1]


async def test_extract_text_refuses_unknown_and_legacy_formats(settings: ToolHostSettings, root: Path) -> None:
    (root / "old.doc").write_bytes(b"\xd0\xcf\x11\xe0")
    assert "save it as .docx" in await refused(build_server, settings, "extract_text", path=str(root / "old.doc"))
    (root / "photo.png").write_bytes(b"\x89PNG")
    assert "ocr.extract_text_from_image" in await refused(
        build_server, settings, "extract_text", path=str(root / "photo.png")
    )
    (root / "broken.docx").write_text("not a zip")
    assert "not a readable Word" in await refused(
        build_server, settings, "extract_text", path=str(root / "broken.docx")
    )
    (root / "broken.pdf").write_text("not a pdf")
    assert "not a readable PDF" in await refused(build_server, settings, "extract_text", path=str(root / "broken.pdf"))
    assert "does not exist" in await refused(build_server, settings, "extract_text", path=str(root / "none.pdf"))
    text_pdf(root / "report-2026.pdf", "Figures.")
    near = await refused(build_server, settings, "extract_text", path=str(root / "report-2025.pdf"))
    assert f"Did you mean {str(root / 'report-2026.pdf')!r}?" in near  # the correction a retry can use


# convert_format


async def test_convert_docx_to_pdf_writes_a_real_pdf(settings: ToolHostSettings, root: Path) -> None:
    source = sample_docx(root / "plan.docx")
    result = await ok(build_server, settings, "convert_format", path=str(source), target_format="pdf")
    target = root / "plan.pdf"
    assert result["path"] == str(target) and result["target_format"] == "pdf" and result["overwrote"] is False
    assert target.read_bytes().startswith(b"%PDF-")
    text = pdf_text(target)
    for expected in ("Project Plan", "three phases", "Design", "Weeks", "Budget is approved."):
        assert expected in text
    metadata = PdfReader(target).metadata
    assert metadata is not None and metadata.title == "Project Plan"
    assert result["undo"] == [
        {
            "kind": "remove_created",
            "path": str(target),
            "original_path": "",
            "trash_id": "",
            "sha256": sha256(target),
            "replace": False,
        }
    ]


async def test_convert_markdown_to_docx_keeps_structure(settings: ToolHostSettings, root: Path) -> None:
    source = root / "notes.md"
    source.write_text("# Notes\n\nSome **bold** text.\n\n- alpha\n- beta\n\n1. first\n2. second\n")
    result = await ok(
        build_server,
        settings,
        "convert_format",
        path=str(source),
        target_format="Word",
        output_path=str(root / "n.docx"),
    )
    paragraphs = [(style_of(p), p.text) for p in docx.Document(result["path"]).paragraphs]
    assert paragraphs == [
        ("Heading 1", "Notes"),
        ("Normal", "Some bold text."),
        ("List Bullet", "alpha"),
        ("List Bullet", "beta"),
        ("List Number", "first"),
        ("List Number", "second"),
    ]
    bold = [r.text for r in docx.Document(result["path"]).paragraphs[1].runs if r.bold]
    assert bold == ["bold"]


async def test_convert_pdf_to_text_and_html_to_markdown(settings: ToolHostSettings, root: Path) -> None:
    source = text_pdf(root / "memo.pdf", "Meeting at noon.")
    result = await ok(build_server, settings, "convert_format", path=str(source), target_format="txt")
    assert Path(result["path"]).read_text() == "Meeting at noon.\n"
    page = root / "page.html"
    page.write_text("<h2>Agenda</h2><ol><li>Budget</li><li>Hiring</li></ol><p>See <i>you</i>.</p>")
    result = await ok(build_server, settings, "convert_format", path=str(page), target_format="markdown")
    assert Path(result["path"]).read_text() == "## Agenda\n\n1. Budget\n2. Hiring\n\nSee you.\n"


async def test_convert_between_xlsx_and_csv(settings: ToolHostSettings, root: Path) -> None:
    book = sample_xlsx(root / "book.xlsx")
    result = await ok(build_server, settings, "convert_format", path=str(book), target_format="csv")
    assert Path(result["path"]).read_text() == "Name,Age,City\nAnn,31,Oslo\nBo,45,Lima\n"
    assert any("'People' was converted" in n and "Totals" in n for n in result["notes"])
    table = root / "codes.csv"
    table.write_text("code,amount,price\n007,3,1.50\n")
    result = await ok(build_server, settings, "convert_format", path=str(table), target_format="xlsx")
    workbook = openpyxl.load_workbook(result["path"])
    assert [list(row) for row in workbook.active.iter_rows(values_only=True)] == [
        ["code", "amount", "price"],
        ["007", 3, 1.5],
    ]
    workbook.close()


async def test_convert_never_overwrites_by_default_and_trashes_an_explicit_target(
    settings: ToolHostSettings, root: Path
) -> None:
    source = root / "a.md"
    source.write_text("# A\n")
    (root / "a.txt").write_text("keep me")
    first = await ok(build_server, settings, "convert_format", path=str(source), target_format="txt")
    assert first["path"] == str(root / "a-converted.txt") and (root / "a.txt").read_text() == "keep me"
    second = await ok(
        build_server, settings, "convert_format", path=str(source), target_format="txt", output_path=str(root / "a.txt")
    )
    assert second["overwrote"] is True and (root / "a.txt").read_text() == "A\n"
    assert trashed(settings, second["trash_id"]).read_text() == "keep me"
    assert second["undo"][0]["kind"] == "restore_trash" and second["undo"][0]["replace"] is True


async def test_convert_refuses_unsupported_pairs_and_formats(settings: ToolHostSettings, root: Path) -> None:
    source = text_pdf(root / "x.pdf", "x")
    error = await refused(build_server, settings, "convert_format", path=str(source), target_format="xlsx")
    assert "pdf to xlsx is not supported" in error and "csv to xlsx" in error
    error = await refused(build_server, settings, "convert_format", path=str(source), target_format="pptx")
    assert "Unknown target_format" in error and "docx" in error
    error = await refused(
        build_server, settings, "convert_format", path=str(source), target_format="txt", output_path=str(root / "x.pdf")
    )
    assert "must end with .txt" in error
    error = await refused(
        build_server, settings, "convert_format", path=str(scanned_pdf(root / "s.pdf")), target_format="txt"
    )
    assert "ocr.extract_text_from_pdf" in error
    assert not (root / "s.txt").exists()


# diff_documents


async def test_diff_documents_reports_lines_and_paragraph_changes(settings: ToolHostSettings, root: Path) -> None:
    old = sample_docx(root / "plan.docx")
    new = root / "plan.md"
    new.write_text("# Project Plan\n\nThe plan has four phases.\n\n- Design\n- Build\n- Test\n")
    result = await ok(build_server, settings, "diff_documents", path_a=str(old), path_b=str(new))
    assert result["identical"] is False and result["granularity"] == "paragraph"
    assert "-The plan has three phases." in result["unified_diff"]
    assert "+The plan has four phases." in result["unified_diff"]
    assert result["lines_added"] == 2 and result["lines_removed"] == 4
    assert [(c["kind"], c["before"], c["after"], c["position_a"]) for c in result["changes"]] == [
        ("changed", "The plan has three phases.", "The plan has four phases.", 2),
        ("changed", "Phase | Weeks\nDesign | 4\nBudget is approved.", "Test", 5),
    ]
    assert result["summary"].startswith("2 paragraph(s) changed")


async def test_diff_documents_by_word_and_identical_texts(settings: ToolHostSettings, root: Path) -> None:
    (root / "a.txt").write_text("The quick brown fox.\n")
    (root / "b.txt").write_text("The quick red fox.\n")
    result = await ok(
        build_server,
        settings,
        "diff_documents",
        path_a=str(root / "a.txt"),
        path_b=str(root / "b.txt"),
        granularity="word",
    )
    assert [(c["kind"], c["before"], c["after"], c["position_a"]) for c in result["changes"]] == [
        ("changed", "brown", "red", 3)
    ]
    same = await ok(build_server, settings, "diff_documents", path_a=str(root / "a.txt"), path_b=str(root / "a.txt"))
    assert same["identical"] is True and same["changes"] == [] and same["lines_added"] == same["lines_removed"] == 0
    error = await refused(
        build_server,
        settings,
        "diff_documents",
        path_a=str(root / "a.txt"),
        path_b=str(root / "b.txt"),
        granularity="line",
    )
    assert "paragraph" in error and "word" in error


# create_pdf


async def test_create_pdf_writes_headings_lists_tables_and_unicode(settings: ToolHostSettings, root: Path) -> None:
    target = root / "out" / "brief.pdf"
    content = (
        "# Quarterly Brief\n\nRevenue rose **12%** in the café segment — naïve estimate: Ω.\n\n"
        "## Next steps\n\n- Hire two people\n- Open Zürich office\n\n| Region | Sales |\n|---|---|\n| North | 10 |\n"
    )
    result = await ok(build_server, settings, "create_pdf", content=content, output_path=str(target))
    assert result["path"] == str(target) and result["pages"] == 1 and result["template"] is None
    text = pdf_text(target)
    for expected in ("Quarterly Brief", "Revenue rose", "12%", "café", "naïve", "Ω", "Zürich", "Region", "North"):
        assert expected in text
    assert result["undo"][0]["kind"] == "remove_created" and result["undo"][0]["sha256"] == sha256(target)
    long = await ok(
        build_server, settings, "create_pdf", content="\n\n".join(["Paragraph."] * 120), output_path=str(root / "l.pdf")
    )
    assert long["pages"] == len(PdfReader(root / "l.pdf").pages) > 1


async def test_create_pdf_draws_on_a_template_letterhead(settings: ToolHostSettings, root: Path) -> None:
    letterhead = text_pdf(root / "letterhead.pdf", "ACME LETTERHEAD")
    result = await ok(
        build_server,
        settings,
        "create_pdf",
        content="Dear customer,\n\nThank you.",
        output_path=str(root / "letter.pdf"),
        template=str(letterhead),
    )
    assert result["template"] == str(letterhead)
    text = pdf_text(root / "letter.pdf")
    assert "ACME LETTERHEAD" in text and "Dear customer" in text
    error = await refused(
        build_server, settings, "create_pdf", content="x", output_path=str(root / "y.pdf"), template="corporate"
    )
    assert "not a PDF path" in error


async def test_create_pdf_refuses_characters_no_font_can_draw(
    settings: ToolHostSettings, root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    if DEJAVU.is_file():
        error = await refused(build_server, settings, "create_pdf", content="漢字", output_path=str(root / "a.pdf"))
        assert "U+6F22" in error and "DejaVu" in error
    monkeypatch.setattr(document, "DEJAVU_DIR", root / "no-fonts")
    error = await refused(build_server, settings, "create_pdf", content="Ωmega", output_path=str(root / "b.pdf"))
    assert "U+03A9" in error and "fonts-dejavu-core" in error
    assert not (root / "b.pdf").exists()
    await ok(build_server, settings, "create_pdf", content="Latin-1 is fine: café", output_path=str(root / "c.pdf"))
    assert "café" in pdf_text(root / "c.pdf")


async def test_create_pdf_refuses_bad_output_paths_and_empty_content(settings: ToolHostSettings, root: Path) -> None:
    assert "must end with .pdf" in await refused(
        build_server, settings, "create_pdf", content="x", output_path=str(root / "x.html")
    )
    assert "is a folder" in await refused(build_server, settings, "create_pdf", content="x", output_path=str(root))
    assert "content is empty" in await refused(
        build_server, settings, "create_pdf", content="  ", output_path=str(root / "x.pdf")
    )


# fill_pdf_form


async def test_fill_pdf_form_fills_text_fields_and_check_boxes(settings: ToolHostSettings, root: Path) -> None:
    form = form_pdf(root / "form.pdf")
    target = root / "filled.pdf"
    result = await ok(
        build_server,
        settings,
        "fill_pdf_form",
        path=str(form),
        fields={"name": "Ada Lovelace", "agree": True},
        output_path=str(target),
    )
    assert result["fields_filled"] == 2 and result["filled"] == {"name": "Ada Lovelace", "agree": "/Yes"}
    assert result["empty_fields"] == ["city"]
    stored = PdfReader(target).get_fields()
    assert stored is not None and stored["name"]["/V"] == "Ada Lovelace" and stored["agree"]["/V"] == "/Yes"
    assert (PdfReader(form).get_fields() or {})["name"].get("/V") is None  # the original form is untouched


async def test_fill_pdf_form_refuses_unknown_fields_and_plain_pdfs(settings: ToolHostSettings, root: Path) -> None:
    form = form_pdf(root / "form.pdf")
    error = await refused(
        build_server,
        settings,
        "fill_pdf_form",
        path=str(form),
        fields={"surname": "X"},
        output_path=str(root / "o.pdf"),
    )
    assert "'surname'" in error and "name (text)" in error and "city (text)" in error and "agree (checkbox" in error
    error = await refused(
        build_server,
        settings,
        "fill_pdf_form",
        path=str(form),
        fields={"agree": "maybe"},
        output_path=str(root / "o.pdf"),
    )
    assert "true or false" in error and "Yes" in error
    plain = text_pdf(root / "plain.pdf", "no form here")
    error = await refused(
        build_server, settings, "fill_pdf_form", path=str(plain), fields={"name": "X"}, output_path=str(root / "o.pdf")
    )
    assert "no fillable form fields" in error
    assert not (root / "o.pdf").exists()


# merge_pdfs


async def test_merge_pdfs_joins_pages_in_order(settings: ToolHostSettings, root: Path) -> None:
    first = text_pdf(root / "a.pdf", "Alpha one", "Alpha two")
    second = text_pdf(root / "b.pdf", "Beta one")
    result = await ok(
        build_server, settings, "merge_pdfs", paths=[str(first), str(second)], output_path=str(root / "ab.pdf")
    )
    assert result["total_pages"] == 3 and result["pages_per_source"] == [2, 1]
    texts = [page.extract_text() for page in PdfReader(root / "ab.pdf").pages]
    assert ["Alpha one", "Alpha two", "Beta one"] == [t.strip() for t in texts]
    assert "at least two" in await refused(
        build_server, settings, "merge_pdfs", paths=[str(first)], output_path=str(root / "x.pdf")
    )
    (root / "c.txt").write_text("text")
    assert "not a PDF" in await refused(
        build_server, settings, "merge_pdfs", paths=[str(first), str(root / "c.txt")], output_path=str(root / "x.pdf")
    )


# create_docx


async def test_create_docx_writes_headings_lists_and_tables(settings: ToolHostSettings, root: Path) -> None:
    target = root / "minutes.docx"
    content = (
        "# Minutes\n\n## Decisions\n\nWe *agreed* on it.\n\n- ship it\n\n| Who | What |\n|---|---|\n| Ann | Docs |\n"
    )
    result = await ok(build_server, settings, "create_docx", content=content, output_path=str(target))
    assert result["blocks"] == 5 and result["undo"][0]["kind"] == "remove_created"
    made = docx.Document(str(target))
    assert [(style_of(p), p.text) for p in made.paragraphs] == [
        ("Heading 1", "Minutes"),
        ("Heading 2", "Decisions"),
        ("Normal", "We agreed on it."),
        ("List Bullet", "ship it"),
    ]
    assert [r.text for r in made.paragraphs[2].runs if r.italic] == ["agreed"]
    assert [[c.text for c in row.cells] for row in made.tables[0].rows] == [["Who", "What"], ["Ann", "Docs"]]


async def test_create_docx_uses_a_template_without_its_body(settings: ToolHostSettings, root: Path) -> None:
    template = docx.Document()
    template.sections[0].header.paragraphs[0].text = "ACME Corp"
    template.add_paragraph("Template body text")
    template.save(str(root / "template.docx"))
    result = await ok(
        build_server,
        settings,
        "create_docx",
        content="Hello",
        output_path=str(root / "letter.docx"),
        template=str(root / "template.docx"),
    )
    made = docx.Document(result["path"])
    assert [p.text for p in made.paragraphs] == ["Hello"]
    assert made.sections[0].header.paragraphs[0].text == "ACME Corp"
    assert "must end with .docx" in await refused(
        build_server, settings, "create_docx", content="x", output_path=str(root / "x.pdf")
    )


# read_spreadsheet


async def test_read_spreadsheet_reads_xlsx_sheets_as_records(settings: ToolHostSettings, root: Path) -> None:
    path = sample_xlsx(root / "book.xlsx")
    first = await ok(build_server, settings, "read_spreadsheet", path=str(path))
    assert first["sheet"] == "People" and first["sheets"] == ["People", "Totals"]
    assert first["headers"] == ["Name", "Age", "City"] and first["header_row"] == 1
    assert first["rows"] == [{"Name": "Ann", "Age": 31, "City": "Oslo"}, {"Name": "Bo", "Age": 45, "City": "Lima"}]
    assert first["total_rows"] == 2 and first["truncated"] is False
    totals = await ok(build_server, settings, "read_spreadsheet", path=str(path), sheet="totals")
    assert totals["sheet"] == "Totals" and totals["header_row"] == 2
    assert totals["rows"] == [{"Region": "North", "Sales": 1200.5}]
    error = await refused(build_server, settings, "read_spreadsheet", path=str(path), sheet="Costs")
    assert "No sheet named 'Costs'" in error and "People, Totals" in error


async def test_read_spreadsheet_reads_csv_and_caps_rows(settings: ToolHostSettings, root: Path) -> None:
    path = root / "big.csv"
    with path.open("w", newline="") as f:
        writer = csv.writer(f, delimiter=";")
        writer.writerow(["id", "name"])
        writer.writerows([i, f"n{i}"] for i in range(MAX_SPREADSHEET_ROWS + 5))
    result = await ok(build_server, settings, "read_spreadsheet", path=str(path), sheet="Sheet1")
    assert result["headers"] == ["id", "name"] and result["rows"][0] == {"id": "0", "name": "n0"}
    assert result["total_rows"] == MAX_SPREADSHEET_ROWS + 5 and result["returned_rows"] == MAX_SPREADSHEET_ROWS
    assert result["truncated"] is True and any("one sheet" in n for n in result["notes"])
    text_pdf(root / "t.pdf", "x")
    assert "not a spreadsheet" in await refused(build_server, settings, "read_spreadsheet", path=str(root / "t.pdf"))


# the sandbox


async def test_paths_outside_the_roots_are_refused(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    secret = text_pdf(outside / "secret.pdf", "secret")
    inside = text_pdf(root / "in.pdf", "inside")
    (root / "link").symlink_to(outside)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("extract_text", {"path": str(secret)}),
        ("extract_text", {"path": str(root / "link" / "secret.pdf")}),
        ("convert_format", {"path": str(inside), "target_format": "txt", "output_path": str(outside / "o.txt")}),
        ("diff_documents", {"path_a": str(inside), "path_b": str(secret)}),
        ("create_pdf", {"content": "x", "output_path": str(outside / "o.pdf")}),
        ("create_pdf", {"content": "x", "output_path": str(root / "o.pdf"), "template": str(secret)}),
        ("fill_pdf_form", {"path": str(secret), "fields": {"a": "b"}, "output_path": str(root / "o.pdf")}),
        ("merge_pdfs", {"paths": [str(inside), str(secret)], "output_path": str(root / "o.pdf")}),
        ("create_docx", {"content": "x", "output_path": str(root / "link" / "o.docx")}),
        ("read_spreadsheet", {"path": str(outside / "x.csv")}),
    ]
    for tool, arguments in calls:
        error = await refused(build_server, settings, tool, **arguments)
        assert "outside the allowed folders" in error and str(root) in error, (tool, error)
    assert sorted(p.name for p in outside.iterdir()) == ["secret.pdf"]


async def test_server_runs_over_stdio(settings: ToolHostSettings, root: Path) -> None:
    """`python -m services.toolhost.servers.document`, launched the way the tool host launches it."""
    params = stdio_parameters("document", settings)
    (root / "n.txt").write_text("over stdio\n")
    async with Client(params) as client:
        assert client.server_info is not None and client.server_info.name == "document"
        result = await client.call_tool("extract_text", {"path": str(root / "n.txt")})
    assert not result.is_error and result.structured_content["text"] == "over stdio\n"


def test_markdown_blocks_round_trip_through_every_writer() -> None:
    blocks = document._parse_markdown("# T\n\nA [link](https://x.org) and `code`.\n\n```\nraw  text\n```\n")
    assert [b.kind for b in blocks] == ["heading", "paragraph", "code"]
    assert document._text_of(blocks) == "T\n\nA link (https://x.org) and code.\n\nraw  text\n"
    assert '<a href="https://x.org">link</a>' in document._html_text(blocks, "T")
    assert document._markdown_text(blocks) == "# T\n\nA [link](https://x.org) and `code`.\n\n```\nraw  text\n```\n"
    data = document._docx_bytes(blocks, None, [])
    assert [p.text for p in docx.Document(io.BytesIO(data)).paragraphs] == [
        "T",
        "A link (https://x.org) and code.",
        "raw  text",
    ]
