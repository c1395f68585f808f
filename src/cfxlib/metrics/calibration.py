"""Intervals that mean what they say: split-conformal intervals from the forecast's own backtest.

The forecast models' own 80% and 95% intervals covered far fewer past actuals than they claim
(on the default demo's backtest, the Total's 80% interval covered 57%, Professional's 26%), and
their widths vary from origin to origin in ways the errors do not (a log-scale model's interval
can be a tenth of the next one's). So the published intervals are not the models' rescaled,
but built from the errors of the reconciled forecasts in the rolling-origin backtest
(:func:`cfxlib.metrics.arr_forecast.backtest_report`):

- A past forecast's **normalised error** is ``|y - yhat| / (|yhat| * h)``: its error as a share
  of the forecast, per month ahead (``h`` = horizon in months). ARR errors grow about in
  proportion to the horizon (a growth rate that is off compounds month after month), so errors
  at 1 and 12 months ahead become comparable.
- A series' **factor** per level is the conformal quantile of its normalised errors: the
  ``ceil((n + 1) * level) / n`` empirical quantile of ``n`` points (split-conformal prediction).
- The **interval** is ``yhat +/- factor * |yhat| * h``, with its lower end at 0 at the least (ARR
  is never negative; no actual is lost by it). A factor of 0.012 reads: at 80%, within 1.2% of
  the forecast per month ahead.
- **Honest coverage** is measured by leave-one-origin-out: the factors are learnt without one
  forecast origin and applied to that origin's forecasts. Coverage in the reports is never the
  in-sample figure, which is nominal by construction.
- With fewer than :data:`MIN_POINTS` past forecasts of a series, its factor is the one pooled over
  all series; with none at all, the series keeps the model's own bounds.

Why this score: chosen on demo companies generated with seeds 1-6 (bench/interval_coverage.py),
against the model intervals scaled by one factor and relative errors scaled by 1 or the square
root of the horizon; the default company (seed 42) was kept for checking the choice. Its held-out
coverage was within 5 points of nominal in 71% (80%) and 92% (95%) of series and seeds, against
54% and 63% for the scaled model intervals, with intervals about as wide or narrower.

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


def horizons(frame: pd.DataFrame) -> np.ndarray:
    """Months ahead of each row: the ``horizon`` column, else each row's rank by ``ds`` within
    its series (a forecast frame's first month is 1 month ahead)."""
    if "horizon" in frame:
        return frame["horizon"].to_numpy(float)
    return frame.groupby("unique_id")["ds"].rank(method="first").to_numpy(float)


def normalised_errors(points: pd.DataFrame) -> np.ndarray:
    """Per past forecast: ``|y - yhat| / (|yhat| * h)`` (see the module documentation)."""
    y, yhat = points["y"].to_numpy(float), points["yhat"].to_numpy(float)
    scale = np.abs(yhat) * horizons(points)
    err = np.abs(y - yhat)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.where(scale > 0, err / scale, np.where(err > 0, np.inf, 0.0))
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
    (``unique_id, y, yhat, horizon``)."""
    out = {}
    for lv in levels:
        pooled = conformal_quantile(normalised_errors(points), lv)
        factors = {}
        for uid, g in points.groupby("unique_id"):
            r = normalised_errors(g)
            own = conformal_quantile(r, lv) if len(r) >= MIN_POINTS else float("nan")
            factors[uid] = own if math.isfinite(own) else pooled
        out[lv] = pd.Series(factors, dtype=float)
    return pd.DataFrame(out)


def apply_factors(
    fc: pd.DataFrame, factors: pd.DataFrame, levels: Sequence[int] = (80, 95), floor: float | None = 0.0
) -> pd.DataFrame:
    """``fc`` (``unique_id, ds`` or ``horizon``, ``yhat`` and bounds) with each level's bounds
    set to ``yhat +/- factor * |yhat| * h``, the lower one at least ``floor`` (``None``: no
    floor). Series without a finite factor keep their bounds; the 95% interval is kept outside
    the 80% one."""
    out = fc.copy()
    h = horizons(out)
    for lv in levels:
        if lv not in factors:
            continue
        k = out["unique_id"].map(factors[lv]).to_numpy(float)
        has = np.isfinite(k)
        half = np.where(has, k, 0.0) * np.abs(out["yhat"].to_numpy(float)) * h
        lo = out["yhat"].to_numpy(float) - half
        if floor is not None:
            lo = np.maximum(lo, floor)
        out[f"yhat_lo_{lv}"] = np.where(has, lo, out[f"yhat_lo_{lv}"])
        out[f"yhat_hi_{lv}"] = np.where(has, out["yhat"].to_numpy(float) + half, out[f"yhat_hi_{lv}"])
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
