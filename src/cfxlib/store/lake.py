"""The validated input tables as Parquet, written by Spark: ``cfx ingest --engine spark``.

At a scale where the input never passes through one machine, the ingest runs on Spark as it runs
on DuckDB, with the same rules and the same outcome: the input tables are read where they live
(``NAME.parquet`` files or folders of part files, a local path or a URL such as ``gs://``),
validated as SQL on the engine (:mod:`cfxlib.store.engine_validate`), the live events added, the
point-in-time view taken (:func:`cfxlib.store.warehouse.point_in_time_select`), and the typed
tables written as ``<location>/<id>/table-NAME.parquet`` (``_line`` kept, money as
``DECIMAL(18, 2)``). Only when everything passed does ``$CFX_HOME/lake/current.json`` (the
pointer, with what :func:`~cfxlib.store.warehouse.ingest` records) switch to the new tables: a
failed ingest leaves the previous tables and pointer untouched.

Whichever ingest ran last, the warehouse's or the lake's, is what every reader sees
(:func:`newest`): Spark reads the lake's Parquet directly (the warehouse only when it is newer, as
an export), and the embedded engine (the live service, ``cfx run`` on DuckDB) reads the lake's
local tables as DuckDB views.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Mapping
from datetime import date, datetime
from pathlib import Path
from typing import Literal

import duckdb

from cfxlib.contract import fundraising
from cfxlib.contract.issues import InputError, Issue, IssueLog
from cfxlib.contract.schemas import ALL_TABLES, OPTIONAL_TABLES, TABLES
from cfxlib.core.home import Home
from cfxlib.core.outputs import fsync_dir
from cfxlib.store import engine_validate, warehouse
from cfxlib.store.eventarchive import canonical
from cfxlib.store.spark import SparkConnection
from cfxlib.store.sqltext import ident, sql_string

POINTER = "current.json"
KEEP = 2
"""Local table folders kept: the current one and the one before (a run may still be reading it)."""


def root(home: Home) -> Path:
    return home.root / "lake"


def current(home: Home) -> dict | None:
    """The pointer of the last Spark ingest (``location`` plus its metadata), or None."""
    path = root(home) / POINTER
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


def newest(home: Home) -> Literal["lake", "warehouse"] | None:
    """Which ingest ran last: the lake's (Spark) or the warehouse's (DuckDB); None: neither."""
    pointer, store = root(home) / POINTER, home.warehouse
    if not pointer.exists():
        return "warehouse" if store.exists() else None
    if not store.exists():
        return "lake"
    return "lake" if pointer.stat().st_mtime_ns >= store.stat().st_mtime_ns else "warehouse"


def _local(location: str) -> bool:
    return "://" not in location


# --------------------------------------------------------------------------- readers


def connect_spark(
    home: Home, master: str = "local[2]", driver_memory: str = "2g", conf: Mapping[str, str] | None = None
) -> SparkConnection:
    """The newest tables on Spark: the lake's Parquet, or the warehouse exported as Parquet.
    ``conf``: more Spark properties (:func:`cfxlib.store.spark.session`)."""
    if newest(home) == "lake":
        meta = current(home)
        connection = SparkConnection.from_parquet(
            meta["location"], master, driver_memory, tables=list(meta.get("files") or TABLES), conf=conf
        )
        connection.register_rows("_ingest", _metadata_rows(meta), "key string, value string")
        return connection
    folder = warehouse.export_parquet(home.warehouse, home.root / "spark-tables")
    return SparkConnection.from_parquet(folder, master, driver_memory, conf=conf)


def connect_embedded(home: Home, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """The newest tables on DuckDB: the warehouse, or the lake's local Parquet as views. With
    ``memory_limit`` (DuckDB's, e.g. ``"2GB"``), the connection spills past it to a folder of
    this process's own under ``$CFX_HOME/tmp`` (see :func:`spill_folder`)."""
    spill = spill_folder(home) if memory_limit is not None else None
    if newest(home) != "lake":
        return warehouse.connect(home.warehouse, memory_limit=memory_limit, spill=spill)
    meta = current(home)
    location = meta["location"]
    if not _local(location):
        raise FileNotFoundError(
            f"the last ingest wrote its tables to {location}, which only Spark reads: "
            "run with --engine spark, or `cfx ingest DATA_DIR` to load the embedded warehouse"
        )
    con = duckdb.connect()
    warehouse.limit_memory(con, memory_limit, spill)
    con.execute("SET TimeZone = 'UTC'")
    for name in meta.get("files") or TABLES:  # the optional tables the ingest found too
        files = sql_string(f"{location}/table-{name}.parquet/*.parquet")
        con.execute(f"CREATE VIEW {ident(name)} AS SELECT * FROM read_parquet({files})")
    con.execute("CREATE TABLE _ingest (key VARCHAR, value VARCHAR)")
    con.executemany("INSERT INTO _ingest VALUES (?, ?)", _metadata_rows(meta))
    return con


def spill_folder(home: Home) -> Path:
    """Where this process's DuckDB spills: ``$CFX_HOME/tmp/duckdb-PID``. One per process, since
    steps run side by side and DuckDB clears its spill folder when its database closes."""
    return home.root / "tmp" / f"duckdb-{os.getpid()}"


def connect(
    home: Home,
    engine: str,
    master: str = "local[2]",
    driver_memory: str = "2g",
    memory_limit: str | None = None,
    spark_conf: Mapping[str, str] | None = None,
):
    """The newest tables on ``engine`` (``duckdb`` or ``spark``); ``memory_limit``: DuckDB's
    (see :func:`connect_embedded`); ``spark_conf``: more Spark properties (:func:`connect_spark`)."""
    if engine == "spark":
        return connect_spark(home, master, driver_memory, spark_conf)
    return connect_embedded(home, memory_limit)


def _metadata_rows(meta: dict) -> list[tuple[str, str]]:
    """The pointer as the warehouse's ``_ingest`` table: one (key, JSON value) row per item."""
    return [(k, json.dumps(v)) for k, v in meta.items() if k != "location"]


# --------------------------------------------------------------------------- ingest


def _content_hash(con: SparkConnection, events: list[dict] | None) -> str:
    """SHA-256 over each input table's row count and sum of row hashes (order-free), then the
    events: for input read from a URL, where the files' bytes are not at hand."""
    from pyspark.sql import functions as F

    digest = hashlib.sha256()
    for name in TABLES:
        frame = con.spark.table(f"_raw_{name}").drop("_line")
        count, total = frame.select(F.count(F.lit(1)), F.sum(F.xxhash64(*frame.columns).cast("decimal(38,0)"))).first()
        digest.update(f"{name}\0{count}\0{total}\0".encode())
    if events:
        digest.update(b"\0events\0")
        for event in events:
            digest.update(canonical(event).encode() + b"\n")
    return digest.hexdigest()


def _fundraising(con: SparkConnection, base: str) -> fundraising.Fundraising | None:
    """The data directory's fundraising file, validated (None when there is none)."""
    location = f"{base}/{fundraising.FILE_NAME}"
    if _local(base):
        path = Path(location)
        return fundraising.load(path) if path.exists() else None
    try:
        text = con.spark.read.text(location, wholetext=True).first()[0]
    except Exception:  # noqa: BLE001 - each store has its own "not found"
        return None
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / fundraising.FILE_NAME
        path.write_text(text, encoding="utf-8")
        return fundraising.load(path)


def _typed_columns(name: str) -> str:
    """The table's columns as the warehouse stores them (:data:`~cfxlib.store.warehouse.DUCKDB_TYPES`)."""
    spec = ALL_TABLES[name]
    items = [
        f"CAST({ident(c)} AS {warehouse.DUCKDB_TYPES[col.metadata['kind']]}) AS {ident(c)}"
        for c, col in spec.columns.items()
    ]
    return ", ".join([*items, "_line"])


def _point_in_time(con: SparkConnection, as_of: date, names: list[str]) -> tuple[dict[str, str], dict[str, int]]:
    """Views of the tables ``names`` as of ``as_of``: (table -> view, rows left out per table)."""
    views, left_out = {}, {}
    for name in sorted(names, key=lambda n: n != "accounts"):  # accounts first
        spec = ALL_TABLES[name]
        refs = "_pit_accounts" if spec.account_ref and name != "accounts" else None
        columns = [*spec.columns, "_line"]
        view = f"_pit_{name}"
        select = warehouse.point_in_time_select(spec, name, columns, as_of, refs)
        con.execute(f"CREATE OR REPLACE TEMP VIEW {ident(view)} AS {select}")
        n = con.execute(f"SELECT count(*) FROM {ident(name)}").fetchone()[0]
        n -= con.execute(f"SELECT count(*) FROM {ident(view)}").fetchone()[0]
        if n:
            left_out[name] = n
        views[name] = view
    return views, left_out


def _write_tables(con: SparkConnection, views: dict[str, str], folder: str, events: bool) -> dict[str, int]:
    """Write each table's view as ``folder/table-NAME.parquet``; returns the rows as the
    warehouse counts them: the rows of each file, and the live events added (``events``)."""
    rows: dict[str, int] = {}
    for name in views:
        frame = con.execute(f"SELECT {_typed_columns(name)} FROM {ident(views[name])}").frame
        frame.write.parquet(f"{folder}/table-{name}.parquet")
        rows[name] = con.execute(f"SELECT count(*) FROM {ident(f'_typed_{name}')}").fetchone()[0]
        if events:
            added = con.execute(f"SELECT count(*) FROM {ident(name)}").fetchone()[0] - rows[name]
            rows["events"] = rows.get("events", 0) + added
    return rows


def ingest(
    data: str | Path,
    home: Home,
    con: SparkConnection,
    as_of: date | None = None,
    events: list[dict] | None = None,
    location: str | None = None,
) -> warehouse.IngestResult:
    """Validate the Parquet tables at ``data`` on Spark and write them as the lake's new tables.

    The same rules, events and point in time as :func:`cfxlib.store.warehouse.ingest`. The
    tables go to ``location`` (a folder or URL; default ``$CFX_HOME/lake``). Raises
    :class:`~cfxlib.contract.issues.InputError` listing the problems; the current tables and
    pointer are then untouched."""
    today = date.today()
    if as_of is not None and as_of > today:
        log = IssueLog()
        log.add(Issue("--as-of", None, None, f"as-of date {as_of.isoformat()} is after today ({today.isoformat()})"))
        raise InputError(log, "cannot ingest")
    base = str(data).rstrip("/")
    if _local(base):
        base = str(Path(base).resolve())
    log = engine_validate.validate(con, base, today, events=events)
    profile = None
    if not log:
        try:
            profile = _fundraising(con, base)
        except InputError as exc:
            log = exc.log
    if log:
        raise InputError(log, f"{data} is invalid; the tables were not changed")
    names = [*TABLES, *(n for n in OPTIONAL_TABLES if _local(base) and Path(base, f"{n}.parquet").exists())]
    views, left_out = _point_in_time(con, as_of, names) if as_of is not None else ({n: n for n in names}, {})

    target_root = (location or str(root(home))).rstrip("/")
    folder = f"{target_root}/{datetime.now().strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    try:
        rows = _write_tables(con, views, folder, bool(events))
    except BaseException:
        if _local(folder):  # a half-written folder is never pointed at; do not leave it behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    if _local(base):
        found = [Path(base, f"{n}.parquet") for n in TABLES]
        # the same hash as the embedded ingest of these files (optional tables it reads count)
        found += [p for n in OPTIONAL_TABLES if (p := Path(base, f"{n}.parquet")).exists()]
        profile_file = Path(base, fundraising.FILE_NAME)
        digest = warehouse.data_hash(found + ([profile_file] if profile else []), events)
    else:
        digest = _content_hash(con, events)
    files = {n: f"{n}.parquet" for n in names}
    meta = {"location": folder, "engine": "spark"}
    meta |= warehouse.ingest_record(base, digest, as_of, left_out, rows, events, files, profile)
    _switch(home, meta)
    return warehouse.IngestResult(
        warehouse=Path(folder) if _local(folder) else root(home) / POINTER,
        data_hash=digest,
        rows=rows,
        as_of=as_of,
        left_out=left_out,
    )


def _switch(home: Home, meta: dict) -> None:
    """Point at the new tables (atomic rename), then drop local folders no longer needed."""
    folder = root(home)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{POINTER}.{uuid.uuid4().hex}"
    with tmp.open("w", encoding="utf-8") as fh:
        json.dump(meta, fh, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, folder / POINTER)
    fsync_dir(folder)
    tables = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    for old in tables[:-KEEP]:
        if str(old) != meta["location"]:
            shutil.rmtree(old, ignore_errors=True)
