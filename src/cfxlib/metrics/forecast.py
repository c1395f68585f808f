"""Monthly forecasts with per-series model choice by rolling-origin backtest, and intervals.

:func:`forecast` takes long-format monthly series (``unique_id, ds, y``; ``ds`` at month start)
and returns the next ``h`` months of every series with 80% and 95% intervals and the name of the
model that produced them.

How a series gets its model:

1. Candidates are fitted on rolling origins inside the history (the *backtest*): ``n_windows``
   cut-offs, each forecasting ``h_backtest = min(h, n // 4)`` months ahead (at least 1).
2. Each candidate is scored by MASE: mean absolute error over the backtest points divided by the
   in-sample mean absolute error of the seasonal naive forecast (lag 12 when the series has two
   full years, else lag 1) on the training part.
3. The lowest mean MASE wins, except that the combination (:data:`DEFAULT_ENSEMBLE`: the mean
   of its members' forecasts and interval bounds) is kept unless a single
   model beats it by more than :data:`SWITCH_MARGIN` — backtests on a few windows are noisy and
   the combination is the better default on average (see :data:`SWITCH_MARGIN`).
4. The chosen model's 80% and 95% intervals are widened where the backtest showed them too
   narrow (variance inflation from backtest errors, pooled across series for short histories;
   never narrowed; see :meth:`Forecaster._interval_factors`).
5. For up to :data:`EXPENSIVE_MAX_SERIES` positive series, candidates are also fitted to
   log(y) (suffix ``[log]``): growth that compounds, like a young company's ARR, is linear there.

Candidates: statsforecast's SeasonalNaive, AutoETS, AutoARIMA, AutoTheta and
DynamicOptimizedTheta, Prophet, and the combination. AutoARIMA and Prophet are slow to fit (about
0.3 s per fit here), so by default they are candidates only for up to
:data:`EXPENSIVE_MAX_SERIES` series (the ARR forecast has four); pass ``models`` to choose
explicitly. Series need at least :data:`MIN_POINTS` points; with fewer than 24 points models are
non-seasonal.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np
import pandas as pd

from cfxlib.core.errors import UserError

MIN_POINTS = 6
SEASON = 12
EXPENSIVE_MAX_SERIES = 50
POOL_WEIGHT = 10
"""Interval calibration borrows this many points' weight from all series (see Forecaster)."""
MAX_WIDEN = 4.0
SWITCH_MARGIN = 0.5
"""A single model replaces the combination only when its backtest MASE is at most half as large.

Chosen on the M3 benchmark (docs/benchmarks.md): on few backtest windows, selection is noisy;
margins 0, 0.1, 0.2, 0.3, 0.5 and 1 (always combine) gave sMAPE 14.18, 13.94, 13.85, 13.69, 13.59
and 13.59."""

STATS_MODELS = ("SeasonalNaive", "AutoETS", "AutoARIMA", "AutoTheta", "DynamicOptimizedTheta")
MEMBER_MODELS = ("AdditiveETS", "DampedAdditiveETS")
"""statsforecast models used as members of the combination, not as candidates on their own:
AutoETS restricted to additive errors (on the log scale: multiplicative ones), damped or not."""
DEFAULT_ENSEMBLE = (
    "DynamicOptimizedTheta",
    "DynamicOptimizedTheta[log]",
    "AdditiveETS[log]",
    "DampedAdditiveETS[log]",
)
"""The combination's members: Theta and exponential smoothing, on the original and the log
scale (series with a non-positive value have no log members; the mean is over the others).
Chosen on the odd-numbered half of the M3 monthly series and checked on the other half
(docs/benchmarks.md): sMAPE 13.71 and 12.92 against 13.97 and 13.21 for the mean of AutoETS and
DynamicOptimizedTheta, the previous default, in about half the fitting time."""
EXPENSIVE = ("AutoARIMA", "Prophet")
"""Candidates only used by default for up to :data:`EXPENSIVE_MAX_SERIES` series (slow to fit)."""
ENSEMBLE = "Ensemble"
PROPHET = "Prophet"
PROPHET_SEED = 20240101
"""Seed of Prophet's predictive samples: the same data gives the same intervals, run after run."""
LOG = "[log]"
"""Suffix of a candidate fitted to log(y) and transformed back (exponential growth; y > 0 only)."""
LOG_CANDIDATES = ("AutoETS", "DynamicOptimizedTheta")
"""Log-scale variants tried for few series. Not AutoARIMA: differenced twice on the log scale its
intervals explode; not Prophet: on log(ARR) its optimiser needs about 12 s per fit here."""


