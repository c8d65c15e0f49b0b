"""The `document` MCP server: read, compare, convert and create PDF, Word, Excel, HTML, Markdown and text files.

Text comes from the files themselves (pypdf, python-docx, openpyxl, the stdlib HTML parser); new files are
written with fpdf2 (PDF), python-docx (DOCX) and openpyxl (XLSX). Conversions go through one small
structure, a list of blocks (headings, paragraphs, list items, code, tables), so every supported pair
carries the text and its structure over, never the page layout or images. Every path goes through the
`Sandbox`; a file that is replaced is copied to the trash first. Run over stdio with
`python -m services.toolhost.servers.document`; logs go to stderr.
"""

from __future__ import annotations

import csv
import difflib
import html
import io
import logging
import re
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, time
from html.parser import HTMLParser
from pathlib import Path
from typing import Annotated, Any, Literal

import docx
import openpyxl
from docx.opc.exceptions import PackageNotFoundError
from docx.oxml.ns import qn
from docx.table import Table as DocxTable
from docx.text.paragraph import Paragraph as DocxParagraph
from fpdf import FPDF
from fpdf.fonts import TTFFont
from mcp.server.mcpserver import MCPServer
from openpyxl.utils.exceptions import InvalidFileException
from pydantic import BaseModel, Field
from pypdf import PdfReader, PdfWriter
from pypdf.errors import PyPdfError

from services.toolhost.servers.kit import (
    Correction,
    Effects,
    ToolError,
    Trash,
    UndoAction,
    close_fonts,
    closest_choice,
    existing_file,
    serve,
    sha256_of,
    tool,
    write_atomically,
)
from services.toolhost.settings import ToolHostSettings

log = logging.getLogger("services.toolhost.servers.document")  # not "__main__" under `python -m`

SERVER_NAME = "document"
MAX_INPUT_BYTES = 50 * 1024 * 1024
MAX_TEXT_CHARS = 200_000
MAX_SPREADSHEET_ROWS = 1000
MAX_DIFF_LINES = 2000
MAX_CHANGES = 200
MAX_DIFF_UNITS = 50_000

# Debian's fonts-dejavu-core: a Unicode font for PDFs. Without it PDFs fall back to the Latin-1 core fonts.
DEJAVU_DIR = Path("/usr/share/fonts/truetype/dejavu")
DEJAVU_FILES = {
    "": "DejaVuSans.ttf",
    "B": "DejaVuSans-Bold.ttf",
    "I": "DejaVuSans-Oblique.ttf",
    "BI": "DejaVuSans-BoldOblique.ttf",
}
DEJAVU_MONO_FILE = "DejaVuSansMono.ttf"

Format = Literal["pdf", "docx", "xlsx", "html", "md", "txt", "csv"]
FORMAT_OF_SUFFIX: dict[str, Format] = {
    ".pdf": "pdf",
    ".docx": "docx",
    ".xlsx": "xlsx",
    ".xlsm": "xlsx",
    ".html": "html",
    ".htm": "html",
    ".md": "md",
    ".markdown": "md",
    ".txt": "txt",
    ".text": "txt",
    ".log": "txt",
    ".csv": "csv",
    ".tsv": "csv",
}
SUFFIX_OF_FORMAT: dict[Format, str] = {
    "pdf": ".pdf",
    "docx": ".docx",
    "xlsx": ".xlsx",
    "html": ".html",
    "md": ".md",
    "txt": ".txt",
    "csv": ".csv",
}
# Formats this server cannot open, and what to turn them into first.
UNSUPPORTED_SUFFIXES = {
    ".doc": "save it as .docx",
    ".xls": "save it as .xlsx",
    ".odt": "save it as .docx",
    ".ods": "save it as .xlsx",
    ".rtf": "save it as .docx",
    ".pptx": "export it as PDF",
    ".ppt": "export it as PDF",
}
TARGET_ALIASES: dict[str, Format] = {
    "pdf": "pdf",
    "docx": "docx",
    "word": "docx",
    "html": "html",
    "htm": "html",
    "md": "md",
    "markdown": "md",
    "txt": "txt",
    "text": "txt",
    "plain": "txt",
    "csv": "csv",
    "xlsx": "xlsx",
    "excel": "xlsx",
}
CONVERSIONS: dict[Format, tuple[Format, ...]] = {
    "docx": ("pdf", "html", "md", "txt"),
    "html": ("pdf", "docx", "md", "txt"),
    "md": ("pdf", "docx", "html", "txt"),
    "txt": ("pdf", "docx", "html", "md"),
    "pdf": ("docx", "html", "md", "txt"),
    "xlsx": ("csv", "pdf", "docx", "html", "md", "txt"),
    "csv": ("xlsx", "pdf", "docx", "html", "md", "txt"),
}

BlockKind = Literal["heading", "paragraph", "bullet", "numbered", "code", "table"]


class ExtractedText(BaseModel):
    path: str
    format: str = Field(description="pdf, docx, xlsx, html, md, txt or csv.")
    text: str
    pages: int | None = Field(None, description="Number of pages, for a PDF.")
    characters: int = Field(description="Length of the whole text, before any truncation.")
    truncated: bool = Field(description=f"True when the text was cut at {MAX_TEXT_CHARS} characters.")
    notes: list[str] = Field(default_factory=list, description="What was skipped or could not be read.")


class WrittenFile(BaseModel):
    success: bool
    path: str = Field(description="The file that was written.")
    overwrote: bool = Field(description="True when an existing file was replaced (its old content is in the trash).")
    trash_id: str | None = Field(None, description="Trash entry holding the replaced file, if any.")
    undo: list[UndoAction] = Field(default_factory=list, description="How the tool host can reverse this call.")


class ConvertResult(WrittenFile):
    source: str
    source_format: str
    target_format: str
    notes: list[str] = Field(default_factory=list, description="What the conversion did not carry over.")


class CreatedPdf(WrittenFile):
    pages: int
    template: str | None = Field(None, description="The PDF whose first page is the background of every page.")


class FilledForm(WrittenFile):
    fields_filled: int
    filled: dict[str, str] = Field(description="Field name to the value now stored in the output PDF.")
    empty_fields: list[str] = Field(description="Form fields that still have no value.")


class MergedPdf(WrittenFile):
    total_pages: int
    sources: list[str] = Field(description="The merged PDFs, in order.")
    pages_per_source: list[int]


class CreatedDocx(WrittenFile):
    blocks: int = Field(description="Headings, paragraphs, list items and tables written.")
    template: str | None = Field(None, description="The .docx whose styles, headers and footers were used.")
    notes: list[str] = Field(default_factory=list)


class DiffChange(BaseModel):
    kind: Literal["added", "removed", "changed"]
    before: str = Field(description="The text in the first document ('' when added).")
    after: str = Field(description="The text in the second document ('' when removed).")
    position_a: int = Field(description="1-based position of the unit in the first document.")
    position_b: int = Field(description="1-based position of the unit in the second document.")


class DiffResult(BaseModel):
    path_a: str
    path_b: str
    granularity: str
    identical: bool
    lines_added: int = Field(description="Lines only in the second document.")
    lines_removed: int = Field(description="Lines only in the first document.")
    unified_diff: str = Field(description="Line diff of the two texts in unified format ('-' first, '+' second).")
    changes: list[DiffChange]
    summary: str
    truncated: bool = Field(description="True when the diff or the list of changes was cut short.")


class SpreadsheetData(BaseModel):
    path: str
    format: str
    sheet: str | None = Field(description="The sheet that was read (null for CSV).")
    sheets: list[str] = Field(description="All sheets in the workbook.")
    header_row: int | None = Field(description="1-based row number the column names were taken from.")
    headers: list[str]
    rows: list[dict[str, Any]] = Field(description="One object per data row, keyed by column name.")
    total_rows: int = Field(description="Data rows in the sheet (the header row not counted).")
    returned_rows: int
    truncated: bool
    notes: list[str] = Field(default_factory=list)


@dataclass(frozen=True)
class Block:
    """One piece of a document's structure; `markdown` says whether `text` carries inline Markdown."""

    kind: BlockKind
    text: str = ""
    level: int = 1
    rows: tuple[tuple[str, ...], ...] = ()
    markdown: bool = False


