"""ARR forecast parts: the bottom-up projection by hand, comparison and the backtest report."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfxlib.metrics import arr_forecast
from tests.unit.test_revenue import subs_frame


def test_bottom_up_by_hand():
    """Starter: A and B from Jan 2024 (B churns in Dec), C new in Jan 2025.
    12-month NRR at Jan 2025 = 100 / 200; new ARR per month over 6 months = 12 * 60 / 6."""
    subs = subs_frame(
        [
            ("a", "A", "Starter", 1, 1, 100.0, "2024-01-01", None),
            ("b", "B", "Starter", 1, 1, 100.0, "2024-01-01", "2024-12-15"),
            ("c", "C", "Starter", 1, 1, 60.0, "2025-01-10", None),
        ]
    )
    bu = arr_forecast.bottom_up(subscriptions=subs, h=3, as_of="2025-01")
    starter = bu[bu["unique_id"] == "Starter"].reset_index(drop=True)
    r = 0.5 ** (1 / 12)
    arr_now, new = 12 * 160, 12 * 60 / 6
    expected = [arr_now * r**k + new * sum(r**j for j in range(k)) for k in (1, 2, 3)]
    assert starter["arr_bottom_up"].to_numpy() == pytest.approx(expected)
    assert starter["ds"].dt.strftime("%Y-%m").tolist() == ["2025-02", "2025-03", "2025-04"]
    total = bu[bu["unique_id"] == "Total"]["arr_bottom_up"].to_numpy()
    assert total == pytest.approx(bu[bu["unique_id"] != "Total"].groupby("ds")["arr_bottom_up"].sum().to_numpy())


def test_compare_states_the_gap():
    top = pd.DataFrame(
        {
            "unique_id": ["Total"],
            "ds": [pd.Timestamp("2025-02-01")],
            "yhat": [100.0],
            "yhat_lo_80": [90.0],
            "yhat_hi_80": [110.0],
        }
    )
    bottom = pd.DataFrame({"unique_id": ["Total"], "ds": [pd.Timestamp("2025-02-01")], "arr_bottom_up": [95.0]})
    got = arr_forecast.compare(top, bottom).iloc[0]
    assert got["gap_usd"] == -5.0 and got["gap_pct"] == pytest.approx(-5.0) and got["bottom_up_inside_80"]


def test_backtest_report_scores_past_forecasts():
    ds = pd.date_range("2023-01-01", periods=30, freq="MS")
    history = pd.DataFrame({"unique_id": "Total", "ds": ds, "y": 1e6 + 2e4 * np.arange(30)})
    report = arr_forecast.backtest_report(
        history, h=6, origins=3, step=2, models=["AutoETS", "SeasonalNaive", "DynamicOptimizedTheta", "Ensemble"]
    )
    overall = report["overall"]
    assert overall["origins"] == 3 and overall["points"] == 6 + 4 + 2
    assert overall["mape"] < 1.0  # a straight line is easy
    assert set(report["by_horizon"]["horizon"]) == set(range(1, 7))
    assert report["points"]["origin"].tolist()[0] == "2024-12"


def _tiered_history(months: int = 30) -> pd.DataFrame:
    ds = pd.date_range("2023-01-01", periods=months, freq="MS")
    rng = np.random.default_rng(5)
    tiers = {
        "Starter": 2e5 * 1.02 ** np.arange(months) * rng.lognormal(0, 0.02, months),
        "Professional": 8e5 * 1.03 ** np.arange(months) * rng.lognormal(0, 0.02, months),
        "Enterprise": 2e6 * 1.04 ** np.arange(months) * rng.lognormal(0, 0.02, months),
    }
    rows = [pd.DataFrame({"unique_id": t, "ds": ds, "y": y}) for t, y in tiers.items()]
    rows.append(pd.DataFrame({"unique_id": "Total", "ds": ds, "y": sum(tiers.values())}))
    return pd.concat(rows, ignore_index=True)


def test_reconciled_tiers_sum_to_the_total_at_every_horizon():
    history = _tiered_history()
    base = arr_forecast.top_down(history, h=12, models=["AutoETS", "SeasonalNaive"]).predict()
    wide_base = base.pivot(index="ds", columns="unique_id", values="yhat")
    tiers = ["Starter", "Professional", "Enterprise"]
    rec = arr_forecast.reconcile(base)
    wide = rec.pivot(index="ds", columns="unique_id", values="yhat")
    assert len(wide) == 12
    assert ((wide[tiers].sum(axis=1) / wide["Total"] - 1).abs() < 0.001).all()
    assert (wide["Total"] == wide_base["Total"]).all()  # top-down keeps the total's forecast
    for band in ("lo_80", "hi_80", "lo_95", "hi_95"):  # intervals move with their point forecast
        assert ((rec[f"yhat_{band}"] <= rec["yhat"]) == band.startswith("lo")).all()
    assert "yhat_base" in rec and set(rec.columns) >= set(base.columns)


def test_hierarchical_backtest_reports_reconciled_beside_base_and_flags_thin_horizons():
    history = _tiered_history()
    report = arr_forecast.backtest_report(
        history, h=6, origins=3, step=2, models=["AutoETS", "SeasonalNaive"], hierarchical=True
    )
    assert set(report["by_series"]) == {"Total", "Starter", "Professional", "Enterprise"}
    for figures in report["by_series"].values():
        assert set(figures) == {"reconciled", "base", "uncalibrated"}
        assert figures["base"]["points"] == figures["reconciled"]["points"] == figures["uncalibrated"]["points"]
    # intervals calibrated per series and level; the coverage reported is the held-out one
    factors = report["overall"]["calibration"]["factors"]
    assert set(factors) == set(report["by_series"]) and all(k["80"] > 0 and k["95"] > 0 for k in factors.values())
    by_h = report["by_horizon"].set_index("horizon")
    assert by_h.loc[1, "forecasts"] == 3 and by_h.loc[1, "coverage_stated"]
    assert by_h.loc[6, "forecasts"] == 1 and not by_h.loc[6, "coverage_stated"]
    points = report["points"]
    summed = points[points["unique_id"] != "Total"].groupby(["origin", "ds"])["yhat"].sum()
    total = points[points["unique_id"] == "Total"].set_index(["origin", "ds"])["yhat"]
    assert ((summed / total - 1).abs() < 0.001).all()
