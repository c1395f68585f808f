"""What the ingested tables hold: coverage, customers and recurring revenue at the as-of date."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from cfxlib.contract.money import round_cents
from cfxlib.contract.rules import account_state_at_sql
from cfxlib.contract.schemas import TIERS
from cfxlib.store import warehouse as wh
from cfxlib.store.sqltext import date_literal

DATA_AS_OF_SQL = """
SELECT greatest(
    (SELECT max(date) FROM usage_daily),
    (SELECT max(date) FROM ops_daily),
    (SELECT max(start_date) FROM subscriptions),
    (SELECT last_day(max(month)) FROM spend_monthly)
)
"""
"""The data's as-of date: the latest day any table reports on."""


def data_as_of(con) -> date:
    return con.execute(DATA_AS_OF_SQL).fetchone()[0]


def last_complete_month(day: date) -> str:
    """``YYYY-MM`` of the last calendar month complete on ``day``: ``day``'s month when ``day``
    is its last day, else the month before. Live events dated today feed live health, never a
    month-end figure: a publication describes a complete month unless ``--as-of`` says otherwise."""
    import calendar

    if day.day == calendar.monthrange(day.year, day.month)[1]:
        return f"{day.year:04d}-{day.month:02d}"
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    return f"{year:04d}-{month:02d}"


def month_is_complete(month: str, today: date) -> bool:
    """Whether calendar month ``YYYY-MM`` has ended by ``today`` (its last day is past or today
    is that last day and the data reach it)."""
    import calendar

    year, mon = (int(x) for x in month.split("-"))
    return date(year, mon, calendar.monthrange(year, mon)[1]) < today


def summary(con) -> dict:
    """Accounts, active subscriptions, MRR and ARR by tier at the data's as-of date, date range,
    from the tables on ``con`` (the warehouse, or the lake's tables on DuckDB or Spark)."""
    meta = wh.ingest_metadata(con)
    as_of = data_as_of(con)
    first = con.execute(
        "SELECT least((SELECT min(date) FROM usage_daily), (SELECT min(start_date) FROM subscriptions))"
    ).fetchone()[0]
    accounts = con.execute("SELECT count(*) FROM accounts").fetchone()[0]
    at = date_literal(as_of)
    active_subs = con.execute(f"SELECT sum(subscriptions) FROM ({account_state_at_sql(at)})").fetchone()[0] or 0
    rows = con.execute(
        f"SELECT tier, count(*) AS customers, sum(mrr) AS mrr FROM ({account_state_at_sql(at)}) "
        "WHERE mrr > 0 GROUP BY tier"
    ).fetchall()
    found = {tier: (n, float(mrr)) for tier, n, mrr in rows}
    by_tier = [
        {
            "tier": t,
            "customers": found.get(t, (0, 0.0))[0],
            "mrr": found.get(t, (0, 0.0))[1],
            "arr": round_cents(12 * found.get(t, (0, 0.0))[1]),
        }
        for t in TIERS
    ]
    mrr = sum(r["mrr"] for r in by_tier)
    return {
        "as_of": as_of.isoformat(),
        "first_date": first.isoformat(),
        "last_date": as_of.isoformat(),
        "data_hash": meta["data_hash"],
        "accounts": accounts,
        "active_subscriptions": active_subs,
        "active_customers": sum(r["customers"] for r in by_tier),
        "by_tier": by_tier,
        "mrr": round_cents(mrr),
        "arr": round_cents(12 * mrr),
    }


def warehouse_summary(path: Path) -> dict:
    """:func:`summary` of the DuckDB warehouse file at ``path``."""
    con = wh.connect(path)
    try:
        return summary(con)
    finally:
        con.close()