class ForecastInputError(UserError, ValueError):
    """The input series cannot be forecast; the message names the series and the problem."""


# --------------------------------------------------------------------------- input checks


def _validate(df: pd.DataFrame) -> pd.DataFrame:
    missing = {"unique_id", "ds", "y"} - set(df.columns)
    if missing:
        raise ForecastInputError(f"forecast input lacks column(s) {sorted(missing)}; expected unique_id, ds, y")
    out = df[["unique_id", "ds", "y"]].copy()
    out["unique_id"] = out["unique_id"].astype(str)
    out["ds"] = pd.to_datetime(out["ds"])
    out["y"] = pd.to_numeric(out["y"], errors="coerce").astype(float)
    if out["y"].isna().any() or not np.isfinite(out["y"]).all():
        bad = out.loc[~np.isfinite(out["y"].fillna(np.inf)), "unique_id"].iloc[0]
        raise ForecastInputError(f"series {bad!r} has missing or non-finite y values")
    if (out["ds"] != out["ds"].dt.to_period("M").dt.start_time).any():
        bad = out.loc[out["ds"] != out["ds"].dt.to_period("M").dt.start_time].iloc[0]
        raise ForecastInputError(f"series {bad['unique_id']!r}: ds {bad['ds'].date()} is not the first day of a month")
    out = out.sort_values(["unique_id", "ds"]).reset_index(drop=True)
    if out.duplicated(["unique_id", "ds"]).any():
        bad = out.loc[out.duplicated(["unique_id", "ds"])].iloc[0]
        raise ForecastInputError(f"series {bad['unique_id']!r} has more than one value for {bad['ds']:%Y-%m}")
    for uid, g in out.groupby("unique_id", sort=False):
        if len(g) < MIN_POINTS:
            raise ForecastInputError(
                f"series {uid!r} has {len(g)} points; at least {MIN_POINTS} monthly points are needed to forecast"
            )
        expected = pd.date_range(g["ds"].iloc[0], g["ds"].iloc[-1], freq="MS")
        if len(expected) != len(g):
            raise ForecastInputError(
                f"series {uid!r} has gaps: months between {expected[0]:%Y-%m} and {expected[-1]:%Y-%m} are missing"
            )
    return out


def season_length(n: int) -> int:
    """12 when the series has two full years, else 1 (no seasonality)."""
    return SEASON if n >= 2 * SEASON else 1


