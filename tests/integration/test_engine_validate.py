"""Validation where the data lives: the contract's rules as SQL on DuckDB and on Spark find the
same problems, with the same file, row, column, rule and value, as `cfx ingest`'s pandas path."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from cfxlib.contract.issues import InputError, IssueLog
from cfxlib.demo.generate import DemoOptions, generate
from cfxlib.store import engine_validate, warehouse

pytestmark = pytest.mark.xdist_group("spark")

# (table, 1-based row, column, text written there)
BAD_VALUES = [
    ("usage_daily", 1, "active_users", "-1"),
    ("usage_daily", 2, "active_users", "1.5"),
    ("usage_daily", 3, "active_users", "abc"),
    ("usage_daily", 4, "active_users", ""),
    ("usage_daily", 5, "active_users", "1e999"),
    ("usage_daily", 6, "work_orders_created", "99999999999999999999"),
    ("usage_daily", 7, "date", "2026-02-30"),
    ("usage_daily", 8, "date", " 2024-01-05 "),  # surrounding blanks are fine
    ("usage_daily", 9, "assets_monitored", "+7"),  # fine
    ("subscriptions", 1, "tier", "Gold"),
    ("subscriptions", 2, "amount_usd", "10.005"),
    ("subscriptions", 3, "billing_period_months", "3"),
    ("subscriptions", 4, "end_date", "2000-01-01"),  # before its start
    ("subscriptions", 5, "seats", "0"),
    ("subscriptions", 6, "account_id", "ZZZ-unknown"),
    ("subscriptions", 7, "subscription_id", "dup-1"),
    ("subscriptions", 8, "subscription_id", "dup-1"),
    ("subscriptions", 9, "account_id", "x" * 201),
    ("tickets", 1, "resolved_at", "2000-01-01T00:00:00Z"),  # before it was opened
    ("tickets", 2, "csat", "6"),
    ("tickets", 3, "priority", " High "),
    ("tickets", 4, "opened_at", "not a time"),
    ("leads", 1, "account_id", ""),
    ("leads", 1, "converted_date", "2024-06-01"),  # converted without an account
    ("leads", 2, "converted_date", "2000-01-01"),  # converted before it was created
    ("downtime_monthly", 1, "month", "2026-13"),
    ("downtime_monthly", 2, "baseline_downtime_hours", "0"),
    ("nps_responses", 1, "score", "11"),
    ("accounts", 1, "account_name", '<b>"Quote\'s" & co</b>; DROP TABLE accounts;--'),  # fine: text
    ("accounts", 2, "created_date", "2099-01-01"),  # in the future
    ("spend_monthly", 1, "sales_usd", "-5"),
    ("ops_daily", 1, "uptime_pct", "101"),
]


@pytest.fixture(scope="module")
def typed_dir(tmp_path_factory) -> Path:
    """A small demo company written as Parquet with natural column types."""
    out = tmp_path_factory.mktemp("typed")
    generate(out, DemoOptions(accounts=40, months=12, seed=3, fmt="parquet"))
    return out


@pytest.fixture(scope="module")
def hostile_dir(typed_dir, tmp_path_factory) -> Path:
    """The same company with every column as text and the bad values above written in."""
    out = tmp_path_factory.mktemp("hostile")
    for path in typed_dir.glob("*.parquet"):
        table = pq.read_table(path)
        columns = {}
        for name in table.column_names:
            column = table[name]
            if pa.types.is_timestamp(column.type):
                values = [None if v is None else v.strftime("%Y-%m-%dT%H:%M:%SZ") for v in column.to_pylist()]
            else:
                values = [None if v is None else str(v) for v in column.to_pylist()]
            columns[name] = values
        for table_name, row, column, text in BAD_VALUES:
            if table_name == path.stem:
                columns[column][row - 1] = text
        pq.write_table(pa.table({k: pa.array(v, pa.string()) for k, v in columns.items()}), out / path.name)
    for extra in typed_dir.glob("*.yaml"):
        shutil.copy(extra, out / extra.name)
    return out


def _pandas_issues(data_dir: Path, tmp_path: Path) -> IssueLog:
    with pytest.raises(InputError) as caught:
        warehouse.ingest(data_dir, tmp_path / "w.duckdb")
    return caught.value.log


def _counts(log: IssueLog) -> dict:
    """Issues by file, column and rule; a rule's detail ("first seen at line 7") is dropped, as
    the log counts issues it does not show under the rule's name alone."""
    out: dict = {}
    for (file, column, rule), n in log.by_rule.items():
        key = (file, column, rule.split(": first seen")[0].split(" (")[0])
        out[key] = out.get(key, 0) + n
    return out


