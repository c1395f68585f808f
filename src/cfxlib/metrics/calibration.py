"""Intervals that mean what they say: split-conformal scaling of forecast intervals.

The forecast models' own 80% and 95% intervals covered far fewer past actuals than they claim
(on the default demo's backtest, the Total's 80% interval covered 62%). Their width grows with
the horizon in a sensible way, but their scale is wrong. So each interval is rescaled around its
point forecast by one factor per series and level, learnt from the rolling-origin backtest of
the reconciled forecasts (:func:`cfxlib.metrics.arr_forecast.backtest_report`):

- For a past forecast with actual ``y``, point ``yhat`` and bounds ``lo``/``hi``, the **needed
  factor** is ``|y - yhat| / (hi - yhat)`` when ``y >= yhat``, else ``|y - yhat| / (yhat - lo)``:
  the interval scaled by it just reaches ``y``.
- A level's **factor** is the conformal quantile of the needed factors: the
  ``ceil((n + 1) * level) / n`` empirical quantile of ``n`` points (split-conformal prediction).
  Scaled by it, at least ``level`` of the past forecasts would have been covered. The factor can
  be below 1: an interval that was too wide is narrowed.
- **Honest coverage** is measured by leave-one-origin-out: the factors are learnt without one
  forecast origin and applied to that origin's forecasts. Coverage in the reports is never the
  in-sample figure, which is nominal by construction.
- With fewer than :data:`MIN_POINTS` past forecasts of a series, its factor is the one pooled over
  all series, or 1 when there is none.

Reference: Vovk, Gammerman and Shafer, *Algorithmic Learning in a Random World*, 2005 (split
conformal prediction); for time series, errors of one origin are correlated, which is why the
validation holds out whole origins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pandas as pd

MIN_POINTS = 8
"""A series' own factor needs at least this many past forecasts (else the pooled factor)."""


def needed_factors(points: pd.DataFrame, level: int) -> np.ndarray:
    """Per past forecast: how much its ``level`` interval must be scaled to reach the actual."""
    y, yhat = points["y"].to_numpy(float), points["yhat"].to_numpy(float)
    lo, hi = points[f"yhat_lo_{level}"].to_numpy(float), points[f"yhat_hi_{level}"].to_numpy(float)
    half = np.where(y >= yhat, hi - yhat, yhat - lo)
    err = np.abs(y - yhat)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(half > 0, err / half, np.where(err > 0, np.inf, 0.0))
    return r[np.isfinite(y) & np.isfinite(yhat)]


def conformal_quantile(values: np.ndarray, level: int) -> float:
    """The split-conformal quantile: the ``ceil((n + 1) * level / 100)``-th smallest value (the
    largest value when that rank exceeds ``n``)."""
    values = np.sort(np.asarray(values, dtype=float))
    n = len(values)
    if n == 0:
        return float("nan")
    rank = min(n, math.ceil((n + 1) * level / 100))
    return float(values[rank - 1])


def fit_factors(points: pd.DataFrame, levels: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """Factors per series (rows, ``unique_id``) and level (columns) from backtest ``points``
    (``unique_id, y, yhat, yhat_lo_L, yhat_hi_L``)."""
    out = {}
    for lv in levels:
        pooled = conformal_quantile(needed_factors(points, lv), lv)
        pooled = 1.0 if not math.isfinite(pooled) else pooled
        factors = {}
        for uid, g in points.groupby("unique_id"):
            r = needed_factors(g, lv)
            own = conformal_quantile(r, lv) if len(r) >= MIN_POINTS else float("nan")
            factors[uid] = own if math.isfinite(own) else pooled
        out[lv] = pd.Series(factors, dtype=float)
    return pd.DataFrame(out)


def apply_factors(fc: pd.DataFrame, factors: pd.DataFrame, levels: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """``fc`` with each level's bounds scaled around ``yhat`` by its series' factor (series
    without one keep their bounds); the 95% interval is kept outside the 80% one."""
    out = fc.copy()
    for lv in levels:
        k = out["unique_id"].map(factors[lv]).fillna(1.0) if lv in factors else 1.0
        out[f"yhat_lo_{lv}"] = out["yhat"] - k * (out["yhat"] - out[f"yhat_lo_{lv}"])
        out[f"yhat_hi_{lv}"] = out["yhat"] + k * (out[f"yhat_hi_{lv}"] - out["yhat"])
    ordered = sorted(levels)
    for inner, outer in zip(ordered, ordered[1:], strict=False):
        out[f"yhat_lo_{outer}"] = np.minimum(out[f"yhat_lo_{outer}"], out[f"yhat_lo_{inner}"])
        out[f"yhat_hi_{outer}"] = np.maximum(out[f"yhat_hi_{outer}"], out[f"yhat_hi_{inner}"])
    return out


def held_out(points: pd.DataFrame, levels: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """``points`` (with an ``origin`` column) with every origin's bounds scaled by factors learnt
    from the other origins only: the intervals a calibrated forecast would have given then,
    without seeing what followed. With a single origin, ``points`` unchanged."""
    origins = points["origin"].unique()
    if len(origins) < 2:
        return points.copy()
    parts = [
        apply_factors(points[points["origin"] == o], fit_factors(points[points["origin"] != o], levels), levels)
        for o in origins
    ]
    return pd.concat(parts).loc[points.index]


def cross_validated_coverage(points: pd.DataFrame, levels: Sequence[int] = (80, 95)) -> pd.DataFrame:
    """Leave-one-origin-out coverage of the calibrated intervals, per series (rows) and level,
    plus a ``points`` column (see :func:`held_out`)."""
    scaled = held_out(points, levels)
    for lv in levels:
        scaled[f"inside_{lv}"] = scaled["y"].between(scaled[f"yhat_lo_{lv}"], scaled[f"yhat_hi_{lv}"])
    agg = {f"coverage_{lv}": (f"inside_{lv}", "mean") for lv in levels} | {"points": ("y", "size")}
    return scaled.groupby("unique_id").agg(**agg)
