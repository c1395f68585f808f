"""Validate input tables where they live: Parquet read by DuckDB or Spark, every rule as SQL.

For data too large to pass through pandas, ``cfx validate DIR --engine duckdb|spark`` checks the
table files of ``DIR`` (``NAME.parquet``: a file, or for Spark a folder of part files; a local
path or any URL the engine reads, such as ``gs://`` on a cluster with the GCS connector) with the
same rules and messages as ``cfx ingest``: the per-value and per-row rules of
:mod:`cfxlib.store.sql_checks`, then the rules across rows and tables of
:func:`cfxlib.store.warehouse.cross_table_rules`, on typed views of the files. Rows are numbered
1, 2, ... in file order, as the Parquet path of ``cfx ingest`` numbers them.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from cfxlib.contract.issues import Issue, IssueLog
from cfxlib.contract.schemas import OPTIONAL_TABLES, TABLES
from cfxlib.contract.validate import check_header, missing_dir_rule
from cfxlib.store import sql_checks
from cfxlib.store.spark import SparkConnection
from cfxlib.store.sqltext import ident, sql_string
from cfxlib.store.warehouse import check_all, cross_table_rules, event_frames, new_events_sql


def _is_spark(con) -> bool:
    return isinstance(con, SparkConnection)


def _raw_view(con, view: str, location: str) -> None:
    """``view``: the Parquet file(s) at ``location`` with ``_line``, the 1-based row number."""
    if _is_spark(con):
        from pyspark.sql import functions as F

        frame = con.spark.read.parquet(location).select("*", F.col("_metadata.file_path").alias("_part"))
        # A table may be a folder of part files: number rows across the parts in name order,
        # from each part's row count (read from its footer).
        counts = sorted(frame.groupBy("_part").count().collect())
        offsets, start = [], 0
        for part, rows in counts:
            offsets.append((part, start))
            start += rows
        offset = con.spark.createDataFrame(offsets or [("", 0)], "_part string, _offset long")
        (
            frame.select("*", F.col("_metadata.row_index").alias("_row"))
            .join(F.broadcast(offset), "_part")
            .select(
                *[F.col(f"`{c}`") for c in frame.columns if c != "_part"],
                (F.col("_offset") + F.col("_row") + 1).alias("_line"),
            )
            .createOrReplaceTempView(view)
        )
    else:
        con.execute(
            f"CREATE OR REPLACE TEMP VIEW {ident(view)} AS SELECT * EXCLUDE (file_row_number), "
            f"file_row_number + 1 AS _line FROM read_parquet({sql_string(location)}, file_row_number = true)"
        )


def _reason(exc: Exception) -> str:
    """The first line of an engine's error that says what is wrong (a Java error through Py4J
    starts with "An error occurred while calling o42.parquet", the cause on the next line)."""
    lines = [line.strip().removeprefix(": ") for line in str(exc).strip().splitlines()]
    lines = [line for line in lines if line and not line.startswith("An error occurred while calling")]
    reason = lines[0] if lines else type(exc).__name__
    if "GoogleHadoopFileSystem" in reason:
        reason += "; Spark needs the Cloud Storage connector (gcs-connector-hadoop3 in spark.jars) for gs://"
    return reason


def _input_types(con, location: str) -> dict[str, str]:
    """The Parquet input's column names -> the engine's type names (raises when unreadable)."""
    if _is_spark(con):
        return {f.name: f.dataType.simpleString() for f in con.spark.read.parquet(location).schema.fields}
    return {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({sql_string(location)})").fetchall()}


def validate(
    con, data_dir: str | Path, today: date | None = None, keep: int = 20, events: list[dict] | None = None
) -> IssueLog:
    """Every rule of the contract over the Parquet tables in ``data_dir``, on ``con`` (a DuckDB
    connection or a :class:`~cfxlib.store.spark.SparkConnection`), with the live ``events``
    added as :func:`cfxlib.store.warehouse.ingest` adds them. Returns the issues (empty: valid).
    The tables are left as typed temporary views named after them."""
    today = today or date.today()
    log = IssueLog(keep=keep)
    new_events = event_frames(events, log) if events else {}
    base = str(data_dir).rstrip("/")
    local = "://" not in base
    if local and not Path(base).is_dir():
        log.add(Issue(base, None, None, missing_dir_rule(base)))
        return log
    if not _is_spark(con):
        con.execute("SET TimeZone = 'UTC'")  # timestamps with an offset compare in UTC, as in pandas
    files: dict[str, str] = {}
    optional = [(n, s) for n, s in OPTIONAL_TABLES.items() if local and Path(base, f"{n}.parquet").exists()]
    for name, spec in [*TABLES.items(), *optional]:
        file = f"{name}.parquet"
        location = f"{base}/{file}"
        if local and not Path(location).exists():
            hint = (
                " (there is a CSV file: this check and Spark read Parquet; `cfx ingest` on DuckDB reads CSV)"
                if Path(base, f"{name}.csv").exists()
                else ""
            )
            log.add(Issue(file, None, None, f"missing table: no {file} in {base}{hint}"))
            continue
        try:
            types = _input_types(con, location)
        except Exception as exc:  # each engine has its own errors for an unreadable file
            first = _reason(exc)
            log.add(Issue(file, None, None, f"is not a readable Parquet file ({first})"))
            continue
        if not check_header(Path(file), spec, list(types), log):
            continue
        raw = f"_raw_{name}"
        _raw_view(con, raw, location)
        sources = {c: sql_checks.source_type(types[c]) for c in spec.columns}
        check_all(con, sql_checks.value_checks(spec, raw, sources), file, log)
        typed = f"_typed_{name}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {ident(typed)} AS {sql_checks.typed_select(spec, raw, sources)}")
        check_all(con, sql_checks.row_checks(spec, typed), file, log)
        select = f"SELECT {', '.join(ident(c) for c in spec.columns)}, _line FROM {ident(typed)}"  # not _unparsed
        if name in new_events:
            con.register(f"_events_{name}", new_events[name])
            select += f" UNION ALL {new_events_sql(name, f'_events_{name}', typed)}"
        con.execute(f"CREATE OR REPLACE TEMP VIEW {ident(name)} AS {select}")
        files[name] = file
    cross_table_rules(con, files, today, log, loaded=set(files))
    return log
