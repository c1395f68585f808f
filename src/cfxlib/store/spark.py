"""Apache Spark as a second engine for the same SQL (``engine="spark"``).

The set-based computations are written once, in DuckDB's dialect (:mod:`cfxlib.contract.rules`,
:mod:`cfxlib.metrics.revenue`), and transpiled to Spark SQL with SQLGlot. The differences
between the engines are handled here, once:

* **Integer division**: the SQL uses ``//`` on ``BIGINT`` (twelfths of a cent); SQLGlot writes
  Spark's ``DIV``, which is integer division too. ``/`` on integers is never used for money.
* **Dates**: input date columns are cast to ``DATE`` when a frame is registered (pandas gives
  timestamps), and the session runs in UTC, so ``last_day``, ``date_trunc`` and month series
  mean the same days.
* **arg_max ties**: the SQL orders by one number (MRR twelfths x 4 + tier rank), so Spark's
  ``max_by`` and DuckDB's ``arg_max`` see no tie between different tiers.
* **Generators**: ``unnest(generate_series(...))`` appears only as a whole select item over a
  subquery, which Spark accepts as ``explode(sequence(...))``.
* **Nulls and ANSI mode**: sums over no rows are wrapped in ``coalesce``; Spark's ANSI mode is on
  (its default since 4.0), so a division by zero fails loudly instead of returning null — the
  SQL guards divisions with ``nullif``.
* **Decimals**: money sums stay ``DECIMAL(18, 2)``; results come back as ``Decimal`` and are
  turned into cents-exact floats by the caller, as with DuckDB.

Models and forecasts keep running in Python on the aggregated frames.
"""

from __future__ import annotations

import functools
import os

import pandas as pd
import sqlglot

from cfxlib.contract.schemas import TABLES


def to_spark(sql: str) -> str:
    """DuckDB SQL as Spark SQL."""
    return sqlglot.transpile(sql, read="duckdb", write="spark", pretty=False)[0]


@functools.lru_cache(maxsize=4)
def session(master: str = "local[2]"):
    """A SparkSession (one per master, reused): UTC, Arrow on, no UI, few shuffle partitions."""
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", __import__("sys").executable)
    spark = (
        SparkSession.builder.master(master)
        .appName("cfx")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.memory", "2g")
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


class _Result:
    def __init__(self, frame):
        self._frame = frame

    def df(self) -> pd.DataFrame:
        return self._frame.toPandas()


class SparkConnection:
    """What the library needs of a connection (``execute(sql).df()``), on Spark."""

    def __init__(self, spark):
        self.spark = spark

    def register(self, name: str, frame: pd.DataFrame) -> None:
        spec = TABLES.get(name)
        sdf = self.spark.createDataFrame(frame)
        if spec is not None:
            for column, col in spec.columns.items():
                if column in frame.columns and col.metadata["kind"] == "date":
                    sdf = sdf.withColumn(column, sdf[column].cast("date"))
        sdf.createOrReplaceTempView(name)

    def execute(self, sql: str) -> _Result:
        return _Result(self.spark.sql(to_spark(sql)))
