"""The PDFs' layout rules, checked on real typst output read back with pypdfium2: a table row is
never split across pages, and a chart drawn narrower than the reference width is shown
proportionally narrower (so its text is not enlarged); the model card comments on the
calibration of the riskiest decile."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pypdfium2 as pdfium  # noqa: E402

from cfxlib.publish import theme  # noqa: E402
from cfxlib.publish.pages import calibration_note  # noqa: E402
from cfxlib.publish.render import render_pdf  # noqa: E402


def page_texts(pdf) -> list[str]:
    doc = pdfium.PdfDocument(str(pdf))
    return [doc[i].get_textpage().get_text_range() for i in range(len(doc))]


def test_no_table_row_is_split_across_pages(tmp_path):
    rows = [f"| r{i:02d} | " + " ".join(f"w{i:02d}x{k}" for k in range(40)) + " |" for i in range(60)]
    markdown = "# Rows\n\n| id | text |\n|:---|:---|\n" + "\n".join(rows) + "\n"
    pdf = render_pdf(markdown, tmp_path, tmp_path / "rows.pdf", "Rows")
    pages = page_texts(pdf)
    assert len(pages) > 2  # the table does cross pages
    for i in range(60):
        holding = {p for p, text in enumerate(pages) if f"w{i:02d}x0" in text or f"w{i:02d}x39" in text}
        assert len(holding) == 1, f"row {i} is split over pages {sorted(holding)}"


def test_a_narrow_chart_keeps_the_font_size_of_a_wide_one(tmp_path):
    theme.apply()
    for name, width in (("wide", 10.0), ("narrow", 5.0)):
        fig, ax = plt.subplots(figsize=(width, 3))
        ax.plot([0, 1], [0, 1])
        theme.save(fig, tmp_path / f"{name}.png")
    render_pdf("![](wide.png)\n\n![](narrow.png)\n", tmp_path, tmp_path / "charts.pdf", "Charts")
    source = (tmp_path / "charts.typ").read_text()
    assert 'image("wide.png", width: 100%)' in source and 'image("narrow.png", width: 50%)' in source
    doc = pdfium.PdfDocument(str(tmp_path / "charts.pdf"))
    widths = sorted(
        obj.get_bounds()[2] - obj.get_bounds()[0]
        for obj in doc[0].get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE], max_depth=5)
    )
    assert len(widths) == 2 and abs(widths[0] / widths[1] - 0.5) < 0.02


def test_the_model_card_says_when_the_riskiest_decile_is_under_predicted():
    deciles = [{"predicted": 0.01 * i, "observed": 0.01 * i, "accounts": 400} for i in range(1, 10)]
    under = calibration_note([*deciles, {"predicted": 0.30, "observed": 0.42, "accounts": 400}])
    assert "under-predicts** by 12.0 points" in under and "lower bounds" in under and "40%" in under
    fine = calibration_note([*deciles, {"predicted": 0.30, "observed": 0.32, "accounts": 400}])
    assert "chance alone allows" in fine and "under-predicts" not in fine
    over = calibration_note([*deciles, {"predicted": 0.40, "observed": 0.25, "accounts": 400}])
    assert "over-predicts** by 15.0 points" in over
