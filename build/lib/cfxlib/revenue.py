"""Stable public path ``cfxlib.revenue`` (MRR, ARR and MRR movements), kept for the contract; the code lives in :mod:`cfxlib.metrics.revenue`."""

from cfxlib.metrics.revenue import *  # noqa: F403
