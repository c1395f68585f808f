"""Recurring revenue: MRR, ARR and MRR movements, by month and tier.

All heavy work is set-based SQL run by DuckDB (:mod:`cfxlib.store.engine`), on the warehouse or on
DataFrames passed in, so the same queries can move to a distributed SQL engine unchanged.

Definitions (month-end snapshots; see ``docs/metrics.md``):

- A subscription is *active* at month end ``E`` when ``start_date <= E`` and (``end_date`` is
  missing or ``end_date > E``). Its MRR is ``amount_usd / billing_period_months``.
- An account's MRR for month ``M`` is the sum over its subscriptions active at ``M``'s last day,
  rounded to the cent (USD). ARR = 12 x MRR.
- An account's tier in ``M`` is the tier of its active subscription with the largest MRR (ties:
  the higher tier). A movement is attributed to the tier in ``M``, or, for churn, in ``M-1``.
- Movements from ``M-1`` (``prev``) to ``M`` (``cur``): new (prev = 0 < cur, never active at an
  earlier month end), reactivation (prev = 0 < cur, active before), churn (prev > 0 = cur; amount
  prev), expansion (cur > prev > 0; cur - prev), contraction (prev > cur > 0; prev - cur).
- Months run from the first month with any MRR through the as-of month.
"""

from __future__ import annotations

from datetime import date

import duckdb
import pandas as pd

from cfxlib.contract.money import round_cents
from cfxlib.contract.rules import TIER_LIST_SQL, account_month_sql, tier_rank_sql
from cfxlib.contract.schemas import TIERS
from cfxlib.store.engine import frames_connection, month_start
from cfxlib.store.sqltext import date_literal

MOVEMENTS = ("new", "expansion", "reactivation", "contraction", "churn")

_TIER_LIST = TIER_LIST_SQL
_tier_rank = tier_rank_sql


def account_movements_sql(as_of_month: str | None = None) -> str:
    """SQL: one row per account and month from its first active month on, with movements.

    Columns: ``month, account_id, tier`` (attributed), ``mrr_start, mrr_end`` and one column
    per movement. Rows where the account had no MRR in either month carry zeros and no tier.
    """
    return f"""
    WITH am AS ({account_month_sql(as_of_month)}),
    all_months AS (
        SELECT CAST(month AS DATE) AS month
        FROM (SELECT unnest(generate_series(lo, hi, INTERVAL 1 MONTH)) AS month
              FROM (SELECT min(month) AS lo, max(month) AS hi FROM am) bounds) series
    ),
    first_seen AS (SELECT account_id, min(month) AS first_month FROM am GROUP BY account_id),
    grid AS (
        SELECT m.month, f.account_id FROM all_months m JOIN first_seen f ON m.month >= f.first_month
    ),
    filled AS (
        SELECT g.month, g.account_id, coalesce(am.mrr, 0)::DECIMAL(18, 2) AS mrr, am.tier
        FROM grid g LEFT JOIN am ON am.month = g.month AND am.account_id = g.account_id
    ),
    seq AS (
        SELECT *,
               coalesce(lag(mrr) OVER w, 0)::DECIMAL(18, 2) AS prev,
               lag(tier) OVER w AS prev_tier,
               coalesce(max(CASE WHEN mrr > 0 THEN 1 ELSE 0 END) OVER (
                   PARTITION BY account_id ORDER BY month
                   ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), 0) AS was_active
        FROM filled
        WINDOW w AS (PARTITION BY account_id ORDER BY month)
    )
    SELECT month, account_id,
           CASE WHEN mrr > 0 THEN tier WHEN prev > 0 THEN prev_tier END AS tier,
           prev AS mrr_start,
           mrr AS mrr_end,
           CASE WHEN prev = 0 AND mrr > 0 AND was_active = 0 THEN mrr ELSE 0 END AS new,
           CASE WHEN prev > 0 AND mrr > prev THEN mrr - prev ELSE 0 END AS expansion,
           CASE WHEN prev = 0 AND mrr > 0 AND was_active = 1 THEN mrr ELSE 0 END AS reactivation,
           CASE WHEN mrr > 0 AND prev > mrr THEN prev - mrr ELSE 0 END AS contraction,
           CASE WHEN prev > 0 AND mrr = 0 THEN prev ELSE 0 END AS churn
    FROM seq
    """