def _spark():
    from cfxlib.store.spark import SparkConnection, session

    return SparkConnection(session())


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_engine_finds_what_ingest_finds(hostile_dir, tmp_path, engine):
    import duckdb

    expected = _pandas_issues(hostile_dir, tmp_path)
    con = duckdb.connect() if engine == "duckdb" else _spark()
    found = engine_validate.validate(con, hostile_dir, keep=10_000)
    # The same count of issues for every file, column and rule ...
    assert _counts(found) == _counts(expected)
    # ... and every issue ingest shows, word for word (row, rule and value included).
    shown = {str(i) for i in found.shown}
    assert {str(i) for i in expected.shown} <= shown
    assert len(found.shown) == found.total
    text = "\n".join(sorted(shown))
    assert "usage_daily.parquet:2: column 'active_users': not a whole number (value '1.5')" in text
    assert "subscriptions.parquet:4: column 'end_date': end_date must be after start_date" in text
    assert "usage_daily.parquet:6: column 'work_orders_created': out of the 64-bit integer range" in text
    assert "accounts.parquet:2: column 'created_date': date is in the future" in text
    assert "account_name" not in text  # markup and quotes are just text


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_valid_typed_parquet_passes_on_the_engine(typed_dir, engine):
    import duckdb

    con = duckdb.connect() if engine == "duckdb" else _spark()
    log = engine_validate.validate(con, typed_dir)
    assert log.total == 0, log.report()
    # the typed views hold the parsed tables
    n = con.execute("SELECT count(*) FROM subscriptions WHERE amount_usd IS NOT NULL").fetchone()[0]
    assert n == pq.read_metadata(typed_dir / "subscriptions.parquet").num_rows


def test_missing_and_misspelled_are_reported(typed_dir, tmp_path):
    import duckdb

    data = tmp_path / "data"
    shutil.copytree(typed_dir, data)
    (data / "nps_responses.parquet").unlink()
    table = pq.read_table(data / "ops_daily.parquet").rename_columns(
        ["date", "service", "uptime_percent", "p95_latency_ms", "requests", "errors", "ai_calls"]
    )
    pq.write_table(table, data / "ops_daily.parquet")
    (data / "leads.parquet").write_bytes(b"not parquet")
    log = engine_validate.validate(duckdb.connect(), data, today=date.today())
    text = log.report()
    assert "nps_responses.parquet: missing table" in text
    assert (
        "ops_daily.parquet:1: column 'uptime_pct': required column is missing (found 'uptime_percent': misspelled?)"
        in text
    )
    assert "leads.parquet: is not a readable Parquet file" in text


def test_spark_numbers_rows_across_part_files(hostile_dir, tmp_path):
    """A table written as a folder of part files (as Spark writes it) numbers its rows across the
    parts in name order, so the rows named are those of the table read whole."""
    data = tmp_path / "data"
    shutil.copytree(hostile_dir, data)
    table = pq.read_table(data / "usage_daily.parquet")
    (data / "usage_daily.parquet").unlink()
    folder = data / "usage_daily.parquet"
    folder.mkdir()
    pq.write_table(table.slice(0, 4), folder / "part-00000.parquet")
    pq.write_table(table.slice(4), folder / "part-00001.parquet")
    whole = engine_validate.validate(__import__("duckdb").connect(), hostile_dir, keep=10_000)
    parts = engine_validate.validate(_spark(), data, keep=10_000)
    usage = lambda log: sorted(str(i) for i in log.shown if i.file == "usage_daily.parquet")  # noqa: E731
    assert usage(parts) == usage(whole)
    assert any(":5: column 'active_users'" in line for line in usage(parts))  # the first row of the second part
