"""Money: US dollars in whole cents, rounded once, the same way everywhere.

Amounts are computed exactly in SQL (``DECIMAL``; the half-cent rounding of an account's MRR is
defined in :mod:`cfxlib.contract.rules`). In Python they travel as float64 values that each hold
a whole number of cents (exact to the cent below $90 trillion). :func:`round_cents` keeps them
that way after float arithmetic on cent values (a sum, ``12 x MRR``), whose error is far below
half a cent, so JSON shows ``605737.32``, never ``605737.3200000001``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def round_cents(values):
    """Money value(s) as the float(s) nearest their whole cents (NaN stays NaN).

    Works on a float, a numpy array or a pandas Series. Only for values that already are cents up
    to float error: an exact half cent must be rounded where it is computed exactly (in SQL)."""
    if isinstance(values, pd.Series):
        return pd.Series(np.rint(values.to_numpy(dtype=float) * 100) / 100, index=values.index, name=values.name)
    if isinstance(values, np.ndarray):
        return np.rint(values.astype(float) * 100) / 100
    if values is None:
        return None
    value = float(values)
    return value if np.isnan(value) else float(np.rint(value * 100) / 100)


MONEY_FIELDS = frozenset(
    {
        *("mrr", "arr", "mrr_start", "new", "expansion", "reactivation", "contraction", "churn", "mrr_end"),
        *("mrr_then", "mrr_now", "mrr_now_capped", "arpa", "arpa_window", "cac", "ltv", "ltv_lo", "ltv_hi"),
        *("arr_at_risk", "value_usd", "subscription_cost", "downtime_cost_per_hour_usd"),
        *("yhat", "yhat_lo_80", "yhat_hi_80", "yhat_lo_95", "yhat_hi_95", "lo_80", "hi_80", "lo_95", "hi_95"),
        *("arr_bottom_up", "gap_usd", "new_arr_per_month", "sm_spend", "cost_of_revenue_usd"),
        *("actual", "yhat_base", "revenue", "cost_of_revenue", "other_opex", "operating_expenses", "net_burn"),
    }
)
"""Fields of the JSON payloads that hold US dollars: written in whole cents."""


def round_money_fields(data):
    """A JSON-ready structure with every :data:`MONEY_FIELDS` number rounded to the cent (amounts
    that are averages or forecasts, such as ARPA or a forecast's ARR, are shown to the cent too)."""
    if isinstance(data, dict):
        return {
            k: (round_cents(v) if k in MONEY_FIELDS and isinstance(v, float) else round_money_fields(v))
            for k, v in data.items()
        }
    if isinstance(data, list):
        return [round_money_fields(v) for v in data]
    return data


CENT_ABSOLUTE_TOLERANCE = 1e-6
"""How far (in cents) a parsed amount x 100 may sit from a whole number and still be whole cents."""
CENT_RELATIVE_TOLERANCE = 4 * 2.0**-52
"""Plus four units in the last place of the amount in cents: 153,242,136.23 x 100 is
15,324,213,623.000002 in binary floating point, yet the amount is whole cents."""


def off_cents(values) -> np.ndarray:
    """True where an amount (USD, float) is not a whole number of cents, up to float error.

    ``values`` is an array-like of floats (NaN gives False). The rule, the one
    :func:`off_cents_sql` spells in SQL: ``|100 x - round(100 x)| > 1e-6 + |100 x| x 4 ulp``."""
    scaled = np.asarray(values, dtype=float) * 100
    with np.errstate(invalid="ignore"):
        fraction = np.abs(scaled - np.rint(scaled))
        return (
            np.nan_to_num(fraction) > CENT_ABSOLUTE_TOLERANCE + np.abs(np.nan_to_num(scaled)) * CENT_RELATIVE_TOLERANCE
        )


def off_cents_sql(x: str) -> str:
    """SQL condition: the DOUBLE expression ``x`` (USD) is not a whole number of cents (as :func:`off_cents`)."""
    return f"abs({x} * 100 - round({x} * 100)) > {CENT_ABSOLUTE_TOLERANCE!r} + abs({x} * 100) * {CENT_RELATIVE_TOLERANCE!r}"
