"""Real files the tests make: documents with a text layer, built the way a person's files are."""

from __future__ import annotations

from pathlib import Path

from fpdf import FPDF


def text_pdf(path: Path, *pages: str) -> Path:
    """A PDF with a real text layer, one page per argument (Latin-1 text, core font)."""
    pdf = FPDF()
    pdf.set_font("Helvetica", size=12)
    for text in pages:
        pdf.add_page()
        pdf.multi_cell(0, 8, text)
    pdf.output(str(path))
    return path
