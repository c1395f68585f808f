"""cfxlib.metrics.forecast: the contract's shape, short histories, bad input, and sensible choices."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cfxlib.metrics.forecast import DEFAULT_ENSEMBLE, Forecaster, ForecastInputError, forecast

FAST = ["SeasonalNaive", "AutoETS", "DynamicOptimizedTheta", "Ensemble"]
TRIED = {*FAST, *DEFAULT_ENSEMBLE}
"""Candidates with FAST: the combination's members are fitted, so they are candidates too."""
COLUMNS = ["unique_id", "ds", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95", "model"]


def series(values, uid="s", start="2022-01-01") -> pd.DataFrame:
    return pd.DataFrame({"unique_id": uid, "ds": pd.date_range(start, periods=len(values), freq="MS"), "y": values})


def seasonal(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + 0.8 * t + 15 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 2, n)


def test_contract_shape_and_nested_intervals():
    df = pd.concat([series(seasonal(40, 1), "a"), series(seasonal(30, 2) * 3, "b")])
    out = forecast(df, h=12, models=FAST)
    assert list(out.columns) == COLUMNS
    assert out.groupby("unique_id").size().tolist() == [12, 12]
    assert out["ds"].min() == pd.Timestamp("2025-05-01") or out.loc[out.unique_id == "a", "ds"].iloc[0] == pd.Timestamp(
        "2025-05-01"
    )
    assert (out["ds"].dt.day == 1).all()
    assert (out["yhat_lo_95"] <= out["yhat_lo_80"]).all() and (out["yhat_lo_80"] <= out["yhat"]).all()
    assert (out["yhat"] <= out["yhat_hi_80"]).all() and (out["yhat_hi_80"] <= out["yhat_hi_95"]).all()
    assert set(out["model"]) <= TRIED


def test_six_points_work_and_five_are_refused():
    out = forecast(series([10.0, 11, 12, 12.5, 13, 14]), h=3, models=FAST)
    assert len(out) == 3 and out["yhat"].notna().all()
    with pytest.raises(ForecastInputError, match=r"series 'tiny' has 5 points; at least 6"):
        forecast(series([1.0, 2, 3, 4, 5], uid="tiny"), h=3)


@pytest.mark.parametrize(
    ("frame", "message"),
    [
        (series([1.0, 2, 3, 4, 5, 6, 7]).drop(index=3), "has gaps"),
        (series([1.0, 2, np.nan, 4, 5, 6, 7]), "missing or non-finite"),
        (
            series([1.0, 2, 3, 4, 5, 6, 7]).assign(ds=lambda d: d["ds"] + pd.Timedelta(days=3)),
            "not the first day of a month",
        ),
        (pd.concat([series([1.0, 2, 3, 4, 5, 6]), series([1.0])]), "more than one value"),
        (pd.DataFrame({"id": [1]}), "lacks column"),
    ],
)
def test_bad_input_is_named(frame, message):
    with pytest.raises(ForecastInputError, match=message):
        forecast(frame, h=2, models=FAST)


def test_seasonal_series_beats_the_naive_forecast():
    y = seasonal(60, 3)
    out = forecast(series(y[:48]), h=12, models=FAST)
    mae = np.abs(out["yhat"].to_numpy() - y[48:]).mean()
    naive = np.abs(y[47] - y[48:]).mean()
    assert mae < 0.75 * naive


def test_compounding_growth_is_followed_by_a_log_model():
    """A young company's ARR: 5% a month. A log-scale candidate should win and stay close."""
    rng = np.random.default_rng(4)
    y = 1e6 * 1.05 ** np.arange(36) * rng.lognormal(0, 0.01, 36)
    f = Forecaster(h=6, models=["AutoETS", "AutoETS[log]", "DynamicOptimizedTheta[log]", "Ensemble"]).fit(
        series(y[:30])
    )
    out = f.predict()
    assert f.selected_["s"].endswith("[log]")
    assert np.abs(out["yhat"].to_numpy() / y[30:] - 1).max() < 0.05


def test_backtest_table_scores_every_candidate():
    f = Forecaster(h=6, models=FAST).fit(series(seasonal(40, 5)))
    assert set(f.backtest_["model"]) == TRIED
    assert {"mase", "coverage_80", "coverage_95", "window"} <= set(f.backtest_.columns)
    assert f.backtest_["mase"].notna().all()


def test_default_candidates_include_prophet_and_arima_for_few_series():
    f = Forecaster()
    assert {"Prophet", "AutoARIMA", "AutoETS[log]", "DynamicOptimizedTheta[log]", "Ensemble"} <= set(f.candidates(4))
    assert not {"Prophet", "AutoARIMA"} & set(f.candidates(500))


def test_the_combination_takes_log_scale_members_and_works_without_them():
    """The default combination has log-scale members; a series with a zero (no log) is combined
    from its other members, and many series try the members and the seasonal naive only."""
    from cfxlib.metrics.forecast import ENSEMBLE, LOG

    assert any(m.endswith(LOG) for m in DEFAULT_ENSEMBLE) and not all(m.endswith(LOG) for m in DEFAULT_ENSEMBLE)
    y = seasonal(36, 7)
    with_zero = y.copy()
    with_zero[3] = 0.0
    f = Forecaster(h=6, models=[ENSEMBLE]).fit(pd.concat([series(y, "positive"), series(with_zero, "zero")]))
    out = f.predict()
    assert np.isfinite(out[["yhat", "yhat_lo_95", "yhat_hi_95"]].to_numpy()).all()
    plain = [m for m in DEFAULT_ENSEMBLE if not m.endswith(LOG)]
    fc = f.predict()
    zero = fc[fc["unique_id"] == "zero"]
    alone = Forecaster(h=6, models=plain).fit(series(with_zero, "zero")).predict()
    assert np.allclose(zero["yhat"].to_numpy(), alone["yhat"].to_numpy())  # the log members left out
    assert set(Forecaster().candidates(500)) == {"SeasonalNaive", *DEFAULT_ENSEMBLE, ENSEMBLE}


def test_candidate_cache_reuses_fits_and_changes_no_forecast():
    """A backtest's origins share training cuts: with a shared cache, the second forecast fits
    fewer candidates, and (for the statsforecast models, whose step-k forecast does not depend on
    the horizon asked for) gives exactly what it gives alone."""
    from cfxlib.metrics.forecast import CandidateCache

    models = ("SeasonalNaive", "AutoETS", "AutoARIMA", "DynamicOptimizedTheta", "Ensemble")
    full = pd.concat([series(seasonal(36, seed=1), "a"), series(100 + np.arange(30) * 3.0, "b", "2022-07-01")])
    cache = CandidateCache()
    forecast(full, h=12, models=models, cache=cache)
    fitted = cache.misses
    # Two months back with a 7-month horizon, series a's inner backtest cuts after 27 months: the
    # cut the full history's backtest made (36 months, 9 ahead), so those fits are reused.
    earlier = full[full["ds"] < "2024-11-01"]
    alone = forecast(earlier, h=7, models=models)
    shared = forecast(earlier, h=7, models=models, cache=cache)
    assert cache.hits > 0 and cache.misses - fitted < fitted
    pd.testing.assert_frame_equal(shared, alone)
