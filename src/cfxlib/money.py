"""Money: US dollars in whole cents, rounded once, the same way everywhere.

Amounts are computed exactly in SQL (``DECIMAL``, see :mod:`cfxlib.rules`). In Python they travel
as float64 values that each hold a whole number of cents (exact to the cent below $90 trillion).
These helpers keep them that way:

- :func:`round_cents` makes each value the float nearest its whole cents after float arithmetic
  on cent values (a sum or ``12 x MRR``), whose error is far below half a cent;
- :func:`to_decimal` and :func:`cents` give the exact value;
- :func:`half_up` rounds an exact amount (a ``Decimal`` or ``Fraction``) to the cent, half away
  from zero, as the contract defines.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

import numpy as np
import pandas as pd

CENT = Decimal("0.01")


def round_cents(values):
    """Money value(s) as the float(s) nearest their whole cents (NaN stays NaN).

    Works on a float, a numpy array or a pandas Series. Only for values that already are
    cents up to float error; exact halves must be rounded with :func:`half_up` first."""
    if isinstance(values, pd.Series):
        return pd.Series(np.rint(values.to_numpy(dtype=float) * 100) / 100, index=values.index, name=values.name)
    if isinstance(values, np.ndarray):
        return np.rint(values.astype(float) * 100) / 100
    if values is None:
        return None
    value = float(values)
    return value if np.isnan(value) else float(np.rint(value * 100) / 100)


def half_up(amount: Decimal | Fraction | int | str) -> Decimal:
    """An exact amount rounded to the cent, half away from zero (never through binary floats)."""
    if isinstance(amount, Fraction):
        sign = -1 if amount < 0 else 1
        whole = int(abs(amount) * 100 + Fraction(1, 2))
        return Decimal(sign * whole) / 100
    return Decimal(amount).quantize(CENT, rounding=ROUND_HALF_UP)


def to_decimal(value: float) -> Decimal:
    """A float holding whole cents as its exact ``Decimal`` (``605737.3200000001`` -> ``605737.32``)."""
    return Decimal(repr(round_cents(value))).quantize(CENT)


def cents(value: float) -> int:
    """A float holding whole cents as an integer number of cents."""
    return int(np.rint(float(value) * 100))
