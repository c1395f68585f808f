"""Burn, runway and capital efficiency: what the data gives for the funding-status section.

Inputs: monthly MRR and ARR (:func:`cfxlib.metrics.revenue.monthly_metrics`), the
``spend_monthly`` table (sales, marketing, cost of revenue) and the founders' fundraising file
(cash, and the operating expenses the tables lack: R&D and G&A). Amounts are USD; rates are
fractions. Every measure is over the *trailing quarter* (the as-of month and the two before it):

- revenue of a month = its MRR (subscription revenue recognised that month);
- net burn (per month) = mean over the quarter of (sales + marketing + cost of revenue + other
  operating expenses - revenue); negative = cash-flow positive;
- runway (months) = cash / net burn, counted from the cash date; none when not burning or when
  the cash is dated after the month reported (a point-in-time run never quotes a later balance);
- burn multiple = net burn over the quarter / net new ARR over the quarter (ARR now - ARR three
  months before); none when ARR did not grow;
- magic number = (revenue of the quarter - revenue of the quarter before) x 4 / sales and
  marketing spend of the quarter before;
- rule of 40 = ARR growth over 12 months + operating margin of the quarter
  ((revenue - operating expenses) / revenue), both in percent.

Measures that need the operating expenses outside ``spend_monthly`` (burn, runway, burn multiple,
rule of 40) are ``None`` with a reason when the file does not give them: never estimated.
"""

from __future__ import annotations

import pandas as pd

from cfxlib.metrics import revenue

QUARTER = 3


def monthly_cash(con, fundraising: dict | None, monthly: pd.DataFrame) -> pd.DataFrame:
    """Per month: ``revenue, sm_spend, cost_of_revenue, other_opex, operating_expenses, net_burn``.

    ``monthly`` is :func:`cfxlib.metrics.revenue.monthly_metrics` up to the month reported.
    ``other_opex`` (and so ``operating_expenses`` and ``net_burn``) is NaN when the fundraising
    file does not give the monthly operating expenses outside ``spend_monthly``."""
    m = monthly[["month", "mrr", "arr"]].rename(columns={"mrr": "revenue"})
    spend = revenue.spend_by_month(con).rename(columns={"cost_of_revenue_usd": "cost_of_revenue"})
    frame = m.merge(spend, on="month", how="left")
    other = ((fundraising or {}).get("finances") or {}).get("other_operating_expenses_usd_per_month")
    frame["other_opex"] = float("nan") if other is None else float(other)
    frame["operating_expenses"] = frame["sm_spend"] + frame["cost_of_revenue"] + frame["other_opex"]
    frame["net_burn"] = frame["operating_expenses"] - frame["revenue"]
    return frame


def _missing(reason: str) -> dict:
    return {"value": None, "reason": reason}


def efficiency(con, fundraising: dict | None, monthly: pd.DataFrame) -> dict:
    """The measures of the module docstring as ``{name: {"value", "reason"}}`` plus ``months``
    (the monthly table's last 12 rows) and ``as_of`` (``monthly`` as in :func:`monthly_cash`)."""
    frame = monthly_cash(con, fundraising, monthly)
    q = frame.tail(QUARTER)
    before = frame.iloc[-2 * QUARTER : -QUARTER]
    finances = (fundraising or {}).get("finances") or {}
    has_opex = finances.get("other_operating_expenses_usd_per_month") is not None
    no_opex = "needs finances.other_operating_expenses_usd_per_month (R&D, G&A) in fundraising.yaml"
    out: dict = {"as_of": frame["month"].iloc[-1], "quarter": [q["month"].iloc[0], q["month"].iloc[-1]]}

    burn = float(q["net_burn"].mean()) if has_opex and len(q) == QUARTER else None
    out["net_burn_per_month"] = {"value": burn, "reason": None} if burn is not None else _missing(no_opex)
    cash = finances.get("cash_usd")
    month_end = pd.Period(out["as_of"], freq="M").end_time.date().isoformat()
    if burn is None:
        out["runway_months"] = _missing(no_opex)
    elif cash is None:
        out["runway_months"] = _missing("needs finances.cash_usd and cash_as_of in fundraising.yaml")
    elif str(finances.get("cash_as_of")) > month_end:
        # a point-in-time report never quotes a later balance
        out["runway_months"] = _missing("the file's cash balance is dated after the month reported")
    elif burn <= 0:
        out["runway_months"] = _missing("not burning cash: revenue covers operating expenses")
    else:
        out["runway_months"] = {"value": float(cash) / burn, "reason": None, "from": finances.get("cash_as_of")}

    net_new_arr = float(frame["arr"].iloc[-1] - frame["arr"].iloc[-1 - QUARTER]) if len(frame) > QUARTER else None
    out["net_new_arr_quarter"] = {"value": net_new_arr, "reason": None}
    if burn is None:
        out["burn_multiple"] = _missing(no_opex)
    elif net_new_arr is None or net_new_arr <= 0:
        out["burn_multiple"] = _missing("ARR did not grow over the quarter")
    else:
        out["burn_multiple"] = {"value": burn * QUARTER / net_new_arr, "reason": None}

    if len(before) == QUARTER and before["sm_spend"].notna().all() and before["sm_spend"].sum() > 0:
        magic = (q["revenue"].sum() - before["revenue"].sum()) * 4 / before["sm_spend"].sum()
        out["magic_number"] = {"value": float(magic), "reason": None}
    else:
        out["magic_number"] = _missing("needs six months of revenue and sales and marketing spend")

    growth = (
        float(frame["arr"].iloc[-1] / frame["arr"].iloc[-13] - 1)
        if len(frame) > 12 and frame["arr"].iloc[-13] > 0
        else None
    )
    out["arr_growth_12m"] = {"value": growth, "reason": None if growth is not None else "needs 13 months of ARR"}
    margin = float((q["revenue"].sum() - q["operating_expenses"].sum()) / q["revenue"].sum()) if has_opex else None
    out["operating_margin"] = {"value": margin, "reason": None} if margin is not None else _missing(no_opex)
    if margin is None or growth is None:
        out["rule_of_40"] = _missing(no_opex if margin is None else "needs 13 months of ARR")
    else:
        out["rule_of_40"] = {"value": 100 * (growth + margin), "reason": None}
    out["months"] = frame.tail(12).to_dict("records")
    return out
