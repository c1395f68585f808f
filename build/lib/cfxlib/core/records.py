"""JSON-ready values from pandas and numpy: NaN and NaT become null, numpy scalars plain numbers."""

from __future__ import annotations

import math

import pandas as pd


def jsonable(value):
    """JSON-safe: NaN/inf -> None, numpy scalars -> Python, timestamps -> ISO strings."""
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m") if value.day == 1 and value.hour == 0 else value.isoformat()
    if hasattr(value, "item") and not isinstance(value, str):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def records(frame: pd.DataFrame) -> list[dict]:
    """A frame as JSON-safe records."""
    return [jsonable(r) for r in frame.to_dict(orient="records")]
