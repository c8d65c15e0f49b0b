"""The `ocr` MCP server: read text, fields and tables from pictures and scanned PDFs with Tesseract.

Images are opened with Pillow, PDF pages are rasterised with pypdfium2, and the text is recognised by the
`tesseract` program (Debian package tesseract-ocr, one package per language) through pytesseract.
Structured fields are found by patterns in the recognised text: every value comes with the text it was
read from, and a field the text does not hold stays empty. Every path goes through the `Sandbox`.
Run over stdio with `python -m services.toolhost.servers.ocr`; logs go to stderr.
"""

from __future__ import annotations

import logging
import re
import statistics
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import pypdfium2 as pdfium
import pytesseract
from dateutil import parser as date_parser
from mcp.server.mcpserver import MCPServer
from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from pydantic import BaseModel, Field

from services.toolhost.servers.kit import Correction, Effects, ToolError, closest_choice, existing_file, serve, tool
from services.toolhost.settings import ToolHostSettings

log = logging.getLogger("services.toolhost.servers.ocr")  # not "__main__" under `python -m`

SERVER_NAME = "ocr"
DEFAULT_LANGUAGE = "eng"
RENDER_DPI = 300
MAX_RENDER_PIXELS = 5000  # longest side of a rendered page; keeps huge pages from exhausting memory
LOW_CONFIDENCE = 60.0  # below this mean word confidence tesseract's text is usually partly wrong
MAX_OCR_PAGES = 20  # pages (or image frames) per call, so one call stays within the call timeout
TABLE_PAGE_SEGMENTATION = 6  # tesseract --psm 6: one uniform block, which keeps table rows whole
PDF_SUFFIX = ".pdf"
IMAGE_SUFFIXES = frozenset(
    {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp", ".pnm", ".pbm", ".pgm", ".ppm", ".jp2"}
)
# Names a person (or a model) may use for a language, mapped to tesseract's codes.
LANGUAGE_NAMES = {
    "english": "eng",
    "en": "eng",
    "german": "deu",
    "de": "deu",
    "french": "fra",
    "fr": "fra",
    "spanish": "spa",
    "es": "spa",
    "italian": "ita",
    "it": "ita",
    "portuguese": "por",
    "pt": "por",
    "dutch": "nld",
    "nl": "nld",
}


class ImageText(BaseModel):
    path: str
    language: str
    text: str
    confidence: float | None = Field(description="Tesseract's mean word confidence, 0-100; null when no words.")
    words: int = Field(description="Number of words recognised.")
    frames: int = Field(description="Images read (a TIFF can hold several).")
    notes: list[str] = Field(default_factory=list)


class PageText(BaseModel):
    page: int = Field(description="1-based page number.")
    text: str
    confidence: float | None = Field(description="Tesseract's mean word confidence, 0-100; null when no words.")
    has_text_layer: bool = Field(description="True when the page already holds text that document.extract_text reads.")


class PdfText(BaseModel):
    path: str
    page_count: int = Field(description="Pages in the PDF.")
    pages: list[PageText]
    notes: list[str] = Field(default_factory=list)


FieldBasis = Literal["labelled", "only_match"]


class FieldMatch(BaseModel):
    value: Any = Field(description="The value, converted to the schema's type where it has one.")
    matched_text: str = Field(description="The text the value was read from.")
    basis: FieldBasis = Field(
        description="labelled: found next to a label naming the field; only_match: the only value of its kind."
    )


class Found(BaseModel):
    kind: Literal["date", "amount", "email", "phone", "labelled"]
    value: Any
    matched_text: str
    label: str | None = Field(None, description="For labelled values, the label before the value.")


class StructuredData(BaseModel):
    data: dict[str, Any] = Field(description="Each schema field's value, or null when the text does not hold it.")
    fields: dict[str, FieldMatch] = Field(description="How each found field was matched, with the matched text.")
    missing: list[str] = Field(description="Schema fields not found in the text.")
    candidates: list[Found] = Field(description="Every date, amount, email, phone and 'label: value' in the text.")
    notes: list[str] = Field(default_factory=list)


class Table(BaseModel):
    path: str
    page: int = Field(description="The page (PDF) or frame (multi-page TIFF) read, 1-based.")
    table_found: bool
    headers: list[str] = Field(description="Cells of the table's first row.")
    rows: list[list[str]] = Field(description="The other rows, one list of cells per row, in column order.")
    column_count: int
    text_outside_table: list[str] = Field(description="Lines above or below the table, e.g. a title.")
    note: str | None = None


@dataclass(frozen=True)
class Word:
    """One recognised word and its box in pixels."""

    text: str
    left: int
    top: int
    width: int
    height: int
    confidence: float

    @property
    def right(self) -> int:
        return self.left + self.width

    @property
    def middle(self) -> float:
        return self.top + self.height / 2


@dataclass(frozen=True)
class Recognised:
    text: str
    confidence: float | None
    words: list[Word]


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The OCR server, reading only files inside `settings.roots()`."""
    sandbox = settings.sandbox()
    roots = ", ".join(str(r) for r in sandbox.roots)
    server = MCPServer(
        SERVER_NAME,
        instructions=f"Read text, fields and tables from images and scanned PDFs (Tesseract OCR) in: {roots}.",
    )
    resolve = sandbox.resolve
    timeout = settings.call_timeout_seconds

    @tool(server, Effects.reads())
    def extract_text_from_image(
        path: Annotated[
            str, Field(description="Path of the picture: PNG, JPEG, TIFF, BMP, GIF or WebP (a scan or a photo).")
        ],
        language: Annotated[
            str,
            Field(description='Tesseract language code of the text, e.g. "eng"; several joined with +, "eng+deu".'),
        ] = DEFAULT_LANGUAGE,
    ) -> ImageText:
        """Read the text in a picture (scan, screenshot, photo of a page) with OCR.

        For a scanned PDF use ocr.extract_text_from_pdf; for a PDF, Word or HTML file that already
        holds text use document.extract_text. To pull out fields such as dates and totals, pass the
        text to ocr.extract_structured_data; for a table, use ocr.extract_table.
        """
        file = _image_file(resolve(path), path)
        lang = _language(language)
        notes: list[str] = []
        texts: list[str] = []
        confidences: list[float] = []
        words = 0
        with _open_image(file) as image:
            frames = list(_frames(image, notes))
            for frame in frames:
                found = _recognise(frame, lang, timeout)
                texts.append(found.text)
                words += len(found.words)
                confidences.extend(w.confidence for w in found.words)
        confidence = _mean(confidences)
        if not words:
            notes.append("No text was recognised; the picture may be blank, blurred, too small or low in contrast.")
        elif confidence is not None and confidence < LOW_CONFIDENCE:
            notes.append(
                f"Low confidence ({confidence:g}/100): the text may be wrong. The picture may be sideways, blurred "
                "or low resolution; an upright, sharper picture reads better."
            )
        return ImageText(
            path=str(file),
            language=lang,
            text="\n\n".join(t for t in texts if t),
            confidence=confidence,
            words=words,
            frames=len(frames),
            notes=notes,
        )

    @tool(server, Effects.reads())
    def extract_text_from_pdf(
        path: Annotated[str, Field(description="Path of the PDF, typically a scan without selectable text.")],
        pages: Annotated[
            list[int] | None,
            Field(description=f"1-based page numbers to read, e.g. [1, 3]. Omit for all (up to {MAX_OCR_PAGES})."),
        ] = None,
    ) -> PdfText:
        """Read the text of a scanned PDF with OCR, page by page (each page is turned into a picture first).

        Slow: for a PDF that already holds selectable text, document.extract_text is faster and exact.
        For a single picture use ocr.extract_text_from_image.
        """
        file = _pdf_file(resolve(path), path)
        notes: list[str] = []
        results = []
        with _open_pdf(file) as document:
            count = len(document)
            wanted = _page_numbers(pages, count)
            if len(wanted) > MAX_OCR_PAGES:
                rest = wanted[MAX_OCR_PAGES:]
                notes.append(
                    f"Only {MAX_OCR_PAGES} pages are read per call; call again with pages={rest[:MAX_OCR_PAGES]} "
                    "for the next ones."
                )
                wanted = wanted[:MAX_OCR_PAGES]
            for number in wanted:
                image, has_text = _render_page(document, number)
                found = _recognise(image, DEFAULT_LANGUAGE, timeout)
                results.append(
                    PageText(page=number, text=found.text, confidence=found.confidence, has_text_layer=has_text)
                )
        layered = [r.page for r in results if r.has_text_layer]
        if layered:
            notes.append(
                f"Page(s) {', '.join(map(str, layered))} already hold text; document.extract_text reads it exactly."
            )
        return PdfText(path=str(file), page_count=count, pages=results, notes=notes)

    @tool(server, Effects.reads())
    def extract_structured_data(
        text: Annotated[
            str, Field(description="The text to search, usually the output of ocr.extract_text_from_image.")
        ],
        schema: Annotated[
            dict[str, Any],
            Field(
                description='JSON Schema of the fields wanted, e.g. {"type": "object", "properties": '
                '{"invoice_number": {"type": "string"}, "total": {"type": "number"}, "due_date": '
                '{"type": "string", "format": "date"}}}.'
            ),
        ],
    ) -> StructuredData:
        """Pick fields such as invoice number, dates, totals, emails and phone numbers out of text, by the
        field names of a JSON Schema.

        Takes text, not a file: first read a picture with ocr.extract_text_from_image or a scan with
        ocr.extract_text_from_pdf. A field is filled only from a matching label ("Total: 12.50") or when
        the text holds exactly one value of its kind; anything else stays null.
        """
        if not text.strip():
            raise ToolError(
                "text is empty. Read the file first with ocr.extract_text_from_image (pictures) or "
                "ocr.extract_text_from_pdf (scans), then pass the text it returns.",
                correction=Correction("text is empty", parameter="text"),
            )
        wanted = _schema_fields(schema)
        candidates = _candidates(text)
        data: dict[str, Any] = {}
        matched: dict[str, FieldMatch] = {}
        notes: list[str] = []
        for name, spec in wanted.items():
            match, ambiguous = _match_field(name, spec, candidates)
            data[name] = match.value if match is not None else None
            if match is not None:
                matched[name] = match
            elif ambiguous:
                notes.append(f"{name}: several possible values and none labelled; see candidates.")
        return StructuredData(
            data=data,
            fields=matched,
            missing=[name for name in wanted if name not in matched],
            candidates=candidates,
            notes=notes,
        )

    @tool(server, Effects.reads())
    def extract_table(
        path: Annotated[str, Field(description="Path of a picture or a PDF that shows a table.")],
        page: Annotated[
            int | None,
            Field(ge=1, description="For a PDF (or multi-page TIFF), the 1-based page to read. Omit for page 1."),
        ] = None,
    ) -> Table:
        """Read a table from a picture or a scanned PDF page with OCR, as a header row and rows of cells.

        Columns are found from where the words sit on the page. For running text use
        ocr.extract_text_from_image or ocr.extract_text_from_pdf; for a spreadsheet file (.xlsx, .csv)
        use document.read_spreadsheet.
        """
        file = resolve(path)
        number = page or 1
        if file.suffix.lower() == PDF_SUFFIX:
            file = _pdf_file(file, path)
            with _open_pdf(file) as document:
                _page_numbers([number], len(document), parameter="page")
                image, _ = _render_page(document, number)
        else:
            file = _image_file(file, path)
            with _open_image(file) as opened:
                frames = getattr(opened, "n_frames", 1)
                if number > frames:
                    raise ToolError(
                        f"page {number} does not exist: {file} has {frames} frame(s).",
                        correction=Correction(f"page {number} does not exist", parameter="page"),
                    )
                opened.seek(number - 1)
                image = _prepared(opened)
        words = _recognise(image, DEFAULT_LANGUAGE, timeout, TABLE_PAGE_SEGMENTATION).words
        layout = _table_layout(words)
        if layout is None:
            lines = [" ".join(w.text for w in row) for row in _rows_of(words)]
            note = (
                "No table-like layout found: fewer than two lines have separate columns. The text is in "
                "text_outside_table; ocr.extract_text_from_image reads running text."
                if words
                else "No text was recognised on this page."
            )
            return Table(
                path=str(file),
                page=number,
                table_found=False,
                headers=[],
                rows=[],
                column_count=0,
                text_outside_table=lines,
                note=note,
            )
        return Table(
            path=str(file),
            page=number,
            table_found=True,
            headers=layout.rows[0],
            rows=layout.rows[1:],
            column_count=len(layout.rows[0]),
            text_outside_table=layout.outside,
        )

    return server


# Files, images and pages


def _image_file(path: Path, raw: str) -> Path:
    file = existing_file(path, raw)
    suffix = file.suffix.lower()
    if suffix == PDF_SUFFIX:
        raise ToolError(
            f"{file} is a PDF. Use ocr.extract_text_from_pdf for scanned PDFs.",
            correction=Correction(f"{file.name} is a PDF", suggested_tool="ocr.extract_text_from_pdf"),
        )
    if suffix not in IMAGE_SUFFIXES:
        raise ToolError(
            f"{file} is not a picture this reads ({', '.join(sorted(IMAGE_SUFFIXES))}). For documents with text "
            "use document.extract_text.",
            correction=Correction(f"{file.name} is not a picture", suggested_tool="document.extract_text"),
        )
    return file


def _pdf_file(path: Path, raw: str) -> Path:
    file = existing_file(path, raw)
    if file.suffix.lower() != PDF_SUFFIX:
        picture = file.suffix.lower() in IMAGE_SUFFIXES
        raise ToolError(
            f"{file} is not a PDF. For a picture use ocr.extract_text_from_image.",
            correction=Correction(
                f"{file.name} is not a PDF",
                suggested_tool="ocr.extract_text_from_image" if picture else "",
                rejected=None if picture else raw,
            ),
        )
    return file


def _open_image(path: Path) -> Image.Image:
    try:
        return Image.open(path)
    except (UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ToolError(f"{path} cannot be read as a picture ({exc}).") from exc


def _frames(image: Image.Image, notes: list[str]) -> Iterator[Image.Image]:
    """Every frame of the image (a multi-page TIFF has several), up to the page limit."""
    for index, frame in enumerate(ImageSequence.Iterator(image)):
        if index == MAX_OCR_PAGES:
            notes.append(f"Only the first {MAX_OCR_PAGES} frames were read.")
            return
        yield _prepared(frame)


def _prepared(frame: Image.Image) -> Image.Image:
    """Upright, on white, in grayscale: what tesseract reads best."""
    image = ImageOps.exif_transpose(frame)
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent pixels would turn black and swallow black text; put the picture on white instead.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, "white")
        image = Image.alpha_composite(background, rgba)
    return image.convert("L")


class _PdfDocument:
    """A pypdfium2 document that is closed when the `with` block ends."""

    def __init__(self, path: Path) -> None:
        try:
            self.document = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            raise ToolError(
                f"{path} cannot be opened as a PDF ({exc}). If it is password-protected, remove the password first."
            ) from exc

    def __enter__(self) -> pdfium.PdfDocument:
        return self.document

    def __exit__(self, *_: object) -> None:
        self.document.close()


def _open_pdf(path: Path) -> _PdfDocument:
    return _PdfDocument(path)


def _page_numbers(pages: Sequence[int] | None, count: int, parameter: str = "pages") -> list[int]:
    if pages is None:
        return list(range(1, count + 1))
    wrong = [p for p in pages if not 1 <= p <= count]
    if wrong:
        existing = [p for p in pages if 1 <= p <= count]
        raise ToolError(
            f"Page(s) {', '.join(map(str, wrong))} do not exist: the PDF has {count} page(s), 1 to {count}.",
            correction=Correction(
                f"page(s) {', '.join(map(str, wrong))} do not exist",
                parameter=parameter,
                suggested_value=existing if parameter == "pages" and existing else None,
            ),
        )
    if not pages:
        raise ToolError(
            f"pages is empty. Give page numbers from 1 to {count}, or omit pages to read all.",
            correction=Correction("pages is empty", parameter=parameter),
        )
    return list(dict.fromkeys(pages))


def _render_page(document: pdfium.PdfDocument, number: int) -> tuple[Image.Image, bool]:
    """Page `number` as a picture at 300 dpi (less for huge pages), and whether it holds a text layer."""
    page = document[number - 1]
    try:
        width, height = page.get_size()
        scale = min(RENDER_DPI / 72, MAX_RENDER_PIXELS / max(width, height, 1))
        textpage = page.get_textpage()
        try:
            has_text = bool(textpage.get_text_bounded().strip())
        finally:
            textpage.close()
        image = page.render(scale=scale).to_pil()
    finally:
        page.close()
    return _prepared(image), has_text


# Recognition


def _language(language: str) -> str:
    """A tesseract language string whose every part is installed; else a tool error listing what is."""
    installed = _installed_languages()
    parts = [LANGUAGE_NAMES.get(p.strip().lower(), p.strip()) for p in language.split("+") if p.strip()]
    usable = sorted(lang for lang in installed if lang != "osd")
    wrong = [p for p in parts if p not in installed or p == "osd"]
    if not parts or wrong:
        close = [p if p not in wrong else closest_choice(p, usable) for p in parts]
        raise ToolError(
            f"Tesseract language {', '.join(repr(w) for w in wrong) or repr(language)} is not installed here. "
            f"Installed: {', '.join(usable) or 'none'}. "
            "Others come as Debian packages named tesseract-ocr-<code>, e.g. tesseract-ocr-deu for German.",
            correction=Correction(
                f"language {language!r} is not installed",
                parameter="language",
                suggested_value="+".join(str(p) for p in close) if parts and None not in close else None,
            ),
        )
    return "+".join(parts)


def _installed_languages() -> list[str]:
    try:
        return [str(lang) for lang in pytesseract.get_languages(config="")]
    except pytesseract.TesseractNotFoundError as exc:
        raise ToolError(_TESSERACT_MISSING) from exc


_TESSERACT_MISSING = (
    "The tesseract program is not installed, so OCR cannot run. Install the Debian package tesseract-ocr "
    "(apt-get install tesseract-ocr) and try again."
)


def _recognise(image: Image.Image, language: str, timeout: float, segmentation: int = 3) -> Recognised:
    """Tesseract's words with their boxes, and the text rebuilt from them in reading order."""
    try:
        data = pytesseract.image_to_data(
            image,
            lang=language,
            config=f"--psm {segmentation}",
            output_type=pytesseract.Output.DICT,
            timeout=timeout,
        )
    except pytesseract.TesseractNotFoundError as exc:
        raise ToolError(_TESSERACT_MISSING) from exc
    except pytesseract.TesseractError as exc:
        raise ToolError(f"Tesseract failed: {exc.message}") from exc
    except RuntimeError as exc:
        # pytesseract raises a bare RuntimeError when the process outlives its timeout.
        raise ToolError(f"OCR took longer than {timeout:g} s and was stopped. Try a smaller picture.") from exc
    words: list[Word] = []
    lines: dict[tuple[int, int, int], list[str]] = {}
    for i, raw in enumerate(data["text"]):
        text = str(raw).strip()
        if int(data["level"][i]) != 5 or not text:
            continue
        words.append(
            Word(
                text=text,
                left=int(data["left"][i]),
                top=int(data["top"][i]),
                width=int(data["width"][i]),
                height=int(data["height"][i]),
                confidence=float(data["conf"][i]),
            )
        )
        key = (int(data["block_num"][i]), int(data["par_num"][i]), int(data["line_num"][i]))
        lines.setdefault(key, []).append(text)
    out: list[str] = []
    previous = None
    for (block, paragraph, _), line_words in lines.items():
        if previous is not None and previous != (block, paragraph):
            out.append("")  # a blank line between tesseract's paragraphs
        out.append(" ".join(line_words))
        previous = (block, paragraph)
    return Recognised(
        text="\n".join(out), confidence=_mean(w.confidence for w in words if w.confidence >= 0), words=words
    )


def _mean(values: Iterator[float] | list[float]) -> float | None:
    values = [v for v in values if v >= 0]
    return round(statistics.fmean(values), 1) if values else None


# Tables


@dataclass(frozen=True)
class _Cell:
    left: int
    right: int
    text: str


@dataclass(frozen=True)
class _Layout:
    rows: list[list[str]]
    outside: list[str]


def _rows_of(words: Sequence[Word]) -> list[list[Word]]:
    """Words grouped into visual lines by their vertical middle, each line left to right."""
    if not words:
        return []
    tolerance = 0.5 * statistics.median(w.height for w in words)
    rows: list[list[Word]] = []
    middles: list[float] = []
    for word in sorted(words, key=lambda w: w.middle):
        if rows and abs(word.middle - middles[-1]) <= tolerance:
            rows[-1].append(word)
            middles[-1] = statistics.fmean(w.middle for w in rows[-1])
        else:
            rows.append([word])
            middles.append(word.middle)
    return [sorted(row, key=lambda w: w.left) for row in rows]


def _cells_of(row: Sequence[Word], gap: float) -> list[_Cell]:
    """Neighbouring words closer than `gap` pixels form one cell; a wider gap starts the next cell."""
    cells: list[_Cell] = []
    for word in row:
        if cells and word.left - cells[-1].right <= gap:
            last = cells[-1]
            cells[-1] = _Cell(last.left, max(last.right, word.right), f"{last.text} {word.text}")
        else:
            cells.append(_Cell(word.left, word.right, word.text))
    return cells


def _table_layout(words: Sequence[Word]) -> _Layout | None:
    """Rows and columns from word positions, or None when fewer than two lines have several columns.

    The usual number of cells per line decides the column count; the lines with exactly that many
    cells fix each column's horizontal band, and every cell of the table goes to the band it overlaps
    most (or the nearest one).
    """
    rows = _rows_of(words)
    if not rows:
        return None
    gap = 1.5 * statistics.median(w.height for w in words)
    cells = [_cells_of(row, gap) for row in rows]
    multi = [i for i, row in enumerate(cells) if len(row) >= 2]
    if len(multi) < 2:
        return None
    counts = Counter(len(cells[i]) for i in multi)
    columns = max(counts, key=lambda n: (counts[n], n))
    reference = [cells[i] for i in multi if len(cells[i]) == columns]
    bands = [(min(row[c].left for row in reference), max(row[c].right for row in reference)) for c in range(columns)]
    first, last = multi[0], multi[-1]
    table: list[list[str]] = []
    for row in cells[first : last + 1]:
        out = [""] * columns
        for cell in row:
            column = _band_of(cell, bands)
            out[column] = f"{out[column]} {cell.text}".strip()
        table.append(out)
    outside = [" ".join(c.text for c in row) for row in cells[:first] + cells[last + 1 :]]
    return _Layout(rows=table, outside=outside)


def _band_of(cell: _Cell, bands: Sequence[tuple[int, int]]) -> int:
    def overlap(band: tuple[int, int]) -> int:
        return min(cell.right, band[1]) - max(cell.left, band[0])

    best = max(range(len(bands)), key=lambda i: overlap(bands[i]))
    if overlap(bands[best]) > 0:
        return best
    middle = (cell.left + cell.right) / 2
    return min(range(len(bands)), key=lambda i: abs(middle - (bands[i][0] + bands[i][1]) / 2))


# Structured data

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_PHONE = re.compile(
    r"(?<![\w./-])(?:\+\d{1,3}[\s.-]?)?(?:\(\d{1,4}\)[\s.-]?)?\d{2,4}(?:[\s.-]\d{2,4}){1,4}(?![\w/-]|\.\d)"
)
_MONTHS = (
    r"(?:Jan(?:uary)?|Feb(?:ruary)?|Mar(?:ch)?|Apr(?:il)?|May|June?|July?|Aug(?:ust)?|Sep(?:t(?:ember)?)?"
    r"|Oct(?:ober)?|Nov(?:ember)?|Dec(?:ember)?)"
)
_DATE = re.compile(
    r"\b(?:\d{4}-\d{1,2}-\d{1,2}"
    r"|\d{1,2}[/.]\d{1,2}[/.]\d{2,4}"
    rf"|\d{{1,2}}(?:st|nd|rd|th)?\s+{_MONTHS}\.?,?\s+\d{{4}}"
    rf"|{_MONTHS}\.?\s+\d{{1,2}}(?:st|nd|rd|th)?,?\s+\d{{4}})\b",
    re.IGNORECASE,
)
_CURRENCY = r"(?:[$€£¥₹]|USD|EUR|GBP|CHF|JPY|CAD|AUD|INR)"
# Grouped thousands (1,234.50 / 1.234,50) first, else plain digits (1234.50); at most two decimals.
_NUMBER = r"-?(?:\d{1,3}(?:[,.\u00a0\u202f]\d{3})+(?:[.,]\d{1,2})?|\d+(?:[.,]\d{1,2})?)(?!\d)"
_AMOUNT = re.compile(
    rf"(?P<pre>{_CURRENCY})\s?(?P<n1>{_NUMBER})|(?P<n2>{_NUMBER})\s?(?P<post>{_CURRENCY})",
)
# "Invoice No.: 42" or "Invoice # 42": a short label, a colon (or a number sign), the value.
_LABELLED = re.compile(r"^\s*(?P<label>[A-Za-z][A-Za-z0-9 .#/()&'-]{0,40}?)\s*(?::|(?<=#))\s*(?P<value>[^\s:].*?)\s*$")
_SYNONYMS = {
    "number": {"number", "no", "nr", "num", "#", "id"},
    "no": {"number", "no", "nr", "num", "#"},
    "id": {"id", "number", "no"},
    "total": {"total", "amount", "due", "sum"},
    "amount": {"amount", "total", "sum"},
    "date": {"date", "dated"},
    "email": {"email", "e-mail", "mail"},
    "phone": {"phone", "tel", "telephone", "mobile", "cell"},
    "name": {"name"},
}
_DATE_WORDS = {"date", "dated", "birthday", "dob", "day"}
_AMOUNT_WORDS = {"amount", "total", "price", "cost", "sum", "subtotal", "tax", "vat", "balance", "fee", "paid"}
_IDENTIFIER_WORDS = {"number", "no", "id", "count", "quantity", "qty", "code", "reference", "ref"}
# Words of a field name a label may leave out: "Due:" names the field due_date just as well.
_OPTIONAL_WORDS: dict[str, set[str]] = {
    "date": {"date"},
    "amount": {"amount"},
    "email": {"address"},
    "phone": {"number"},
    "text": {"name", "value"},
}

Kind = Literal["date", "amount", "email", "phone", "text"]


def _schema_fields(schema: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The wanted fields and their schemas; `{"total": "number"}` is accepted as shorthand."""
    properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else None
    source = properties if properties is not None else schema
    fields: dict[str, dict[str, Any]] = {}
    for name, spec in source.items():
        if properties is None and name in ("type", "required", "$schema", "title", "description"):
            continue
        if isinstance(spec, dict):
            fields[str(name)] = spec
        elif isinstance(spec, str):
            fields[str(name)] = {"type": spec}
    if not fields:
        raise ToolError(
            'schema names no fields. Give a JSON Schema like {"type": "object", "properties": {"invoice_number": '
            '{"type": "string"}, "total": {"type": "number"}, "date": {"type": "string", "format": "date"}}}.',
            correction=Correction("schema names no fields", parameter="schema"),
        )
    return fields


def _candidates(text: str) -> list[Found]:
    found: list[Found] = []
    for match in _DATE.finditer(text):
        iso = _iso_date(match.group(0))
        if iso is not None:
            found.append(Found(kind="date", value=iso, matched_text=match.group(0)))
    for match in _AMOUNT.finditer(text):
        number = _number(match.group("n1") or match.group("n2"))
        if number is not None:
            currency = _currency_code(match.group("pre") or match.group("post"))
            found.append(
                Found(kind="amount", value={"amount": number, "currency": currency}, matched_text=match.group(0))
            )
    emails = list(_EMAIL.finditer(text))
    for match in emails:
        found.append(Found(kind="email", value=match.group(0), matched_text=match.group(0)))
    taken = [(m.start(), m.end()) for m in (*_DATE.finditer(text), *_AMOUNT.finditer(text), *emails)]
    for match in _PHONE.finditer(text):
        digits = re.sub(r"\D", "", match.group(0))
        overlaps = any(match.start() < end and start < match.end() for start, end in taken)
        if 7 <= len(digits) <= 15 and not overlaps:
            found.append(Found(kind="phone", value=match.group(0).strip(), matched_text=match.group(0).strip()))
    for line in text.splitlines():
        labelled = _LABELLED.match(line)
        if labelled and not re.fullmatch(r"https?|mailto|tel", labelled.group("label").strip(), re.IGNORECASE):
            found.append(
                Found(
                    kind="labelled",
                    value=labelled.group("value"),
                    matched_text=line.strip(),
                    label=labelled.group("label").strip(),
                )
            )
    return found


def _match_field(name: str, spec: dict[str, Any], candidates: Sequence[Found]) -> tuple[FieldMatch | None, bool]:
    """The field's value from a matching label, else from the only value of its kind; and whether it was
    left empty because several values fit."""
    kind = _kind_of(name, spec)
    tokens = _tokens(name)
    labelled = []
    for candidate in candidates:
        if candidate.kind != "labelled" or not candidate.label:
            continue
        label = _tokens(candidate.label)
        if _label_fits(tokens, label, _OPTIONAL_WORDS[kind]):
            value = _typed(str(candidate.value), kind, spec)
            if value is not None:
                labelled.append((len(label), candidate, value))
    if labelled:
        # The closest label wins: "Total" over "Total before tax" for the field total.
        _, best, value = min(labelled, key=lambda found: found[0])
        return FieldMatch(value=value, matched_text=best.matched_text, basis="labelled"), False
    if kind == "text":
        return None, False
    same_kind = [c for c in candidates if c.kind == kind]
    if len(same_kind) == 1:
        only = same_kind[0]
        return FieldMatch(
            value=_typed(only.matched_text, kind, spec), matched_text=only.matched_text, basis="only_match"
        ), False
    return None, len(same_kind) > 1


def _kind_of(name: str, spec: dict[str, Any]) -> Kind:
    tokens = set(_tokens(name))
    fmt = str(spec.get("format", ""))
    if fmt in ("date", "date-time") or tokens & _DATE_WORDS:
        return "date"
    if fmt == "email" or tokens & {"email", "mail"}:
        return "email"
    if tokens & {"phone", "tel", "telephone", "mobile", "fax"}:
        return "phone"
    if tokens & _IDENTIFIER_WORDS:
        return "text"
    if spec.get("type") in ("number", "integer") or tokens & _AMOUNT_WORDS:
        return "amount"
    return "text"


def _tokens(text: str) -> list[str]:
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", text)  # invoiceNumber -> invoice Number
    return [t for t in re.split(r"[^a-z0-9#]+", spaced.lower().replace("#", " # ")) if t]


def _label_fits(field_tokens: Sequence[str], label_tokens: Sequence[str], optional: set[str]) -> bool:
    """Every word of the field name but the optional ones is in the label, directly or as a synonym
    ("no" for "number"), and at least one word is."""
    label = set(label_tokens)
    present = [t for t in field_tokens if label & _SYNONYMS.get(t, {t})]
    return bool(present) and all(t in present for t in field_tokens if t not in optional)


def _typed(text: str, kind: Kind, spec: dict[str, Any]) -> Any:
    """The value in `text` as the field's kind and JSON type; None when `text` holds no such value."""
    wanted = spec.get("type")
    if kind == "date":
        match = _DATE.search(text)
        return _iso_date(match.group(0)) if match else None
    if kind == "email":
        email = _EMAIL.search(text)
        return email.group(0) if email else None
    if kind == "phone":
        phone = _PHONE.search(text)
        return phone.group(0).strip() if phone else None
    if kind == "amount" or wanted in ("number", "integer"):
        amount = _AMOUNT.search(text)
        written = amount.group(0) if amount else None
        raw = (amount.group("n1") or amount.group("n2")) if amount else None
        if raw is None:
            bare = re.search(_NUMBER, text)
            written = raw = bare.group(0) if bare else None
        number = _number(raw) if raw else None
        if number is None:
            return None
        if wanted == "integer":
            return int(number) if number == int(number) else None
        # A string field keeps the amount as written, currency included.
        return written if wanted == "string" else number
    if wanted == "boolean":
        lowered = text.strip().lower()
        return True if lowered in ("yes", "true", "y", "x") else False if lowered in ("no", "false", "n") else None
    return text


def _iso_date(text: str) -> str | None:
    """ISO 8601 date; numeric dates are read month first unless the first number cannot be a month."""
    first = re.match(r"\d+", text)
    day_first = bool(first and len(first.group(0)) <= 2 and int(first.group(0)) > 12)
    try:
        return date_parser.parse(text, dayfirst=day_first, fuzzy=False).date().isoformat()
    except (ValueError, OverflowError):
        return None


def _number(raw: str) -> float | None:
    """A number with thousands separators in either convention: 1,234.50 / 1.234,50 / 1.234 (= 1234).

    The last separator is the decimal point when one or two digits follow it, as `_NUMBER` reads it.
    """
    cleaned = re.sub(r"[\s\u00a0\u202f]", "", raw)
    last = max(cleaned.rfind(","), cleaned.rfind("."))
    if last >= 0 and len(cleaned) - last - 1 in (1, 2):
        whole, fraction = cleaned[:last], cleaned[last + 1 :]
    else:
        whole, fraction = cleaned, "0"
    try:
        return float(f"{re.sub(r'[,.]', '', whole)}.{fraction}")
    except ValueError:
        return None


def _currency_code(symbol: str) -> str:
    return {"$": "USD", "€": "EUR", "£": "GBP", "¥": "JPY", "₹": "INR"}.get(symbol, symbol.upper())


def main() -> None:
    """Serve the OCR tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
