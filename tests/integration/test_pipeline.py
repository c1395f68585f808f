"""cfx run end to end on a small demo: publication, provenance, agreement, pages, PDFs, atomicity."""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from cfxlib.metrics import revenue
from cfxlib.publish.formats import num, pct, usd
from cfxlib.publish.snapshot import MetricsSnapshot
from cfxlib.store import warehouse
from tests.conftest import REPO, run_cfx
from tests.pdf import pdf_text, render_pages

pytestmark = pytest.mark.xdist_group("pipeline")

from tests.integration.conftest import SMALL  # noqa: E402

CHROMIUM = os.environ.get("CFX_CHROMIUM", "/usr/bin/chromium")


def test_run_publishes_everything(published):
    pub = published / "published"
    assert pub.is_symlink()
    for rel in (
        "site/index.html",
        "site/reports/portal.html",
        "site/reports/model-card.html",
        "site/reports/forecast-backtest.html",
        "site/reports/data-dictionary.html",
        "site/reports/launch-report.html",
        "site/reports/investor-summary.html",
        "reports/investor_metrics.md",
        "reports/enterprise_launch_report.md",
        "reports/enterprise_launch_report.html",
        "reports/enterprise_launch_report.pdf",
        "reports/investor_metrics.pdf",
        "metrics_snapshot.json",
        "finance.json",
        "customer_success.json",
        "run.json",
    ):
        assert (pub / rel).exists(), rel
    run = json.loads((pub / "run.json").read_text())
    assert run["status"] == "published"
    assert re.fullmatch(r"[0-9a-f]{64}", run["data_hash"])
    assert run["code_commit"] and run["packages"]["pandas"] and run["parameters"]["cfx_home"] == str(published)
    run_dir = published / "runs" / run["run_id"]
    assert sorted(p.name for p in (run_dir / "notebooks").iterdir()) == sorted(
        p.name for p in (REPO / "notebooks").glob("*.ipynb")
    )
    assert all(v["status"] == "ok" for v in run["steps"].values())


def test_snapshot_site_pdf_and_library_agree(published):
    pub = published / "published"
    snap = MetricsSnapshot.model_validate_json((pub / "metrics_snapshot.json").read_text())
    con = warehouse.connect(published / "warehouse" / "cfx.duckdb")
    try:
        monthly = revenue.monthly_metrics(con=con)
    finally:
        con.close()
    last = monthly.iloc[-1]
    assert snap.as_of == last["month"] == "2025-12"
    assert snap.arr == pytest.approx(last["arr"]) and snap.mrr == pytest.approx(last["mrr"])
    assert snap.customers == last["customers"]
    assert snap.arr_growth_mom == pytest.approx(last["arr_growth_mom"])
    assert snap.schema_version and snap.arr_forecast_12m is not None
    # every headline KPI, formatted as the pages format it, is on the site, in the investor PDF and
    # in the launch report: one set of numbers everywhere
    kpis = {
        "ARR": usd(snap.arr),
        "MRR": usd(snap.mrr),
        "customers": f"{snap.customers:,}",
        "ARR growth": pct(snap.arr_growth_mom, signed=True),
        "NRR": pct(snap.nrr_12m),
        "GRR": pct(snap.grr_12m),
        "logo churn": pct(snap.logo_churn_rate, 2),
        "LTV:CAC": num(snap.ltv_to_cac),
        "CAC payback": f"{num(snap.cac_payback_months)} months",
        "uptime": f"{snap.uptime_pct:.3f}%",
        "AI calls": f"{snap.ai_calls:,}",
        "lead conversion": pct(snap.lead_conversion_90d),
        "ARR at risk": usd(snap.arr_at_risk),
    }
    site = (pub / "site" / "reports" / "index.html").read_text()
    pdf = pdf_text(pub / "reports" / "investor_metrics.pdf")
    launch = (pub / "reports" / "enterprise_launch_report.md").read_text()
    for name, text in kpis.items():
        assert text in site, f"{name} {text} not on the site"
        assert text in pdf, f"{name} {text} not in the investor PDF"
        assert text.replace("$", "\\$") in launch or text in launch, f"{name} {text} not in the launch report"
    assert snap.run_id in site and snap.as_of in pdf
    assert "enterprise acquisition, operational intelligence, global scaling" in launch
    assert "{{<" not in launch  # every shortcode resolved