def movements_sql(by: str | None = None, as_of_month: str | None = None) -> str:
    """SQL: the MRR bridge per month (and per tier when ``by='tier'``)."""
    if by not in (None, "tier"):
        raise ValueError(f"by must be None or 'tier', not {by!r}")
    columns = ("mrr_start", *MOVEMENTS, "mrr_end")
    if by == "tier":
        amounts = ", ".join(f"coalesce(sum(r.{c}), 0)::DECIMAL(18, 2) AS {c}" for c in columns)
        return f"""
        WITH tiers AS (SELECT unnest({_TIER_LIST}) AS tier),
        rows AS ({account_movements_sql(as_of_month)}),
        bridge_months AS (SELECT DISTINCT month FROM rows)
        SELECT strftime(m.month, '%Y-%m') AS month, t.tier, {amounts}
        FROM bridge_months m CROSS JOIN tiers t
        LEFT JOIN rows r ON r.month = m.month AND r.tier = t.tier
        GROUP BY m.month, t.tier
        ORDER BY m.month, {_tier_rank("t.tier")}
        """
    amounts = ", ".join(f"sum({c}) AS {c}" for c in columns)
    return f"""
    SELECT strftime(month, '%Y-%m') AS month, {amounts}
    FROM ({account_movements_sql(as_of_month)})
    GROUP BY month ORDER BY month
    """


def _as_of_sql(as_of: date | str | None) -> str | None:
    return None if as_of is None else date_literal(month_start(as_of))


def _amounts_to_float(frame: pd.DataFrame) -> pd.DataFrame:
    """Money columns as float64 holding whole cents.

    The SQL computes every amount exactly (``DECIMAL``); a float64 holds any amount under
    $90 trillion to the cent, and :func:`cfxlib.contract.money.round_cents` makes each value the float
    nearest its exact cents, so JSON shows ``605737.32``, never ``605737.3200000001``."""
    for col in ("mrr_start", *MOVEMENTS, "mrr_end", "mrr", "arr", "mrr_then", "mrr_now", "mrr_now_capped"):
        if col in frame.columns:
            frame[col] = round_cents(frame[col].astype("float64"))
    return frame


def mrr_movements(
    subscriptions: pd.DataFrame | None = None,
    by: str | None = None,
    *,
    as_of: date | str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    engine: str = "duckdb",
) -> pd.DataFrame:
    """The MRR bridge: one row per month (and per tier when ``by="tier"``).

    Columns ``month`` (``YYYY-MM``), [``tier``], ``mrr_start, new, expansion, reactivation,
    contraction, churn, mrr_end`` in USD, all >= 0, with
    ``mrr_end = mrr_start + new + expansion + reactivation - contraction - churn`` exact to the
    cent in every row. Pass a ``subscriptions`` frame (contract columns) or a warehouse ``con``.
    ``as_of`` (a date or ``YYYY-MM``) sets the last month; default: the data's last month.
    ``engine="spark"`` runs the same SQL on Spark (frames only; :mod:`cfxlib.store.spark`).
    """
    with frames_connection(con, engine, subscriptions=subscriptions) as c:
        frame = c.execute(movements_sql(by, _as_of_sql(as_of))).df()
    return _amounts_to_float(frame)


def account_mrr(
    subscriptions: pd.DataFrame | None = None,
    *,
    as_of: date | str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    engine: str = "duckdb",
) -> pd.DataFrame:
    """Per account and month with MRR > 0: ``month`` (YYYY-MM), ``account_id, tier, mrr, arr``."""
    sql = f"""
    SELECT strftime(month, '%Y-%m') AS month, account_id, tier, mrr, mrr * 12 AS arr
    FROM ({account_month_sql(_as_of_sql(as_of))}) ORDER BY month, account_id
    """
    with frames_connection(con, engine, subscriptions=subscriptions) as c:
        frame = c.execute(sql).df()
    return _amounts_to_float(frame)


