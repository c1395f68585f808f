"""The site's number formats: money, percentages, plain numbers (no pandas, so a dashboard
kernel can import them cheaply). A missing value (None or NaN) reads ``n/a``."""

from __future__ import annotations

import math


def _missing(x) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def usd(x, digits: int = 0) -> str:
    """Dollars: ``$1.25M`` and ``$3.40B`` from a million up, else ``$12,345`` (``digits`` decimals)."""
    if _missing(x):
        return "n/a"
    for div, suffix in ((1e9, "B"), (1e6, "M")):
        if abs(x) >= div:
            return f"${x / div:,.2f}{suffix}"
    return f"${x:,.{digits}f}"


def pct(x, digits: int = 1, signed: bool = False) -> str:
    """A fraction as a percentage: 0.123 reads ``12.3%`` (``+12.3%`` when ``signed``)."""
    if _missing(x):
        return "n/a"
    return f"{100 * x:{'+' if signed else ''}.{digits}f}%"


def num(x, digits: int = 1) -> str:
    """A number with thousands separators and ``digits`` decimals."""
    if _missing(x):
        return "n/a"
    return f"{x:,.{digits}f}"