@dataclass
class LoadedDocument:
    """A document read into blocks, with its plain text as the format itself gives it."""

    format: Format
    blocks: list[Block]
    text: str
    pages: int | None = None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Run:
    """A stretch of inline text with one style."""

    text: str
    bold: bool = False
    italic: bool = False
    code: bool = False
    url: str = ""


def build_server(settings: ToolHostSettings) -> MCPServer:
    """The document server, confined to `settings.roots()`, keeping replaced files in `settings.trash_dir`."""
    # fontTools logs each step of embedding a font subset at INFO, dozens of lines per PDF written.
    logging.getLogger("fontTools").setLevel(logging.WARNING)
    sandbox = settings.sandbox()
    trash = Trash(settings.trash_dir)
    roots = ", ".join(str(r) for r in sandbox.roots)
    server = MCPServer(
        SERVER_NAME,
        instructions=f"Read, compare, convert and create documents (PDF, DOCX, XLSX, HTML, Markdown, text, CSV) "
        f"in: {roots}.",
    )
    resolve = sandbox.resolve

    def save(target: Path, data: bytes, reason: str) -> WrittenFile:
        """Write `data` to `target`; an existing file is copied to the trash first."""
        trash_id = None
        if target.exists():
            trash_id = trash.keep(target, move=False, reason=reason).trash_id
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, data)
        log.info("wrote %s (%d bytes, previous content in trash %s)", target, len(data), trash_id)
        if trash_id is not None:
            undo = UndoAction(kind="restore_trash", path=str(target), trash_id=trash_id, replace=True)
        else:
            undo = UndoAction(kind="remove_created", path=str(target), sha256=sha256_of(target))
        return WrittenFile(
            success=True, path=str(target), overwrote=trash_id is not None, trash_id=trash_id, undo=[undo]
        )

    def output_file(raw: str, fmt: Format) -> Path:
        """The resolved output path, which must be a file path ending in `fmt`'s suffix."""
        suffix = SUFFIX_OF_FORMAT[fmt]
        target = resolve(raw)
        if target.is_dir():
            raise ToolError(
                f"{target} is a folder. Give a file path inside it, e.g. {target / ('output' + suffix)}.",
                correction=Correction(f"{raw!r} is a folder, not a file", parameter="output_path"),
            )
        if target.suffix.lower() != suffix:
            raise ToolError(
                f"output_path must end with {suffix} for a {fmt} file, e.g. {target.with_suffix(suffix)}.",
                correction=Correction(
                    f"output_path does not end with {suffix}",
                    parameter="output_path",
                    suggested_value=str(target.with_suffix(suffix)),
                ),
            )
        return target

    @tool(server, Effects.reads())
    def extract_text(
        path: Annotated[str, Field(description="Path of the document: .pdf, .docx, .xlsx, .html, .md, .txt or .csv.")],
    ) -> ExtractedText:
        """Get the plain text of a document: PDF, Word, Excel (sheet by sheet), HTML, Markdown, text or CSV.

        Reads the text the file already holds. For a scanned PDF with no text in it, use
        ocr.extract_text_from_pdf; for a picture use ocr.extract_text_from_image. For spreadsheet rows as
        records, use document.read_spreadsheet.
        """
        file = existing_file(resolve(path), path)
        document = _load(file)
        text = document.text
        notes = list(document.notes)
        truncated = len(text) > MAX_TEXT_CHARS
        if truncated:
            notes.append(f"Only the first {MAX_TEXT_CHARS} of {len(text)} characters are returned.")
        return ExtractedText(
            path=str(file),
            format=document.format,
            text=text[:MAX_TEXT_CHARS],
            pages=document.pages,
            characters=len(text),
            truncated=truncated,
            notes=notes,
        )

    # May replace an existing output_path (kept in the trash first); a second call without one writes a new file.
    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=False,
            preview="Convert {path} to {target_format}[, saved as {output_path}]",
            overwrites=("output_path",),
        ),
    )
    def convert_format(
        path: Annotated[str, Field(description="Path of the document to convert.")],
        target_format: Annotated[
            str, Field(description="Format to convert to: pdf, docx, html, md, txt, csv or xlsx.")
        ],
        output_path: Annotated[
            str | None,
            Field(description="Where to write the result. Omit to write next to the source with the new extension."),
        ] = None,
    ) -> ConvertResult:
        """Convert a document to another format and save it as a new file, e.g. DOCX to PDF, Markdown to DOCX,
        PDF to text, XLSX to CSV, CSV to XLSX.

        Carries over text, headings, lists and tables, not images or page layout. To only read the
        text, use document.extract_text. To make a PDF or DOCX from text you write, use document.create_pdf
        or document.create_docx.
        """
        source = _within_limit(existing_file(resolve(path), path))
        source_format = _format_of(source)
        wanted = target_format.strip().lower().lstrip(".")
        target: Format | None = TARGET_ALIASES.get(wanted)
        if target is None:
            raise ToolError(
                f"Unknown target_format {target_format!r}. Use one of: pdf, docx, html, md, txt, csv, xlsx.",
                correction=Correction(
                    f"unknown target_format {target_format!r}",
                    parameter="target_format",
                    suggested_value=closest_choice(wanted, list(TARGET_ALIASES)),
                ),
            )
        if target not in CONVERSIONS[source_format]:
            raise ToolError(
                f"Converting {source_format} to {target} is not supported. Supported conversions: {_pairs()}.",
                correction=Correction(f"{source_format} cannot be converted to {target}", parameter="target_format"),
            )
        if output_path is None:
            destination = _free_name(source, SUFFIX_OF_FORMAT[target])
        else:
            destination = output_file(output_path, target)
        if destination == source:
            raise ToolError(
                f"output_path is the source file itself ({source}). Choose another output_path.",
                correction=Correction("output_path is the source file itself", parameter="output_path"),
            )
        notes: list[str] = []
        if source_format == "xlsx" and target == "csv":
            data = _xlsx_to_csv(source, notes)
        elif source_format == "csv" and target == "xlsx":
            data = _csv_to_xlsx(source, notes)
        else:
            document = _load(source)
            notes.extend(document.notes)
            if not document.blocks:
                raise ToolError(f"{source} has no text to convert.")
            if source_format in ("pdf", "docx", "html"):
                notes.append("Text, headings, lists and tables were carried over; images and page layout were not.")
            title = _title(document.blocks) or source.stem
            data = _render(document.blocks, target, title)
        written = save(destination, data, reason=f"overwritten by convert_format ({source_format} to {target})")
        return ConvertResult(
            **written.model_dump(),
            source=str(source),
            source_format=source_format,
            target_format=target,
            notes=notes,
        )

    @tool(server, Effects.reads())
    def diff_documents(
        path_a: Annotated[str, Field(description="Path of the first (older) document.")],
        path_b: Annotated[str, Field(description="Path of the second (newer) document.")],
        granularity: Annotated[
            Literal["paragraph", "sentence", "word"],
            Field(description="Unit of the listed changes: paragraph, sentence or word."),
        ] = "paragraph",
    ) -> DiffResult:
        """Compare the text of two documents (any mix of PDF, DOCX, XLSX, HTML, Markdown, text, CSV) and list
        what was added, removed or changed.

        Returns a unified line diff with counts of added and removed lines, and the changes by
        paragraph, sentence or word. To read one document, use document.extract_text.
        """
        file_a = existing_file(resolve(path_a), path_a)
        file_b = existing_file(resolve(path_b), path_b)
        doc_a, doc_b = _load(file_a), _load(file_b)
        if doc_a.format == doc_b.format:
            lines_a, lines_b = doc_a.text.splitlines(), doc_b.text.splitlines()
        else:
            # Different formats mark up the same content differently ("# Plan" and a Word heading):
            # compare their content, one paragraph, list item or table row per line.
            lines_a, lines_b = _diff_units(doc_a, "paragraph"), _diff_units(doc_b, "paragraph")
        diff_lines = list(difflib.unified_diff(lines_a, lines_b, str(file_a), str(file_b), lineterm="", n=2))
        body = diff_lines[2:]
        added = sum(1 for line in body if line.startswith("+"))
        removed = sum(1 for line in body if line.startswith("-"))
        units_a, units_b = _diff_units(doc_a, granularity), _diff_units(doc_b, granularity)
        if max(len(units_a), len(units_b)) > MAX_DIFF_UNITS:
            advice = "compare smaller parts" if granularity == "paragraph" else 'use granularity "paragraph"'
            coarser = None if granularity == "paragraph" else "paragraph"
            raise ToolError(
                f"The documents have more than {MAX_DIFF_UNITS} {granularity}s; {advice}.",
                correction=Correction(
                    f"more than {MAX_DIFF_UNITS} {granularity}s to compare",
                    parameter="granularity",
                    suggested_value=coarser,
                ),
            )
        found = _unit_changes(units_a, units_b, "\n" if granularity == "paragraph" else " ")
        counts = {kind: sum(1 for c in found if c.kind == kind) for kind in ("changed", "added", "removed")}
        truncated = len(diff_lines) > MAX_DIFF_LINES or len(found) > MAX_CHANGES
        identical = not body
        if identical:
            summary = "The two documents have the same text."
        else:
            summary = (
                f"{counts['changed']} {granularity}(s) changed, {counts['added']} added, {counts['removed']} "
                f"removed; {added} line(s) added and {removed} removed."
            )
        return DiffResult(
            path_a=str(file_a),
            path_b=str(file_b),
            granularity=granularity,
            identical=identical,
            lines_added=added,
            lines_removed=removed,
            unified_diff="\n".join(diff_lines[:MAX_DIFF_LINES]),
            changes=found[:MAX_CHANGES],
            summary=summary,
            truncated=truncated,
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=True,
            preview="Create the PDF {output_path}",
            overwrites=("output_path",),
        ),
    )
    def create_pdf(
        content: Annotated[
            str,
            Field(
                description="The text in simple Markdown: '# Title', '## Heading', paragraphs separated by blank "
                "lines, '- ' bullets, '1. ' numbered items, **bold**, *italic*, | tables |."
            ),
        ],
        output_path: Annotated[str, Field(description="Path of the new PDF file, ending in .pdf.")],
        template: Annotated[
            str | None,
            Field(
                description="Optional path of an existing PDF (e.g. a letterhead) whose first page is drawn "
                "behind every page. Omit for plain pages."
            ),
        ] = None,
    ) -> CreatedPdf:
        """Write a new PDF from text you give, with a title, headings, paragraphs, bullet lists and tables.

        To turn an existing file into a PDF, use document.convert_format. For a Word file, use
        document.create_docx. To fill in a PDF form, use document.fill_pdf_form.
        """
        if not content.strip():
            raise ToolError(
                "content is empty. Give the text of the PDF, e.g. '# Title\\n\\nFirst paragraph.'",
                correction=Correction("content is empty", parameter="content"),
            )
        target = output_file(output_path, "pdf")
        blocks = _parse_markdown(content)
        background = None
        if template is not None:
            if not template.strip().lower().endswith(".pdf"):
                raise ToolError(
                    f"template {template!r} is not a PDF path. Give the path of a PDF whose first page becomes "
                    "the background (e.g. a letterhead), or omit template.",
                    correction=Correction(f"template {template!r} is not a PDF", parameter="template"),
                )
            background = existing_file(resolve(template), template)
        data, pages = _pdf_bytes(blocks, _title(blocks), background)
        written = save(target, data, reason="overwritten by create_pdf")
        return CreatedPdf(
            **written.model_dump(), pages=pages, template=str(background) if background is not None else None
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=True,
            preview="Fill in the form {path} and save it as {output_path}",
            overwrites=("output_path",),
        ),
    )
    def fill_pdf_form(
        path: Annotated[str, Field(description="Path of the PDF form to fill in.")],
        fields: Annotated[
            dict[str, Any],
            Field(
                description='Form field names and the values to put in them, e.g. {"name": "Ada", "agree": true}. '
                "Check boxes take true or false."
            ),
        ],
        output_path: Annotated[str, Field(description="Path of the filled PDF to write, ending in .pdf.")],
    ) -> FilledForm:
        """Fill in the fields of a fillable PDF form (AcroForm) and save the filled copy.

        Field names must be the form's own; a wrong name is refused with the list of real ones. To see
        a PDF's text, use document.extract_text. To make a new PDF, use document.create_pdf.
        """
        source = existing_file(resolve(path), path)
        target = output_file(output_path, "pdf")
        reader = _open_pdf(source)
        form = reader.get_fields() or {}
        if not form:
            raise ToolError(
                f"{source} has no fillable form fields. To put text in a new PDF use document.create_pdf; "
                "to read this one use document.extract_text.",
                correction=Correction(
                    f"{source.name} has no fillable form fields", suggested_tool="document.create_pdf"
                ),
            )
        if not fields:
            raise ToolError(
                f"fields is empty. The form's fields are: {_field_list(form)}.",
                correction=Correction("fields is empty", parameter="fields"),
            )
        unknown = [name for name in fields if name not in form]
        if unknown:
            raise ToolError(
                f"No form field named {', '.join(repr(n) for n in unknown)} in {source}. "
                f"The form's fields are: {_field_list(form)}.",
                correction=Correction(
                    f"no form field named {', '.join(repr(n) for n in unknown)}",
                    parameter="fields",
                    suggested_value=_renamed_fields(fields, list(form)),
                ),
            )
        values = {name: _field_value(name, form[name], value) for name, value in fields.items()}
        writer = PdfWriter(clone_from=reader)
        try:
            writer.update_page_form_field_values(None, values, auto_regenerate=False)
        except (PyPdfError, KeyError) as exc:
            raise ToolError(f"pypdf could not fill the form in {source}: {exc!r}.") from exc
        # Viewers redraw the fields from their values, so they show what was filled in.
        writer.set_need_appearances_writer(True)
        buffer = io.BytesIO()
        writer.write(buffer)
        stored = PdfReader(io.BytesIO(buffer.getvalue())).get_fields() or {}
        filled = {name: _stored_value(stored.get(name, {})) for name in values}
        empty = [name for name, spec in stored.items() if _stored_value(spec) in ("", "/Off") and name not in values]
        written = save(target, buffer.getvalue(), reason="overwritten by fill_pdf_form")
        return FilledForm(**written.model_dump(), fields_filled=len(filled), filled=filled, empty_fields=empty)

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=True,
            preview="Merge {paths} into {output_path}",
            overwrites=("output_path",),
        ),
    )
    def merge_pdfs(
        paths: Annotated[list[str], Field(description="Paths of the PDFs to join, in the order they should appear.")],
        output_path: Annotated[str, Field(description="Path of the merged PDF to write, ending in .pdf.")],
    ) -> MergedPdf:
        """Join several PDF files into one new PDF, pages in the order the files are given.

        Only for PDFs: to turn other documents into PDF first, use document.convert_format. To see what
        a PDF contains, use document.extract_text.
        """
        if len(paths) < 2:
            raise ToolError(
                "Give at least two PDFs in paths to merge. To copy one PDF, use filesystem.copy_file.",
                correction=Correction(
                    "fewer than two PDFs to merge", suggested_tool="filesystem.copy_file" if paths else ""
                ),
            )
        target = output_file(output_path, "pdf")
        sources = [existing_file(resolve(raw), raw) for raw in paths]
        writer = PdfWriter()
        counts = []
        for raw, source in zip(paths, sources, strict=True):
            if _format_of(source) != "pdf":
                raise ToolError(
                    f"{source} is not a PDF. Convert it first with document.convert_format.",
                    correction=Correction(f"{source.name} is not a PDF", rejected=raw),
                )
            reader = _open_pdf(source)
            counts.append(len(reader.pages))
            writer.append(reader)
        buffer = io.BytesIO()
        writer.write(buffer)
        written = save(target, buffer.getvalue(), reason="overwritten by merge_pdfs")
        return MergedPdf(
            **written.model_dump(),
            total_pages=len(writer.pages),
            sources=[str(s) for s in sources],
            pages_per_source=counts,
        )

    @tool(
        server,
        Effects.changes(
            destructive=False,
            undoable=True,
            idempotent=True,
            preview="Create the Word document {output_path}",
            overwrites=("output_path",),
        ),
    )
    def create_docx(
        content: Annotated[
            str,
            Field(
                description="The text in simple Markdown: '# Heading', '## Subheading', paragraphs separated by "
                "blank lines, '- ' bullets, '1. ' numbered items, **bold**, *italic*, | tables |."
            ),
        ],
        output_path: Annotated[str, Field(description="Path of the new Word file, ending in .docx.")],
        template: Annotated[
            str | None,
            Field(
                description="Optional path of an existing .docx whose styles, headers, footers and page setup "
                "are used (its body text is not copied). Omit for Word's defaults."
            ),
        ] = None,
    ) -> CreatedDocx:
        """Write a new Word document (.docx) from text you give, with headings, paragraphs, bullet and
        numbered lists and tables.

        To turn an existing file into DOCX, use document.convert_format. For a PDF, use
        document.create_pdf.
        """
        if not content.strip():
            raise ToolError(
                "content is empty. Give the text of the document, e.g. '# Title\\n\\nFirst paragraph.'",
                correction=Correction("content is empty", parameter="content"),
            )
        target = output_file(output_path, "docx")
        base = None
        if template is not None:
            if not template.strip().lower().endswith(".docx"):
                raise ToolError(
                    f"template {template!r} is not a .docx path. Give the path of a Word file whose styles "
                    "should be used, or omit template.",
                    correction=Correction(f"template {template!r} is not a .docx file", parameter="template"),
                )
            base = existing_file(resolve(template), template)
        blocks = _parse_markdown(content)
        notes: list[str] = []
        data = _docx_bytes(blocks, base, notes)
        written = save(target, data, reason="overwritten by create_docx")
        return CreatedDocx(
            **written.model_dump(),
            blocks=len(blocks),
            template=str(base) if base is not None else None,
            notes=notes,
        )

    @tool(server, Effects.reads())
    def read_spreadsheet(
        path: Annotated[str, Field(description="Path of the spreadsheet: .xlsx, .xlsm, .csv or .tsv.")],
        sheet: Annotated[
            str | None, Field(description="Name of the sheet to read. Omit for the first (active) sheet.")
        ] = None,
    ) -> SpreadsheetData:
        """Read the rows of an Excel (.xlsx) or CSV spreadsheet as records keyed by the column names of the
        first non-empty row.

        Returns up to 1000 rows and the total count. For all sheets as plain text, use
        document.extract_text. To turn XLSX into CSV or back, use document.convert_format.
        """
        file = _within_limit(existing_file(resolve(path), path))
        fmt = _format_of(file)
        notes: list[str] = []
        if fmt == "xlsx":
            with _xlsx_sheet(file, sheet) as (sheet_name, sheets, rows):
                table = _spreadsheet_table(rows)
        elif fmt == "csv":
            if sheet is not None:
                notes.append(f"A CSV file has one sheet; sheet {sheet!r} was ignored.")
            sheet_name, sheets = None, []
            table = _spreadsheet_table(_csv_rows(file, notes))
        else:
            raise ToolError(
                f"{file} is a {fmt} file, not a spreadsheet. read_spreadsheet reads .xlsx, .xlsm, .csv and .tsv; "
                "for other documents use document.extract_text.",
                correction=Correction(f"{file.name} is not a spreadsheet", suggested_tool="document.extract_text"),
            )
        if table.header_row is None:
            notes.append("The sheet is empty.")
        return SpreadsheetData(
            path=str(file),
            format=fmt,
            sheet=sheet_name,
            sheets=sheets,
            header_row=table.header_row,
            headers=table.headers,
            rows=table.rows,
            total_rows=table.total_rows,
            returned_rows=len(table.rows),
            truncated=table.total_rows > len(table.rows),
            notes=notes,
        )

    return server


