"""`cfx report finance` on a small demo company: files, figures and consistent payloads."""

from __future__ import annotations

import json

import pytest

from cfxlib.metrics import revenue
from cfxlib.store import warehouse


def test_report_finance_writes_everything_and_agrees_with_the_library(demo_home, tmp_path):
    from tests.conftest import run_cfx

    out = tmp_path / "finance"
    result = run_cfx("report", "finance", "--out", str(out), home=demo_home, timeout=900)
    assert result.returncode == 0, result.stderr
    assert "Backtest of the total ARR forecast" in result.stdout
    for name in (
        "finance.json",
        "monthly.parquet",
        "arr_forecast.parquet",
        "forecast_backtest_points.parquet",
        "cohorts.parquet",
    ):
        assert (out / name).exists(), name
    for png in ("arr_forecast.png", "mrr_movements.png"):
        data = (out / "figures" / png).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000

    payload = json.loads((out / "finance.json").read_text())
    summary = payload["summary"]
    con = warehouse.connect(demo_home / "warehouse" / "cfx.duckdb")
    try:
        monthly = revenue.monthly_metrics(con=con)
    finally:
        con.close()
    assert summary["as_of"] == "2025-12" == monthly["month"].iloc[-1]
    assert summary["mrr"] == pytest.approx(monthly["mrr"].iloc[-1])
    assert summary["arr"] == pytest.approx(12 * summary["mrr"])
    assert sum(t["arr"] for t in summary["by_tier"]) == pytest.approx(summary["arr"])
    fc = summary["arr_forecast_12m"]
    assert fc["lo_95"] <= fc["lo_80"] <= fc["arr"] <= fc["hi_80"] <= fc["hi_95"]
    assert fc["month"] == "2026-12"
    points = payload["forecast"]["points"]
    assert {p["unique_id"] for p in points} == {"Total", "Starter", "Professional", "Enterprise"}
    assert all("arr_bottom_up" in p and "gap_pct" in p for p in points)
    assert payload["forecast"]["backtest"]["points"] > 0
