"""Customer ROI: the value of equipment downtime avoided against what the customer pays.

One definition for the KPI summary (:mod:`cfxlib.customers.kpis`), the reports and the ROI
calculator of the customer success dashboard:

- hours avoided per month = baseline downtime hours - downtime hours (the customer's downtime
  before adopting the product, minus now);
- value per month (USD) = hours avoided x cost of one downtime hour;
- ROI multiple = value / subscription cost over the same period (monthly or annual alike);
- payback (months) = one year's subscription cost / value per month.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


def downtime_value_usd(hours_avoided, cost_per_hour_usd):
    """Value of downtime avoided (USD): hours avoided x cost of a downtime hour (arrays work too)."""
    return hours_avoided * cost_per_hour_usd


def roi_multiple(value_usd, subscription_cost_usd):
    """Value / subscription cost over the same period (arrays work too)."""
    return value_usd / subscription_cost_usd


@dataclass(frozen=True)
class Roi:
    hours_avoided_per_month: float
    value_per_month_usd: float
    annual_value_usd: float
    annual_cost_usd: float
    roi_multiple: float | None
    payback_months: float | None

    def as_dict(self) -> dict:
        return asdict(self)


def customer_roi(
    baseline_downtime_hours: float,
    downtime_hours: float,
    cost_per_hour_usd: float,
    subscription_cost_per_month_usd: float,
) -> Roi:
    """ROI of one customer or prospect from monthly downtime before and after, the cost of a
    downtime hour and the monthly subscription cost (all >= 0)."""
    for name, value in (
        ("baseline downtime hours", baseline_downtime_hours),
        ("downtime hours", downtime_hours),
        ("cost per downtime hour", cost_per_hour_usd),
        ("subscription cost per month", subscription_cost_per_month_usd),
    ):
        if value is None or value < 0:
            raise ValueError(f"{name} must be a number >= 0, not {value!r}")
    hours = baseline_downtime_hours - downtime_hours
    value = downtime_value_usd(hours, cost_per_hour_usd)
    cost = subscription_cost_per_month_usd
    return Roi(
        hours_avoided_per_month=round(hours, 2),
        value_per_month_usd=round(value, 2),
        annual_value_usd=round(12 * value, 2),
        annual_cost_usd=round(12 * cost, 2),
        roi_multiple=roi_multiple(value, cost) if cost > 0 else None,
        payback_months=(12 * cost / value) if value > 0 else None,
    )