# Reading documents


def _format_of(path: Path) -> Format:
    suffix = path.suffix.lower()
    fmt = FORMAT_OF_SUFFIX.get(suffix)
    if fmt is not None:
        return fmt
    if suffix in UNSUPPORTED_SUFFIXES:
        raise ToolError(f"{path}: {suffix} files cannot be read here; {UNSUPPORTED_SUFFIXES[suffix]} first.")
    if suffix in {".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".gif", ".webp"}:
        raise ToolError(
            f"{path} is an image. Read its text with ocr.extract_text_from_image.",
            correction=Correction(f"{path.name} is an image", suggested_tool="ocr.extract_text_from_image"),
        )
    supported = ", ".join(sorted(FORMAT_OF_SUFFIX))
    raise ToolError(f"{path}: unknown document type {suffix or '(no extension)'!r}. Supported: {supported}.")


def _load(path: Path) -> LoadedDocument:
    """Read any supported document into blocks and text."""
    fmt = _format_of(_within_limit(path))
    readers: dict[Format, Callable[[Path], LoadedDocument]] = {
        "pdf": _load_pdf,
        "docx": _load_docx,
        "xlsx": _load_xlsx,
        "html": _load_html,
        "md": _load_markdown,
        "txt": _load_plain_text,
        "csv": _load_csv,
    }
    return readers[fmt](path)


def _within_limit(path: Path) -> Path:
    """`path`, if it is small enough to be read whole; a tool error saying how big it is otherwise."""
    size = path.stat().st_size
    if size > MAX_INPUT_BYTES:
        raise ToolError(f"{path} is {size} bytes, more than the {MAX_INPUT_BYTES // (1024 * 1024)} MiB this reads.")
    return path


def _open_pdf(path: Path) -> PdfReader:
    """A pypdf reader, decrypted if the PDF only has an empty user password."""
    try:
        reader = PdfReader(path)
        if reader.is_encrypted and not reader.decrypt(""):
            raise ToolError(f"{path} is password-protected. Remove the password in a PDF viewer, then try again.")
        len(reader.pages)  # parses the page tree now, so a broken file fails here with a clear message
    except PyPdfError as exc:
        raise ToolError(f"{path} is not a readable PDF ({exc}).") from exc
    return reader


def _load_pdf(path: Path) -> LoadedDocument:
    reader = _open_pdf(path)
    page_texts = []
    for page in reader.pages:
        try:
            page_texts.append(page.extract_text() or "")
        except PyPdfError as exc:
            raise ToolError(f"pypdf could not read the text of {path}: {exc}.") from exc
    empty = [i for i, text in enumerate(page_texts, 1) if not text.strip()]
    if len(empty) == len(page_texts):
        raise ToolError(
            f"{path} has no text layer (it is probably scanned). Read it with ocr.extract_text_from_pdf instead.",
            correction=Correction(f"{path.name} has no text layer", suggested_tool="ocr.extract_text_from_pdf"),
        )
    notes = []
    if empty:
        notes.append(
            f"Page(s) {', '.join(map(str, empty))} have no text layer; read them with ocr.extract_text_from_pdf."
        )
    blocks = [Block("paragraph", line.strip()) for text in page_texts for line in text.splitlines() if line.strip()]
    text = "\n\n".join(t.strip("\n") for t in page_texts if t.strip())
    return LoadedDocument("pdf", blocks, text, pages=len(page_texts), notes=notes)


def _load_docx(path: Path) -> LoadedDocument:
    try:
        document = docx.Document(str(path))
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ToolError(f"{path} is not a readable Word .docx file ({exc}).") from exc
    blocks: list[Block] = []
    for item in document.iter_inner_content():
        if isinstance(item, DocxTable):
            rows = tuple(tuple(cell.text.strip() for cell in row.cells) for row in item.rows)
            if any(any(cells) for cells in rows):
                blocks.append(Block("table", rows=rows))
        elif isinstance(item, DocxParagraph) and item.text.strip():
            blocks.append(_docx_paragraph_block(item))
    return LoadedDocument("docx", blocks, _text_of(blocks))


def _docx_paragraph_block(paragraph: DocxParagraph) -> Block:
    style = paragraph.style.name if paragraph.style is not None and paragraph.style.name else ""
    text = paragraph.text.strip()
    if style == "Title":
        return Block("heading", text, level=1)
    if style.startswith("Heading"):
        digits = style.removeprefix("Heading").strip()
        return Block("heading", text, level=int(digits) if digits.isdigit() else 1)
    if style.startswith("List Number"):
        return Block("numbered", text)
    numbered_properties = paragraph._p.pPr is not None and paragraph._p.pPr.numPr is not None
    if style.startswith("List") or numbered_properties:
        return Block("bullet", text)
    return Block("paragraph", text)


def _load_xlsx(path: Path) -> LoadedDocument:
    workbook = _open_workbook(path)
    blocks: list[Block] = []
    notes: list[str] = []
    try:
        for sheet in workbook.worksheets:
            rows = _trimmed([[_cell_text(v) for v in row] for row in sheet.iter_rows(values_only=True)])
            blocks.append(Block("heading", f"Sheet: {sheet.title}", level=2))
            if rows:
                blocks.append(Block("table", rows=tuple(tuple(r) for r in rows)))
            else:
                notes.append(f"Sheet {sheet.title!r} is empty.")
    finally:
        workbook.close()
    return LoadedDocument("xlsx", blocks, _text_of(blocks), notes=notes)


def _load_html(path: Path) -> LoadedDocument:
    notes: list[str] = []
    parser = _HtmlBlocks()
    parser.feed(_read_text(path, notes))
    parser.close()
    blocks = parser.finish()
    return LoadedDocument("html", blocks, _text_of(blocks), notes=notes)


def _load_markdown(path: Path) -> LoadedDocument:
    notes: list[str] = []
    text = _read_text(path, notes)
    return LoadedDocument("md", _parse_markdown(text), text, notes=notes)


def _load_plain_text(path: Path) -> LoadedDocument:
    notes: list[str] = []
    text = _read_text(path, notes)
    # Paragraphs are separated by blank lines; line breaks inside one are kept as written.
    chunks = (chunk.strip("\n") for chunk in re.split(r"\n\s*\n", text.replace("\r\n", "\n")))
    blocks = [Block("paragraph", chunk) for chunk in chunks if chunk.strip()]
    return LoadedDocument("txt", blocks, text, notes=notes)


def _load_csv(path: Path) -> LoadedDocument:
    notes: list[str] = []
    rows = _trimmed(list(_csv_rows(path, notes)))
    blocks = [Block("table", rows=tuple(tuple(r) for r in rows))] if rows else []
    return LoadedDocument("csv", blocks, _read_text(path, []), notes=notes)


def _read_text(path: Path, notes: list[str]) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        notes.append(f"{path.name} is not valid UTF-8; it was read as Windows-1252.")
        return data.decode("cp1252", errors="replace")


def _csv_rows(path: Path, notes: list[str]) -> Iterator[list[str]]:
    """The rows of a CSV (or TSV) file, one at a time: a spreadsheet read keeps only its first rows."""
    text = _read_text(path, notes)
    if path.suffix.lower() == ".tsv":
        delimiter = "\t"
    else:
        try:
            delimiter = csv.Sniffer().sniff(text[:8192], delimiters=",;\t|").delimiter
        except csv.Error:
            delimiter = ","  # a single column, or too little text to tell
    try:
        yield from csv.reader(io.StringIO(text), delimiter=delimiter)
    except csv.Error as exc:
        raise ToolError(f"{path} is not valid CSV ({exc}).") from exc


def _open_workbook(path: Path) -> Any:
    try:
        return openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (InvalidFileException, zipfile.BadZipFile, KeyError, ValueError) as exc:
        raise ToolError(f"{path} is not a readable Excel .xlsx file ({exc}).") from exc


def _cell_text(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return str(value)


def _cell_json(value: object) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def _trimmed(rows: Iterable[list[str]]) -> list[list[str]]:
    """Rows without trailing empty cells, and without trailing empty rows."""
    kept = []
    for row in rows:
        while row and not row[-1].strip():
            row = row[:-1]
        kept.append(row)
    while kept and not kept[-1]:
        kept.pop()
    return kept


class _HtmlBlocks(HTMLParser):
    """Visible text of an HTML page as blocks: scripts, styles and the head are skipped."""

    SKIPPED = frozenset({"script", "style", "head", "title", "noscript", "template", "svg", "iframe", "object"})
    BREAKS = frozenset(
        {
            "p", "div", "section", "article", "header", "footer", "main", "nav", "aside", "blockquote",
            "address", "figure", "figcaption", "form", "fieldset", "dl", "dt", "dd", "hr", "body",
        }
    )  # fmt: skip
    HEADINGS = {f"h{n}": n for n in range(1, 7)}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[Block] = []
        self.buffer: list[str] = []
        self.kind: BlockKind = "paragraph"
        self.level = 1
        self.skip_depth = 0
        self.pre_depth = 0
        self.lists: list[str] = []
        self.table_depth = 0
        self.rows: list[tuple[str, ...]] = []
        self.row: list[str] | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "body":
            self.skip_depth = 0  # a page that never closes its <head>
        if tag in self.SKIPPED:
            self.skip_depth += 1
            return
        if self.skip_depth:
            return
        if tag == "table":
            if self.table_depth == 0:
                self._flush()
                self.rows = []
            self.table_depth += 1
        elif self.table_depth:
            if tag == "tr" and self.table_depth == 1:
                self.row = []
            elif tag in ("td", "th") and self.table_depth == 1:
                self.cell = []
            elif self.cell is not None:
                self.cell.append(" ")
        elif tag in self.HEADINGS:
            self._flush()
            self.kind, self.level = "heading", self.HEADINGS[tag]
        elif tag in ("ul", "ol"):
            self._flush()
            self.lists.append(tag)
        elif tag == "li":
            self._flush()
            self.kind = "numbered" if self.lists and self.lists[-1] == "ol" else "bullet"
        elif tag == "pre":
            self._flush()
            self.pre_depth += 1
            self.kind = "code"
        elif tag == "br":
            self.buffer.append("\n")
        elif tag in self.BREAKS:
            self._flush()

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIPPED:
            self.skip_depth = max(0, self.skip_depth - 1)
            return
        if self.skip_depth:
            return
        if tag == "table" and self.table_depth:
            self.table_depth -= 1
            if self.table_depth == 0:
                self._end_row()
                if self.rows:
                    self.blocks.append(Block("table", rows=tuple(self.rows)))
                self.rows = []
        elif self.table_depth == 1 and tag in ("td", "th"):
            self._end_cell()
        elif self.table_depth == 1 and tag == "tr":
            self._end_row()
        elif self.table_depth:
            return
        elif tag in ("ul", "ol"):
            self._flush()
            if self.lists:
                self.lists.pop()
        elif tag == "pre":
            self._flush()
            self.pre_depth = max(0, self.pre_depth - 1)
        elif tag in self.HEADINGS or tag == "li" or tag in self.BREAKS:
            self._flush()

    def handle_data(self, data: str) -> None:
        if self.skip_depth:
            return
        if self.table_depth:
            if self.cell is not None:
                self.cell.append(data)
            return
        self.buffer.append(data)

    def _end_cell(self) -> None:
        if self.cell is not None:
            if self.row is None:
                self.row = []
            self.row.append(" ".join("".join(self.cell).split()))
            self.cell = None

    def _end_row(self) -> None:
        self._end_cell()
        if self.row is not None:
            if any(self.row):
                self.rows.append(tuple(self.row))
            self.row = None

    def _flush(self) -> None:
        raw = "".join(self.buffer)
        self.buffer = []
        if self.kind == "code" or self.pre_depth:
            text = raw.strip("\n")
        else:
            text = "\n".join(" ".join(line.split()) for line in raw.split("\n")).strip()
        if text.strip():
            self.blocks.append(Block(self.kind, text, level=self.level))
        self.kind, self.level = "paragraph", 1

    def finish(self) -> list[Block]:
        """The blocks, with any text still open at the end."""
        self._flush()
        self._end_row()
        if self.rows:
            self.blocks.append(Block("table", rows=tuple(self.rows)))
            self.rows = []
        return self.blocks


_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_BULLET = re.compile(r"^\s*[-*+]\s+(.*)$")
_NUMBERED = re.compile(r"^\s*\d+[.)]\s+(.*)$")
_RULE = re.compile(r"^\s*([-*_])(\s*\1){2,}\s*$")
_TABLE_SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def _parse_markdown(text: str) -> list[Block]:
    """Blocks of simple Markdown: ATX headings, lists, fenced code, pipe tables and paragraphs."""
    lines = text.replace("\r\n", "\n").split("\n")
    blocks: list[Block] = []
    paragraph: list[str] = []

    def flush() -> None:
        if paragraph:
            blocks.append(Block("paragraph", " ".join(part.strip() for part in paragraph), markdown=True))
            paragraph.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith("```") or stripped.startswith("~~~"):
            flush()
            fence = stripped[:3]
            code = []
            i += 1
            while i < len(lines) and not lines[i].strip().startswith(fence):
                code.append(lines[i])
                i += 1
            blocks.append(Block("code", "\n".join(code)))
        elif stripped.startswith("|") and i + 1 < len(lines) and _TABLE_SEPARATOR.match(lines[i + 1]):
            flush()
            rows = [_table_cells(line)]
            i += 2
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_table_cells(lines[i]))
                i += 1
            blocks.append(Block("table", rows=tuple(rows), markdown=True))
            continue
        elif not stripped:
            flush()
        elif heading := _HEADING.match(stripped):
            flush()
            blocks.append(Block("heading", heading.group(2), level=len(heading.group(1)), markdown=True))
        elif _RULE.match(stripped):
            flush()
        elif bullet := _BULLET.match(line):
            flush()
            blocks.append(Block("bullet", bullet.group(1).strip(), markdown=True))
        elif numbered := _NUMBERED.match(line):
            flush()
            blocks.append(Block("numbered", numbered.group(1).strip(), markdown=True))
        else:
            paragraph.append(stripped.removeprefix(">").strip() if stripped.startswith(">") else stripped)
        i += 1
    flush()
    return blocks


def _table_cells(line: str) -> tuple[str, ...]:
    inner = line.strip().removeprefix("|").removesuffix("|")
    return tuple(cell.strip().replace("\\|", "|") for cell in re.split(r"(?<!\\)\|", inner))


_INLINE = re.compile(
    r"\*\*(?P<bold>.+?)\*\*|__(?P<bold2>.+?)__"
    r"|(?<![\w*])\*(?P<italic>[^\s*](?:.*?[^\s*])?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<italic2>[^\s_](?:.*?[^\s_])?)_(?![\w_])"
    r"|`(?P<code>[^`]+)`"
    r"|\[(?P<label>[^\]]+)\]\((?P<url>[^)\s]+)\)"
)


def _runs(text: str, markdown: bool) -> list[Run]:
    """Inline Markdown as styled runs; text that is not Markdown is one plain run."""
    if not markdown:
        return [Run(text)]
    runs: list[Run] = []
    position = 0
    for match in _INLINE.finditer(text):
        if match.start() > position:
            runs.append(Run(text[position : match.start()]))
        groups = match.groupdict()
        if groups["bold"] is not None or groups["bold2"] is not None:
            runs.append(Run(groups["bold"] or groups["bold2"] or "", bold=True))
        elif groups["italic"] is not None or groups["italic2"] is not None:
            runs.append(Run(groups["italic"] or groups["italic2"] or "", italic=True))
        elif groups["code"] is not None:
            runs.append(Run(groups["code"], code=True))
        else:
            runs.append(Run(groups["label"], url=groups["url"]))
        position = match.end()
    if position < len(text):
        runs.append(Run(text[position:]))
    return runs


def _plain(text: str, markdown: bool) -> str:
    """Text with inline Markdown removed; a link becomes "label (url)"."""
    return "".join(
        f"{run.text} ({run.url})" if run.url and run.url != run.text else run.text for run in _runs(text, markdown)
    )


def _plain_rows(block: Block) -> list[list[str]]:
    """A table's cells as plain text, every row as wide as the widest."""
    width = max((len(row) for row in block.rows), default=0)
    return [[_plain(cell, block.markdown) for cell in row] + [""] * (width - len(row)) for row in block.rows]


def _title(blocks: Sequence[Block]) -> str | None:
    return next((_plain(b.text, b.markdown) for b in blocks if b.kind == "heading"), None)


# Writing documents


def _render(blocks: list[Block], target: Format, title: str) -> bytes:
    if target == "pdf":
        return _pdf_bytes(blocks, title, None)[0]
    if target == "docx":
        return _docx_bytes(blocks, None, [])
    if target == "html":
        return _html_text(blocks, title).encode("utf-8")
    if target == "md":
        return _markdown_text(blocks).encode("utf-8")
    if target == "txt":
        return _text_of(blocks).encode("utf-8")
    raise ToolError(f"Cannot write {target} from a text document. Supported conversions: {_pairs()}.")


def _joined(parts: Iterable[tuple[str, bool]]) -> str:
    """Blocks separated by blank lines, except consecutive list items, which stay on adjacent lines."""
    out: list[str] = []
    previous_item = False
    for text, is_item in parts:
        if out:
            out.append("\n" if is_item and previous_item else "\n\n")
        out.append(text)
        previous_item = is_item
    return "".join(out) + ("\n" if out else "")


def _numbered(blocks: Sequence[Block]) -> Iterator[tuple[Block, int]]:
    """Each block with its number in a run of numbered items (0 for other blocks)."""
    number = 0
    for block in blocks:
        number = number + 1 if block.kind == "numbered" else 0
        yield block, number


def _text_of(blocks: Sequence[Block]) -> str:
    """Plain text: list markers as "- " and "1. ", table cells separated by tabs."""
    parts = []
    for block, number in _numbered(blocks):
        if block.kind == "table":
            parts.append(("\n".join("\t".join(row) for row in _plain_rows(block)), False))
        elif block.kind == "code":
            parts.append((block.text, False))
        elif block.kind == "bullet":
            parts.append(("- " + _plain(block.text, block.markdown), True))
        elif block.kind == "numbered":
            parts.append((f"{number}. " + _plain(block.text, block.markdown), True))
        else:
            parts.append((_plain(block.text, block.markdown), False))
    return _joined(parts)


def _markdown_text(blocks: Sequence[Block]) -> str:
    parts = []
    for block, number in _numbered(blocks):
        if block.kind == "heading":
            parts.append(("#" * block.level + " " + block.text.replace("\n", " "), False))
        elif block.kind == "bullet":
            parts.append(("- " + block.text.replace("\n", " "), True))
        elif block.kind == "numbered":
            parts.append((f"{number}. " + block.text.replace("\n", " "), True))
        elif block.kind == "code":
            parts.append(("```\n" + block.text + "\n```", False))
        elif block.kind == "table":
            width = max((len(row) for row in block.rows), default=0)
            lines = [
                "| "
                + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row + ("",) * (width - len(row)))
                + " |"
                for row in block.rows
            ]
            lines.insert(1, "|" + "---|" * width)
            parts.append(("\n".join(lines), False))
        else:
            # Hard line breaks inside a paragraph survive as Markdown's two-space line break.
            parts.append((block.text.replace("\n", "  \n"), False))
    return _joined(parts)


