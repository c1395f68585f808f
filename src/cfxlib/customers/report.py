"""The customer success results of a run: health, churn scores, at-risk accounts, KPIs, model
card and survival, computed from the warehouse at an as-of month, and their JSON payload."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from cfxlib.contract.money import round_money_fields
from cfxlib.core import provenance
from cfxlib.core.records import jsonable, records
from cfxlib.customers import health, kpis, playbooks, scoring, survival


@dataclass
class CustomerResults:
    as_of_month: str
    health: pd.DataFrame
    risk: pd.DataFrame
    kpis: dict
    card: dict | None
    curves: pd.DataFrame
    churn: scoring.ChurnResult
    risk_trend: dict | None = None
    interventions: dict | None = None
    """Calls to action: ``effect`` (treated vs held out) and ``summary`` (work on cfx's own CTAs)."""


def truth_for(ingest: dict) -> pd.DataFrame | None:
    """The demo generator's churn truth beside the ingested data directory, read only when the
    ingest is the demo company's (``ingest["source"] == "demo"``, see
    :mod:`cfxlib.core.provenance`): a ``_truth/`` folder beside real data is never read."""
    if ingest.get("source") != provenance.DEMO or not ingest.get("data_dir"):
        return None
    path = Path(ingest["data_dir"]) / "_truth" / "churn_probability.csv"
    return pd.read_csv(path) if path.exists() else None


def compute(
    con, as_of_month: str | None = None, truth: pd.DataFrame | None = None, downtime_cost_per_hour: float = 500.0
) -> CustomerResults:
    as_of_month = as_of_month or scoring.as_of_month_of(con)
    as_of = pd.Period(as_of_month, freq="M").end_time.date()
    health_frame = health.health_scores(con, as_of)
    cache = scoring.SnapshotCache(con)  # the three models share most monthly snapshots
    try:
        # the months scored in full are queried on a second connection while models are fitted
        cache.prefetch(scoring.full_snapshot_months(cache.data_months(), as_of_month))
        cache.prefetch_health(scoring.card_test_months(cache.data_months(), as_of_month))
        cache.prepare_training(scoring.training_cutoff_sets(cache.data_months(), as_of_month))
        result = scoring.churn_scores(con, as_of_month, cache)
        scoring.score_card_months(cache, as_of_month)  # a few months' features in memory at a time
        risk = playbooks.at_risk(result, health_frame)
        names = con.execute("SELECT account_id, account_name FROM accounts").df()
        risk.insert(1, "account_name", risk["account_id"].map(names.set_index("account_id")["account_name"]))
        try:
            card = scoring.model_card(con, as_of_month, truth=truth, cache=cache)
        except scoring.UsageError as exc:
            card = {"unavailable": str(exc)}
        return CustomerResults(
            as_of_month=as_of_month,
            health=health_frame,
            risk=risk,
            kpis=kpis.kpis(
                con,
                as_of_month,
                health_frame,
                risk,
                downtime_cost_per_hour,
                account_months=cache.account_months(as_of_month),
            ),
            card=card,
            curves=survival.retention_curves(con, as_of_month),
            churn=result,
            risk_trend=scoring.at_risk_trend(con, as_of_month, cache=cache),
        )
    finally:
        cache.close()


def payload(res: CustomerResults, top: int = 25) -> dict:
    risky = res.risk[res.risk["at_risk"]].head(top)
    card = dict(res.card or {})
    return round_money_fields(
        jsonable(
            {
                "as_of": res.as_of_month,
                "kpis": res.kpis,
                "at_risk": records(risky.drop(columns=list(health.COMPONENTS))),
                "model_card": card,
                "retention_curves": survival.survival_at(res.curves),
                "at_risk_trend": res.risk_trend or {"trained_through": None, "points": [], "note": "not computed"},
                "interventions": res.interventions or {"effect": None, "summary": None, "note": "not computed"},
                "training": {
                    "rows": res.churn.training_rows,
                    "available_rows": res.churn.available_rows,
                    "cutoffs": [res.churn.training_cutoffs[0], res.churn.training_cutoffs[-1]],
                },
            }
        )
    )
