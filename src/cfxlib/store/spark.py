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
* **Decimals and dates in results**: money sums stay ``DECIMAL(18, 2)`` in SQL and arrive in
  pandas as float64, dates as datetime64 — what DuckDB's ``.df()`` gives — so the Python code
  after the SQL sees the same frames.

Models and forecasts keep running in Python on the aggregated frames.
"""

from __future__ import annotations

import functools
import itertools
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
import sqlglot
from sqlglot import exp

from cfxlib.contract.schemas import TABLES


def _depth(node: exp.Expression) -> int:
    depth = 0
    while node.parent is not None:
        node, depth = node.parent, depth + 1
    return depth


def _inside(node: exp.Expression, ancestor: exp.Expression) -> bool:
    while node is not None:
        if node is ancestor:
            return True
        node = node.parent
    return False


def _unique_ctes(tree: exp.Expression) -> exp.Expression:
    """Give every nested CTE a name of its own.

    SQLGlot writes nested ``WITH`` clauses as one top-level ``WITH`` for Spark, so two
    subqueries that each define ``usage`` would clash. Each nested CTE is renamed (deepest
    first) in the query that owns it; a reference keeps the old name as its alias, so qualified
    columns (``usage.users_30d``) still resolve."""
    counter = itertools.count(1)
    for with_ in sorted(tree.find_all(exp.With), key=_depth, reverse=True):
        owner = with_.parent
        if owner is tree:
            continue
        ctes = list(with_.expressions)
        for i, cte in enumerate(ctes):
            old, new = cte.alias, f"{cte.alias}__{next(counter)}"
            hidden = ctes[: i + 1]  # a CTE is not visible in its own body or in the ones before it
            for table in owner.find_all(exp.Table):
                if any(_inside(table, other) for other in hidden):
                    continue
                if table.name == old and not table.args.get("db"):
                    if not table.alias:
                        table.set("alias", exp.TableAlias(this=exp.to_identifier(old)))
                    table.set("this", exp.to_identifier(new))
            cte.set("alias", exp.TableAlias(this=exp.to_identifier(new)))
    return tree


@functools.lru_cache(maxsize=512)
def to_spark(sql: str) -> str:
    """DuckDB SQL as Spark SQL (cached: the library builds the same texts again and again)."""
    tree = _unique_ctes(sqlglot.parse_one(sql, read="duckdb"))
    return tree.sql(dialect="spark")


GCS_FILESYSTEM = "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFileSystem"


def gcs_connector_conf(master: str) -> dict[str, str]:
    """Spark settings that make ``gs://`` paths work in local mode: Google's Cloud Storage
    connector (``gcs-connector-hadoop3``, the jar in the ``pyspark-gcs`` wheel). A cluster
    brings its own (Dataproc has it; elsewhere ``spark.jars`` in its spark-defaults), so
    nothing is added for another master."""
    import importlib.util

    spec = importlib.util.find_spec("pyspark_gcs")
    if not master.startswith("local") or spec is None or not spec.submodule_search_locations:
        return {}
    jars = sorted(Path(spec.submodule_search_locations[0], "jars").glob("gcs-connector-hadoop3-*.jar"))
    if not jars:
        return {}
    hadoop = {
        "fs.gs.impl": GCS_FILESYSTEM,
        "fs.AbstractFileSystem.gs.impl": "com.google.cloud.hadoop.fs.gcs.GoogleHadoopFS",
        # Hadoop 3.4's defaults write these sizes as "64m"; connector 2.2 reads plain bytes
        "fs.gs.block.size": str(64 << 20),
        "fs.gs.rewrite.max.chunk.size": str(512 << 20),
        "fs.gs.outputstream.buffer.size": str(8 << 20),
        "fs.gs.inputstream.inplace.seek.limit": str(8 << 20),
        "fs.gs.inputstream.min.range.request.size": str(2 << 20),
    }
    return {"spark.jars": str(jars[-1])} | {f"spark.hadoop.{k}": v for k, v in hadoop.items()}


def gcs_credentials(spark) -> None:
    """Point ``gs://`` at what the environment says, as Google's clients do: an emulator
    (``STORAGE_EMULATOR_HOST``, anonymous) or a service account key file
    (``GOOGLE_APPLICATION_CREDENTIALS``); otherwise the connector's default (the machine's
    metadata server). Applied to file systems opened after the call."""
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    emulator = os.environ.get("STORAGE_EMULATOR_HOST")
    keyfile = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if emulator:
        conf.set("fs.gs.storage.root.url", emulator.rstrip("/") + "/")
        conf.set("fs.gs.auth.service.account.enable", "false")
        conf.set("fs.gs.auth.null.enable", "true")
        conf.set("fs.gs.project.id", os.environ.get("GOOGLE_CLOUD_PROJECT", "test"))
    elif keyfile:
        conf.set("fs.gs.auth.service.account.json.keyfile", keyfile)


@functools.lru_cache(maxsize=4)
def _session(master: str, driver_memory: str, conf: tuple[tuple[str, str], ...] = ()):
    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", __import__("sys").executable)
    builder = (
        SparkSession.builder.master(master)
        .appName("cfx")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.ansi.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.driver.memory", driver_memory)
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.warehouse.dir", os.path.join(tempfile.gettempdir(), "cfx-spark-warehouse"))
    )
    for key, value in (gcs_connector_conf(master) | dict(conf)).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def session(master: str = "local[2]", driver_memory: str = "2g", conf: Mapping[str, str] | None = None):
    """A SparkSession (one per master, reused): UTC, Arrow on, no UI, few shuffle partitions,
    ``gs://`` through Google's connector (:func:`gcs_connector_conf`, :func:`gcs_credentials`).

    ``conf``: more Spark properties (the ``spark.conf`` setting), applied last, so they win over
    these defaults. Properties of the JVM itself (``spark.driver.extraJavaOptions``) take effect
    only for the first session of a process, when its JVM starts."""
    spark = _session(master, driver_memory, tuple(sorted((conf or {}).items())))
    gcs_credentials(spark)
    return spark


class _Result:
    def __init__(self, frame):
        self._frame = frame

    @property
    def frame(self):
        """The Spark DataFrame (lazy: nothing has run yet)."""
        return self._frame

    def df(self) -> pd.DataFrame:
        """As DuckDB's ``.df()`` gives it: decimals as float64, dates as datetime64."""
        from pyspark.sql import functions as F
        from pyspark.sql.types import DateType, DecimalType

        fields = self._frame.schema.fields
        decimals = [f.name for f in fields if isinstance(f.dataType, DecimalType)]
        frame = self._frame
        if decimals:
            frame = frame.select(
                *[F.col(f.name).cast("double").alias(f.name) if f.name in decimals else F.col(f.name) for f in fields]
            )
        out = frame.toPandas()
        for f in fields:
            if isinstance(f.dataType, DateType):
                out[f.name] = pd.to_datetime(out[f.name])
        return out

    def fetchall(self) -> list[tuple]:
        return [tuple(row) for row in self._frame.collect()]

    def fetchone(self) -> tuple | None:
        rows = self._frame.limit(1).collect()
        return tuple(rows[0]) if rows else None