def _html_inline(block: Block) -> str:
    out = []
    for run in _runs(block.text, block.markdown):
        text = html.escape(run.text).replace("\n", "<br>")
        if run.url:
            text = f'<a href="{html.escape(run.url)}">{text}</a>'
        if run.code:
            text = f"<code>{text}</code>"
        if run.italic:
            text = f"<em>{text}</em>"
        if run.bold:
            text = f"<strong>{text}</strong>"
        out.append(text)
    return "".join(out)


def _html_text(blocks: Sequence[Block], title: str) -> str:
    body: list[str] = []
    open_list = ""
    for block in blocks:
        wanted = {"bullet": "ul", "numbered": "ol"}.get(block.kind, "")
        if open_list and wanted != open_list:
            body.append(f"</{open_list}>")
            open_list = ""
        if wanted and not open_list:
            body.append(f"<{wanted}>")
            open_list = wanted
        if block.kind == "heading":
            level = min(max(block.level, 1), 6)
            body.append(f"<h{level}>{_html_inline(block)}</h{level}>")
        elif wanted:
            body.append(f"<li>{_html_inline(block)}</li>")
        elif block.kind == "code":
            body.append(f"<pre>{html.escape(block.text)}</pre>")
        elif block.kind == "table":
            rows = _plain_rows(block)
            cells = [
                "<tr>" + "".join(f"<{tag}>{html.escape(c)}</{tag}>" for c in row) + "</tr>"
                for tag, row in ((("th" if i == 0 else "td"), row) for i, row in enumerate(rows))
            ]
            body.append("<table>\n" + "\n".join(cells) + "\n</table>")
        else:
            body.append(f"<p>{_html_inline(block)}</p>")
    if open_list:
        body.append(f"</{open_list}>")
    return (
        '<!DOCTYPE html>\n<html>\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"
    )


