"""Business rules, each defined once and imported everywhere it applies.

The contract's definitions (``../shared/CONTRACT.md``, ``docs/metrics.md``) as SQL fragments that
every computation composes — revenue, health, churn, the warehouse summary and the data-quality
step — so they cannot drift apart:

- *Active subscription* at a date ``D``: ``start_date <= D`` and (``end_date`` missing or
  ``end_date > D``); ``end_date`` is the first day without service.
- *Monthly recurring revenue* of a subscription: ``amount_usd / billing_period_months``, computed
  exactly: in twelfths of a cent (an integer, since a billing period is 1 or 12 months).
- *An account's MRR* at ``D``: the exact sum over its active subscriptions, rounded to the cent
  half away from zero (USD, ``DECIMAL(18, 2)``). Binary floating point never decides a cent.
- *An account's tier* at ``D``: the tier of its active subscription with the largest MRR; ties go
  to the higher tier (Enterprise > Professional > Starter).

Amounts are never negative (the contract requires ``amount_usd >= 0``), so rounding half away
from zero is ``(twelfths + 6) // 12`` in integers.
"""

from __future__ import annotations

from cfxlib.contract.schemas import TIERS

TIER_LIST_SQL = "[" + ", ".join(f"'{t}'" for t in TIERS) + "]"
"""SQL list literal of the tiers, lowest first."""

MONEY_SQL_TYPE = "DECIMAL(18, 2)"
"""The SQL type of every money amount (US dollars, whole cents)."""


def tier_rank_sql(column: str = "tier") -> str:
    """SQL: 1 for Starter, 2 for Professional, 3 for Enterprise (a CASE: the same on every engine)."""
    whens = " ".join(f"WHEN '{t}' THEN {i}" for i, t in enumerate(TIERS, 1))
    return f"(CASE {column} {whens} END)"


def active_at_sql(at: str, alias: str = "s") -> str:
    """SQL condition: subscription ``alias`` is active at the SQL date expression ``at``."""
    return f"({alias}.start_date <= {at} AND ({alias}.end_date IS NULL OR {alias}.end_date > {at}))"


def mrr_twelfths_sql(alias: str = "s") -> str:
    """SQL: a subscription's exact MRR in twelfths of a cent (``BIGINT``).

    ``amount_usd`` holds whole cents (DECIMAL in the warehouse; a double holding a cent value
    when computing on DataFrames, which the cast rounds to the nearest integer number of cents).
    A BIGINT holds 9.2e18 twelfths of a cent: a million accounts of $10M a year each still fit,
    and integer division (``//``) is exact on every engine (Spark: ``DIV``)."""
    return f"(CAST(round({alias}.amount_usd * 100) AS BIGINT) * (12 // {alias}.billing_period_months))"


def cents_from_twelfths_sql(twelfths: str) -> str:
    """SQL: twelfths of a cent (>= 0) rounded half away from zero to whole cents (an integer)."""
    return f"((({twelfths}) + 6) // 12)"


def dollars_from_cents_sql(cents: str) -> str:
    """SQL: whole cents as an exact dollar amount of type :data:`MONEY_SQL_TYPE`."""
    return f"CAST(({cents}) * 0.01 AS {MONEY_SQL_TYPE})"


def account_state_sql(points: str) -> str:
    """SQL: each account's state at each point in time where it has an active subscription.

    ``points`` is a query with one DATE column ``snapshot_date``. Columns: ``snapshot_date, account_id, tier, mrr``
    (USD, rounded to the cent), ``seats`` (summed over active subscriptions) and
    ``subscriptions`` (how many are active). Accounts whose active subscriptions are all free
    (MRR 0) are included with ``mrr = 0``; revenue keeps only ``mrr > 0``.
    """
    # The tier: largest MRR, ties to the higher tier, as one orderable number (x 4 + rank) so
    # every engine's arg_max/max_by compares the same thing.
    return f"""
    SELECT p.snapshot_date, s.account_id,
           arg_max(s.tier, {mrr_twelfths_sql("s")} * 4 + {tier_rank_sql("s.tier")}) AS tier,
           {dollars_from_cents_sql(cents_from_twelfths_sql(f"sum({mrr_twelfths_sql('s')})"))} AS mrr,
           sum(s.seats) AS seats,
           count(*) AS subscriptions
    FROM ({points}) p
    JOIN subscriptions s ON {active_at_sql("p.snapshot_date", "s")}
    GROUP BY p.snapshot_date, s.account_id
    """


def account_state_at_sql(at: str) -> str:
    """SQL: :func:`account_state_sql` at one date (a SQL date expression)."""
    return account_state_sql(f"SELECT CAST({at} AS DATE) AS snapshot_date")


def account_month_sql(as_of_month: str | None = None) -> str:
    """SQL: one row per account and month with MRR > 0: ``month, account_id, tier, mrr``.

    ``mrr`` is exact (``DECIMAL(18, 2)``, rounded to the cent as :mod:`cfxlib.contract.rules` defines);
    the state is taken at each month's last day. ``as_of_month`` is a SQL date expression for
    the last month (default: the month of the latest start or end date in ``subscriptions``).
    """
    last = as_of_month or (
        "(SELECT date_trunc('month', greatest(max(start_date), "
        "coalesce(max(end_date - INTERVAL 1 DAY), max(start_date)))) FROM subscriptions)"
    )
    points = f"""
        SELECT CAST(last_day(month) AS DATE) AS snapshot_date
        FROM (SELECT unnest(generate_series(first_month, last_month, INTERVAL 1 MONTH)) AS month
              FROM (SELECT CAST(date_trunc('month', min(start_date)) AS DATE) AS first_month,
                           CAST(({last}) AS DATE) AS last_month
                    FROM subscriptions) bounds) months
    """
    return f"""
    SELECT date_trunc('month', snapshot_date)::DATE AS month, account_id, tier, mrr
    FROM ({account_state_sql(points)})
    WHERE mrr > 0
    """
