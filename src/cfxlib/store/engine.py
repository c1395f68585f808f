"""The SQL engine behind the heavy aggregations: DuckDB, on the warehouse or on DataFrames.

Library functions take either a warehouse connection or plain DataFrames. With DataFrames, an
in-memory DuckDB connection exposes each frame as a view under its table name, so one SQL text
serves both (and, later, a distributed SQL engine).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import date

import duckdb
import pandas as pd

from cfxlib.contract.schemas import TABLES


def month_start(value: date | str | pd.Timestamp) -> date:
    """The first day of the month of ``value`` (a date, ``YYYY-MM`` or ``YYYY-MM-DD``)."""
    return pd.Period(value, freq="M").start_time.date()


def _prepared(name: str, frame: pd.DataFrame) -> pd.DataFrame:
    """Coerce contract date columns of a caller's frame to timestamps (strings allowed)."""
    spec = TABLES.get(name)
    if spec is None:
        return frame
    frame = frame.copy()
    for column, col in spec.columns.items():
        if column in frame.columns and col.metadata["kind"] in ("date", "month", "timestamp"):
            frame[column] = pd.to_datetime(frame[column])
    return frame


@contextlib.contextmanager
def frames_connection(
    con: duckdb.DuckDBPyConnection | None = None, **frames: pd.DataFrame | None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield ``con`` when given; otherwise an in-memory connection with ``frames`` as tables."""
    given = {k: v for k, v in frames.items() if v is not None}
    if con is not None and not given:
        yield con
        return
    if not given:
        raise ValueError(f"pass the {', '.join(frames)} frame(s) or a warehouse connection")
    mem = duckdb.connect()
    try:
        for name, frame in given.items():
            mem.register(f"_{name}_frame", _prepared(name, frame))
            mem.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "_{name}_frame"')
        yield mem
    finally:
        mem.close()