def _docx_bytes(blocks: Sequence[Block], template: Path | None, notes: list[str]) -> bytes:
    """A Word document of the blocks; with a template, its styles, headers and footers and no body text."""
    if template is not None:
        try:
            document = docx.Document(str(template))
        except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError) as exc:
            raise ToolError(f"template {template} is not a readable Word .docx file ({exc}).") from exc
        body = document.element.body
        for child in list(body):
            if child.tag != qn("w:sectPr"):  # the last section's page setup, headers and footers stay
                body.remove(child)
    else:
        document = docx.Document()
    missing_styles: set[str] = set()

    def paragraph(style: str) -> DocxParagraph:
        try:
            return document.add_paragraph(style=style)
        except KeyError:
            missing_styles.add(style)
            return document.add_paragraph()

    for block in blocks:
        if block.kind == "table":
            rows = _plain_rows(block)
            if not rows or not rows[0]:
                continue
            table = document.add_table(rows=len(rows), cols=len(rows[0]))
            try:
                table.style = "Table Grid"
            except (KeyError, ValueError):
                missing_styles.add("Table Grid")
            for cells, row in zip(table.rows, rows, strict=True):
                for cell, text in zip(cells.cells, row, strict=True):
                    cell.text = text
            continue
        if block.kind == "code":
            run = paragraph("Normal").add_run(block.text)
            run.font.name = "Courier New"
            continue
        style = {
            "heading": f"Heading {min(max(block.level, 1), 9)}",
            "bullet": "List Bullet",
            "numbered": "List Number",
        }.get(block.kind, "Normal")
        target = paragraph(style)
        for part in _runs(block.text, block.markdown):
            run = target.add_run(part.text if not part.url or part.url == part.text else f"{part.text} ({part.url})")
            if part.bold or (block.kind == "heading" and style in missing_styles):
                run.bold = True
            if part.italic:
                run.italic = True
            if part.code:
                run.font.name = "Courier New"
    if missing_styles:
        notes.append(f"The template has no style(s) {', '.join(sorted(missing_styles))}; plain text was used.")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


