"""Stable public path ``cfxlib.churn`` (the churn model), kept for the contract; the code lives in :mod:`cfxlib.customers.churn`."""

from cfxlib.customers.churn import *  # noqa: F403