def test_site_is_offline_and_navigable_in_chromium(published, tmp_path):
    from playwright.sync_api import sync_playwright

    site = published / "published" / "site"
    for page in site.rglob("*.html"):
        text = page.read_text()
        # nothing is loaded from the network (citations of sources may link out; nothing loads them)
        assert not re.search(r"src=\"https?://|<link[^>]+href=\"https?://", text), f"external resource in {page.name}"
    shots = tmp_path / "shots"
    shots.mkdir()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        failed = []
        page.on("requestfailed", lambda r: failed.append(r.url))
        page.goto((site / "index.html").as_uri())
        page.wait_for_url("**/reports/index.html")
        assert "Executive overview" in page.inner_text("h1")
        page.screenshot(path=str(shots / "overview.png"), full_page=True)
        page.click("nav >> text=Reporting portal")
        page.wait_for_url("**/portal.html")
        assert page.is_visible("text=Recurring revenue by tier")
        page.click(".tabset-nav >> text=System Performance")
        assert page.is_visible("text=Services in") and not page.is_visible("text=Recurring revenue by tier")
        page.screenshot(path=str(shots / "portal-system.png"), full_page=True)
        page.click(".tabset-nav >> text=Customer Health")
        assert page.is_visible("text=At-risk accounts")
        for name in ("Churn model card", "Forecast backtest", "Data dictionary", "Launch report"):
            page.click(f"nav >> text={name}")
            assert page.inner_text("h1") or page.inner_text("main")
        images = page.eval_on_selector_all("img", "els => els.map(e => e.naturalWidth)")
        assert all(w > 0 for w in images)
        # the overview links every report of the run, and every link resolves to a published file
        page.click("nav >> text=Overview")
        hrefs = page.eval_on_selector_all("main a[href]", "els => els.map(e => e.href)")
        reports = [h for h in hrefs if h.startswith("file://") and not h.endswith(".html")]
        assert len(reports) == 6, hrefs
        for href in reports:
            assert Path(href.removeprefix("file://")).is_file(), href
        assert "Generated " in page.inner_text("main")
        browser.close()
    assert not failed, failed
    assert (shots / "overview.png").stat().st_size > 50_000


def test_every_page_reads_at_1366_px(published, tmp_path):
    """Each navbar page in Chromium at a laptop's width: nothing wider than the window, no table
    that scrolls sideways, every image loaded, every link resolving; screenshots kept."""
    from playwright.sync_api import sync_playwright

    site = published / "published" / "site"
    shots = REPO / "test-artifacts" / "site"
    shots.mkdir(parents=True, exist_ok=True)
    pages = sorted((site / "reports").glob("*.html"))
    assert len(pages) >= 7
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1366, "height": 768})
        for html_page in pages:
            page.goto(html_page.as_uri())
            for tab in page.query_selector_all(".tabset-nav button") or [None]:
                if tab is not None:
                    tab.click()
                name = html_page.stem + ("-" + tab.inner_text().lower().replace(" ", "-") if tab else "")
                page.screenshot(path=str(shots / f"{name}.png"), full_page=True)
                width = page.evaluate("document.documentElement.scrollWidth")
                assert width <= 1366, f"{name}: page {width} px wide"
                wide_tables = page.eval_on_selector_all(
                    "table", "ts => ts.filter(t => t.offsetParent && t.scrollWidth > t.clientWidth + 2).length"
                )
                assert wide_tables == 0, f"{name}: {wide_tables} table(s) scroll sideways"
            broken = page.eval_on_selector_all(
                "img", "els => els.filter(e => !e.complete || !e.naturalWidth).map(e => e.src)"
            )
            assert not broken, f"{html_page.name}: images not loaded {broken}"
            for href in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)"):
                if href.startswith("file://"):
                    target = Path(href.removeprefix("file://").split("#")[0])
                    assert target.exists(), f"{html_page.name}: broken link {href}"
        browser.close()


def test_the_site_reads_on_a_phone_and_a_wide_screen(published):
    """At 420 px (a phone) and 1400 px: no page wider than the window, a header that neither
    stays fixed nor takes the screen on a phone, a navigation that collapses into a menu there,
    tables that scroll inside their own box, figures scaled to the width; screenshots kept."""
    from playwright.sync_api import sync_playwright

    site = published / "published" / "site"
    shots = REPO / "test-artifacts" / "site"
    shots.mkdir(parents=True, exist_ok=True)
    pages = sorted((site / "reports").glob("*.html"))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        for width, height in ((420, 860), (1400, 900)):
            page = browser.new_page(viewport={"width": width, "height": height})
            for html_page in pages:
                page.goto(html_page.as_uri())
                name = f"{width}px-{html_page.stem}"
                page.screenshot(path=str(shots / f"{name}.png"), full_page=False)
                assert page.evaluate("document.documentElement.scrollWidth") <= width, f"{name}: wider than the window"
                header = page.eval_on_selector(
                    "header.site", "h => [h.getBoundingClientRect().height, getComputedStyle(h).position]"
                )
                images = page.eval_on_selector_all("main img", "els => els.map(e => e.getBoundingClientRect().right)")
                assert all(right <= width for right in images), f"{name}: a figure is wider than the window"
                tables = page.eval_on_selector_all("main table", "ts => ts.map(t => t.closest('.table-wrap') !== null)")
                assert all(tables), f"{name}: a table outside its scrolling box"
                if width == 420:
                    assert header[0] <= 0.15 * height and header[1] not in ("sticky", "fixed"), (name, header)
                    assert not page.is_visible("header.site > nav a") and page.is_visible("details.menu summary")
                    page.click("details.menu summary")
                    assert page.is_visible("details.menu nav a >> nth=0")
                else:
                    assert page.is_visible("header.site > nav a") and not page.is_visible("details.menu summary")
            page.close()
        browser.close()


