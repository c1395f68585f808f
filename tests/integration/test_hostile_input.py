"""Hostile text in every table: no SQL runs, no script runs, every output shows it literally.

A small demo company is rewritten so that account ids, names, industries, regions, services and
lead sources carry HTML, script, Markdown table pipes, quotes and Quarto shortcodes, and one file
gets a header that tries to close the CREATE TABLE statement. Then the whole job runs, and every
page of the site is opened in headless Chromium.
"""

from __future__ import annotations

import os
import re

import duckdb
import pandas as pd
import pytest

from cfxlib.contract.schemas import ALL_TABLES
from cfxlib.demo import DemoOptions, generate
from tests.conftest import run_cfx
from tests.pdf import pdf_text

pytestmark = pytest.mark.xdist_group("pipeline")

CHROMIUM = os.environ.get("CFX_CHROMIUM", "/usr/bin/chromium")

EVIL_HEADER = 'x" VARCHAR); CREATE TABLE injected(a INT); --'
MARK = "Zq9"  # a plain marker that survives every format, to find the hostile values in outputs


def evil_id(n: int) -> str:
    return f'<img src=x onerror="window.__pwned=1">{MARK}{n}|\'";--'


EVIL_TEXT = "<script>window.__pwned=1</script> *bold* [link](http://example.com) {{< include /etc/passwd >}} $x$ a|b"
EVIL_SERVICE = "<svg onload=window.__pwned=1>api|x"


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    data, home = root / "data", root / "home"
    generate(data, DemoOptions(accounts=120, months=16, seed=5, end_month="2025-12"))
    accounts = pd.read_csv(data / "accounts.csv", dtype=str, keep_default_na=False)
    ids = {a: evil_id(i) for i, a in enumerate(accounts["account_id"])}
    # every table that names accounts, from the contract: a table added later gets hostile ids too
    for name in [t for t, spec in ALL_TABLES.items() if t == "accounts" or spec.account_ref]:
        frame = pd.read_csv(data / f"{name}.csv", dtype=str, keep_default_na=False)
        frame["account_id"] = frame["account_id"].map(lambda v: ids.get(v, v))
        if name == "accounts":
            frame["account_name"] = EVIL_TEXT
            frame["industry"] = "<b>Industry</b>|x"
            frame["region"] = "Region `code` & <i>more</i>"
            frame[EVIL_HEADER] = "kept"
        if name == "leads":
            frame["source"] = "<iframe src=javascript:window.__pwned=1>|web"
        frame.to_csv(data / f"{name}.csv", index=False)
    ops = pd.read_csv(data / "ops_daily.csv", dtype=str, keep_default_na=False)
    ops.loc[ops["service"] == "api", "service"] = EVIL_SERVICE
    ops.to_csv(data / "ops_daily.csv", index=False)
    result = run_cfx("run", "--data", str(data), home=home, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return home


def test_hostile_header_is_kept_as_a_name_and_runs_no_statement(hostile):
    con = duckdb.connect(str(hostile / "warehouse" / "cfx.duckdb"), read_only=True)
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
        columns = [r[0] for r in con.execute("DESCRIBE accounts").fetchall()]
        kept = con.execute(f'SELECT DISTINCT "{EVIL_HEADER.replace(chr(34), chr(34) * 2)}" FROM accounts').fetchall()
    finally:
        con.close()
    assert "injected" not in tables
    assert EVIL_HEADER in columns and kept == [("kept",)]


def test_markdown_fragments_escape_every_value(hostile):
    pub = hostile / "published"
    for md in [*(pub / "artifacts").glob("*.md"), pub / "customer_success.md", *(pub / "reports").glob("*.md")]:
        text = md.read_text(encoding="utf-8")
        assert not re.search(r"(?<!\\)<(img|script|svg|iframe|b|i)\b", text), md.name  # only escaped: \<img
        assert "{{<" not in text and "](http" not in text, md.name


def test_pages_run_no_script_and_show_the_text_literally(hostile, tmp_path):
    from playwright.sync_api import sync_playwright

    site = hostile / "published" / "site"
    # every page but the root's redirect to the first page (which the loop covers)
    pages = [p for p in sorted(site.rglob("*.html")) if 'http-equiv="refresh"' not in p.read_text(encoding="utf-8")]
    assert len(pages) >= 6
    seen_marks = 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        for path in pages:
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            assert page.evaluate("window.__pwned === undefined"), f"script ran in {path.name}"
            injected = page.evaluate(
                "document.querySelectorAll('img[src=\"x\"], img[onerror], svg[onload], iframe, script:not(:last-of-type)').length"
            )
            assert injected == 0, f"injected element in {path.name}"
            # every table keeps its shape: each row has as many cells as the header
            shapes = page.evaluate(
                """Array.from(document.querySelectorAll('table')).map(t => {
                    const head = t.querySelectorAll('thead th').length;
                    return Array.from(t.querySelectorAll('tbody tr')).every(r => r.children.length === head);
                })"""
            )
            assert all(shapes), f"a table lost its shape in {path.name}"
            text = page.evaluate("document.body.textContent")
            if MARK in text:
                seen_marks += 1
                assert re.search(r"<img src=x onerror=\"window.__pwned=1\">" + MARK + r"\d+\|'\";--", text), path.name
            page.screenshot(path=str(tmp_path / f"{path.stem}.png"), full_page=True)
        browser.close()
    assert not dialogs
    assert seen_marks >= 1, "no page shows a hostile account id"
    assert page is not None


def test_pdfs_render_and_show_the_text_literally(hostile):
    reports = hostile / "published" / "reports"
    for pdf in reports.glob("*.pdf"):
        text = pdf_text(pdf)
        assert len(text) > 500, pdf.name
    launch = (reports / "enterprise_launch_report.html").read_text(encoding="utf-8")
    assert "<img src=x" not in launch


def test_service_names_and_alerts_are_literal_on_the_portal(hostile):
    portal = (hostile / "published" / "site" / "reports" / "portal.html").read_text(encoding="utf-8")
    assert "&lt;svg onload=window.__pwned=1&gt;api|x" in portal
    assert "<svg onload" not in portal
