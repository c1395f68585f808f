"""The bad-input corpus: every case fails with its specific error and changes nothing."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.conftest import DATA, run_cfx

GOOD = DATA / "good"
CASES = sorted(p.name for p in (DATA / "bad").iterdir())


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _data_dir(tmp_path: Path, overlay: Path | None) -> Path:
    target = tmp_path / "data"
    shutil.copytree(GOOD, target)
    if overlay is not None:
        for path in overlay.iterdir():
            if path.name in ("expected.txt", "remove.txt"):
                continue
            shutil.copy(path, target / path.name)
        remove = overlay / "remove.txt"
        if remove.exists():
            for name in remove.read_text().split():
                (target / name).unlink()
    return target


@pytest.fixture(scope="module")
def loaded_home(tmp_path_factory) -> Path:
    """A home whose warehouse holds the good corpus."""
    home = tmp_path_factory.mktemp("home")
    result = run_cfx("ingest", str(GOOD), home=home)
    assert result.returncode == 0, result.stderr
    return home


def test_corpus_is_large_enough():
    assert len(CASES) >= 25


@pytest.mark.parametrize("case", CASES)
def test_bad_case_fails_clearly_and_leaves_warehouse_untouched(case, loaded_home, tmp_path):
    warehouse = loaded_home / "warehouse" / "cfx.duckdb"
    before = _digest(warehouse)
    result = run_cfx("ingest", str(_data_dir(tmp_path, DATA / "bad" / case)), home=loaded_home)
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    for expected in (DATA / "bad" / case / "expected.txt").read_text(encoding="utf-8").splitlines():
        assert expected in result.stderr, f"missing {expected!r} in:\n{result.stderr[:3000]}"
    assert _digest(warehouse) == before
    assert sorted(p.name for p in warehouse.parent.iterdir()) == ["cfx.duckdb"], "temporary files left behind"


def test_formula_text_and_extra_columns_are_valid_input(tmp_path, home):
    result = run_cfx("ingest", str(_data_dir(tmp_path, DATA / "valid_formula_text")), home=home)
    assert result.returncode == 0, result.stderr
    import duckdb

    con = duckdb.connect(str(home / "warehouse" / "cfx.duckdb"), read_only=True)
    note = con.execute("SELECT crm_note FROM accounts WHERE crm_note IS NOT NULL").fetchone()[0]
    assert note.startswith("=HYPERLINK(")


def test_first_20_issues_then_a_count(tmp_path, home):
    data = _data_dir(tmp_path, None)
    usage = (data / "usage_daily.csv").read_text().splitlines()
    # 30 rows with an unknown account: 20 shown in full, then a count of the rest.
    bad = [line.replace('"ACC-', '"NOPE-', 1) for line in usage[1:31]]
    (data / "usage_daily.csv").write_text("\n".join([usage[0], *bad, *usage[31:]]) + "\n")
    result = run_cfx("ingest", str(data), home=home)
    assert result.returncode == 2
    shown = [
        line for line in result.stderr.splitlines() if "unknown account_id" in line and line.startswith("usage_daily")
    ]
    assert len(shown) == 20
    assert "and 10 more issue(s)" in result.stderr
    assert not (home / "warehouse" / "cfx.duckdb").exists()
