"""Split-conformal intervals from the backtest's errors: whatever the models' own intervals say,
held out by origin they cover what they claim, widen with the horizon and never go below 0."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from cfxlib.metrics import calibration


def past_forecasts(
    half_80: float, rel_sd: float = 0.01, origins: int = 30, horizon: int = 12, seed: int = 3
) -> pd.DataFrame:
    """Backtest points of one series: at every origin, forecasts 1..``horizon`` months ahead of
    1000 whose errors are N(0, rel_sd x 1000 x months ahead); the models' intervals have fixed
    half-widths (``half_80``) whatever the horizon, as a badly specified model's might."""
    rng = np.random.default_rng(seed)
    h = np.tile(np.arange(1, horizon + 1), origins)
    yhat = np.full(len(h), 1000.0)
    y = yhat + rng.normal(0, 1, len(h)) * rel_sd * yhat * h
    half_95 = half_80 * norm.ppf(0.975) / norm.ppf(0.9)
    return pd.DataFrame(
        {
            "unique_id": "Total",
            "origin": np.repeat([f"o{i:02d}" for i in range(origins)], horizon),
            "horizon": h,
            "y": y,
            "yhat": yhat,
            "yhat_lo_80": yhat - half_80,
            "yhat_hi_80": yhat + half_80,
            "yhat_lo_95": yhat - half_95,
            "yhat_hi_95": yhat + half_95,
        }
    )


@pytest.mark.parametrize("half_80", [4.0, 400.0])  # the models' intervals far too narrow, then far too wide
def test_held_out_coverage_is_nominal_whatever_the_models_width(half_80):
    points = past_forecasts(half_80)
    raw = points["y"].between(points["yhat_lo_80"], points["yhat_hi_80"]).mean()
    assert abs(raw - 0.80) >= 0.15  # the models' own intervals are badly off
    cv = calibration.cross_validated_coverage(points)
    assert abs(cv.loc["Total", "coverage_80"] - 0.80) < 0.04
    assert abs(cv.loc["Total", "coverage_95"] - 0.95) < 0.03
    k = calibration.fit_factors(points).loc["Total"]
    assert k[80] == pytest.approx(0.01 * norm.ppf(0.9), rel=0.1)  # the 80% half-width per month ahead
    assert k[95] == pytest.approx(0.01 * norm.ppf(0.975), rel=0.1)
    # held out, the intervals are right near and far ahead, not only on average (1-4, 5-8, 9-12
    # months: 120 forecasts each, one standard error about 3.7 points)
    scaled = calibration.held_out(points)
    inside = scaled["y"].between(scaled["yhat_lo_80"], scaled["yhat_hi_80"])
    by_h = inside.groupby((scaled["horizon"] - 1) // 4).mean()
    assert by_h.between(0.70, 0.90).all(), by_h


def test_the_conformal_quantile_takes_the_finite_sample_rank():
    values = np.arange(1, 11, dtype=float)  # n = 10
    assert calibration.conformal_quantile(values, 80) == 9.0  # ceil(11 * 0.8) = 9th smallest
    assert calibration.conformal_quantile(values, 95) == 10.0  # ceil(10.45) = 11 > n: the largest
    assert np.isnan(calibration.conformal_quantile(np.array([]), 80))


def test_intervals_widen_with_the_horizon_stop_at_zero_and_nest():
    fc = pd.DataFrame(
        {
            "unique_id": ["Total", "Total", "Total", "Starter"],
            "ds": pd.to_datetime(["2026-01-01", "2026-02-01", "2026-12-01", "2026-01-01"]),
            "yhat": [100.0, 100.0, 100.0, 50.0],
            "yhat_lo_80": [90.0, 90.0, 90.0, 45.0],
            "yhat_hi_80": [120.0, 120.0, 120.0, 55.0],
            "yhat_lo_95": [85.0, 85.0, 85.0, 40.0],
            "yhat_hi_95": [130.0, 130.0, 130.0, 60.0],
        }
    )
    factors = pd.DataFrame({80: {"Total": 0.1}, 95: {"Total": 0.05}})
    out = calibration.apply_factors(fc, factors)
    total = out[out["unique_id"] == "Total"]
    assert total["yhat"].tolist() == [100.0, 100.0, 100.0]
    # 1, 2 and 3 months ahead (rank within the series): +/- 10% of the forecast per month
    assert total["yhat_lo_80"].tolist() == pytest.approx([90.0, 80.0, 70.0])
    assert total["yhat_hi_80"].tolist() == pytest.approx([110.0, 120.0, 130.0])
    # the 95% factor is smaller here: pushed out to nest the 80% interval
    assert total["yhat_lo_95"].tolist() == pytest.approx([90.0, 80.0, 70.0])
    assert out[out["unique_id"] == "Starter"].equals(fc[fc["unique_id"] == "Starter"])  # no factor: unchanged
    far = calibration.apply_factors(fc.assign(horizon=[12, 12, 12, 1]), factors)
    assert far.loc[0, "yhat_lo_80"] == 0.0 and far.loc[0, "yhat_hi_80"] == pytest.approx(220.0)  # ARR >= 0
    assert calibration.apply_factors(fc.assign(horizon=12), factors, floor=None).loc[0, "yhat_lo_80"] < 0


def test_a_series_with_few_past_forecasts_borrows_the_pooled_factor():
    many = past_forecasts(4.0, origins=10, horizon=5)
    few = past_forecasts(4.0, rel_sd=0.05, origins=1, horizon=calibration.MIN_POINTS - 1, seed=9).assign(
        unique_id="Starter"
    )
    factors = calibration.fit_factors(pd.concat([many, few], ignore_index=True))
    pooled = calibration.conformal_quantile(
        calibration.normalised_errors(pd.concat([many, few], ignore_index=True)), 80
    )
    assert factors.loc["Starter", 80] == pytest.approx(pooled)
    assert factors.loc["Total", 80] != pytest.approx(pooled)
