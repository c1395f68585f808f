"""Revenue intelligence artifacts: tables, figures and JSON payloads for reports and the API.

:func:`build` computes every revenue metric and the ARR forecast from a warehouse and writes
them into a folder (a pipeline run's artifact folder). :func:`payloads` shapes the results as
plain JSON for ``/api/finance/*`` and the investor snapshot.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from cfxlib.contract.money import round_money_fields
from cfxlib.core.records import jsonable, records
from cfxlib.metrics import arr_forecast, calibration, efficiency, revenue
from cfxlib.metrics.forecast import CandidateCache
from cfxlib.store.warehouse import ingest_metadata


@dataclass
class FinanceResults:
    as_of_month: str
    monthly: pd.DataFrame
    monthly_by_tier: pd.DataFrame
    retention: pd.DataFrame
    retention_by_tier: pd.DataFrame
    cohorts: pd.DataFrame
    unit_economics: pd.DataFrame
    arr_history: pd.DataFrame
    forecast: pd.DataFrame
    forecast_models: dict
    bottom_up: pd.DataFrame
    comparison: pd.DataFrame
    backtest: dict
    efficiency: dict
    fundraising: dict | None


def compute(
    con, h: int = 12, backtest_origins: int = 6, backtest_step: int = 2, models=None, as_of: str | None = None
) -> FinanceResults:
    """Every revenue metric and the ARR forecast, from a warehouse connection.

    ``as_of`` (``YYYY-MM``; default the data's last month) is the last month of every table and
    the forecast's origin."""
    monthly = revenue.monthly_metrics(con=con, as_of=as_of)
    fundraising = ingest_metadata(con).get("fundraising")
    history = arr_forecast.arr_history(con=con, as_of=as_of)
    fits = CandidateCache()  # the forecast and its backtest share candidate fits on the same cuts
    forecaster = arr_forecast.top_down(history, h=h, models=models, cache=fits)
    backtest = arr_forecast.backtest_report(
        history, h=h, origins=backtest_origins, step=backtest_step, models=models, hierarchical=True, cache=fits
    )
    top = arr_forecast.reconcile(forecaster.predict())
    factors = (backtest.get("overall") or {}).get("calibration", {}).get("factors")
    if factors:  # intervals scaled so that, held out, they covered what they claim
        top = calibration.apply_factors(top, pd.DataFrame(factors).T.rename(columns=int))
    bottom = arr_forecast.bottom_up(con=con, h=h, as_of=as_of)
    return FinanceResults(
        as_of_month=monthly["month"].iloc[-1],
        monthly=monthly,
        monthly_by_tier=revenue.monthly_metrics(con=con, by="tier", as_of=as_of),
        retention=revenue.retention(con=con, as_of=as_of),
        retention_by_tier=revenue.retention(con=con, by="tier", as_of=as_of),
        cohorts=revenue.cohorts(con=con, as_of=as_of),
        unit_economics=revenue.unit_economics(con=con, as_of=as_of),
        arr_history=history,
        forecast=top,
        forecast_models=dict(forecaster.selected_),
        bottom_up=bottom,
        comparison=arr_forecast.compare(top, bottom),
        backtest=backtest,
        efficiency=efficiency.efficiency(con, fundraising, monthly),
        fundraising=fundraising,
    )


def _last(frame: pd.DataFrame, column: str):
    values = frame[column].dropna()
    return values.iloc[-1] if len(values) else None


def _backtest_points(points: pd.DataFrame) -> pd.DataFrame:
    if points.empty:
        return points
    cols = ["unique_id", "origin", "horizon", "ds", "y", "yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95"]
    frame = points[[c for c in cols if c in points] + (["yhat_base"] if "yhat_base" in points else [])].copy()
    frame["ds"] = frame["ds"].dt.strftime("%Y-%m")
    return frame.rename(columns={"ds": "month", "y": "actual"})


def payloads(res: FinanceResults) -> dict:
    """JSON-ready finance payloads (USD in whole cents, fractions for rates)."""
    m = res.monthly
    last = m.iloc[-1]
    prev = m.iloc[-2] if len(m) > 1 else None
    ue = res.unit_economics
    total_fc = res.forecast[res.forecast["unique_id"] == arr_forecast.TOTAL]
    end = total_fc.iloc[-1] if len(total_fc) else None
    summary = {
        "as_of": res.as_of_month,
        "mrr": last["mrr"],
        "arr": last["arr"],
        "arr_previous_month": prev["arr"] if prev is not None else None,
        "arr_growth_mom": last["arr_growth_mom"],
        "customers": last["customers"],
        "arpa": last["arpa"],
        "logo_churn_rate": last["logo_churn_rate"],
        "gross_mrr_churn_rate": last["gross_mrr_churn_rate"],
        "net_mrr_churn_rate": last["net_mrr_churn_rate"],
        "quick_ratio": last["quick_ratio"],
        "nrr_12m": _last(res.retention, "nrr"),
        "grr_12m": _last(res.retention, "grr"),
        "cac": _last(ue, "cac"),
        "ltv": _last(ue, "ltv"),
        "ltv_to_cac": _last(ue, "ltv_to_cac"),
        "cac_payback_months": _last(ue, "cac_payback_months"),
        "gross_margin": _last(ue, "gross_margin"),
        "arr_forecast_12m": None
        if end is None
        else {
            "month": end["ds"],
            "arr": end["yhat"],
            "lo_80": end["yhat_lo_80"],
            "hi_80": end["yhat_hi_80"],
            "lo_95": end["yhat_lo_95"],
            "hi_95": end["yhat_hi_95"],
            "model": end["model"],
        },
        "by_tier": records(
            res.monthly_by_tier[res.monthly_by_tier["month"] == res.as_of_month][
                ["tier", "customers", "mrr", "arr", "arpa", "logo_churn_rate"]
            ]
        ),
    }
    fc = res.comparison.copy()
    fc["ds"] = fc["ds"].dt.strftime("%Y-%m")
    return round_money_fields(
        {
            "summary": jsonable(summary),
            "mrr": records(m[["month", "mrr", "arr", "customers", "arpa", "arr_growth_mom"]]),
            "mrr_by_tier": records(res.monthly_by_tier[["month", "tier", "mrr", "arr", "customers", "arpa"]]),
            "movements": records(
                m[["month", "mrr_start", *revenue.MOVEMENTS, "mrr_end", "logo_churn_rate", "quick_ratio"]]
            ),
            "movements_by_tier": records(
                res.monthly_by_tier[["month", "tier", "mrr_start", *revenue.MOVEMENTS, "mrr_end"]]
            ),
            "forecast": {
                "as_of": res.as_of_month,
                "models": res.forecast_models,
                "points": records(fc.rename(columns={"ds": "month"})),
                "reconciliation": arr_forecast.RECONCILER,
                "backtest": jsonable(res.backtest["overall"]),
                "backtest_by_series": jsonable(res.backtest["by_series"]),
                "backtest_by_horizon": records(res.backtest["by_horizon"]),
                "backtest_points": records(_backtest_points(res.backtest["points"])),
            },
            "efficiency": jsonable({k: v for k, v in res.efficiency.items() if k != "months"}),
            "cash_by_month": records(pd.DataFrame(res.efficiency["months"])),
            "fundraising": res.fundraising,
            "unit_economics": records(
                ue[
                    [
                        "month",
                        "cac",
                        "gross_margin",
                        "arpa_window",
                        "logo_churn_window",
                        "ltv",
                        "ltv_lo",
                        "ltv_hi",
                        "ltv_to_cac",
                        "cac_payback_months",
                    ]
                ]
            ),
            "retention": {
                "nrr_grr": records(res.retention[["month", "cohort_customers", "retained_customers", "nrr", "grr"]]),
                "nrr_grr_by_tier": records(res.retention_by_tier[["month", "tier", "cohort_customers", "nrr", "grr"]]),
                "cohorts": records(
                    res.cohorts[["cohort", "age", "customers", "active", "logo_retention", "net_mrr_retention"]]
                ),
            },
        }
    )
