"""The 12-month ARR forecast: top-down time series, bottom-up cross-check, and its track record.

- :func:`arr_history` — monthly ARR, total and per tier, as long-format series.
- :func:`top_down` — :func:`cfxlib.metrics.forecast.forecast` on those series (model chosen per series
  by backtest; 80% and 95% intervals).
- :func:`bottom_up` — the same horizon built from the business's parts: each tier's existing ARR
  decays or grows at its trailing 12-month net revenue retention (monthly rate NRR^(1/12)), and
  new ARR arrives at the tier's mean new + reactivation ARR of the last 6 months, which is itself
  retained from the month after it arrives.
- :func:`compare` — both side by side with the gap (bottom-up minus top-down, USD and %).
- :func:`reconcile` — the tier forecasts and the total made coherent (tiers sum to the total at
  every horizon): top-down by forecast proportions (hierarchicalforecast's ``TopDown``).
- :func:`backtest_report` — forecasts made at past months against what happened: MAPE by horizon
  and the share of actuals inside the 80% and 95% intervals, for the total and every tier, before
  and after reconciliation.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from cfxlib.contract.schemas import TIERS
from cfxlib.metrics import calibration, revenue
from cfxlib.metrics.forecast import CandidateCache, Forecaster, forecast

TOTAL = "Total"
SERIES = (TOTAL, *TIERS)
BANDS = ("yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95")
MIN_FORECASTS_FOR_COVERAGE = 3
"""A horizon's interval coverage is stated only when at least this many past forecasts reach it;
below that one miss or hit swings it by a third or more."""
RECONCILER = "top-down (forecast proportions)"
CALIBRATION = (
    "split-conformal intervals per series and level: forecast +/- factor x forecast x months ahead, the factor "
    "learnt from the reconciled backtest's errors; lower bound at least 0; coverage held out by origin"
)


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


def top_down(
    history: pd.DataFrame,
    h: int = 12,
    level: Sequence[int] = (80, 95),
    models=None,
    cache: CandidateCache | None = None,
) -> Forecaster:
    """Fit the time-series forecaster to every ARR series with at least 6 months.

    Call ``.predict()`` for the forecast; ``.selected_`` and ``.backtest_`` say which model won
    each series and how every candidate scored (see :class:`cfxlib.metrics.forecast.Forecaster`).
    """
    usable = history.groupby("unique_id").filter(lambda g: len(g) >= 6)
    return Forecaster(h=h, level=tuple(level), models=models, cache=cache).fit(usable)


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


def reconcile(fc: pd.DataFrame) -> pd.DataFrame:
    """Make the tier forecasts sum to the total at every month (top-down, forecast proportions).

    ``fc`` holds the base forecasts (:func:`top_down`'s ``predict()``) of the total and the tiers.
    The total keeps its forecast; each tier gets the total times its share of the tiers' base
    forecasts at that month (``TopDown(method="forecast_proportions")`` of Nixtla's
    hierarchicalforecast). A tier's 80% and 95% bounds are scaled by the same factor as its point
    forecast (the library states top-down intervals only with in-sample fits, which a per-series
    model choice does not give); the backtest reports their coverage.

    Why top-down: on the demo's backtest (6 origins, every tier) it was the only reconciliation
    that kept the total's accuracy and improved every tier; MinT (OLS, structural WLS, variance
    WLS) and bottom-up pulled the total toward the noisier sum of the tiers (MAPE of the total
    3.5% base; 4.7%, 6.0%, 6.0%, 8.6% with those; docs/benchmarks.md).

    Returns ``fc``'s columns with reconciled values and the base ones as ``*_base``. A total or
    tier without a forecast (too little history) leaves ``fc`` unreconciled (``*_base`` equal)."""
    from hierarchicalforecast.core import HierarchicalReconciliation
    from hierarchicalforecast.methods import TopDown

    out = fc.copy()
    for col in BANDS:
        out[f"{col}_base"] = out[col]
    if not set(SERIES) <= set(fc["unique_id"]):
        return out
    summing = pd.DataFrame({"unique_id": list(SERIES), **{t: [1.0] + [float(u == t) for u in TIERS] for t in TIERS}})
    tags = {"Total": np.array([TOTAL]), "Total/Tier": np.array(TIERS)}
    base = fc.loc[fc["unique_id"].isin(SERIES), ["unique_id", "ds", "yhat"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rec = HierarchicalReconciliation([TopDown(method="forecast_proportions")]).reconcile(
            Y_hat_df=base, S_df=summing, tags=tags
        )
    rec = rec.rename(columns={"yhat/TopDown_method-forecast_proportions": "yhat_reconciled"})
    out = out.merge(rec[["unique_id", "ds", "yhat_reconciled"]], on=["unique_id", "ds"], how="left")
    factor = (out["yhat_reconciled"] / out["yhat_base"]).where(out["yhat_base"] != 0, 1.0).fillna(1.0)
    for col in BANDS:
        out[col] = out[f"{col}_base"] * factor
    out["yhat"] = out["yhat_reconciled"].fillna(out["yhat_base"])
    return out[[*fc.columns, *(f"{c}_base" for c in BANDS)]]


def _score(points: pd.DataFrame, suffix: str = "") -> pd.DataFrame:
    y = points["y"]
    return pd.DataFrame(
        {
            "ape": 100 * (y - points[f"yhat{suffix}"]).abs() / y.abs(),
            "inside_80": y.between(points[f"yhat_lo_80{suffix}"], points[f"yhat_hi_80{suffix}"]),
            "inside_95": y.between(points[f"yhat_lo_95{suffix}"], points[f"yhat_hi_95{suffix}"]),
        },
        index=points.index,
    )


def _summary(points: pd.DataFrame) -> dict:
    return {
        "mape": float(points["ape"].mean()),
        "coverage_80": float(points["inside_80"].mean()),
        "coverage_95": float(points["inside_95"].mean()),
        "points": int(len(points)),
    }


def backtest_report(
    history: pd.DataFrame,
    h: int = 12,
    origins: int = 6,
    step: int = 2,
    series: str = TOTAL,
    models=None,
    hierarchical: bool = False,
    cache: CandidateCache | None = None,
) -> dict:
    """Forecasts made at past months, compared with what happened.

    Origins are the months ``step, 2*step, ... origins*step`` before the last month (only those
    with at least 12 months of history). For every origin the full :func:`forecast` procedure
    runs on the history up to that month — for ``series`` only, or with ``hierarchical`` for the
    total and every tier, then :func:`reconcile` — and each later month with an actual value is
    scored. Returns ``points`` (one row per origin, series and horizon; the reported forecast in
    ``yhat``/intervals, the base one in ``*_base`` when reconciled), ``by_horizon`` for
    ``series`` (MAPE %, coverage of the 80% and 95% intervals, number of forecasts, and
    ``coverage_stated`` = at least :data:`MIN_FORECASTS_FOR_COVERAGE` forecasts), ``overall``
    figures for ``series`` and, with ``hierarchical``, ``by_series``: per series the reconciled
    and base figures side by side. ``cache`` (a :class:`~cfxlib.metrics.forecast.CandidateCache`,
    a new one by default) fits each candidate once per training cut: origins two months apart
    share many of their inner backtest's cuts.
    """
    cache = cache if cache is not None else CandidateCache()
    wanted = list(SERIES) if hierarchical else [series]
    data = history[history["unique_id"].isin(wanted)].sort_values(["unique_id", "ds"])
    months = np.sort(data.loc[data["unique_id"] == series, "ds"].unique())
    rows = []
    for k in range(origins, 0, -1):
        cut = len(months) - k * step
        if cut < 12:
            continue
        origin = months[cut - 1]
        train, actual = data[data["ds"] <= origin], data[data["ds"] > origin]
        horizon = min(h, int((months > origin).sum()))
        train = train.groupby("unique_id").filter(lambda g: len(g) >= 6)
        fc = forecast(train, h=horizon, models=models, cache=cache)
        if hierarchical:
            fc = reconcile(fc)
        scored = fc.merge(actual[["unique_id", "ds", "y"]], on=["unique_id", "ds"])
        scored["origin"] = pd.Timestamp(origin).strftime("%Y-%m")
        scored["horizon"] = scored.groupby("unique_id")["ds"].rank(method="first").astype(int)
        rows.append(scored)
    if not rows:
        return {"points": pd.DataFrame(), "by_horizon": pd.DataFrame(), "overall": {}, "by_series": {}}
    points = pd.concat(rows, ignore_index=True)
    # Calibrated intervals (cfxlib.metrics.calibration): each origin's intervals built from the
    # errors of the other origins, so the coverage below is a held-out figure; the factors learnt
    # from every origin calibrate the published forecast.
    uncalibrated = points.join(_score(points))
    factors = calibration.fit_factors(points)
    points = calibration.held_out(points)
    points = points.join(_score(points))
    if "yhat_base" in points:
        points = points.join(_score(points, "_base").add_suffix("_base"))
    main = points[points["unique_id"] == series]
    by_h = (
        main.groupby("horizon")
        .agg(
            mape=("ape", "mean"),
            coverage_80=("inside_80", "mean"),
            coverage_95=("inside_95", "mean"),
            forecasts=("ape", "size"),
        )
        .reset_index()
    )
    by_h["coverage_stated"] = by_h["forecasts"] >= MIN_FORECASTS_FOR_COVERAGE
    overall = {
        "series": series,
        "origins": int(main["origin"].nunique()),
        "points": int(len(main)),
        "mape": float(main["ape"].mean()),
        "mape_at_max_horizon": float(by_h["mape"].iloc[-1]),
        "max_horizon": int(by_h["horizon"].iloc[-1]),
        "coverage_80": float(main["inside_80"].mean()),
        "coverage_95": float(main["inside_95"].mean()),
        "uncalibrated": _summary(uncalibrated[uncalibrated["unique_id"] == series]),
        "calibration": {
            "method": CALIBRATION,
            "factors": {
                uid: {str(lv): float(k) for lv, k in row.items()}
                for uid, row in factors.iterrows()
                if np.isfinite(row.to_numpy(float)).all()
            },
        },
        "models": sorted(main["model"].unique().tolist()),
        "reconciled": "yhat_base" in points,
        "min_forecasts_for_coverage": MIN_FORECASTS_FOR_COVERAGE,
    }
    by_series = {}
    if "yhat_base" in points:
        for name, g in points.groupby("unique_id"):
            base = g[["ape_base", "inside_80_base", "inside_95_base"]].rename(columns=lambda c: c[: -len("_base")])
            raw = uncalibrated[uncalibrated["unique_id"] == name]
            by_series[name] = {"reconciled": _summary(g), "base": _summary(base), "uncalibrated": _summary(raw)}
        overall["base"] = by_series[series]["base"]
    return {"points": points, "by_horizon": by_h, "overall": overall, "by_series": by_series}
