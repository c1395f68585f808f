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

from cfxlib.issues import InputError, Issue, IssueLog
from cfxlib.outputs import fsync_dir
from cfxlib.schemas import TABLES, TableSpec
from cfxlib.validate import (
    FileProblem,
    check_chunk,
    check_records,
    iter_chunks,
    parse_chunk,
    schema_for_chunks,
    table_file,
)

DUCKDB_TYPES = {
    "id": "VARCHAR",
    "text": "VARCHAR",
    "category": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
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


def _ddl(spec: TableSpec, extra: list[str]) -> str:
    cols = [f'"{n}" {DUCKDB_TYPES[c.metadata["kind"]]}' for n, c in spec.columns.items()]
    cols += [f'"{n}" VARCHAR' for n in extra]
    cols.append("_line BIGINT")
    return f'CREATE TABLE "{spec.name}" ({", ".join(cols)})'


def data_hash(files: list[Path]) -> str:
    """SHA-256 over the names and bytes of the input files, in name order."""
    digest = hashlib.sha256()
    for path in sorted(files, key=lambda p: p.name):
        digest.update(path.name.encode() + b"\0")
        with path.open("rb") as fh:
            while block := fh.read(1 << 22):
                digest.update(block)
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
            frame[name] = frame[name].astype("string")
        con.register("_chunk", frame)
        con.execute(f'INSERT INTO "{spec.name}" BY NAME SELECT * FROM _chunk')
        con.unregister("_chunk")
        rows += len(typed)
        if progress:
            progress(spec.name, rows)
    return rows


def _fetch_issues(
    con, sql: str, log: IssueLog, make: Callable[[tuple], Issue], file: str, column: str, rule: str
) -> None:
    """Run a rule query returning offending rows; log the first ones and count the rest."""
    total = con.execute(f"SELECT count(*) FROM ({sql})").fetchone()[0]
    if not total:
        return
    room = max(log.keep - len(log.shown), 0)
    shown = con.execute(f"{sql} LIMIT {room}").fetchall() if room else []
    for row in shown:
        log.add(make(row))
    log.add_unshown(file, column, rule, total - len(shown))


def _cross_table_rules(con, files: dict[str, str], as_of: date, log: IssueLog) -> None:
    loaded = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    for name, spec in TABLES.items():
        if name not in loaded:
            continue
        file = files[name]
        # 1. keys
        if spec.key:
            cols = ", ".join(f'"{c}"' for c in spec.key)
            keyed = " AND ".join(f'"{c}" IS NOT NULL' for c in spec.key)
            label = "duplicate key" if len(spec.key) == 1 else f"duplicate row for ({', '.join(spec.key)})"
            # Find duplicated keys with a grouped count first: only their rows need a window.
            sql = (
                f'WITH dup AS (SELECT {cols} FROM "{name}" WHERE {keyed} GROUP BY {cols} HAVING count(*) > 1) '
                f'SELECT _line, {cols}, first_value(_line) OVER w AS first_line FROM "{name}" JOIN dup USING ({cols}) '
                f"WINDOW w AS (PARTITION BY {cols} ORDER BY _line) "
                "QUALIFY row_number() OVER w > 1 ORDER BY _line"
            )
            _fetch_issues(
                con,
                sql,
                log,
                lambda r, f=file, k=spec.key, lb=label: Issue(
                    f,
                    r[0],
                    k[0] if len(k) == 1 else ",".join(k),
                    f"{lb}: first seen at line {r[-1]}",
                    "|".join(str(v) for v in r[1:-1]),
                ),
                file,
                spec.key[0],
                label,
            )
        # 2. account references
        if spec.account_ref and "accounts" in loaded:
            rule = "unknown account_id (not in accounts)"
            sql = (
                f'SELECT t._line, t.account_id FROM "{name}" t ANTI JOIN accounts a '
                "ON t.account_id = a.account_id WHERE t.account_id IS NOT NULL ORDER BY t._line"
            )
            _fetch_issues(
                con,
                sql,
                log,
                lambda r, f=file, rl=rule: Issue(f, r[0], "account_id", rl, r[1]),
                file,
                "account_id",
                rule,
            )
        # 3. nothing after the as-of date
        for column, col in spec.columns.items():
            kind = col.metadata["kind"]
            if kind not in ("date", "month", "timestamp"):
                continue
            limit = f"DATE '{as_of.isoformat()}'"
            cond = f'"{column}" > {limit}' if kind != "timestamp" else f'CAST("{column}" AS DATE) > {limit}'
            if kind == "month":
                cond = f"\"{column}\" > date_trunc('month', {limit})"
            rule = f"date is after the as-of date {as_of.isoformat()}"
            sql = f'SELECT _line, "{column}" FROM "{name}" WHERE {cond} ORDER BY _line'
            _fetch_issues(
                con,
                sql,
                log,
                lambda r, f=file, c=column, rl=rule: Issue(f, r[0], c, rl, r[1]),
                file,
                column,
                rule,
            )
    # 4. subscriptions of one account and tier do not overlap
    if "subscriptions" in loaded:
        file = files["subscriptions"]
        rule = "overlaps another subscription of the same account and tier"
        sql = (
            "SELECT _line, subscription_id, prev_id, prev_line FROM ("
            "  SELECT _line, subscription_id, start_date,"
            "    lag(subscription_id) OVER w AS prev_id, lag(_line) OVER w AS prev_line,"
            "    lag(end_date) OVER w AS prev_end, lag(start_date) OVER w AS prev_start"
            "  FROM subscriptions WINDOW w AS (PARTITION BY account_id, tier ORDER BY start_date, _line)"
            ") WHERE prev_start IS NOT NULL AND (prev_end IS NULL OR prev_end > start_date) ORDER BY _line"
        )
        _fetch_issues(
            con,
            sql,
            log,
            lambda r, f=file, rl=rule: Issue(f, r[0], "start_date", f"{rl} ({r[2]} at line {r[3]})", r[1]),
            file,
            "start_date",
            rule,
        )


def _load_events(con, events: list[dict], log: IssueLog) -> int:
    """Append live events (rows of event tables) whose key is not already in the data files.

    Events were validated when accepted; they are parsed and checked again here with the same
    rules (file name ``events``, line = position in the event log). For one key, the last event
    wins; the data files win over events (they are the system of record).
    """
    loaded = 0
    groups: dict[str, list[tuple[int, dict]]] = {}
    for i, event in enumerate(events, 1):
        groups.setdefault(event.get("table"), []).append((i, event))
    for table, items in groups.items():
        spec = TABLES.get(table)
        if spec is None:
            log.add(Issue("events", items[0][0], "table", f"unknown table {table!r}"))
            continue
        frame = check_records(items, spec, "events", log).reset_index().rename(columns={"line": "_line"})
        frame["_line"] = -frame["_line"]  # negative: from the event log, not the table's file
        if spec.key:
            frame = frame.drop_duplicates(list(spec.key), keep="last")
        con.register("_events", frame)
        on = " AND ".join(f't."{k}" = e."{k}"' for k in spec.key) or "FALSE"
        before = con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0]
        con.execute(
            f'INSERT INTO "{table}" BY NAME SELECT e.* FROM _events e WHERE NOT EXISTS (SELECT 1 FROM "{table}" t WHERE {on})'
        )
        loaded += con.execute(f'SELECT count(*) FROM "{table}"').fetchall()[0][0] - before
        con.unregister("_events")
    return loaded


