"""The demo company's hidden behaviour: engagement dynamics and the churn hazard.

Each account has a hidden engagement level ``e`` (a logit-scale number, around 0.4 for a typical
customer) that drifts month to month as a mean-reverting AR(1) process with occasional shocks
(a champion leaves, a plant closes). Observable behaviour follows from it with noise:

- seat utilisation ``sigmoid(e + 0.3)`` drives daily active users and work orders;
- support friction ``exp(-0.6 e - 0.5 s)`` (``s`` = the account's support experience) drives
  ticket volume and resolution times, hence backlog;
- downtime reduction ``d * sigmoid(e + 0.5) * (1 - exp(-tenure / 4))`` (``d`` = the account's
  attainable reduction) drives reported downtime against the baseline;
- NPS answers centre on ``7.3 + 1.6 e + 0.8 s``.

The monthly churn hazard rises with falling engagement, friction and poor downtime reduction,
and falls with tenure and tier (:func:`hazard`). Annual plans can only churn at renewal, where
the hazard of the year is compounded (:data:`ANNUAL_RENEWAL_EXPONENT`). The same functions
compute the true 3-month churn probability written to ``_truth/`` (:func:`p_churn_within`).
"""

from __future__ import annotations

import numpy as np

THETA = 0.15
"""Monthly mean reversion of engagement towards the account's own level."""
SIGMA = 0.30
"""Monthly engagement noise (standard deviation, logit units)."""
SHOCK_P = 0.02
"""Monthly probability of a negative engagement shock."""
SHOCK_SIZE = 1.4

TIER_EFFECT = np.array([0.0, -0.35, -0.8])
"""Hazard logit offsets for Starter, Professional, Enterprise."""
MONTHLY_PLAN_EFFECT = 0.35
ANNUAL_RENEWAL_EXPONENT = 6.0
"""At an annual renewal the churn probability is 1 - (1 - h) ** 6."""
INTERCEPT = -3.2


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def step_engagement(e, mu, rng):
    """One month of engagement drift (vectorised)."""
    shock = rng.random(e.shape) < SHOCK_P
    return e + THETA * (mu - e) + SIGMA * rng.standard_normal(e.shape) - SHOCK_SIZE * shock


def friction(e, s):
    """Expected support friction (1 = typical): ticket volume x resolution time."""
    return np.exp(-0.6 * e - 0.5 * s)


def downtime_reduction(e, d, tenure_months):
    """Expected share of baseline downtime avoided (0-1)."""
    return d * sigmoid(e + 0.5) * (1.0 - np.exp(-(tenure_months + 1) / 4.0))


def hazard(e, s, d, tenure_months, tier, monthly_plan):
    """Monthly churn hazard (0-1) given the month's engagement and the account's traits."""
    z = (
        INTERCEPT
        - 1.1 * e
        + 0.8 * (friction(e, s) - 1.0)
        - 2.5 * (downtime_reduction(e, d, tenure_months) - 0.3)
        - 0.45 * np.log1p(tenure_months)
        + TIER_EFFECT[tier]
        + MONTHLY_PLAN_EFFECT * monthly_plan
    )
    return sigmoid(z)


def churn_probability(h, monthly_plan, renewal_due):
    """Probability of churning this month: monthly plans any month, annual only at renewal."""
    annual = 1.0 - (1.0 - h) ** ANNUAL_RENEWAL_EXPONENT
    return np.where(monthly_plan, h, np.where(renewal_due, annual, 0.0))


def p_churn_within(
    e, mu, s, d, tenure_months, tier, monthly_plan, months_to_renewal, rng, horizon=3, draws=64, hazard_scale=1.0
):
    """True probability of churning within ``horizon`` months, by Monte Carlo over engagement.

    All arguments describe accounts active at a month end (arrays of one length);
    ``months_to_renewal`` is 1..12 (months until the next annual renewal month);
    ``hazard_scale`` multiplies the monthly hazard (an intervention's effect).
    """
    n = e.shape[0]
    ee = np.repeat(e[None, :], draws, axis=0)
    survive = np.ones((draws, n))
    for k in range(1, horizon + 1):
        ee = step_engagement(ee, mu[None, :], rng)
        h = hazard(ee, s, d, tenure_months + k, tier, monthly_plan) * hazard_scale
        renewal = (months_to_renewal - k) % 12 == 0
        survive *= 1.0 - churn_probability(h, monthly_plan, renewal)
    return 1.0 - survive.mean(axis=0)
