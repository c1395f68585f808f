"""The job's DuckDB connections: a memory limit from the settings and a spill folder per process."""

from __future__ import annotations

import os

import duckdb
import pytest

from cfxlib.core.home import Home
from cfxlib.core.settings import SettingsError, load_settings
from cfxlib.publish import notebook_steps
from cfxlib.store import lake


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CFX_HOME", str(tmp_path / "home"))
    home = Home(tmp_path / "home")
    home.warehouse_dir.mkdir(parents=True)
    duckdb.connect(str(home.warehouse)).close()
    return home


def _setting(con, name: str) -> str:
    return con.execute(f"SELECT current_setting('{name}')").fetchone()[0]


def test_a_steps_connection_spills_past_its_limit_into_a_folder_of_its_own(home, monkeypatch):
    monkeypatch.setenv("CFX_DUCKDB__MEMORY_LIMIT", "64MB")
    con = notebook_steps._connect(load_settings(), home)
    try:
        assert _setting(con, "memory_limit") == "61.0 MiB"
        spill = home.root / "tmp" / f"duckdb-{os.getpid()}"
        assert _setting(con, "temp_directory") == str(spill)
        # about 200 MB of text held in a temporary table: only fits by spilling to that folder
        con.execute(
            "CREATE TEMP TABLE big AS SELECT md5(range::VARCHAR) || md5(range::VARCHAR) AS s FROM range(2500000)"
        )
        assert con.execute("SELECT count(DISTINCT s) FROM big").fetchone()[0] == 2_500_000
        files = [row[0] for row in con.execute("SELECT path FROM duckdb_temporary_files()").fetchall()]
        assert files and all(f.startswith(str(spill)) for f in files)
        # another connection to the warehouse in this process (DuckDB refuses one with a
        # different configuration, so the limit is set, not passed at connect time)
        other = lake.connect_embedded(home)
        assert _setting(other, "memory_limit") == "61.0 MiB"
        other.close()
    finally:
        con.close()
    assert not spill.exists()  # DuckDB removes its spill folder when the database closes


def test_the_default_limit_is_2gb_and_a_share_of_the_machine_is_accepted(home, monkeypatch):
    con = notebook_steps._connect(load_settings(), home)
    try:
        assert _setting(con, "memory_limit") == "1.8 GiB"  # DuckDB shows 2 GB in GiB
    finally:
        con.close()
    monkeypatch.setenv("CFX_DUCKDB__MEMORY_LIMIT", "25%")
    con = notebook_steps._connect(load_settings(), home)
    try:
        default = duckdb.connect()  # DuckDB's own default: 80% of the machine's memory
        ratio = _bytes(_setting(con, "memory_limit")) / _bytes(_setting(default, "memory_limit"))
        assert ratio == pytest.approx(25 / 80, rel=0.03)  # both shown to one decimal
    finally:
        con.close()


def _bytes(text: str) -> float:
    number, unit = text.split()
    return float(number) * {"KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}[unit]


@pytest.mark.parametrize("value", ["lots", "2 GBs", "-1GB", "", "150%", "0%", "1b", "10MB"])
def test_a_bad_memory_limit_names_the_setting(home, monkeypatch, value):
    monkeypatch.setenv("CFX_DUCKDB__MEMORY_LIMIT", value)
    with pytest.raises(SettingsError, match="duckdb.memory_limit"):
        load_settings()
