"""Weekly snapshots: ISO weeks, the previous week, and the week-over-week column of the KPI table."""

from __future__ import annotations

import json
from datetime import date

import pytest

from cfxlib.publish import history, pages


def test_iso_weeks():
    assert history.iso_week(date(2026, 11, 30)) == "2026-W49"
    assert history.iso_week(date(2027, 1, 1)) == "2026-W53"  # 2026 has 53 ISO weeks
    assert history.parse_week("2026-W53") == "2026-W53"
    assert history.week_monday("2026-W49") == date(2026, 11, 30)
    for bad in ("2025-W53", "2026-49", "2026-W7", ""):
        with pytest.raises(ValueError):
            history.parse_week(bad)


def test_previous_week_and_changes(tmp_path):
    for week, arr, nrr in (("2026-W47", 100.0, 0.95), ("2026-W48", 110.0, 0.97)):
        (tmp_path / f"{week}.json").write_text(json.dumps({"week": week, "arr": arr, "nrr_12m": nrr}))
    (tmp_path / "2026-W46.json").write_text("{not json")
    (tmp_path / "2026-W45.json").write_text(json.dumps({"week": "2026-W44"}))  # name and content disagree
    assert [w["week"] for w in history.read_weeks(tmp_path)] == ["2026-W47", "2026-W48"]
    prev = history.previous_week(tmp_path, "2026-W49")
    assert prev["week"] == "2026-W48" and history.previous_week(tmp_path, "2026-W47") is None
    now = {"arr": 121.0, "nrr_12m": 0.96}
    assert history.change(now, prev, "arr", "relative") == pytest.approx(0.1)
    assert history.change(now, prev, "nrr_12m", "points") == pytest.approx(-0.01)
    assert history.change(now, None, "arr", "relative") is None


def _finance(month: str) -> dict:
    summary = dict(
        as_of=month,
        arr=1_210_000.0,
        mrr=100_833.33,
        arr_growth_mom=0.02,
        customers=100,
        arpa=1008.33,
        nrr_12m=0.96,
        grr_12m=0.9,
        logo_churn_rate=0.01,
        quick_ratio=2.0,
        ltv_to_cac=3.0,
        cac_payback_months=10.0,
    )
    return {"summary": summary, "mrr": [{"month": month, "customers": 100, "arpa": 1008.33}], "unit_economics": []}


def test_kpi_table_has_a_week_over_week_column():
    snap = {
        "as_of": "2026-10",
        "arr": 1_210_000.0,
        "mrr": 100_833.33,
        "customers": 100,
        "nrr_12m": 0.96,
        "grr_12m": 0.9,
        "logo_churn_rate": 0.01,
        "uptime_pct": 99.9,
        "worst_service_uptime_pct": 99.7,
    }
    last = {**snap, "week": "2026-W48", "arr": 1_100_000.0, "nrr_12m": 0.95, "uptime_pct": 99.95}
    table = pages.kpi_table(snap, _finance("2026-10"), None, last)
    assert "| KPI (2026-10) | value | change vs previous month | vs week 2026-W48 |" in table
    row = next(line for line in table.splitlines() if line.startswith("| ARR |"))
    assert row.endswith("| +10.0% |")
    nrr = next(line for line in table.splitlines() if line.startswith("| Net revenue retention"))
    assert nrr.endswith("| +1.0 pp |")
    uptime = next(line for line in table.splitlines() if line.startswith("| Uptime"))
    assert uptime.endswith("| -0.050 pp |")
    first = pages.kpi_table(snap, _finance("2026-10"), None, None)
    assert "vs last week" in first and "No weekly investor snapshot" in first


def test_the_weekly_update_shows_founders_text_literally():
    """Markup and quotes from fundraising.yaml reach the update's HTML escaped, its text as is."""
    from cfxlib.investor import content

    snap = {
        "as_of": "2026-10",
        "arr": 1_210_000.0,
        "mrr": 100_833.33,
        "customers": 100,
        "arr_growth_mom": 0.02,
        "run_id": "r1",
        "data_hash": "d" * 64,
        "arr_forecast_12m": None,
    }
    hostile = "<script>alert('x')</script> & \"Ops\" Capital"
    finance = {
        "fundraising": {"round": {"name": "Series A", "target_usd": 25e6, "committed_usd": 9.5e6, "lead": hostile}}
    }
    firing = [{"title": "Uptime", "severity": "critical", "since": "2026-10", "message": "<b>99.4%</b>"}]
    update = content.weekly_update("2026-W49", snap, None, finance, firing, "c@x", b"png", True, "/tmp/u.html")
    for html in (update.html_email, update.html_archive):
        assert "<script>" not in html and "<b>99.4%</b>" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &#34;Ops&#34; Capital" in html
    assert hostile in update.text and "<b>99.4%</b>" in update.text
