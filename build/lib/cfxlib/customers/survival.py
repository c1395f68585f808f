"""Customer survival by tier: Kaplan-Meier curves (lifelines) and survival at 6, 12 and 24 months."""

from __future__ import annotations

import pandas as pd

from cfxlib.contract.rules import account_month_sql
from cfxlib.contract.schemas import TIERS
from cfxlib.store.sqltext import date_literal


def retention_curves(con, as_of_month: str) -> pd.DataFrame:
    """Kaplan-Meier customer survival by tier (tier at signup).

    Duration = months from an account's first month with MRR to its first churn (no MRR at a
    month end), censored at the as-of month for accounts still active. Returns ``tier, month,
    survival, lower_95, upper_95``.
    """
    from lifelines import KaplanMeierFitter

    start = pd.Period(as_of_month, freq="M").start_time.date()
    frame = con.execute(
        f"""
        WITH am AS ({account_month_sql(date_literal(start))}),
        seq AS (
            SELECT account_id, month, tier,
                   lead(month) OVER (PARTITION BY account_id ORDER BY month) AS next_month,
                   first_value(tier) OVER (PARTITION BY account_id ORDER BY month) AS first_tier,
                   min(month) OVER (PARTITION BY account_id) AS first_month
            FROM am
        ),
        first_gap AS (
            SELECT account_id, first_tier, first_month,
                   min(month) FILTER (WHERE next_month IS NULL OR next_month > month + INTERVAL 1 MONTH) AS last_run_month
            FROM seq GROUP BY account_id, first_tier, first_month
        )
        SELECT account_id, first_tier AS tier,
               date_diff('month', first_month, last_run_month) + 1 AS duration,
               CASE WHEN last_run_month < {date_literal(start)} THEN 1 ELSE 0 END AS churned
        FROM first_gap
        """
    ).df()
    rows = []
    for tier in TIERS:
        part = frame[frame["tier"] == tier]
        if part.empty:
            continue
        kmf = KaplanMeierFitter().fit(part["duration"], part["churned"], label=tier)
        ci = kmf.confidence_interval_survival_function_
        for t, s in kmf.survival_function_[tier].items():
            rows.append(
                {
                    "tier": tier,
                    "month": int(t),
                    "survival": float(s),
                    "lower_95": float(ci.loc[t].iloc[0]),
                    "upper_95": float(ci.loc[t].iloc[1]),
                }
            )
    return pd.DataFrame(rows)


def survival_at(curves: pd.DataFrame, months=(6, 12, 24)) -> dict:
    out = {}
    for tier, g in curves.groupby("tier"):
        out[tier] = {}
        for m in months:
            past = g[g["month"] <= m]
            out[tier][f"{m}m"] = float(past["survival"].iloc[-1]) if len(past) else None
    return out
