"""The ocr MCP server, called through the SDK's in-memory client on pictures and scans made with Pillow and fpdf2.

Text is drawn large (DejaVu Sans at 32 px, black on white) so tesseract reads it reliably.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fpdf import FPDF
from PIL import Image, ImageDraw, ImageFont

from services.toolhost.servers.ocr import build_server
from services.toolhost.settings import ToolHostSettings
from tests.toolhost.mcp_helpers import assert_matches_contract, connected, ok, refused

FONT = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"
LINE_HEIGHT = 60


def draw(lines: Sequence[str | Sequence[str]], columns: Sequence[int] = (40,), mode: str = "RGB") -> Image.Image:
    """Black text on white; a line given as several cells puts each cell at the next column's x."""
    font = ImageFont.truetype(FONT, 32)
    image = Image.new(mode, (1200, 80 + LINE_HEIGHT * len(lines)), "white" if mode == "RGB" else (0, 0, 0, 0))
    pen = ImageDraw.Draw(image)
    for row, line in enumerate(lines):
        cells = [line] if isinstance(line, str) else line
        for x, text in zip(columns, cells, strict=False):
            pen.text((x, 40 + row * LINE_HEIGHT), text, font=font, fill="black")
    return image


def picture(path: Path, lines: Sequence[str | Sequence[str]], columns: Sequence[int] = (40,)) -> Path:
    draw(lines, columns).save(path)
    return path


def scanned_pdf(path: Path, *pages: Image.Image) -> Path:
    """A PDF of pictures only, like a scanner makes: no text layer."""
    pdf = FPDF()
    for number, image in enumerate(pages, 1):
        png = path.with_name(f"{path.stem}-{number}.png")
        image.save(png)
        pdf.add_page()
        pdf.image(str(png), x=10, y=10, w=190)
    pdf.output(str(path))
    return path


TABLE = [("Item", "Qty", "Price"), ("Apples", "3", "1.20"), ("Oranges", "12", "4.50"), ("Green pears", "7", "10.00")]
TABLE_COLUMNS = (40, 560, 860)


# tools/list


async def test_tools_list_matches_the_shared_contract(settings: ToolHostSettings) -> None:
    await assert_matches_contract(build_server, settings, "ocr")
    async with connected(build_server, settings) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert tools["extract_text_from_image"].input_schema["properties"]["language"]["default"] == "eng"
    assert "document.extract_text" in (tools["extract_text_from_pdf"].description or "")


# extract_text_from_image


async def test_extract_text_from_image_reads_the_words(settings: ToolHostSettings, root: Path) -> None:
    path = picture(root / "note.png", ["Meeting moved to Friday", "Bring the budget report"])
    result = await ok(build_server, settings, "extract_text_from_image", path=str(path), language="English")
    # Tesseract may set each line apart as its own paragraph; the lines themselves must be exact.
    assert [line for line in result["text"].splitlines() if line] == [
        "Meeting moved to Friday",
        "Bring the budget report",
    ]
    assert result["language"] == "eng" and result["words"] == 8 and result["frames"] == 1
    assert result["confidence"] > 80


async def test_extract_text_from_image_reads_black_text_on_transparency(settings: ToolHostSettings, root: Path) -> None:
    path = root / "logo.png"
    draw(["Transparent background"], mode="RGBA").save(path)
    result = await ok(build_server, settings, "extract_text_from_image", path=str(path))
    assert result["text"] == "Transparent background"


async def test_extract_text_from_image_refuses_missing_languages_and_non_images(
    settings: ToolHostSettings, root: Path
) -> None:
    path = picture(root / "a.png", ["x"])
    error = await refused(build_server, settings, "extract_text_from_image", path=str(path), language="klingon")
    assert "'klingon' is not installed" in error and "Installed: eng" in error and "tesseract-ocr-" in error
    assert "not installed" in await refused(
        build_server, settings, "extract_text_from_image", path=str(path), language="osd"
    )
    scanned_pdf(root / "scan.pdf", draw(["x"]))
    assert "ocr.extract_text_from_pdf" in await refused(
        build_server, settings, "extract_text_from_image", path=str(root / "scan.pdf")
    )
    (root / "fake.png").write_text("not a picture")
    assert "cannot be read as a picture" in await refused(
        build_server, settings, "extract_text_from_image", path=str(root / "fake.png")
    )
    (root / "notes.docx").write_bytes(b"PK")
    assert "document.extract_text" in await refused(
        build_server, settings, "extract_text_from_image", path=str(root / "notes.docx")
    )


# extract_text_from_pdf


async def test_extract_text_from_pdf_reads_chosen_pages(settings: ToolHostSettings, root: Path) -> None:
    path = scanned_pdf(root / "scan.pdf", draw(["First page says hello"]), draw(["Second page says goodbye"]))
    result = await ok(build_server, settings, "extract_text_from_pdf", path=str(path), pages=[2])
    assert result["page_count"] == 2
    assert [(p["page"], p["text"], p["has_text_layer"]) for p in result["pages"]] == [
        (2, "Second page says goodbye", False)
    ]
    assert result["pages"][0]["confidence"] > 80 and result["notes"] == []


async def test_extract_text_from_pdf_reads_every_page_and_notes_text_layers(
    settings: ToolHostSettings, root: Path
) -> None:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=36)
    pdf.cell(0, 20, "Typed text page")
    pdf.output(str(root / "typed.pdf"))
    result = await ok(build_server, settings, "extract_text_from_pdf", path=str(root / "typed.pdf"))
    assert [(p["page"], p["text"], p["has_text_layer"]) for p in result["pages"]] == [(1, "Typed text page", True)]
    assert "document.extract_text" in result["notes"][0]
    error = await refused(build_server, settings, "extract_text_from_pdf", path=str(root / "typed.pdf"), pages=[0, 3])
    assert "Page(s) 0, 3 do not exist" in error and "1 to 1" in error
    (root / "broken.pdf").write_text("not a pdf")
    assert "cannot be opened as a PDF" in await refused(
        build_server, settings, "extract_text_from_pdf", path=str(root / "broken.pdf")
    )
    picture(root / "a.png", ["x"])
    assert "ocr.extract_text_from_image" in await refused(
        build_server, settings, "extract_text_from_pdf", path=str(root / "a.png")
    )