def backtest_plan(n: int, h: int) -> tuple[int, int]:
    """(horizon, windows) of the rolling-origin backtest for a series of ``n`` points."""
    h_bt = max(1, min(h, n // 4))
    windows = 2 if n - 2 * h_bt >= max(MIN_POINTS, 2 * season_length(n) if n >= 2 * SEASON else MIN_POINTS) else 1
    return h_bt, windows


# --------------------------------------------------------------------------- candidate models


def _stats_model(name: str, m: int):
    from statsforecast import models as sm

    if name == "SeasonalNaive":
        return sm.SeasonalNaive(season_length=m, alias=name) if m > 1 else sm.Naive(alias=name)
    if name == "AutoETS":
        return sm.AutoETS(season_length=m, alias=name)
    if name == "AutoARIMA":
        return sm.AutoARIMA(season_length=m, alias=name)
    if name == "AutoTheta":
        return sm.AutoTheta(season_length=m, alias=name)
    if name == "DynamicOptimizedTheta":
        return sm.DynamicOptimizedTheta(season_length=m, alias=name)
    if name == "AdditiveETS":
        return sm.AutoETS(season_length=m, model="AZZ", alias=name)
    if name == "DampedAdditiveETS":
        return sm.AutoETS(season_length=m, model="AZZ", damped=True, alias=name)
    raise ValueError(f"unknown model {name!r}; known: {', '.join((*STATS_MODELS, PROPHET, ENSEMBLE))}")


def _n_jobs() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _stats_forecast(train: pd.DataFrame, names: Sequence[str], m: int, h: int, levels: Sequence[int]) -> pd.DataFrame:
    """Forecasts of every statsforecast candidate for every series in ``train`` (long format)."""
    from statsforecast import StatsForecast
    from statsforecast.models import Naive

    # A candidate that cannot fit a series (e.g. AutoETS on fewer than ~10 points) falls back to
    # the naive forecast for that series, so it scores like the naive forecast in the backtest.
    sf = StatsForecast(
        models=[_stats_model(n, m) for n in names],
        freq="MS",
        n_jobs=_n_jobs() if train["unique_id"].nunique() > 20 else 1,
        fallback_model=Naive(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = sf.forecast(df=train, h=h, level=list(levels))
    return out.reset_index() if "unique_id" not in out.columns else out


def _prophet_one(train: pd.DataFrame, h: int, levels: Sequence[int]) -> pd.DataFrame:
    import prophet

    logging.getLogger("cmdstanpy").disabled = True
    logging.getLogger("prophet").setLevel(logging.ERROR)
    model = prophet.Prophet(
        yearly_seasonality=len(train) > 2 * SEASON,
        weekly_seasonality=False,
        daily_seasonality=False,
        uncertainty_samples=500,
    )
    # L-BFGS, not Prophet's default Newton for series under 100 points: with yearly seasonality on
    # 25-27 months Newton took 8 s per fit against 0.03 s, and on the demo's ARR backtest L-BFGS
    # scored better (MAPE 3.35% vs 3.55%, 95% coverage 76% vs 74%; docs/benchmarks.md).
    model.fit(train[["ds", "y"]], algorithm="LBFGS")
    future = model.make_future_dataframe(periods=h, freq="MS", include_history=False)
    # Prophet draws its predictive samples from NumPy's global generator: seed it (and put the
    # caller's state back) so the same data always gives the same intervals.
    state = np.random.get_state()
    np.random.seed(PROPHET_SEED)
    try:
        samples = model.predictive_samples(future)["yhat"]  # (h, draws)
        out = pd.DataFrame({"ds": future["ds"], PROPHET: model.predict(future)["yhat"].to_numpy()})
    finally:
        np.random.set_state(state)
    for lv in levels:
        tail = (100 - lv) / 2
        out[f"{PROPHET}-lo-{lv}"] = np.percentile(samples, tail, axis=1)
        out[f"{PROPHET}-hi-{lv}"] = np.percentile(samples, 100 - tail, axis=1)
    return out


def _prophet_forecast(train: pd.DataFrame, h: int, levels: Sequence[int]) -> pd.DataFrame:
    frames = []
    for uid, g in train.groupby("unique_id", sort=False):
        f = _prophet_one(g, h, levels)
        f.insert(0, "unique_id", uid)
        frames.append(f)
    return pd.concat(frames, ignore_index=True)


def _add_ensemble(fc: pd.DataFrame, members: Sequence[str], levels: Sequence[int]) -> pd.DataFrame:
    fc[ENSEMBLE] = fc[list(members)].mean(axis=1)
    for lv in levels:
        for side in ("lo", "hi"):
            fc[f"{ENSEMBLE}-{side}-{lv}"] = fc[[f"{m}-{side}-{lv}" for m in members]].mean(axis=1)
    return fc


class CandidateCache:
    """Candidate forecasts already computed, by series (its training data), model, season and levels.

    A rolling-origin backtest of the whole procedure (:func:`cfxlib.metrics.arr_forecast.backtest_report`)
    fits the same candidates to the same training cut several times: the inner backtest of one
    origin cuts where another origin's history ends. A model's forecast depends only on its
    training data, so the first fit is kept and a later call for at most as many months ahead
    takes its first months (statsforecast's point forecasts and intervals for step ``k`` do not
    depend on the horizon asked for; Prophet's predictive samples are drawn once, seeded).
    One cache serves one computation (e.g. one run's forecast and its backtest); it holds only
    forecast frames, a few kB each.
    """

    def __init__(self) -> None:
        self._frames: dict[tuple, tuple[int, pd.DataFrame]] = {}
        self.hits = 0
        self.misses = 0

    @staticmethod
    def key(train: pd.DataFrame, m: int, levels) -> tuple:
        digest = hashlib.sha256(
            pd.util.hash_pandas_object(train[["unique_id", "ds", "y"]], index=False).to_numpy().tobytes()
        ).hexdigest()
        return (digest, m, tuple(levels))

    def get(self, key: tuple, name: str, h: int) -> pd.DataFrame | None:
        found = self._frames.get((*key, name))
        if found is None or found[0] < h:
            self.misses += 1
            return None
        self.hits += 1
        return found[1].groupby("unique_id", sort=False).head(h).reset_index(drop=True)

    def put(self, key: tuple, name: str, h: int, frame: pd.DataFrame) -> None:
        self._frames[(*key, name)] = (h, frame)


def _model_columns(fc: pd.DataFrame, name: str) -> pd.DataFrame:
    return fc[["unique_id", "ds", *[c for c in fc.columns if c == name or c.startswith(f"{name}-")]]]


def _fit_candidates(train: pd.DataFrame, names: Sequence[str], m: int, h: int, levels) -> pd.DataFrame | None:
    stats = [n for n in names if n in STATS_MODELS or n in MEMBER_MODELS]
    fc = _stats_forecast(train, stats, m, h, levels) if stats else None
    if PROPHET in names:
        pf = _prophet_forecast(train, h, levels)
        fc = pf if fc is None else fc.merge(pf, on=["unique_id", "ds"])
    return fc


def _raw_candidates(
    train: pd.DataFrame, names: Sequence[str], m: int, h: int, levels, cache: CandidateCache | None = None
) -> pd.DataFrame | None:
    """Every candidate in ``names`` fitted to every series of ``train``: in one batch without a
    cache, else series by series, fitting only what ``cache`` does not hold yet."""
    if cache is None or not names:
        return _fit_candidates(train, names, m, h, levels)
    frames = []
    for _, series in train.groupby("unique_id", sort=False):
        key = cache.key(series, m, levels)
        known = {n: cache.get(key, n, h) for n in names}
        missing = [n for n in names if known[n] is None]
        if missing:
            fresh = _fit_candidates(series, missing, m, h, levels)
            for name in missing:
                known[name] = _model_columns(fresh, name)
                cache.put(key, name, h, known[name])
        fc = known[names[0]]
        for name in names[1:]:
            fc = fc.merge(known[name], on=["unique_id", "ds"])
        frames.append(fc)
    return pd.concat(frames, ignore_index=True)


def _all_candidates(
    train: pd.DataFrame,
    names: Sequence[str],
    ensemble: Sequence[str],
    m: int,
    h: int,
    levels,
    cache: CandidateCache | None = None,
) -> pd.DataFrame:
    """Forecast columns ``NAME``, ``NAME-lo-LV``, ``NAME-hi-LV`` for every candidate."""
    plain = [n for n in names if not n.endswith(LOG) and n != ENSEMBLE]
    logged = [n[: -len(LOG)] for n in names if n.endswith(LOG)]
    fc = _raw_candidates(train, plain, m, h, levels, cache)
    if logged:
        positive = train.groupby("unique_id")["y"].transform("min") > 0
        if positive.any():
            lf = _raw_candidates(
                train[positive].assign(y=np.log(train.loc[positive, "y"])), logged, m, h, levels, cache
            )
            value_cols = [c for c in lf.columns if c not in ("unique_id", "ds")]
            lf[value_cols] = np.exp(lf[value_cols].clip(upper=700))
            lf = lf.rename(columns={c: c.replace(c.split("-")[0], c.split("-")[0] + LOG, 1) for c in value_cols})
            fc = lf if fc is None else fc.merge(lf, on=["unique_id", "ds"], how="left")
        else:
            for name in logged:
                fc[name + LOG] = np.nan
                for lv in levels:
                    fc[f"{name}{LOG}-lo-{lv}"] = fc[f"{name}{LOG}-hi-{lv}"] = np.nan
    if ENSEMBLE in names:
        fc = _add_ensemble(fc, ensemble, levels)
    return fc


# --------------------------------------------------------------------------- scoring


def mase_scale(y: np.ndarray, m: int) -> float:
    """In-sample MAE of the seasonal naive forecast (lag ``m``, lag 1 when too short).

    Not ``utilsforecast.losses.mase``: that divides by a zero scale (a flat series gives inf and
    drops the series from the model choice); here a flat history falls back to its mean level."""
    lag = m if len(y) > m else 1
    diffs = np.abs(y[lag:] - y[:-lag])
    scale = float(diffs.mean()) if len(diffs) else 0.0
    return scale if scale > 0 else float(np.abs(y).mean() or 1.0)


@dataclass
class Forecaster:
    """Fit candidates by rolling-origin backtest per series, then forecast with the winner.

    After :meth:`fit`, ``backtest_`` holds one row per series, window and candidate with MASE
    and interval hits, and ``selected_`` maps each series to its model.
    """

    h: int = 12
    level: Sequence[int] = (80, 95)
    models: Sequence[str] | None = None
    ensemble: Sequence[str] = DEFAULT_ENSEMBLE
    switch_margin: float = SWITCH_MARGIN
    cache: CandidateCache | None = field(default=None, repr=False)
    """Shared with other fits on overlapping data (a backtest of this procedure) to fit each
    candidate once per training cut; None fits every time."""
    backtest_: pd.DataFrame = field(default=None, init=False, repr=False)
    selected_: dict = field(default_factory=dict, init=False, repr=False)

    def candidates(self, n_series: int) -> list[str]:
        if self.models is not None:
            names = list(self.models)
        else:
            names = [*STATS_MODELS, PROPHET]
            if n_series > EXPENSIVE_MAX_SERIES:
                # Many series: the single models tried beside the combination are its members
                # and the seasonal naive forecast (AutoETS, AutoTheta and the slow ones would
                # double the time; on M3 they replaced the combination for 7 series of 1,428).
                names = ["SeasonalNaive"]
            else:
                names += [n + LOG for n in LOG_CANDIDATES]
            names.append(ENSEMBLE)
        if ENSEMBLE in names:
            names = list(
                dict.fromkeys([*names[: names.index(ENSEMBLE)], *self.ensemble, *names[names.index(ENSEMBLE) :]])
            )
        return names

    def fit(self, df: pd.DataFrame) -> Forecaster:
        # The rolling-origin loop is ours rather than StatsForecast.cross_validation because the
        # candidates span two libraries (statsforecast models, Prophet) plus log-scale variants and
        # their combination: one loop gives every candidate exactly the same windows and cutoffs.
        data = _validate(df)
        self.data_ = data
        lengths = data.groupby("unique_id").size()
        names = self.candidates(len(lengths))
        self.names_ = names
        rows = []
        for (m, h_bt, windows), ids in lengths.groupby(
            lambda uid: (season_length(lengths[uid]), *backtest_plan(lengths[uid], self.h))
        ):
            part = data[data["unique_id"].isin(ids.index)]
            pos = part.groupby("unique_id").cumcount().to_numpy()
            size = part.groupby("unique_id")["y"].transform("size").to_numpy()
            for w in range(windows, 0, -1):
                cut = part[pos < size - w * h_bt]
                actual = part[(pos >= size - w * h_bt) & (pos < size - (w - 1) * h_bt)]
                fc = _all_candidates(cut, names, self.ensemble, m, h_bt, self.level, self.cache)
                merged = actual.merge(fc, on=["unique_id", "ds"])
                merged["step"] = merged.groupby("unique_id").cumcount() + 1
                scales = cut.groupby("unique_id")["y"].apply(lambda y, m=m: mase_scale(y.to_numpy(), m))
                merged["scale"] = merged["unique_id"].map(scales)
                for name in names:
                    point = merged[["unique_id", "ds", "step", "y"]].assign(window=w, model=name, yhat=merged[name])
                    point["scaled_error"] = (point["y"] - point["yhat"]).abs() / merged["scale"]
                    for lv in self.level:
                        lo, hi = merged[f"{name}-lo-{lv}"], merged[f"{name}-hi-{lv}"]
                        point[f"inside_{lv}"] = (point["y"] >= lo) & (point["y"] <= hi)
                        # the error in units of the standard deviation the interval implies
                        y, yhat = point["y"].to_numpy(), point["yhat"].to_numpy()
                        lo, hi = lo.to_numpy(), hi.to_numpy()
                        with np.errstate(divide="ignore", invalid="ignore"):
                            if name.endswith(LOG):  # errors and widths on the log scale
                                y, yhat, lo, hi = np.log(y), np.log(yhat), np.log(lo), np.log(hi)
                            half = np.where(y >= yhat, hi - yhat, yhat - lo)
                            sd = half / NormalDist().inv_cdf(0.5 + lv / 200)
                            point[f"z_{lv}"] = np.where(sd > 0, np.abs(y - yhat) / sd, np.nan)
                    rows.append(point)
        self.backtest_points_ = pd.concat(rows, ignore_index=True)
        agg = {"mase": ("scaled_error", "mean")} | {f"coverage_{lv}": (f"inside_{lv}", "mean") for lv in self.level}
        self.backtest_ = self.backtest_points_.groupby(["unique_id", "model", "window"]).agg(**agg).reset_index()
        score = self.backtest_.groupby(["unique_id", "model"])["mase"].mean().unstack()
        for uid, s in score.iterrows():
            best = s.idxmin()
            if ENSEMBLE in s.index and best != ENSEMBLE and s[best] > (1 - self.switch_margin) * s[ENSEMBLE]:
                best = ENSEMBLE
            self.selected_[uid] = best
        self.widen_ = self._interval_factors()
        return self

    def _interval_factors(self) -> pd.DataFrame:
        """Per series and level: how much to widen the chosen model's interval (>= 1).

        On the chosen model's backtest points, ``z`` is the absolute error in units of the
        standard deviation that the model's own interval implies (half-width / normal
        quantile). Well-calibrated intervals give mean(z**2) = 1; the factor is
        sqrt(mean(z**2)), shrunk towards the value pooled over all series with a weight of
        :data:`POOL_WEIGHT` points (short histories borrow strength), floored at 1 and capped at
        :data:`MAX_WIDEN`.
        """
        pts = self.backtest_points_
        chosen = pts[pts["model"] == pts["unique_id"].map(self.selected_)]
        out = {}
        for lv in self.level:
            z2 = chosen[f"z_{lv}"].clip(upper=MAX_WIDEN * 4) ** 2
            pooled = float(z2.mean()) if z2.notna().any() else 1.0
            grouped = z2.groupby(chosen["unique_id"]).agg(["sum", "count"])
            factors = np.sqrt((grouped["sum"] + POOL_WEIGHT * pooled) / (grouped["count"] + POOL_WEIGHT))
            out[lv] = factors.clip(lower=1.0, upper=MAX_WIDEN).reindex(list(self.selected_)).fillna(1.0)
        return pd.DataFrame(out)

    def predict(self) -> pd.DataFrame:
        data, lengths = self.data_, self.data_.groupby("unique_id").size()
        frames = []
        for m, ids in lengths.groupby(lambda uid: season_length(lengths[uid])):
            part = data[data["unique_id"].isin(ids.index)]
            needed = set(self.selected_[u] for u in ids.index)
            names = [n for n in self.names_ if n in needed or (ENSEMBLE in needed and n in self.ensemble)]
            fc = _all_candidates(part, names, self.ensemble, m, self.h, self.level, self.cache)
            for uid, g in fc.groupby("unique_id", sort=False):
                name = self.selected_[uid]
                yhat = g[name].to_numpy()
                out = pd.DataFrame({"unique_id": uid, "ds": g["ds"].to_numpy(), "yhat": yhat})
                for lv in self.level:
                    k = self.widen_.at[uid, lv]
                    lo, hi = g[f"{name}-lo-{lv}"].to_numpy(), g[f"{name}-hi-{lv}"].to_numpy()
                    if name.endswith(LOG):  # widen on the scale the model was fitted on
                        with np.errstate(divide="ignore", invalid="ignore"):
                            out[f"yhat_lo_{lv}"] = yhat * (lo / yhat) ** k
                            out[f"yhat_hi_{lv}"] = yhat * (hi / yhat) ** k
                    else:
                        out[f"yhat_lo_{lv}"] = yhat - k * (yhat - lo)
                        out[f"yhat_hi_{lv}"] = yhat + k * (hi - yhat)
                out["model"] = name
                frames.append(out)
        result = pd.concat(frames, ignore_index=True).sort_values(["unique_id", "ds"]).reset_index(drop=True)
        # Bounds must bracket the point forecast and nest (95% outside 80%).
        levels = sorted(self.level)
        for lv in levels:
            result[f"yhat_lo_{lv}"] = np.minimum(result[f"yhat_lo_{lv}"], result["yhat"])
            result[f"yhat_hi_{lv}"] = np.maximum(result[f"yhat_hi_{lv}"], result["yhat"])
        for inner, outer in zip(levels, levels[1:], strict=False):
            result[f"yhat_lo_{outer}"] = np.minimum(result[f"yhat_lo_{outer}"], result[f"yhat_lo_{inner}"])
            result[f"yhat_hi_{outer}"] = np.maximum(result[f"yhat_hi_{outer}"], result[f"yhat_hi_{inner}"])
        return result


def forecast(
    df: pd.DataFrame,
    h: int = 12,
    level: Sequence[int] = (80, 95),
    models: Sequence[str] | None = None,
    cache: CandidateCache | None = None,
) -> pd.DataFrame:
    """Forecast the next ``h`` months of every series in ``df`` (``unique_id, ds, y``).

    Returns ``unique_id, ds, yhat, yhat_lo_80, yhat_hi_80, yhat_lo_95, yhat_hi_95, model`` (one
    pair of bound columns per entry of ``level``). ``models`` restricts the candidates (names as
    in :data:`STATS_MODELS`, ``"Prophet"``, ``"Ensemble"``). Raises
    :class:`ForecastInputError` for series with fewer than 6 points, gaps, duplicates or
    non-finite values. ``cache`` (a :class:`CandidateCache`) reuses candidate fits of earlier
    calls on the same training data.
    """
    if h < 1:
        raise ForecastInputError(f"h must be at least 1, not {h}")
    return Forecaster(h=h, level=tuple(level), models=models, cache=cache).fit(df).predict()
