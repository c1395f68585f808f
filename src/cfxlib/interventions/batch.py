"""The batch evaluation of intervention rules at every ``cfx run`` (and so on the scheduler):
every account of the new publication, plus accounts with active CTAs that are no longer active
(they churned)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pandas as pd

from cfxlib.core.home import Home
from cfxlib.core.settings import Settings
from cfxlib.interventions import engine, notices
from cfxlib.interventions.store import CtaStore
from cfxlib.store import lake

NPS_WINDOW_DAYS = 90
"""A batch evaluation counts an account's latest NPS answer when it is this recent."""


def signals(home: Home, published: Path, rules) -> list[engine.Signal]:
    art = published / "artifacts"
    health = pd.read_parquet(art / "health.parquet")
    risk = pd.read_parquet(art / "at_risk.parquet").set_index("account_id")
    as_of = pd.Timestamp(health["as_of"].max()).date()
    window = max((r.days or 0 for r in rules if r.kind == "health_drop"), default=0)
    reference: dict[str, float] = {}
    if (art / "health_history.parquet").exists() and window:
        hist = pd.read_parquet(art / "health_history.parquet")
        recent = hist[pd.to_datetime(hist["as_of"]).dt.date >= as_of - timedelta(days=window)]
        reference = recent.groupby("account_id")["health_score"].max().to_dict()
    con = lake.connect_embedded(home)
    try:
        day = f"DATE '{as_of.isoformat()}'"
        nps = dict(
            con.execute(
                f"SELECT account_id, arg_max(score, date) FROM nps_responses WHERE date <= {day} "
                f"AND date > {day} - INTERVAL {NPS_WINDOW_DAYS} DAY GROUP BY account_id"
            ).fetchall()
        )
        renewals = dict(
            con.execute(
                f"""SELECT account_id, min(date_diff('day', {day},
                        CAST(start_date + to_months(12 * (date_diff('month', start_date, {day}) // 12 + 1)) AS DATE)))
                    FROM subscriptions
                    WHERE billing_period_months = 12 AND start_date <= {day}
                      AND (end_date IS NULL OR end_date > {day})
                    GROUP BY account_id"""
            ).fetchall()
        )
        owners = notices.owner_emails(con)
    finally:
        con.close()
    out = []
    for row in health.itertuples(index=False):
        r = risk.loc[row.account_id] if row.account_id in risk.index else None
        score = None if pd.isna(row.health_score) else float(row.health_score)
        ref = reference.get(row.account_id)
        out.append(
            engine.Signal(
                account_id=row.account_id,
                account_name=None if r is None else r.get("account_name"),
                tier=getattr(row, "tier", None),
                health_score=score,
                band=row.band,
                reference_score=None if ref is None else max(ref, score or 0.0),
                nps_scores=[int(nps[row.account_id])] if row.account_id in nps else [],
                p_churn_3m=None if r is None or pd.isna(r.get("p_churn_3m")) else float(r.get("p_churn_3m")),
                renewal_in_days=None if row.account_id not in renewals else int(renewals[row.account_id]),
                playbook=None if r is None else r.get("playbook"),
                action=None if r is None else r.get("action"),
                owner_email=owners.get(row.account_id),
            )
        )
    return out


def evaluate_publication(home: Home, settings: Settings) -> list[dict]:
    """Evaluate every rule for the latest publication; returns the changes (notifications queued)."""
    rules = notices.load_rules(home)
    store = notices.store_for(home)
    try:
        found = signals(home, home.published, rules)
        active_ids = {s.account_id for s in found}
        with store.transaction() as con:
            gone = {a for (a, _rule) in CtaStore.active_in(con) if a not in active_ids}
        found += [engine.Signal(account_id=a, churned=True) for a in sorted(gone)]
        changes = engine.evaluate(store, found, rules, notices.config(settings))
    finally:
        store.close()
    import json

    snapshot = json.loads((home.published / "metrics_snapshot.json").read_text(encoding="utf-8"))
    notices.notify_changes(home, settings, changes, demo=snapshot.get("source") == "demo")
    return changes
