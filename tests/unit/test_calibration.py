"""Split-conformal interval calibration: too-narrow intervals are widened and too-wide ones
narrowed until, held out by origin, they cover what they claim."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

from cfxlib.metrics import calibration


def past_forecasts(half_80: float, sd: float, origins: int = 30, per_origin: int = 20, seed: int = 3) -> pd.DataFrame:
    """Backtest points of one series: errors N(0, sd), intervals of fixed half-widths."""
    rng = np.random.default_rng(seed)
    n = origins * per_origin
    yhat = np.full(n, 1000.0)
    y = yhat + rng.normal(0, sd, n)
    half_95 = half_80 * norm.ppf(0.975) / norm.ppf(0.9)
    return pd.DataFrame(
        {
            "unique_id": "Total",
            "origin": np.repeat([f"o{i:02d}" for i in range(origins)], per_origin),
            "y": y,
            "yhat": yhat,
            "yhat_lo_80": yhat - half_80,
            "yhat_hi_80": yhat + half_80,
            "yhat_lo_95": yhat - half_95,
            "yhat_hi_95": yhat + half_95,
        }
    )


@pytest.mark.parametrize("half_80", [4.0, 40.0])  # intervals 3x too narrow, then 3x too wide (sd 10)
def test_held_out_coverage_is_nominal_whatever_the_models_width(half_80):
    points = past_forecasts(half_80, sd=10.0)
    raw = points["y"].between(points["yhat_lo_80"], points["yhat_hi_80"]).mean()
    assert abs(raw - 0.80) >= 0.19  # the models' own intervals are badly off (covering 100% is off too)
    cv = calibration.cross_validated_coverage(points)
    assert abs(cv.loc["Total", "coverage_80"] - 0.80) < 0.04
    assert abs(cv.loc["Total", "coverage_95"] - 0.95) < 0.03
    k = calibration.fit_factors(points).loc["Total"]
    expected = 10.0 * norm.ppf(0.9) / half_80  # the factor that makes the 80% half-width right
    assert k[80] == pytest.approx(expected, rel=0.12)
    assert (k[80] > 1) == (half_80 < 10.0 * norm.ppf(0.9))


def test_the_conformal_quantile_takes_the_finite_sample_rank():
    values = np.arange(1, 11, dtype=float)  # n = 10
    assert calibration.conformal_quantile(values, 80) == 9.0  # ceil(11 * 0.8) = 9th smallest
    assert calibration.conformal_quantile(values, 95) == 10.0  # ceil(10.45) = 11 > n: the largest
    assert np.isnan(calibration.conformal_quantile(np.array([]), 80))


def test_scaling_keeps_the_point_forecast_and_the_95_outside_the_80():
    fc = pd.DataFrame(
        {
            "unique_id": ["Total", "Starter"],
            "yhat": [100.0, 50.0],
            "yhat_lo_80": [90.0, 45.0],
            "yhat_hi_80": [120.0, 55.0],
            "yhat_lo_95": [85.0, 40.0],
            "yhat_hi_95": [130.0, 60.0],
        }
    )
    factors = pd.DataFrame({80: {"Total": 2.0}, 95: {"Total": 1.0}})
    out = calibration.apply_factors(fc, factors)
    total = out.iloc[0]
    assert total["yhat"] == 100.0 and (total["yhat_lo_80"], total["yhat_hi_80"]) == (80.0, 140.0)
    assert (total["yhat_lo_95"], total["yhat_hi_95"]) == (80.0, 140.0)  # pushed out to nest the 80%
    assert out.iloc[1].equals(fc.iloc[1])  # no factor: unchanged


def test_a_series_with_few_past_forecasts_borrows_the_pooled_factor():
    many = past_forecasts(4.0, sd=10.0, origins=10, per_origin=5)
    few = past_forecasts(4.0, sd=10.0, origins=1, per_origin=calibration.MIN_POINTS - 1, seed=9).assign(
        unique_id="Starter"
    )
    factors = calibration.fit_factors(pd.concat([many, few], ignore_index=True))
    pooled = calibration.conformal_quantile(
        calibration.needed_factors(pd.concat([many, few], ignore_index=True), 80), 80
    )
    assert factors.loc["Starter", 80] == pytest.approx(pooled)
    assert factors.loc["Total", 80] != pytest.approx(pooled)