def ingest(
    data_dir: Path,
    warehouse: Path,
    as_of: date | None = None,
    progress: Progress | None = None,
    events: list[dict] | None = None,
) -> IngestResult:
    """Validate every table of ``data_dir`` and load it into ``warehouse``, all or nothing.

    ``as_of`` (default: today) is the latest date any input may carry. ``events`` (live events
    accepted by the service) are added after the files (see :func:`_load_events`).
    Raises :class:`~cfxlib.issues.InputError` listing the problems; the existing warehouse file is
    then untouched.
    """
    as_of = as_of or date.today()
    log = IssueLog()
    data_dir = Path(data_dir)
    if not data_dir.is_dir():
        log.add(Issue(str(data_dir), None, None, "data directory does not exist"))
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
    if log:
        raise InputError(log, f"cannot ingest {data_dir}")

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
                    rows[name] = _load_table(con, TABLES[name], path, log, progress)
                except FileProblem:
                    continue
            if events and not log:
                rows["events"] = _load_events(con, events, log)
            _cross_table_rules(con, {n: p.name for n, p in found.items()}, as_of, log)
            if log:
                raise InputError(log, f"{data_dir} is invalid; the warehouse was not changed")
            digest = data_hash(list(found.values()))
            meta = {
                "data_dir": str(data_dir.resolve()),
                "data_hash": digest,
                "as_of_limit": as_of.isoformat(),
                "loaded_at": datetime.now(UTC).isoformat(timespec="seconds"),
                "rows": rows,
                "files": {n: p.name for n, p in found.items()},
            }
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
    return IngestResult(warehouse=warehouse, data_hash=digest, rows=rows)


def connect(warehouse: Path, read_only: bool = True) -> duckdb.DuckDBPyConnection:
    """Open the warehouse. Raises FileNotFoundError with advice when there is none yet."""
    if not warehouse.exists():
        raise FileNotFoundError(f"no warehouse at {warehouse}: run `cfx ingest DATA_DIR` or `cfx run` first")
    return duckdb.connect(str(warehouse), read_only=read_only)


def ingest_metadata(con) -> dict:
    return {k: json.loads(v) for k, v in con.execute("SELECT key, value FROM _ingest").fetchall()}
