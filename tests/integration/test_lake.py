"""Ingest on Spark (`cfx ingest --engine spark`): Parquet read where it lives, validated as SQL
on Spark, live events added, a point in time taken, the typed tables written as Parquet. The
tables are those DuckDB's ingest loads, row for row and value for value, with the same data hash;
a refused input leaves the current tables untouched; readers see whichever ingest ran last."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from cfxlib.contract.issues import InputError
from cfxlib.contract.schemas import TABLES
from cfxlib.core.home import Home
from cfxlib.customers import health
from cfxlib.demo.generate import DemoOptions, generate
from cfxlib.store import lake, warehouse
from tests.conftest import QUICK_SPARK_JVM, run_cfx

pytestmark = pytest.mark.xdist_group("spark")


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("typed")
    generate(out, DemoOptions(accounts=40, months=12, seed=5, fmt="parquet"))
    return out


@pytest.fixture(scope="module")
def spark():
    from cfxlib.store.spark import SparkConnection, session

    return SparkConnection(session())


def _events(data: Path) -> list[dict]:
    """Live events dated today: two readings of one account's day (the last wins), a ticket, and
    a reading of a key the files already hold (the files win)."""
    usage = pq.read_table(data / "usage_daily.parquet").to_pandas()
    account = usage["account_id"].iloc[0]
    known_day = pd.Timestamp(usage["date"].iloc[0]).date().isoformat()
    today = date.today().isoformat()
    reading = {"table": "usage_daily", "account_id": account, "work_orders_created": 1, "work_orders_completed": 1}
    reading |= {"assets_monitored": 2, "ai_requests": 0}
    return [
        reading | {"date": today, "active_users": 3},
        {"table": "tickets", "ticket_id": "T-live", "account_id": account, "priority": "urgent"}
        | {"opened_at": datetime.now(UTC).isoformat(timespec="seconds"), "resolved_at": None, "csat": None},
        reading | {"date": today, "active_users": 5},
        reading | {"date": known_day, "active_users": 999},
    ]


def _tables(con) -> dict[str, pd.DataFrame]:
    out = {}
    for name, spec in TABLES.items():
        columns = ", ".join([*spec.columns, "_line"])
        out[name] = con.execute(f"SELECT {columns} FROM {name} ORDER BY _line").df()
    return out


@pytest.mark.parametrize("point_in_time", [False, True], ids=["events", "as-of"])
def test_spark_ingest_writes_the_tables_duckdb_loads(data, spark, tmp_path, point_in_time):
    days = pq.read_table(data / "usage_daily.parquet").column("date").to_pandas()
    as_of = pd.Timestamp(days.min() + pd.Timedelta(days=180)).date() if point_in_time else None
    events = [] if point_in_time else _events(data)
    home = Home(tmp_path / "home")
    result = lake.ingest(data, home, spark, as_of=as_of, events=events)
    expected = warehouse.ingest(data, tmp_path / "w.duckdb", as_of=as_of, events=events)
    assert result.data_hash == expected.data_hash
    assert result.rows == expected.rows and result.left_out == expected.left_out
    assert not home.warehouse.exists() and lake.newest(home) == "lake"

    duck = warehouse.connect(tmp_path / "w.duckdb")
    ours = lake.connect_embedded(home)  # the lake's Parquet, read by DuckDB
    theirs = _tables(duck)
    for name, frame in _tables(ours).items():
        pd.testing.assert_frame_equal(frame, theirs[name], check_dtype=False, obj=name)
    assert warehouse.ingest_metadata(ours) | {"loaded_at": None} == {
        k: v for k, v in lake.current(home).items() if k != "location"
    } | {"loaded_at": None}
    if point_in_time:
        assert result.left_out["usage_daily"] > 0
        assert ours.execute("SELECT max(date) FROM usage_daily").fetchone()[0] == as_of
    else:
        live = ours.execute("SELECT active_users, _line FROM usage_daily WHERE _line < 0").fetchall()
        assert live == [(5, -3)]  # the last reading of the day; the files win over event 4
        assert ours.execute("SELECT count(*) FROM tickets WHERE ticket_id = 'T-live'").fetchone()[0] == 1
        # the live service's health state, built from the lake as from the warehouse
        day = date.today()
        scored = [health.HealthScorer.from_warehouse(c, day) for c in (ours, duck)]
        accounts = sorted(scored[1].accounts)
        assert accounts and scored[0].score_many(accounts, day) == scored[1].score_many(accounts, day)
    # and Spark reads the same tables straight from the lake
    on_spark = lake.connect_spark(home)
    n = on_spark.execute("SELECT count(*) FROM usage_daily").fetchone()[0]
    assert n == len(theirs["usage_daily"])


def test_refused_input_leaves_the_tables_and_readers_follow_the_newest_ingest(data, spark, tmp_path):
    home = Home(tmp_path / "home")
    lake.ingest(data, home, spark)
    pointer = lake.root(home) / lake.POINTER
    before = pointer.read_text()
    bad = tmp_path / "bad"
    shutil.copytree(data, bad)
    table = pq.read_table(bad / "subscriptions.parquet").to_pandas()
    table.loc[2, "amount_usd"] = 10.005
    table.loc[4, "account_id"] = "<b>nobody's</b>"
    table.to_parquet(bad / "subscriptions.parquet", index=False)
    with pytest.raises(InputError) as caught:
        lake.ingest(bad, home, spark, events=[{"table": "nowhere"}])
    text = caught.value.log.report()
    assert "subscriptions.parquet:3: column 'amount_usd': not an amount in whole cents" in text
    assert "subscriptions.parquet:5: column 'account_id': unknown account_id (not in accounts)" in text
    assert "events:1: column 'table': unknown table 'nowhere'" in text
    assert pointer.read_text() == before
    # the same through the command line: the problems named, no traceback, nothing changed
    result = run_cfx("ingest", str(bad), "--engine", "spark", home=home.root, timeout=600, env=QUICK_SPARK_JVM)
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "subscriptions.parquet:3: column 'amount_usd': not an amount in whole cents" in result.stderr
    assert pointer.read_text() == before
    assert len([p for p in lake.root(home).iterdir() if p.is_dir()]) == 1

    # A DuckDB ingest after it is what readers see; a Spark ingest after that, again the lake.
    warehouse.ingest(data, home.warehouse)
    assert lake.newest(home) == "warehouse"
    os.utime(pointer)
    assert lake.newest(home) == "lake"
    # A third folder: the oldest goes, the current one and the one before stay. The oldest is a
    # copy of the first under a name that sorts first (one Spark ingest less).
    first = Path(lake.current(home)["location"])
    oldest = first.with_name("00000000-000000-" + first.name.rsplit("-", 1)[-1])
    shutil.copytree(first, oldest)
    lake.ingest(data, home, spark)
    assert sorted(p for p in lake.root(home).iterdir() if p.is_dir()) == [first, Path(lake.current(home)["location"])]


def test_input_and_tables_in_cloud_storage(data, spark, tmp_path, monkeypatch):
    """Input read from ``gs://`` and tables written there (Google's connector against the GCS
    emulator): the same tables as from local files, the fundraising file read through Spark, a
    data hash from the content; the embedded engine says it cannot read them."""
    import uuid

    from cfxlib.store.spark import session
    from tests.servers import GcsEmulator

    emulator = GcsEmulator().start()
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.host)
        session()  # gs:// now goes to the emulator
        bucket = emulator.bucket(f"cfx-{uuid.uuid4().hex[:12]}", versioning=False)
        for path in data.iterdir():
            if path.is_file():
                bucket.blob(f"input/{path.name}").upload_from_filename(str(path))
        local = Home(tmp_path / "local")
        lake.ingest(data, local, spark)
        remote = Home(tmp_path / "remote")
        result = lake.ingest(f"gs://{bucket.name}/input", remote, spark, location=f"gs://{bucket.name}/tables")
        meta = lake.current(remote)
        assert meta["location"].startswith(f"gs://{bucket.name}/tables/")
        assert meta["fundraising"] is not None and meta["fundraising"] == lake.current(local)["fundraising"]
        assert len(result.data_hash) == 64 and result.data_hash != lake.current(local)["data_hash"]
        written = [b.name for b in emulator.client().list_blobs(bucket.name, prefix="tables/")]
        assert any(n.endswith(".parquet") and "/table-usage_daily.parquet/part-" in n for n in written)
        assert [p.name for p in lake.root(remote).iterdir()] == [lake.POINTER]  # nothing else is local
        ours = _tables(lake.connect_spark(remote))  # one Spark session: one home's views, then the other's
        theirs = _tables(lake.connect_spark(local))
        assert len(ours["usage_daily"]) == pq.read_metadata(data / "usage_daily.parquet").num_rows
        for name, frame in ours.items():
            pd.testing.assert_frame_equal(frame, theirs[name], check_dtype=False, obj=name)
        with pytest.raises(FileNotFoundError, match="only Spark reads"):
            lake.connect_embedded(remote)
    finally:
        emulator.kill()
