"""Recurring revenue: MRR, ARR and MRR movements, by month and tier.

All heavy work is set-based SQL run by DuckDB (:mod:`cfxlib.engine`), on the warehouse or on
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

from cfxlib.engine import frames_connection, month_start
from cfxlib.schemas import TIERS

MOVEMENTS = ("new", "expansion", "reactivation", "contraction", "churn")

_TIER_LIST = "[" + ", ".join(f"'{t}'" for t in TIERS) + "]"


def _tier_rank(column: str = "tier") -> str:
    """SQL: 1 for Starter, 2 for Professional, 3 for Enterprise."""
    return f"list_position({_TIER_LIST}, {column})"


def account_month_sql(as_of_month: str | None = None) -> str:
    """SQL: one row per account and month with MRR > 0: ``month, account_id, tier, mrr``.

    ``as_of_month`` is a SQL date expression for the last month (default: the month of the
    latest start or end date in ``subscriptions``).
    """
    last = as_of_month or (
        "(SELECT date_trunc('month', greatest(max(start_date), "
        "coalesce(max(end_date - INTERVAL 1 DAY), max(start_date)))) FROM subscriptions)"
    )
    return f"""
    WITH bounds AS (
        SELECT date_trunc('month', min(start_date))::DATE AS first_month, ({last})::DATE AS last_month
        FROM subscriptions
    ),
    months AS (
        SELECT unnest(generate_series(first_month, last_month, INTERVAL 1 MONTH))::DATE AS month
        FROM bounds
    ),
    sub_month AS (
        SELECT m.month, s.account_id, s.tier,
               s.amount_usd / s.billing_period_months AS mrr,
               {_tier_rank("s.tier")} AS tier_rank
        FROM subscriptions s
        JOIN months m
          ON s.start_date <= last_day(m.month)
         AND (s.end_date IS NULL OR s.end_date > last_day(m.month))
    )
    SELECT month, account_id,
           arg_max(tier, (mrr, tier_rank)) AS tier,
           CAST(round(sum(mrr), 2) AS DECIMAL(18, 2)) AS mrr
    FROM sub_month
    GROUP BY month, account_id
    HAVING sum(mrr) > 0
    """


def account_movements_sql(as_of_month: str | None = None) -> str:
    """SQL: one row per account and month from its first active month on, with movements.

    Columns: ``month, account_id, tier`` (attributed), ``mrr_start, mrr_end`` and one column
    per movement. Rows where the account had no MRR in either month carry zeros and no tier.
    """
    return f"""
    WITH am AS ({account_month_sql(as_of_month)}),
    months AS (SELECT DISTINCT month FROM am),
    all_months AS (
        SELECT unnest(generate_series(min(month), max(month), INTERVAL 1 MONTH))::DATE AS month FROM am
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
        months AS (SELECT DISTINCT month FROM rows)
        SELECT strftime(m.month, '%Y-%m') AS month, t.tier, {amounts}
        FROM months m CROSS JOIN tiers t
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
    return None if as_of is None else f"DATE '{month_start(as_of).isoformat()}'"


def _amounts_to_float(frame: pd.DataFrame) -> pd.DataFrame:
    for col in frame.columns:
        if col not in ("month", "tier", "account_id"):
            frame[col] = frame[col].astype("float64")
    return frame


def mrr_movements(
    subscriptions: pd.DataFrame | None = None,
    by: str | None = None,
    *,
    as_of: date | str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """The MRR bridge: one row per month (and per tier when ``by="tier"``).

    Columns ``month`` (``YYYY-MM``), [``tier``], ``mrr_start, new, expansion, reactivation,
    contraction, churn, mrr_end`` in USD, all >= 0, with
    ``mrr_end = mrr_start + new + expansion + reactivation - contraction - churn`` exact to the
    cent in every row. Pass a ``subscriptions`` frame (contract columns) or a warehouse ``con``.
    ``as_of`` (a date or ``YYYY-MM``) sets the last month; default: the data's last month.
    """
    with frames_connection(con, subscriptions=subscriptions) as c:
        frame = c.execute(movements_sql(by, _as_of_sql(as_of))).df()
    return _amounts_to_float(frame)


def account_mrr(
    subscriptions: pd.DataFrame | None = None,
    *,
    as_of: date | str | None = None,
    con: duckdb.DuckDBPyConnection | None = None,
) -> pd.DataFrame:
    """Per account and month with MRR > 0: ``month`` (YYYY-MM), ``account_id, tier, mrr, arr``."""
    sql = f"""
    SELECT strftime(month, '%Y-%m') AS month, account_id, tier, mrr, mrr * 12 AS arr
    FROM ({account_month_sql(_as_of_sql(as_of))}) ORDER BY month, account_id
    """
    with frames_connection(con, subscriptions=subscriptions) as c:
        frame = c.execute(sql).df()
    return _amounts_to_float(frame)
