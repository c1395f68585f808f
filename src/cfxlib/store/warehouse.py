"""The embedded DuckDB warehouse and the validated, all-or-nothing ingest.

``ingest`` reads every table of a data directory chunk by chunk, validates it, and writes it into
a *new* DuckDB file next to the current one. Rules spanning rows and tables run there as SQL.
Only when every rule passed is the new file renamed over the old one (an atomic ``rename``), so a
failed ingest leaves the previous warehouse byte-identical.

Each table keeps a ``_line`` column: the CSV line (or Parquet row) every row came from, so any
number can be traced back to its input.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from cfxlib.contract import fundraising
from cfxlib.contract.issues import InputError, Issue, IssueLog
from cfxlib.contract.rules import MONEY_SQL_TYPE
from cfxlib.contract.schemas import ALL_TABLES, OPTIONAL_TABLES, TABLES, TableSpec
from cfxlib.contract.validate import (
    TEXT,
    FileProblem,
    check_chunk,
    check_records,
    iter_chunks,
    missing_dir_rule,
    parse_chunk,
    schema_for_chunks,
    table_file,
)
from cfxlib.core import provenance
from cfxlib.core.outputs import fsync_dir
from cfxlib.store.eventarchive import canonical
from cfxlib.store.sql_checks import ValueCheck, count_breaking_sql
from cfxlib.store.sqltext import date_literal, ident, idents, sql_string

DUCKDB_TYPES = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "category": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "money": MONEY_SQL_TYPE,  # US dollars, exact to the cent
    "date": "DATE",
    "month": "DATE",  # first day of the month
    "timestamp": "TIMESTAMP",  # UTC
}

INGEST_MEMORY_LIMIT = "1GB"
"""DuckDB's memory cap during ingest; larger work spills to a temporary folder beside the warehouse."""

Progress = Callable[[str, int], None]
"""Called with (table name, rows done so far)."""


@dataclass
class IngestResult:
    warehouse: Path
    data_hash: str
    rows: dict[str, int] = field(default_factory=dict)
    as_of: date | None = None
    left_out: dict[str, int] = field(default_factory=dict)
    """Rows dated after ``as_of``, left out of this point-in-time view, per table."""


def _ddl(spec: TableSpec, extra: list[str]) -> str:
    cols = [f"{ident(n)} {DUCKDB_TYPES[c.metadata['kind']]}" for n, c in spec.columns.items()]
    cols += [f"{ident(n)} VARCHAR" for n in extra]  # header names from the file: quoted, never SQL
    cols.append("_line BIGINT")
    return f"CREATE TABLE {ident(spec.name)} ({', '.join(cols)})"