# extract_structured_data

INVOICE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "invoice_number": {"type": "string"},
        "date": {"type": "string", "format": "date"},
        "total": {"type": "number"},
        "email": {"type": "string", "format": "email"},
        "iban": {"type": "string"},
    },
}


async def test_extract_structured_data_from_ocr_text(settings: ToolHostSettings, root: Path) -> None:
    path = picture(
        root / "invoice.png",
        ["Invoice No: INV-0042", "Date: 12 March 2024", "Total: $1,234.50", "Contact: billing@acme.com"],
    )
    text = (await ok(build_server, settings, "extract_text_from_image", path=str(path)))["text"]
    result = await ok(build_server, settings, "extract_structured_data", text=text, schema=INVOICE_SCHEMA)
    assert result["data"] == {
        "invoice_number": "INV-0042",
        "date": "2024-03-12",
        "total": 1234.5,
        "email": "billing@acme.com",
        "iban": None,
    }
    assert result["fields"]["total"] == {"value": 1234.5, "matched_text": "Total: $1,234.50", "basis": "labelled"}
    # "Contact" does not name the email field, but it is the only email in the text.
    assert result["fields"]["email"]["basis"] == "only_match" and result["missing"] == ["iban"]
    amounts = [c for c in result["candidates"] if c["kind"] == "amount"]
    assert amounts == [
        {"kind": "amount", "value": {"amount": 1234.5, "currency": "USD"}, "matched_text": "$1,234.50", "label": None}
    ]


async def test_extract_structured_data_only_fills_what_the_text_holds(settings: ToolHostSettings) -> None:
    text = "Paid 1.234,50 EUR on 2024-05-01.\nShipped 2024-05-03.\nCall +44 20 7946 0958."
    schema = {"amount": "number", "shipped_date": "string", "phone": "string", "order_date": {"format": "date"}}
    result = await ok(build_server, settings, "extract_structured_data", text=text, schema=schema)
    assert result["data"] == {"amount": 1234.5, "shipped_date": None, "phone": "+44 20 7946 0958", "order_date": None}
    assert result["fields"]["amount"]["basis"] == "only_match"
    assert result["fields"]["amount"]["matched_text"] == "1.234,50 EUR"
    assert any("several possible values" in note for note in result["notes"])
    assert sorted(result["missing"]) == ["order_date", "shipped_date"]


async def test_extract_structured_data_refuses_empty_text_and_schema(settings: ToolHostSettings) -> None:
    error = await refused(build_server, settings, "extract_structured_data", text="  ", schema=INVOICE_SCHEMA)
    assert "ocr.extract_text_from_image" in error
    error = await refused(build_server, settings, "extract_structured_data", text="Total: 5", schema={"type": "object"})
    assert "schema names no fields" in error and "properties" in error


# extract_table


async def test_extract_table_from_a_picture(settings: ToolHostSettings, root: Path) -> None:
    path = picture(root / "table.png", ["Fruit order", *TABLE], columns=TABLE_COLUMNS)
    result = await ok(build_server, settings, "extract_table", path=str(path))
    assert result["table_found"] is True and result["page"] == 1 and result["column_count"] == 3
    assert result["headers"] == ["Item", "Qty", "Price"]
    assert result["rows"] == [list(row) for row in TABLE[1:]]
    assert result["text_outside_table"] == ["Fruit order"]


async def test_extract_table_from_a_scanned_pdf_page(settings: ToolHostSettings, root: Path) -> None:
    path = scanned_pdf(root / "scan.pdf", draw(["Cover page"]), draw(TABLE, TABLE_COLUMNS))
    result = await ok(build_server, settings, "extract_table", path=str(path), page=2)
    assert result["headers"] == ["Item", "Qty", "Price"] and result["rows"][-1] == ["Green pears", "7", "10.00"]
    error = await refused(build_server, settings, "extract_table", path=str(path), page=3)
    assert "do not exist" in error and "2 page(s)" in error


async def test_extract_table_says_when_there_is_no_table(settings: ToolHostSettings, root: Path) -> None:
    path = picture(root / "prose.png", ["Just a sentence of text", "and another line"])
    result = await ok(build_server, settings, "extract_table", path=str(path))
    assert result["table_found"] is False and result["headers"] == [] and result["rows"] == []
    assert result["text_outside_table"] == ["Just a sentence of text", "and another line"]
    assert "No table-like layout" in result["note"]


# the sandbox


async def test_paths_outside_the_roots_are_refused(settings: ToolHostSettings, root: Path, outside: Path) -> None:
    secret = picture(outside / "secret.png", ["secret"])
    (root / "link.png").symlink_to(secret)
    calls: list[tuple[str, dict[str, Any]]] = [
        ("extract_text_from_image", {"path": str(secret)}),
        ("extract_text_from_image", {"path": str(root / "link.png")}),
        ("extract_text_from_pdf", {"path": str(outside / "scan.pdf")}),
        ("extract_table", {"path": str(root / ".." / "outside" / "secret.png")}),
    ]
    for tool, arguments in calls:
        error = await refused(build_server, settings, tool, **arguments)
        assert "outside the allowed folders" in error and str(root) in error, (tool, error)