class SparkConnection:
    """What the library needs of a connection (``execute(sql)`` with ``df()``, ``fetchall()``,
    ``fetchone()``), on Spark; tables are temporary views."""

    def __init__(self, spark):
        self.spark = spark

    @classmethod
    def from_parquet(
        cls,
        folder: str | Path,
        master: str = "local[2]",
        driver_memory: str = "2g",
        tables: list[str] | None = None,
        conf: Mapping[str, str] | None = None,
    ) -> SparkConnection:
        """Each ``table-NAME.parquet`` (a file or a folder of parts) in ``folder`` (a local path or
        a URL) as the table ``NAME``: those of ``tables``, or (local folders) every one there.
        ``conf``: see :func:`session`."""
        connection = cls(session(master, driver_memory, conf))
        base = str(folder).rstrip("/")
        if tables is None:
            tables = sorted(p.stem.removeprefix("table-") for p in Path(base).glob("table-*.parquet"))
        for name in tables:
            connection.spark.read.parquet(f"{base}/table-{name}.parquet").createOrReplaceTempView(name)
        return connection

    def register_rows(self, name: str, rows: list[tuple], schema: str) -> None:
        """Small rows (``schema`` in Spark's DDL, e.g. ``"key string, value string"``) as table ``name``."""
        self.spark.createDataFrame(rows, schema).createOrReplaceTempView(name)

    def close(self) -> None:
        """Nothing to close: the session is shared by the process."""

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