# --------------------------------------------------------------------------- monthly metrics

Z95 = 1.959963984540054


def wilson_interval(successes, trials, z: float = Z95) -> tuple:
    """Wilson score interval for a binomial proportion (vectorised; NaN where trials = 0)."""
    import numpy as np

    x = np.asarray(successes, dtype=float)
    n = np.asarray(trials, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = x / n
        denom = 1 + z**2 / n
        centre = (p + z**2 / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    return centre - half, centre + half


def _monthly_sql(by: str | None, as_of_month: str | None) -> str:
    group = "month, tier" if by == "tier" else "month"
    where = "WHERE tier IS NOT NULL" if by == "tier" else ""
    return f"""
    SELECT {group},
           count(*) FILTER (WHERE mrr_end > 0) AS customers,
           count(*) FILTER (WHERE mrr_start > 0) AS start_customers,
           count(*) FILTER (WHERE new > 0) AS new_customers,
           count(*) FILTER (WHERE reactivation > 0) AS reactivated_customers,
           count(*) FILTER (WHERE churn > 0) AS churned_customers,
           {", ".join(f"sum({c}) AS {c}" for c in ("mrr_start", *MOVEMENTS, "mrr_end"))}
    FROM ({account_movements_sql(as_of_month)})
    {where}
    GROUP BY {group}
    """


def monthly_metrics(
    subscriptions: pd.DataFrame | None = None,
    by: str | None = None,
    *,
    as_of: date | str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Revenue metrics per month (and per tier when ``by="tier"``).

    Columns (amounts in USD, rates as fractions):

    - ``mrr`` (= ``mrr_end``), ``arr`` = 12 x MRR, ``customers`` (accounts with MRR > 0 at
      month end), ``arpa`` = MRR / customers (average revenue per account, USD per month);
    - the movements and ``mrr_start`` (see :func:`mrr_movements`), ``new_customers``,
      ``reactivated_customers``, ``churned_customers``, ``start_customers``;
    - ``logo_churn_rate`` = churned customers / customers at the start of the month, with its
      95% Wilson interval ``logo_churn_lo, logo_churn_hi`` (wide when a tier has few customers);
    - ``gross_mrr_churn_rate`` = (churn + contraction) / mrr_start;
    - ``net_mrr_churn_rate`` = (churn + contraction - expansion) / mrr_start (negative = net
      expansion);
    - ``quick_ratio`` = (new + expansion + reactivation) / (contraction + churn);
    - ``arr_growth_mom`` = mrr_end / mrr_start - 1.

    Rates are missing (NaN) where their denominator is 0.
    """
    import numpy as np

    with frames_connection(con, subscriptions=subscriptions) as c:
        frame = c.execute(_monthly_sql(by, _as_of_sql(as_of))).df()
    frame = _amounts_to_float(frame)
    if by == "tier":
        # every tier in every month, zeros where a tier had no accounts
        months = sorted(frame["month"].unique())
        full = pd.MultiIndex.from_product([months, list(TIERS)], names=["month", "tier"])
        frame = frame.set_index(["month", "tier"]).reindex(full, fill_value=0).reset_index()
    if by == "tier":
        frame["tier"] = pd.Categorical(frame["tier"], categories=list(TIERS), ordered=True)
    frame = frame.sort_values(["month", "tier"] if by == "tier" else ["month"]).reset_index(drop=True)
    if by == "tier":
        frame["tier"] = frame["tier"].astype(str)
    frame["month"] = pd.to_datetime(frame["month"]).dt.strftime("%Y-%m")
    for col in ("customers", "start_customers", "new_customers", "reactivated_customers", "churned_customers"):
        frame[col] = frame[col].astype("int64")
    frame["mrr"] = frame["mrr_end"]
    frame["arr"] = round_cents(12 * frame["mrr"])
    with np.errstate(invalid="ignore", divide="ignore"):
        frame["arpa"] = frame["mrr"] / frame["customers"].replace(0, np.nan)
        start = frame["start_customers"].replace(0, np.nan)
        frame["logo_churn_rate"] = frame["churned_customers"] / start
        lo, hi = wilson_interval(frame["churned_customers"], start)
        frame["logo_churn_lo"], frame["logo_churn_hi"] = lo, hi
        base = frame["mrr_start"].replace(0, np.nan)
        frame["gross_mrr_churn_rate"] = (frame["churn"] + frame["contraction"]) / base
        frame["net_mrr_churn_rate"] = (frame["churn"] + frame["contraction"] - frame["expansion"]) / base
        lost = (frame["churn"] + frame["contraction"]).replace(0, np.nan)
        frame["quick_ratio"] = (frame["new"] + frame["expansion"] + frame["reactivation"]) / lost
        frame["arr_growth_mom"] = frame["mrr_end"] / base - 1
    return frame


def retention(
    subscriptions: pd.DataFrame | None = None,
    by: str | None = None,
    *,
    window: int = 12,
    as_of: date | str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Net and gross revenue retention over ``window`` months, for every month that has a cohort.

    The cohort of month ``M`` is every account with MRR > 0 in ``M - window`` (by its tier then
    when ``by="tier"``). ``nrr`` = cohort MRR in ``M`` / cohort MRR in ``M - window`` (ARR gives
    the same ratio); ``grr`` = sum over the cohort of min(MRR in ``M``, MRR then) / cohort MRR
    then, so expansion is excluded and GRR <= 100%. Also ``cohort_customers`` and
    ``retained_customers`` (still with MRR > 0 in ``M``).
    """
    group = ", past.tier" if by == "tier" else ""
    sql = f"""
    WITH am AS ({account_month_sql(_as_of_sql(as_of))}),
    months AS (SELECT DISTINCT month FROM am)
    SELECT strftime(m.month, '%Y-%m') AS month{group},
           count(*) AS cohort_customers,
           count(cur.account_id) AS retained_customers,
           sum(past.mrr) AS mrr_then,
           coalesce(sum(cur.mrr), 0) AS mrr_now,
           sum(least(coalesce(cur.mrr, 0), past.mrr)) AS mrr_now_capped
    FROM months m
    JOIN am past ON past.month = m.month - INTERVAL {int(window)} MONTH
    LEFT JOIN am cur ON cur.account_id = past.account_id AND cur.month = m.month
    GROUP BY m.month{group}
    ORDER BY m.month{group}
    """
    with frames_connection(con, subscriptions=subscriptions) as c:
        frame = _amounts_to_float(c.execute(sql).df())
    frame["nrr"] = frame["mrr_now"] / frame["mrr_then"]
    frame["grr"] = frame["mrr_now_capped"] / frame["mrr_then"]
    return frame


def cohorts(
    subscriptions: pd.DataFrame | None = None,
    *,
    as_of: date | str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Cohort table by signup month (an account's first month with MRR > 0).

    One row per cohort and age (months since signup, 0 = signup month): ``customers`` (cohort
    size), ``active`` (cohort accounts with MRR > 0 at that age), ``logo_retention`` = active /
    customers, ``mrr`` (the cohort's MRR at that age) and ``net_mrr_retention`` = mrr / the
    cohort's MRR at age 0.
    """
    sql = f"""
    WITH am AS ({account_month_sql(_as_of_sql(as_of))}),
    first_month AS (SELECT account_id, min(month) AS cohort FROM am GROUP BY account_id),
    sizes AS (SELECT cohort, count(*) AS customers FROM first_month GROUP BY cohort),
    months AS (SELECT DISTINCT month FROM am),
    grid AS (SELECT s.cohort, m.month, s.customers FROM sizes s JOIN months m ON m.month >= s.cohort)
    SELECT strftime(g.cohort, '%Y-%m') AS cohort,
           CAST(date_diff('month', g.cohort, g.month) AS INTEGER) AS age,
           g.customers,
           count(am.account_id) AS active,
           coalesce(sum(am.mrr), 0) AS mrr
    FROM grid g
    LEFT JOIN first_month f ON f.cohort = g.cohort
    LEFT JOIN am ON am.account_id = f.account_id AND am.month = g.month
    GROUP BY g.cohort, g.month, g.customers
    ORDER BY g.cohort, g.month
    """
    with frames_connection(con, subscriptions=subscriptions) as c:
        frame = _amounts_to_float(c.execute(sql).df())
    frame["customers"] = frame["customers"].astype("int64")
    frame["active"] = frame["active"].astype("int64")
    frame["logo_retention"] = frame["active"] / frame["customers"]
    base = frame[frame["age"] == 0].set_index("cohort")["mrr"]
    frame["net_mrr_retention"] = frame["mrr"] / frame["cohort"].map(base)
    return frame


def spend_by_month(con=None, spend: pd.DataFrame | None = None) -> pd.DataFrame:
    """``month`` (YYYY-MM), ``sm_spend`` (sales + marketing, USD), ``cost_of_revenue_usd``."""
    with frames_connection(con, spend_monthly=spend) as c:
        return c.execute(
            "SELECT strftime(month, '%Y-%m') AS month, sales_usd + marketing_usd AS sm_spend, "
            "cost_of_revenue_usd FROM spend_monthly ORDER BY month"
        ).df()


def unit_economics(
    subscriptions: pd.DataFrame | None = None,
    spend: pd.DataFrame | None = None,
    *,
    as_of: date | str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
    cac_window: int = 3,
    ltv_window: int = 6,
) -> pd.DataFrame:
    """Unit economics per month (company level; USD, months).

    - ``cac`` = sales + marketing spend of the previous month, summed over the trailing
      ``cac_window`` months, / new customers over the same ``cac_window`` months (spend in
      M-1..M-3 against new customers in M..M-2 by default).
    - ``gross_margin`` = (revenue - cost of revenue) / revenue for the month, revenue = MRR.
    - ``ltv`` = ARPA x gross margin / monthly logo churn, each over the trailing ``ltv_window``
      months (ARPA = mean monthly MRR per customer; gross margin and logo churn pooled over the
      window); ``ltv_lo, ltv_hi`` use the 95% Wilson interval of that churn rate.
    - ``ltv_to_cac`` = ltv / cac; ``cac_payback_months`` = cac / (ARPA x gross margin).

    Values are missing (NaN) until their windows are full or where a denominator is 0.
    """
    import numpy as np

    months = monthly_metrics(subscriptions, as_of=as_of, con=con)
    sm = spend_by_month(con, spend)
    frame = months[["month", "mrr", "customers", "start_customers", "new_customers", "churned_customers"]].merge(
        sm, on="month", how="left"
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        prev_spend = frame["sm_spend"].shift(1)
        spend_sum = prev_spend.rolling(cac_window, min_periods=cac_window).sum()
        new_sum = frame["new_customers"].rolling(cac_window, min_periods=cac_window).sum()
        frame["cac"] = spend_sum / new_sum.replace(0, np.nan)
        frame["gross_margin"] = (frame["mrr"] - frame["cost_of_revenue_usd"]) / frame["mrr"].replace(0, np.nan)
        roll = lambda s: s.rolling(ltv_window, min_periods=ltv_window).sum()  # noqa: E731
        arpa = roll(frame["mrr"]) / roll(frame["customers"]).replace(0, np.nan)
        gm = (roll(frame["mrr"]) - roll(frame["cost_of_revenue_usd"])) / roll(frame["mrr"]).replace(0, np.nan)
        churned, start = roll(frame["churned_customers"]), roll(frame["start_customers"]).replace(0, np.nan)
        churn = churned / start
        lo, hi = wilson_interval(churned, start)
        frame["arpa_window"] = arpa
        frame["gross_margin_window"] = gm
        frame["logo_churn_window"] = churn
        frame["ltv"] = arpa * gm / churn.replace(0, np.nan)
        frame["ltv_lo"] = arpa * gm / pd.Series(hi, index=frame.index)
        frame["ltv_hi"] = arpa * gm / pd.Series(lo, index=frame.index).replace(0, np.nan)
        frame["ltv_to_cac"] = frame["ltv"] / frame["cac"]
        frame["cac_payback_months"] = frame["cac"] / (arpa * gm)
    return frame
