"""The 12-month ARR forecast: top-down time series, bottom-up cross-check, and its track record.

- :func:`arr_history` — monthly ARR, total and per tier, as long-format series.
- :func:`top_down` — :func:`cfxlib.metrics.forecast.forecast` on those series (model chosen per series
  by backtest; 80% and 95% intervals).
- :func:`bottom_up` — the same horizon built from the business's parts: each tier's existing ARR
  decays or grows at its trailing 12-month net revenue retention (monthly rate NRR^(1/12)), and
  new ARR arrives at the tier's mean new + reactivation ARR of the last 6 months, which is itself
  retained from the month after it arrives.
- :func:`compare` — both side by side with the gap (bottom-up minus top-down, USD and %).
- :func:`backtest_report` — forecasts of total ARR made at past months against what happened:
  MAPE by horizon and the share of actuals inside the 80% and 95% intervals.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from cfxlib.contract.schemas import TIERS
from cfxlib.metrics import revenue
from cfxlib.metrics.forecast import Forecaster, forecast

TOTAL = "Total"
SERIES = (TOTAL, *TIERS)


def arr_history(con=None, subscriptions: pd.DataFrame | None = None, as_of=None) -> pd.DataFrame:
    """ARR by month: ``unique_id`` (Total, Starter, Professional, Enterprise), ``ds``, ``y`` (USD)."""
    total = revenue.monthly_metrics(subscriptions, as_of=as_of, con=con).assign(tier=TOTAL)
    tiers = revenue.monthly_metrics(subscriptions, by="tier", as_of=as_of, con=con)
    frame = pd.concat([total, tiers], ignore_index=True)[["tier", "month", "arr"]]
    frame.columns = ["unique_id", "ds", "y"]
    frame["ds"] = pd.to_datetime(frame["ds"])
    # A tier's series starts at its first month with ARR.
    first = frame[frame["y"] > 0].groupby("unique_id")["ds"].min()
    frame = frame[frame["ds"] >= frame["unique_id"].map(first)]
    return frame.sort_values(["unique_id", "ds"]).reset_index(drop=True)


def top_down(history: pd.DataFrame, h: int = 12, level: Sequence[int] = (80, 95), models=None) -> Forecaster:
    """Fit the time-series forecaster to every ARR series with at least 6 months.

    Call ``.predict()`` for the forecast; ``.selected_`` and ``.backtest_`` say which model won
    each series and how every candidate scored (see :class:`cfxlib.metrics.forecast.Forecaster`).
    """
    usable = history.groupby("unique_id").filter(lambda g: len(g) >= 6)
    return Forecaster(h=h, level=tuple(level), models=models).fit(usable)


def bottom_up(
    con=None, subscriptions: pd.DataFrame | None = None, h: int = 12, as_of=None, new_window: int = 6
) -> pd.DataFrame:
    """Bottom-up ARR projection per tier and in total (``unique_id, ds, arr_bottom_up`` plus its parts).

    Per tier: ``retention_monthly`` = (trailing 12-month NRR) ** (1/12) (1.0 when the tier has no
    12-month cohort yet) and ``new_arr_per_month`` = mean of 12 x (new + reactivation) MRR over
    the last ``new_window`` months. ARR after ``k`` months =
    ARR_now x r**k + new x (r**(k-1) + ... + r + 1).
    """
    tiers = revenue.monthly_metrics(subscriptions, by="tier", as_of=as_of, con=con)
    ret = revenue.retention(subscriptions, by="tier", as_of=as_of, con=con)
    last_month = tiers["month"].max()
    start = pd.Period(last_month, freq="M")
    rows = []
    for tier in TIERS:
        t = tiers[tiers["tier"] == tier].sort_values("month")
        arr_now = float(t["arr"].iloc[-1])
        recent = t.tail(new_window)
        new_arr = float(12 * (recent["new"] + recent["reactivation"]).mean())
        r12 = ret[(ret["tier"] == tier) & (ret["month"] == last_month)]["nrr"]
        monthly = float(r12.iloc[0]) ** (1 / 12) if len(r12) and np.isfinite(r12.iloc[0]) else 1.0
        for k in range(1, h + 1):
            retained = arr_now * monthly**k
            added = new_arr * sum(monthly**j for j in range(k))
            rows.append(
                {
                    "unique_id": tier,
                    "ds": (start + k).start_time,
                    "arr_bottom_up": retained + added,
                    "retained_arr": retained,
                    "new_arr": added,
                    "retention_monthly": monthly,
                    "new_arr_per_month": new_arr,
                }
            )
    frame = pd.DataFrame(rows)
    total = (
        frame.groupby("ds", as_index=False)[["arr_bottom_up", "retained_arr", "new_arr"]].sum().assign(unique_id=TOTAL)
    )
    return pd.concat([total, frame], ignore_index=True)[
        ["unique_id", "ds", "arr_bottom_up", "retained_arr", "new_arr", "retention_monthly", "new_arr_per_month"]
    ]


def compare(top: pd.DataFrame, bottom: pd.DataFrame) -> pd.DataFrame:
    """Top-down and bottom-up side by side, with ``gap_usd`` (bottom - top) and ``gap_pct``."""
    merged = top.merge(bottom[["unique_id", "ds", "arr_bottom_up"]], on=["unique_id", "ds"], how="left")
    merged["gap_usd"] = merged["arr_bottom_up"] - merged["yhat"]
    merged["gap_pct"] = 100 * merged["gap_usd"] / merged["yhat"]
    merged["bottom_up_inside_80"] = merged["arr_bottom_up"].between(merged["yhat_lo_80"], merged["yhat_hi_80"])
    return merged


def backtest_report(
    history: pd.DataFrame, h: int = 12, origins: int = 6, step: int = 2, series: str = TOTAL, models=None
) -> dict:
    """Forecasts of ``series`` made at past months, compared with what happened.

    Origins are the months ``step, 2*step, ... origins*step`` before the last month (only those
    with at least 12 months of history). For every origin the full :func:`forecast` procedure
    runs on the history up to that month; each later month with an actual value is scored.
    Returns ``points`` (one row per origin and horizon), ``by_horizon`` (MAPE %, coverage of the
    80% and 95% intervals) and ``overall`` figures.
    """
    data = history[history["unique_id"] == series].sort_values("ds").reset_index(drop=True)
    rows = []
    for k in range(origins, 0, -1):
        cut = len(data) - k * step
        if cut < 12:
            continue
        train, actual = data.iloc[:cut], data.iloc[cut:]
        fc = forecast(train, h=min(h, len(actual)), models=models)
        scored = fc.merge(actual[["ds", "y"]], on="ds")
        scored["origin"] = train["ds"].iloc[-1].strftime("%Y-%m")
        scored["horizon"] = np.arange(1, len(scored) + 1)
        rows.append(scored)
    if not rows:
        return {"points": pd.DataFrame(), "by_horizon": pd.DataFrame(), "overall": {}}
    points = pd.concat(rows, ignore_index=True)
    points["ape"] = 100 * (points["y"] - points["yhat"]).abs() / points["y"].abs()
    points["inside_80"] = points["y"].between(points["yhat_lo_80"], points["yhat_hi_80"])
    points["inside_95"] = points["y"].between(points["yhat_lo_95"], points["yhat_hi_95"])
    by_h = (
        points.groupby("horizon")
        .agg(
            mape=("ape", "mean"),
            coverage_80=("inside_80", "mean"),
            coverage_95=("inside_95", "mean"),
            forecasts=("ape", "size"),
        )
        .reset_index()
    )
    overall = {
        "series": series,
        "origins": int(points["origin"].nunique()),
        "points": int(len(points)),
        "mape": float(points["ape"].mean()),
        "mape_at_max_horizon": float(by_h["mape"].iloc[-1]),
        "max_horizon": int(by_h["horizon"].iloc[-1]),
        "coverage_80": float(points["inside_80"].mean()),
        "coverage_95": float(points["inside_95"].mean()),
        "models": sorted(points["model"].unique().tolist()),
    }
    return {"points": points, "by_horizon": by_h, "overall": overall}