def data_hash(files: list[Path], events: list[dict] | None = None) -> str:
    """SHA-256 over the names and bytes of the input files, in name order, then over the live
    events included (each as canonical JSON, in the order given); no events: files only. A
    folder (a table written as part files) counts as its files, named ``folder/part``."""
    digest = hashlib.sha256()
    named = []
    for path in files:
        if path.is_dir():
            named += [(f"{path.name}/{p.relative_to(path)}", p) for p in path.rglob("*") if p.is_file()]
        else:
            named.append((path.name, path))
    for name, path in sorted(named):
        digest.update(name.encode() + b"\0")
        with path.open("rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
    if events:
        digest.update(b"\0events\0")
        for event in events:
            digest.update(canonical(event).encode() + b"\n")
    return digest.hexdigest()


def _load_table(con, spec: TableSpec, path: Path, log: IssueLog, progress: Progress | None) -> int:
    schema = schema_for_chunks(spec)
    rows = 0
    created = False
    for raw in iter_chunks(path, spec, log):
        typed, failed = parse_chunk(raw, spec, path.name, log)
        check_chunk(typed, schema, spec, path.name, failed, log)
        extra = [c for c in typed.columns if c not in spec.columns]
        if not created:
            con.execute(_ddl(spec, extra))
            created = True
        frame = typed.reset_index(drop=False).rename(columns={typed.index.name: "_line"})
        for name in extra:
            frame[name] = frame[name].astype(TEXT)
        con.register("_chunk", frame)
        con.execute(f"INSERT INTO {ident(spec.name)} BY NAME SELECT * FROM _chunk")
        con.unregister("_chunk")
        rows += len(typed)
        if progress:
            progress(spec.name, rows)
    return rows


def fetch_issues(
    con,
    sql: str,
    log: IssueLog,
    make: Callable[[tuple], Issue],
    file: str,
    column: str,
    rule: str,
    total: int | None = None,
) -> None:
    """Run a rule query returning offending rows; log the first ones and count the rest.
    ``total``: the number of offending rows when already counted."""
    if total is None:
        total = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    if not total:
        return
    room = max(log.keep - len(log.shown), 0)
    shown = con.execute(f"{sql} LIMIT {int(room)}").fetchall() if room else []
    for row in shown:
        log.add(make(row))
    log.add_unshown(file, column, rule, total - len(shown))


def check_all(con, checks: list[ValueCheck], file: str, log: IssueLog) -> None:
    """Count the rows breaking every check in one scan, then fetch the offending rows of the
    checks that failed."""
    if not checks:
        return
    totals = con.execute(count_breaking_sql(checks)).fetchone()
    for check, total in zip(checks, totals, strict=True):
        if total:
            fetch_issues(
                con,
                check.sql,
                log,
                lambda r, f=file, c=check: Issue(f, int(r[0]), c.column, c.rule, r[1]),
                file,
                check.column,
                check.rule,
                total=int(total),
            )


def count_rows(con, queries: list[str]) -> list[int]:
    """How many rows each of ``queries`` returns, counted in one statement: on Spark every
    statement pays planning and job start-up (about a second on two cores), so one statement
    for all the rules of an input costs that once."""
    if not queries:
        return []
    sql = " UNION ALL ".join(f"SELECT {i} AS q, count(*) AS n FROM ({q})" for i, q in enumerate(queries))
    counts = dict(con.execute(sql).fetchall())
    return [int(counts[i]) for i in range(len(queries))]


@dataclass(frozen=True)
class _RuleQuery:
    """A rule across rows or tables: ``sql`` selects the rows breaking it; ``make`` turns one
    into an issue of ``file``, ``column`` and ``rule``."""

    sql: str
    make: Callable[[tuple], Issue]
    file: str
    column: str
    rule: str


def cross_table_rules(con, files: dict[str, str], today: date, log: IssueLog, loaded: set[str] | None = None) -> None:
    """Rules across rows and tables, as SQL on ``con`` (DuckDB or Spark): unique keys, known
    accounts, nothing dated after ``today``, no overlapping subscriptions. ``files`` names each
    table's input file; ``loaded`` (default: the tables in ``con``) the tables to check. Every
    rule's breaking rows are counted in one statement (:func:`count_rows`); only the rules
    broken fetch their rows, in the order the rules are listed here."""
    if loaded is None:
        loaded = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    rules: list[_RuleQuery] = []
    for name, spec in ALL_TABLES.items():
        if name not in loaded:
            continue
        file, table = files[name], ident(name)
        # 1. keys
        if spec.key:
            cols = idents(spec.key)
            keyed = " AND ".join(f"{ident(c)} IS NOT NULL" for c in spec.key)
            label = "duplicate key" if len(spec.key) == 1 else f"duplicate row for ({', '.join(spec.key)})"
            # Find duplicated keys with a grouped count first: only their rows need a window.
            sql = (
                f"WITH dup AS (SELECT {cols} FROM {table} WHERE {keyed} GROUP BY {cols} HAVING count(*) > 1) "
                f"SELECT _line, {cols}, first_value(_line) OVER w AS first_line FROM {table} JOIN dup USING ({cols}) "
                f"WINDOW w AS (PARTITION BY {cols} ORDER BY _line) "
                "QUALIFY row_number() OVER w > 1 ORDER BY _line"
            )

            def duplicate(r: tuple, f: str = file, k: list[str] = spec.key, lb: str = label) -> Issue:
                key = k[0] if len(k) == 1 else ",".join(k)
                return Issue(f, r[0], key, f"{lb}: first seen at line {r[-1]}", "|".join(str(v) for v in r[1:-1]))

            rules.append(_RuleQuery(sql, duplicate, file, spec.key[0], label))
        # 2. account references
        if spec.account_ref and "accounts" in loaded:
            rule = "unknown account_id (not in accounts)"
            sql = (
                f"SELECT t._line, t.account_id FROM {table} t ANTI JOIN accounts a "
                "ON t.account_id = a.account_id WHERE t.account_id IS NOT NULL ORDER BY t._line"
            )
            rules.append(
                _RuleQuery(
                    sql, lambda r, f=file, rl=rule: Issue(f, r[0], "account_id", rl, r[1]), file, "account_id", rule
                )
            )
        # 3. nothing dated in the future (after today; a point-in-time view leaves out later rows instead)
        rule = f"date is in the future (after today, {today.isoformat()})"
        for column, col in spec.columns.items():
            if col.metadata["kind"] in ("date", "month", "timestamp"):
                check = ValueCheck(column, rule, name, _after(spec, column, today), ident(column))
                rules.append(
                    _RuleQuery(
                        check.sql,
                        lambda r, f=file, c=check: Issue(f, int(r[0]), c.column, c.rule, r[1]),
                        file,
                        column,
                        rule,
                    )
                )
    # 4. subscriptions of one account and tier do not overlap
    if "subscriptions" in loaded:
        rule = "overlaps another subscription of the same account and tier"
        sql = (
            "SELECT _line, subscription_id, prev_id, prev_line FROM ("
            "  SELECT _line, subscription_id, start_date,"
            "    lag(subscription_id) OVER w AS prev_id, lag(_line) OVER w AS prev_line,"
            "    lag(end_date) OVER w AS prev_end, lag(start_date) OVER w AS prev_start"
            "  FROM subscriptions WINDOW w AS (PARTITION BY account_id, tier ORDER BY start_date, _line)"
            ") WHERE prev_start IS NOT NULL AND (prev_end IS NULL OR prev_end > start_date) ORDER BY _line"
        )
        file = files["subscriptions"]
        rules.append(
            _RuleQuery(
                sql,
                lambda r, f=file, rl=rule: Issue(f, r[0], "start_date", f"{rl} ({r[2]} at line {r[3]})", r[1]),
                file,
                "start_date",
                rule,
            )
        )
    for query, total in zip(rules, count_rows(con, [q.sql for q in rules]), strict=True):
        fetch_issues(con, query.sql, log, query.make, query.file, query.column, query.rule, total=total)


def _after(spec: TableSpec, column: str, as_of: date) -> str:
    """SQL condition: ``column`` of ``spec`` is after the point in time ``as_of``."""
    kind, col, limit = spec.kind(column), ident(column), date_literal(as_of)
    if kind == "month":
        return f"{col} > date_trunc('month', {limit})"
    if kind == "timestamp":
        return f"CAST({col} AS DATE) > {limit}"
    return f"{col} > {limit}"


def point_in_time_select(spec: TableSpec, source: str, columns: list[str], as_of: date, accounts: str | None) -> str:
    """SELECT of ``source`` (a table or view of ``spec`` with ``columns``) as of the end of day
    ``as_of``, portable across engines: rows dated after it are left out; facts recorded later
    (``known_later``) are blank; with ``accounts`` (the point-in-time accounts), rows of other
    accounts go too (after blanking: a lead converted later keeps its row, not its account)."""
    blank: dict[str, list[str]] = {}
    for column, with_it in spec.known_later.items():
        for c in (column, *with_it):
            blank.setdefault(c, []).append(_after(spec, column, as_of))
    items = [
        f"CASE WHEN {' OR '.join(blank[c])} THEN NULL ELSE {ident(c)} END AS {ident(c)}" if c in blank else ident(c)
        for c in columns
    ]
    dated = f" WHERE NOT coalesce({_after(spec, spec.dated_by, as_of)}, FALSE)" if spec.dated_by else ""
    sql = f"SELECT {', '.join(items)} FROM {ident(source)}{dated}"
    if accounts is None or "account_id" not in columns:
        return sql
    return (
        f"SELECT * FROM ({sql}) t WHERE t.account_id IS NULL "
        f"OR EXISTS (SELECT 1 FROM {ident(accounts)} a WHERE a.account_id = t.account_id)"
    )


def point_in_time(con, as_of: date) -> dict[str, int]:
    """Turn the loaded tables into the view as of the end of day ``as_of`` (see
    :func:`point_in_time_select`); returns the rows left out per table."""
    loaded = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    left_out: dict[str, int] = {}
    # accounts first: the other tables keep only the accounts that exist at as_of
    for name in sorted((n for n in ALL_TABLES if n in loaded), key=lambda n: n != "accounts"):
        spec = ALL_TABLES[name]
        refs = spec.account_ref and name != "accounts" and "accounts" in loaded
        if spec.dated_by is None and not refs:
            continue
        table = ident(name)
        columns = [r[0] for r in con.execute(f"DESCRIBE {table}").fetchall()]
        before = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        select = point_in_time_select(spec, name, columns, as_of, "accounts" if refs else None)
        con.execute(f"CREATE OR REPLACE TABLE {table} AS {select}")
        n = before - con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        if n:
            left_out[name] = n
    return left_out


def event_frames(events: list[dict], log: IssueLog) -> dict[str, pd.DataFrame]:
    """Live events (rows of event tables) as one typed frame per table, with ``_line`` = minus
    the position in the event log. Events were validated when accepted; they are parsed and
    checked again here with the same rules (file name ``events``). For one key, the last wins."""
    groups: dict[str, list[tuple[int, dict]]] = {}
    for i, event in enumerate(events, 1):
        groups.setdefault(event.get("table"), []).append((i, event))
    frames = {}
    for table, items in groups.items():
        spec = TABLES.get(table)
        if spec is None:
            log.add(Issue("events", items[0][0], "table", f"unknown table {table!r}"))
            continue
        frame = check_records(items, spec, "events", log).reset_index().rename(columns={"line": "_line"})
        frame["_line"] = -frame["_line"]  # negative: from the event log, not the table's file
        frames[table] = frame.drop_duplicates(list(spec.key), keep="last") if spec.key else frame
    return frames


def new_events_sql(table: str, events_view: str, existing: str) -> str:
    """The rows of ``events_view`` whose key is not in ``existing`` (the data files win over
    events: they are the system of record), typed as the warehouse stores ``table``."""
    spec = TABLES[table]
    items = [
        f"CAST(e.{ident(c)} AS {DUCKDB_TYPES[col.metadata['kind']]}) AS {ident(c)}" for c, col in spec.columns.items()
    ]
    on = " AND ".join(f"t.{ident(k)} = e.{ident(k)}" for k in spec.key) or "FALSE"
    return (
        f"SELECT {', '.join(items)}, e._line AS _line FROM {ident(events_view)} e "
        f"WHERE NOT EXISTS (SELECT 1 FROM {ident(existing)} t WHERE {on})"
    )


def _load_events(con, events: list[dict], log: IssueLog) -> int:
    """Append live events whose key is not already in the data files (:func:`event_frames`)."""
    loaded = 0
    for table, frame in event_frames(events, log).items():
        con.register("_events", frame)
        loaded += con.execute(
            f"INSERT INTO {ident(table)} BY NAME {new_events_sql(table, '_events', table)}"
        ).fetchone()[0]
        con.unregister("_events")
    return loaded


def ingest_record(
    data_dir: str,
    digest: str,
    as_of: date | None,
    left_out: dict[str, int],
    rows: dict[str, int],
    events: list[dict] | None,
    files: dict[str, str],
    profile: fundraising.Fundraising | None,
) -> dict:
    """What an ingest records (the warehouse's ``_ingest`` table, the lake's pointer): where the
    data came from, its hash, the point in time and rows left out, rows loaded, live events
    included, each table's file, the validated fundraising file as JSON (or None), and the
    data's source (``demo`` for the demo generator's folder, else ``data``; see
    :mod:`cfxlib.core.provenance`)."""
    return {
        "data_dir": data_dir,
        "source": provenance.source_of(data_dir),
        "data_hash": digest,
        "as_of": as_of.isoformat() if as_of else None,
        "left_out": left_out,
        "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": rows,
        "events": len(events or []),
        "files": files,
        "fundraising": profile.model_dump(mode="json") if profile else None,
    }


def ingest(
    data_dir: Path,
    warehouse: Path,
    as_of: date | None = None,
    progress: Progress | None = None,
    events: list[dict] | None = None,
) -> IngestResult:
    """Validate every table of ``data_dir`` and load it into ``warehouse``, all or nothing.

    Dates after today are refused. ``as_of`` (default: none) makes the warehouse a point-in-time
    view: rows dated after it are left out and counted (see :func:`point_in_time`), not refused.
    ``events`` (live events accepted by the service) are added after the files (see
    :func:`_load_events`).
    Raises :class:`~cfxlib.contract.issues.InputError` listing the problems; the existing warehouse file is
    then untouched.
    """
    today = date.today()
    log = IssueLog()
    if as_of is not None and as_of > today:
        log.add(Issue("--as-of", None, None, f"as-of date {as_of.isoformat()} is after today ({today.isoformat()})"))
        raise InputError(log, "cannot ingest")
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        log.add(Issue(str(data_dir), None, None, missing_dir_rule(data_dir)))
        raise InputError(log, "cannot ingest")
    found: dict[str, Path] = {}
    for name in TABLES:
        path = table_file(data_dir, name)
        if path is None:
            log.add(
                Issue(
                    f"{name}.csv",
                    None,
                    None,
                    f"missing table: no {name}.csv or {name}.parquet in {data_dir}",
                )
            )
        else:
            found[name] = path
    for name in OPTIONAL_TABLES:
        path = table_file(data_dir, name)
        if path is not None:
            found[name] = path
    if log:
        raise InputError(log, f"cannot ingest {data_dir}")
    profile_path = data_dir / fundraising.FILE_NAME
    profile = fundraising.load(profile_path) if profile_path.exists() else None

    warehouse.parent.mkdir(parents=True, exist_ok=True)
    tmp = warehouse.parent / f".ingest-{uuid.uuid4().hex}.duckdb"
    rows: dict[str, int] = {}
    try:
        con = duckdb.connect(
            str(tmp), config={"memory_limit": INGEST_MEMORY_LIMIT, "temp_directory": str(tmp) + ".spill"}
        )
        try:
            for name, path in found.items():
                try:
                    rows[name] = _load_table(con, ALL_TABLES[name], path, log, progress)
                except FileProblem:
                    continue
            if events and not log:
                rows["events"] = _load_events(con, events, log)
            cross_table_rules(con, {n: p.name for n, p in found.items()}, today, log)
            if log:
                raise InputError(log, f"{data_dir} is invalid; the warehouse was not changed")
            left_out = point_in_time(con, as_of) if as_of is not None else {}
            digest = data_hash(list(found.values()) + ([profile_path] if profile else []), events)
            meta = ingest_record(
                str(data_dir.resolve()),
                digest,
                as_of,
                left_out,
                rows,
                events,
                {n: p.name for n, p in found.items()},
                profile,
            )
            con.execute("CREATE TABLE _ingest (key VARCHAR, value VARCHAR)")
            con.executemany("INSERT INTO _ingest VALUES (?, ?)", [(k, json.dumps(v)) for k, v in meta.items()])
            con.execute("CHECKPOINT")
        finally:
            con.close()
        with tmp.open("rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, warehouse)
        fsync_dir(warehouse.parent)
    finally:
        for leftover in (tmp, tmp.with_name(tmp.name + ".wal")):
            with contextlib.suppress(FileNotFoundError):
                leftover.unlink()
        shutil.rmtree(str(tmp) + ".spill", ignore_errors=True)
    return IngestResult(warehouse=warehouse, data_hash=digest, rows=rows, as_of=as_of, left_out=left_out)


def connect(
    warehouse: Path, read_only: bool = True, memory_limit: str | None = None, spill: Path | None = None
) -> duckdb.DuckDBPyConnection:
    """Open the warehouse. Raises FileNotFoundError with advice when there is none yet.
    ``memory_limit`` and ``spill``: see :func:`limit_memory`."""
    if not warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {warehouse}: run `cfx ingest DATA_DIR` or `cfx run` first")
    con = duckdb.connect(str(warehouse), read_only=read_only)
    limit_memory(con, memory_limit, spill)
    return con


def limit_memory(con: duckdb.DuckDBPyConnection, memory_limit: str | None = None, spill: Path | None = None) -> None:
    """Sets DuckDB's ``memory_limit`` (e.g. ``"2GB"`` or ``"25%"``; None keeps DuckDB's default,
    80% of the machine) and the folder it spills to past it (``spill``, made here; None keeps
    the default, beside the database file). Both hold for the process's every connection to
    that database: set, not passed at connect time, because DuckDB refuses a second connection
    to one file with a different configuration."""
    if memory_limit is not None:
        con.execute(f"SET memory_limit = {sql_string(memory_limit)}")
    if spill is not None:
        spill.parent.mkdir(parents=True, exist_ok=True)
        con.execute(f"SET temp_directory = {sql_string(str(spill))}")


def ingest_metadata(con) -> dict:
    """What :func:`ingest` recorded: data_dir, data_hash, as_of, rows, files, ``fundraising`` (the
    validated fundraising file as JSON, or None when the data directory has none)."""
    meta = {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM _ingest").fetchall()}
    meta.setdefault("source", provenance.source_of(meta.get("data_dir")))  # warehouses loaded before sources
    return meta


def export_parquet(warehouse: Path, folder: Path) -> Path:
    """Every warehouse table (the inputs and ``_ingest``) as ``folder/NAME.parquet``, for another
    engine to read (:mod:`cfxlib.store.spark`). Written once per data hash: a folder that already
    holds this warehouse's export is reused."""
    import fcntl

    con = connect(warehouse)  # raises with advice when there is none, before anything is made
    Path(folder).mkdir(parents=True, exist_ok=True)
    lock = open(Path(folder) / ".lock", "w")  # noqa: SIM115 (notebooks run side by side)
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        data_hash = ingest_metadata(con)["data_hash"]
        stamp = Path(folder) / "_data_hash"
        if stamp.exists() and stamp.read_text() == data_hash:
            return Path(folder)
        tables = [r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()]
        for table in tables:
            target = Path(folder) / f"table-{table}.parquet"  # Spark skips files starting with _
            path = str(target).replace("'", "''")
            con.execute(f"COPY {ident(table)} TO '{path}' (FORMAT PARQUET)")
        stamp.write_text(data_hash)
    finally:
        con.close()
        lock.close()
    return Path(folder)