@dataclass(frozen=True)
class _PdfFonts:
    body: str
    mono: str
    unicode: bool
    bullet: str


def _pdf_bytes(blocks: Sequence[Block], title: str | None, background: Path | None) -> tuple[bytes, int]:
    """A PDF of the blocks (fpdf2); with a background PDF, its first page is drawn under every page."""
    page_size: tuple[float, float] = (595.28, 841.89)  # A4 in points
    template_page = None
    if background is not None:
        template_page = _open_pdf(background).pages[0]
        page_size = (float(template_page.mediabox.width), float(template_page.mediabox.height))
    pdf = FPDF(unit="pt", format=page_size)
    try:
        margin = 56.0
        pdf.set_margins(margin, margin, margin)
        pdf.set_auto_page_break(True, margin=margin)
        fonts = _setup_fonts(pdf, blocks)
        _refuse_undrawable(pdf, fonts, blocks)
        if title:
            pdf.set_title(title)
        pdf.set_creator("Switchboard document.create_pdf")
        pdf.add_page()
        for block, number in _numbered(blocks):
            _draw_block(pdf, fonts, block, number, margin)
        data = bytes(pdf.output())
    finally:
        close_fonts(pdf)
    if template_page is None:
        return data, pdf.pages_count
    writer = PdfWriter()
    for content_page in PdfReader(io.BytesIO(data)).pages:
        page = writer.add_blank_page(*page_size)
        page.merge_page(template_page)
        page.merge_page(content_page)
    buffer = io.BytesIO()
    writer.write(buffer)
    return buffer.getvalue(), len(writer.pages)


