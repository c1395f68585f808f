"""Stable public path ``cfxlib.forecast`` (the monthly forecaster), kept for the contract; the code lives in :mod:`cfxlib.metrics.forecast`."""

from cfxlib.metrics.forecast import *  # noqa: F403
