"""Churn drivers by name, and the wording helpers their reasons use: what the playbook
catalogue is checked against, without loading the churn model's machine-learning stack."""

from __future__ import annotations

from cfxlib.core.errors import UserError

DRIVER_FEATURES = {
    "falling_usage": ("usage_trend", -1),
    "low_utilisation": ("utilisation", -1),
    "ticket_backlog": ("open_overdue", +1),
    "slow_ticket_resolution": ("ticket_sla_share", -1),
    "weak_downtime_reduction": ("downtime_reduction", -1),
    "low_nps": ("nps_mean", -1),
    "short_tenure": ("tenure_months", -1),
    "shrinking_revenue": ("mrr_change_3m", -1),
    "renewal_due": ("months_to_renewal", -1),
}
"""Driver name -> (feature, direction in which the feature raises risk)."""


class UsageError(UserError):
    """A churn or playbook input the user can fix (an as-of month outside the data, a bad
    playbook catalogue, too little history to train on)."""


def plural(n: float, word: str) -> str:
    """``1 month``, ``3 months``, ``0 tickets`` (English plural with s)."""
    n = round(float(n))
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"
