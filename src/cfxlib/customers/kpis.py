"""Customer KPIs at an as-of month: active users, NPS, customer ROI, health distribution, ARR at risk."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cfxlib.contract.rules import account_month_sql
from cfxlib.customers.roi import downtime_value_usd, roi_multiple
from cfxlib.store.sqltext import date_literal


def kpis(
    con,
    as_of_month: str,
    health_frame: pd.DataFrame,
    risk: pd.DataFrame,
    downtime_cost_per_hour: float,
    account_months: str | None = None,
) -> dict:
    """KPI summary at the as-of month (amounts in USD).

    - active users: ``dau`` = mean daily active users (summed over accounts) in the month;
      ``mau_lower_bound`` = sum over accounts of their peak daily active users in the month (the
      data holds daily counts, not user ids, so monthly distinct users are at least this).
    - NPS = % promoters (9-10) - % detractors (0-6) of the month's answers, overall and by tier,
      and its monthly trend.
    - engagement by month (``engagement``): per month and series (``Total`` and each tier), NPS
      with its number of answers and the active users above, over every month of data.
    - customer ROI: value of downtime avoided = (baseline - downtime hours) x cost per hour,
      against subscription cost (MRR) of the reporting accounts; ``roi`` = value / cost.
    - health distribution by tier and band; ARR at risk = sum of p(churn in 3 months) x ARR.

    ``account_months``: a table of :func:`~cfxlib.contract.rules.account_month_sql` through the
    as-of month or later, read instead of computing it (the churn step has one).
    """
    start = pd.Period(as_of_month, freq="M").start_time.date()
    month = date_literal(start)
    am = (
        f"(SELECT * FROM {account_months} WHERE month <= {month})"
        if account_months
        else f"({account_month_sql(month)})"
    )
    users = con.execute(
        f"""
        WITH am AS (SELECT * FROM {am}),
        -- one scan of usage_daily for both: users per day (summed over accounts) and each
        -- account's peak in the month
        sets AS (
            SELECT am.month, am.tier, u.date, u.account_id,
                   sum(u.active_users) AS users, max(u.active_users) AS peak, grouping(u.account_id) AS per_day
            FROM usage_daily u JOIN am ON am.account_id = u.account_id AND am.month = date_trunc('month', u.date)
            GROUP BY GROUPING SETS ((am.month, am.tier, u.date), (am.month, am.tier, u.account_id))
        ),
        dau AS (SELECT month, tier, avg(users) AS dau FROM sets WHERE per_day = 1 GROUP BY month, tier),
        mau AS (SELECT month, tier, sum(peak) AS mau_lower_bound FROM sets WHERE per_day = 0 GROUP BY month, tier)
        SELECT strftime(d.month, '%Y-%m') AS month, d.tier, d.dau, m.mau_lower_bound
        FROM dau d JOIN mau m ON m.month = d.month AND m.tier = d.tier
        ORDER BY d.month, d.tier
        """
    ).df()
    nps = con.execute(
        f"""
        WITH am AS (SELECT * FROM {am})
        SELECT strftime(date_trunc('month', n.date), '%Y-%m') AS month, coalesce(am.tier, 'No active plan') AS tier,
               count(*) AS answers,
               100.0 * avg(CASE WHEN score >= 9 THEN 1 ELSE 0 END) - 100.0 * avg(CASE WHEN score <= 6 THEN 1 ELSE 0 END) AS nps
        FROM nps_responses n
        LEFT JOIN am ON am.account_id = n.account_id AND am.month = date_trunc('month', n.date)
        GROUP BY ALL ORDER BY 1, 2
        """
    ).df()
    nps_total = con.execute(
        """
        SELECT strftime(date_trunc('month', date), '%Y-%m') AS month, count(*) AS answers,
               100.0 * avg(CASE WHEN score >= 9 THEN 1 ELSE 0 END) - 100.0 * avg(CASE WHEN score <= 6 THEN 1 ELSE 0 END) AS nps
        FROM nps_responses GROUP BY 1 ORDER BY 1
        """
    ).df()
    roi = con.execute(
        f"""
        WITH am AS (SELECT * FROM {am})
        SELECT strftime(d.month, '%Y-%m') AS month, count(*) AS accounts,
               sum(d.baseline_downtime_hours - d.downtime_hours) AS hours_avoided,
               sum(am.mrr)::DOUBLE AS subscription_cost
        FROM downtime_monthly d JOIN am ON am.account_id = d.account_id AND am.month = d.month
        GROUP BY d.month ORDER BY d.month
        """
    ).df()
    roi["value_usd"] = downtime_value_usd(roi["hours_avoided"], downtime_cost_per_hour)
    roi["roi"] = roi_multiple(roi["value_usd"], roi["subscription_cost"])
    last_users = users[users["month"] == as_of_month]
    last_nps = nps[nps["month"] == as_of_month]
    recent_nps = nps_total.tail(3)
    # complete months only: answers dated today belong to a month the publication does not report
    engagement = [r for r in engagement_by_month(users, nps, nps_total) if r["month"] <= as_of_month]
    dist = health_frame.groupby(["tier", "band"]).size().unstack(fill_value=0)
    return {
        "as_of": as_of_month,
        "active_users": {
            "dau": float(last_users["dau"].sum()),
            "mau_lower_bound": float(last_users["mau_lower_bound"].sum()),
            "by_tier": last_users[["tier", "dau", "mau_lower_bound"]].to_dict(orient="records"),
            "trend": users.groupby("month")[["dau", "mau_lower_bound"]]
            .sum()
            .reset_index()
            .tail(12)
            .to_dict(orient="records"),
        },
        "nps": {
            "month": float(nps_total["nps"].iloc[-1]) if len(nps_total) else None,
            "last_3_months": float(np.average(recent_nps["nps"], weights=recent_nps["answers"]))
            if len(recent_nps)
            else None,
            "answers_month": int(nps_total["answers"].iloc[-1]) if len(nps_total) else 0,
            "by_tier": last_nps[["tier", "nps", "answers"]].to_dict(orient="records"),
            "trend": nps_total.tail(12).to_dict(orient="records"),
        },
        "engagement": engagement,
        "customer_roi": {
            "downtime_cost_per_hour_usd": downtime_cost_per_hour,
            "month": roi.iloc[-1].to_dict() if len(roi) else None,
            "trend": roi.tail(12).to_dict(orient="records"),
        },
        "health": {
            "mean_score": float(health_frame["health_score"].mean()),
            "distribution": {
                t: {b: int(dist.loc[t].get(b, 0)) for b in ("red", "yellow", "green")} for t in dist.index
            },
            "by_band": {b: int(n) for b, n in health_frame["band"].value_counts().items()},
        },
        "arr_at_risk": float(risk["arr_at_risk"].sum()),
        "arr_at_risk_share": float(risk["arr_at_risk"].sum() / risk["arr"].sum()) if risk["arr"].sum() else None,
        "accounts_at_risk": int(risk["at_risk"].sum()),
    }


def engagement_by_month(users: pd.DataFrame, nps: pd.DataFrame, nps_total: pd.DataFrame) -> list[dict]:
    """Rows ``month, series, nps, answers, dau, mau_lower_bound`` for ``Total`` and each tier,
    oldest first. NPS of the total counts every answer (also from accounts without an active
    plan); a month without answers has ``nps`` None; active users are summed over the tiers."""
    tiers = nps[nps["tier"] != "No active plan"].rename(columns={"tier": "series"})
    total_users = users.groupby("month", as_index=False)[["dau", "mau_lower_bound"]].sum().assign(series="Total")
    by_series = pd.concat([users.rename(columns={"tier": "series"}), total_users], ignore_index=True)
    answers = pd.concat([tiers, nps_total.assign(series="Total")], ignore_index=True)
    frame = by_series.merge(answers[["month", "series", "nps", "answers"]], on=["month", "series"], how="outer")
    frame["answers"] = frame["answers"].fillna(0).astype(int)
    frame = frame.sort_values(["month", "series"]).reset_index(drop=True)
    return [
        {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in row.items()}
        for row in frame[["month", "series", "nps", "answers", "dau", "mau_lower_bound"]].to_dict(orient="records")
    ]