def _setup_fonts(pdf: FPDF, blocks: Sequence[Block]) -> _PdfFonts:
    """DejaVu (Unicode) when Debian's fonts-dejavu-core is installed, else the PDF core fonts (Latin-1).

    Only the styles the blocks use are loaded: parsing a TrueType font takes a noticeable fraction of a second.
    """
    files = [DEJAVU_DIR / name for name in (*DEJAVU_FILES.values(), DEJAVU_MONO_FILE)]
    if not all(f.is_file() for f in files):
        return _PdfFonts(body="Helvetica", mono="Courier", unicode=False, bullet="-")
    runs = [run for b in blocks if b.kind not in ("table", "code") for run in _runs(b.text, b.markdown)]
    styles = {""}
    if any(b.kind in ("heading", "table") for b in blocks) or any(r.bold for r in runs):
        styles.add("B")
    if any(r.italic for r in runs):
        styles.add("I")
    for style in sorted(styles):
        pdf.add_font("DejaVu", style, str(DEJAVU_DIR / DEJAVU_FILES[style]))
    if any(b.kind == "code" for b in blocks) or any(r.code for r in runs):
        pdf.add_font("DejaVuMono", "", str(DEJAVU_DIR / DEJAVU_MONO_FILE))
    return _PdfFonts(body="DejaVu", mono="DejaVuMono", unicode=True, bullet="\u2022")


def _refuse_undrawable(pdf: FPDF, fonts: _PdfFonts, blocks: Sequence[Block]) -> None:
    """Refuse characters the font has no glyph for, rather than writing a PDF with blanks in it."""
    characters: set[str] = set()
    for block in blocks:
        if block.kind == "table":
            characters.update(*("".join(row) for row in _plain_rows(block)))
        else:
            characters.update(_plain(block.text, block.markdown))
    characters = {c for c in characters if not c.isspace()}
    if fonts.unicode:
        font = pdf.fonts["dejavu"]
        cmap = font.cmap if isinstance(font, TTFFont) else {}
        bad = sorted(c for c in characters if ord(c) not in cmap)
        where = "the DejaVu Sans font, the only Unicode font found"
    else:
        bad = sorted(c for c in characters if ord(c) > 0xFF)
        where = (
            f"the built-in PDF fonts (Latin-1 only), because no Unicode font was found in {DEJAVU_DIR}; "
            "installing the Debian package fonts-dejavu-core fixes that"
        )
    if bad:
        shown = ", ".join(f"{c!r} (U+{ord(c):04X})" for c in bad[:10])
        raise ToolError(
            f"These characters cannot be drawn with {where}: {shown}. Remove or replace them, then try again."
        )


def _clean_for_pdf(text: str) -> str:
    # Tabs and other control characters have no glyph; spaces keep the layout readable.
    return re.sub(r"[\x00-\x08\x0b-\x1f\x7f]", " ", text.replace("\t", "    "))


def _draw_block(pdf: FPDF, fonts: _PdfFonts, block: Block, number: int, margin: float) -> None:
    size = 11.0
    line = size * 1.4
    if block.kind == "heading":
        heading_size = {1: 20.0, 2: 16.0, 3: 13.5}.get(block.level, 12.0)
        pdf.ln(heading_size * 0.4)
        pdf.set_font(fonts.body, "B", heading_size)
        pdf.multi_cell(0, heading_size * 1.3, _clean_for_pdf(_plain(block.text, block.markdown)))
        pdf.ln(heading_size * 0.3)
    elif block.kind == "code":
        pdf.set_font(fonts.mono, "", 9.5)
        pdf.set_fill_color(240, 240, 240)
        pdf.multi_cell(0, 9.5 * 1.35, _clean_for_pdf(block.text), fill=True)
        pdf.ln(line * 0.5)
    elif block.kind == "table":
        rows = _plain_rows(block)
        if rows and rows[0]:
            pdf.set_font(fonts.body, "", 10)
            with pdf.table(text_align="LEFT", line_height=10 * 1.4) as table:
                for row in rows:
                    cells = table.row()
                    for text in row:
                        cells.cell(_clean_for_pdf(text))
            pdf.ln(line * 0.5)
    elif block.kind in ("bullet", "numbered"):
        marker = fonts.bullet if block.kind == "bullet" else f"{number}."
        indent = 20.0
        pdf.set_font(fonts.body, "", size)
        pdf.set_x(margin + 4)
        pdf.write(line, marker)
        # write() wraps to the left margin, so the margin moves in for the item's own text.
        pdf.set_left_margin(margin + indent)
        pdf.set_x(margin + indent)
        _write_runs(pdf, fonts, _runs(block.text, block.markdown), size, line)
        pdf.set_left_margin(margin)
        pdf.ln(line)
        pdf.ln(line * 0.15)
    else:
        _write_runs(pdf, fonts, _runs(block.text, block.markdown), size, line)
        pdf.ln(line)
        pdf.ln(line * 0.5)


def _write_runs(pdf: FPDF, fonts: _PdfFonts, runs: Sequence[Run], size: float, line: float) -> None:
    for run in runs:
        if run.code:
            pdf.set_font(fonts.mono, "", size)
        else:
            pdf.set_font(fonts.body, ("B" if run.bold else "") + ("I" if run.italic else ""), size)
        pdf.write(line, _clean_for_pdf(run.text), link=run.url)


