"""PDF helpers for tests, with pypdfium2 (a wheel): no poppler needed on the machine."""

from __future__ import annotations

from pathlib import Path


def pdf_text(path: Path) -> str:
    """The text of every page, pages separated by a form feed."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    try:
        return "\f".join(doc[i].get_textpage().get_text_range() for i in range(len(doc)))
    finally:
        doc.close()


def render_pages(path: Path, out_dir: Path, scale: float = 80 / 72) -> list[Path]:
    """Every page as a PNG in ``out_dir`` (``page-1.png``, ...), at 80 dpi by default."""
    import pypdfium2 as pdfium

    doc = pdfium.PdfDocument(str(path))
    out = []
    try:
        for i in range(len(doc)):
            png = out_dir / f"{path.stem}-page-{i + 1}.png"
            doc[i].render(scale=scale).to_pil().save(png)
            out.append(png)
    finally:
        doc.close()
    return out
