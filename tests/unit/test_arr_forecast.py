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
