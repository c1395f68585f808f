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


ENGINES = ("duckdb", "spark")


@contextlib.contextmanager
def frames_connection(
    con: duckdb.DuckDBPyConnection | None = None, engine: str = "duckdb", **frames: pd.DataFrame | None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Yield ``con`` when given; otherwise a connection with ``frames`` as tables: in-memory
    DuckDB, or Spark (``engine="spark"``, :mod:`cfxlib.store.spark`) running the same SQL."""
    given = {k: v for k, v in frames.items() if v is not None}
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if con is not None and not given:
        yield con
        return
    if not given:
        raise ValueError(f"pass the {', '.join(frames)} frame(s) or a warehouse connection")
    if engine == "spark":
        from cfxlib.store import spark

        connection = spark.SparkConnection(spark.session())
        for name, frame in given.items():
            connection.register(name, _prepared(name, frame))
        yield connection
        return
    mem = duckdb.connect()
    try:
        for name, frame in given.items():
            mem.register(f"_{name}_frame", _prepared(name, frame))
            mem.execute(f'CREATE VIEW "{name}" AS SELECT * FROM "_{name}_frame"')
        yield mem
    finally:
        mem.close()