def _ink_bottom(png: Path) -> float:
    """Where the last ink is on a page image, as a share of its height (the footer line left out)."""
    import numpy as np
    from PIL import Image

    grey = np.asarray(Image.open(png).convert("L"))
    body = grey[: int(grey.shape[0] * 0.93)]  # the footer sits in the bottom margin
    rows = np.where((body < 235).sum(axis=1) > 3)[0]
    return (rows.max() + 1) / grey.shape[0] if len(rows) else 0.0


@pytest.mark.parametrize("name", ["enterprise_launch_report", "investor_metrics"])
def test_pdfs_fill_their_pages_and_carry_funding_and_charts(published, tmp_path, name):
    import pypdfium2 as pdfium

    pdf = published / "published" / "reports" / f"{name}.pdf"
    out = REPO / "test-artifacts" / "pdf"
    out.mkdir(parents=True, exist_ok=True)
    pages = render_pages(pdf, out)
    assert pages and pages[0].stat().st_size > 30_000
    for number, png in enumerate(pages[:-1], start=1):
        assert _ink_bottom(png) > 0.5, f"{name} page {number} is more than half empty"
    doc = pdfium.PdfDocument(str(pdf))
    try:
        images = sum(len(list(doc[i].get_objects(filter=[pdfium.raw.FPDF_PAGEOBJ_IMAGE]))) for i in range(len(doc)))
    finally:
        doc.close()
    assert images >= 4, f"{name} has {images} charts"
    text = pdf_text(pdf)
    assert "unding status" in text and "Use of funds" in text and "not provided" in text
    assert "Burn multiple" in text and "Rule of 40" in text
    assert "DynamicOptimizedTheta" not in text.split("Forecast models chosen")[0]  # no model names in the body


def test_failed_step_keeps_the_previous_publication(published, tmp_path):
    before = os.readlink(published / "published")
    broken = tmp_path / "notebooks"
    shutil.copytree(REPO / "notebooks", broken)
    nb = json.loads((broken / "04_customer_health.ipynb").read_text())
    nb["cells"][3]["source"] = "raise RuntimeError('simulated failure in health')"
    (broken / "04_customer_health.ipynb").write_text(json.dumps(nb))
    result = run_cfx(
        "run", "--demo", home=published, env={**SMALL, "CFX_PIPELINE__NOTEBOOK_DIR": str(broken)}, timeout=900
    )
    assert result.returncode == 2
    assert (
        re.search(r"04_customer_health failed at cell \d+", result.stderr)
        and "simulated failure in health" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert os.readlink(published / "published") == before
    runs = sorted((published / "runs").iterdir())
    failed = json.loads((runs[-1] / "run.json").read_text())
    assert failed["status"] == "failed" and "04_customer_health" in failed["error"]


def test_money_in_every_payload_is_whole_cents(published):
    """Every dollar amount in the published JSON is a whole number of cents, written as such
    (no 605737.3200000001), and the snapshot's ARR is exactly 12 x its MRR."""
    from decimal import Decimal

    from cfxlib.contract.money import MONEY_FIELDS

    found = []

    def walk(value, key=None):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for v in value:
                walk(v, key)
        elif key in MONEY_FIELDS and isinstance(value, float):
            found.append((key, value))
            assert Decimal(repr(value)) == Decimal(repr(value)).quantize(Decimal("0.01")), (key, value)

    pub = published / "published"
    for name in ("finance.json", "metrics_snapshot.json", "customer_success.json"):
        walk(json.loads((pub / name).read_text()))
    assert len(found) > 500
    snap = json.loads((pub / "metrics_snapshot.json").read_text())
    assert Decimal(repr(snap["arr"])) == 12 * Decimal(repr(snap["mrr"]))