# Spreadsheets


@dataclass
class _SheetTable:
    header_row: int | None
    headers: list[str]
    rows: list[dict[str, Any]]
    total_rows: int


@contextmanager
def _xlsx_sheet(path: Path, sheet: str | None) -> Iterator[tuple[str, list[str], Iterator[list[Any]]]]:
    """The chosen sheet's name, all sheet names, and its rows; the workbook is closed when the block ends."""
    workbook = _open_workbook(path)
    try:
        names = list(workbook.sheetnames)
        if sheet is None:
            chosen = workbook.active.title if workbook.active is not None else names[0]
        else:
            matches = [n for n in names if n == sheet] or [n for n in names if n.lower() == sheet.strip().lower()]
            if not matches:
                raise ToolError(
                    f"No sheet named {sheet!r} in {path}. Its sheets are: {', '.join(names)}.",
                    correction=Correction(
                        f"no sheet named {sheet!r}", parameter="sheet", suggested_value=closest_choice(sheet, names)
                    ),
                )
            chosen = matches[0]
        rows = ([_cell_json(v) for v in values] for values in workbook[chosen].iter_rows(values_only=True))
        yield chosen, names, rows
    finally:
        workbook.close()


def _spreadsheet_table(rows: Iterator[list[Any]]) -> _SheetTable:
    """The first non-empty row as column names, the rows after it as records (up to the row limit)."""
    header_row = None
    headers: list[str] = []
    records: list[dict[str, Any]] = []
    total = 0
    for number, row in enumerate(rows, 1):
        empty = all(v is None or (isinstance(v, str) and not v.strip()) for v in row)
        if header_row is None:
            if empty:
                continue
            header_row = number
            headers = _column_names(row)
            continue
        if empty:
            continue
        total += 1
        if len(records) < MAX_SPREADSHEET_ROWS:
            values = list(row) + [None] * (len(headers) - len(row))
            record = dict(zip(headers, values, strict=False))
            # Cells beyond the named columns are kept under generated names rather than dropped.
            for extra, value in enumerate(values[len(headers) :], len(headers) + 1):
                if value is not None and value != "":
                    record[f"column_{extra}"] = value
            records.append(record)
    return _SheetTable(header_row=header_row, headers=headers, rows=records, total_rows=total)


def _column_names(row: Sequence[Any]) -> list[str]:
    names: list[str] = []
    for index, value in enumerate(row, 1):
        name = _cell_text(value).strip() or f"column_{index}"
        base, n = name, 2
        while name in names:
            name, n = f"{base}_{n}", n + 1
        names.append(name)
    while names and names[-1] == f"column_{len(names)}":
        names.pop()  # trailing empty header cells are formatting, not columns
    return names


def _xlsx_to_csv(source: Path, notes: list[str]) -> bytes:
    with _xlsx_sheet(source, None) as (sheet_name, sheets, rows):
        values = _trimmed([[_cell_text(v) for v in row] for row in rows])
    if len(sheets) > 1:
        others = ", ".join(s for s in sheets if s != sheet_name)
        notes.append(f"A CSV file holds one sheet: {sheet_name!r} was converted; {others} were not.")
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(values)
    return buffer.getvalue().encode("utf-8")


_NUMBER = re.compile(r"-?(0|[1-9]\d*)(\.\d+)?")


def _csv_to_xlsx(source: Path, notes: list[str]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = re.sub(r"[\[\]:*?/\\]", "_", source.stem)[:31] or "Sheet1"
    for row in _csv_rows(source, notes):
        # Numbers become numbers; codes with leading zeros ("007") stay text.
        sheet.append([(float(v) if "." in v else int(v)) if _NUMBER.fullmatch(v) else v for v in row])
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


# Diffs and PDF forms


def _diff_units(document: LoadedDocument, granularity: str) -> list[str]:
    if granularity == "paragraph":
        units: list[str] = []
        for block in document.blocks:
            if block.kind == "table":
                units.extend(" | ".join(row) for row in _plain_rows(block))
            else:
                units.append(" ".join(_plain(block.text, block.markdown).split()))
        return [u for u in units if u]
    words = " ".join(document.text.split())
    if granularity == "sentence":
        return [s for s in re.split(r"(?<=[.!?])\s+", words) if s]
    return words.split()


def _unit_changes(a: list[str], b: list[str], joiner: str) -> list[DiffChange]:
    found = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, a, b, autojunk=False).get_opcodes():
        if op == "equal":
            continue
        kind: Literal["added", "removed", "changed"] = {"replace": "changed", "delete": "removed"}.get(op, "added")  # type: ignore[assignment]
        found.append(
            DiffChange(
                kind=kind,
                before=joiner.join(a[i1:i2]),
                after=joiner.join(b[j1:j2]),
                position_a=i1 + 1,
                position_b=j1 + 1,
            )
        )
    return found


def _field_list(form: dict[str, Any]) -> str:
    kinds = {"/Tx": "text", "/Btn": "checkbox/button", "/Ch": "choice", "/Sig": "signature"}
    return ", ".join(f"{name} ({kinds.get(str(spec.get('/FT')), 'field')})" for name, spec in form.items())


def _field_value(name: str, spec: dict[str, Any], value: Any) -> str:
    """The value to store in field `name`, checked against what the field accepts."""
    kind = str(spec.get("/FT", ""))
    if kind == "/Sig":
        raise ToolError(
            f"Field {name!r} is a signature field; it cannot be filled with text.",
            correction=Correction(f"field {name!r} is a signature field", parameter="fields"),
        )
    if kind == "/Btn":
        states = [str(s) for s in spec.get("/_States_", [])]
        on_states = [s for s in states if s != "/Off"]
        wanted = str(value).strip().lower()
        if value is True or wanted in ("true", "yes", "on", "checked", "x", "1"):
            if not on_states:
                raise ToolError(
                    f"Field {name!r} is a button with no 'on' state; it cannot be checked.",
                    correction=Correction(f"field {name!r} cannot be checked", parameter="fields"),
                )
            return on_states[0]
        if value is False or wanted in ("false", "no", "off", "unchecked", "0", ""):
            return "/Off"
        for state in states:
            if state.lstrip("/").lower() == wanted.lstrip("/"):
                return state
        raise ToolError(
            f"Field {name!r} is a checkbox or radio button: give true or false, or one of its states: "
            f"{', '.join(s.lstrip('/') for s in states)}.",
            correction=Correction(f"field {name!r} is a checkbox or radio button", parameter="fields"),
        )
    if isinstance(value, dict | list):
        raise ToolError(
            f"Field {name!r} takes a single text value, not {type(value).__name__}.",
            correction=Correction(f"field {name!r} takes a single text value", parameter="fields"),
        )
    text = "" if value is None else str(value)
    if kind == "/Ch":
        options = [o[0] if isinstance(o, list) else o for o in spec.get("/Opt", [])]
        allowed = [str(o) for o in options]
        if allowed and text not in allowed:
            raise ToolError(
                f"Field {name!r} is a choice field; use one of: {', '.join(allowed)}.",
                correction=Correction(f"{text!r} is not a choice of field {name!r}", parameter="fields"),
            )
    return text


def _renamed_fields(fields: dict[str, Any], names: list[str]) -> dict[str, Any] | None:
    """`fields` with each name the form lacks replaced by its closest real one; None if one has none."""
    renamed: dict[str, Any] = {}
    for name, value in fields.items():
        real = name if name in names else closest_choice(name, names)
        if real is None:
            return None
        renamed[real] = value
    return renamed


def _stored_value(spec: dict[str, Any]) -> str:
    value = spec.get("/V")
    return "" if value is None else str(value)


def _pairs() -> str:
    return "; ".join(f"{source} to {', '.join(targets)}" for source, targets in CONVERSIONS.items())


def _free_name(source: Path, suffix: str) -> Path:
    """Next to the source, with the new suffix; a numbered name when that file already exists."""
    candidate = source.with_suffix(suffix)
    n = 1
    while candidate.exists() or candidate.is_symlink():
        n += 1
        candidate = source.with_name(f"{source.stem}-converted{'' if n == 2 else f'-{n - 1}'}{suffix}")
    return candidate


def main() -> None:
    """Serve the document tools over stdio, with the tool host's settings."""
    serve(build_server, SERVER_NAME)


if __name__ == "__main__":
    main()
