"""The command line end to end: demo data, ingest (CSV and Parquet), run, help and errors."""

from __future__ import annotations

import json
import re

import pytest

from cfxlib.store.summary import warehouse_summary

COMMANDS = ["demo-data", "ingest", "run", "docs"]


def test_version_and_help(cfx):
    version = cfx("--version")
    assert version.returncode == 0 and re.match(r"cfx \d+\.\d+", version.stdout)
    top = cfx("--help")
    assert top.returncode == 0
    for command in COMMANDS:
        assert command in top.stdout
        sub = cfx(command, "--help")
        assert sub.returncode == 0, sub.stderr
        assert "Usage" in sub.stdout


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_demo_data_then_ingest_prints_summary(cfx, home, tmp_path, fmt):
    data = tmp_path / "data"
    made = cfx(
        "demo-data",
        str(data),
        "--accounts",
        "120",
        "--months",
        "12",
        "--seed",
        "5",
        "--end-month",
        "2025-09",
        "--format",
        fmt,
    )
    assert made.returncode == 0, made.stderr
    assert (data / f"usage_daily.{fmt}").exists()
    loaded = cfx("ingest", str(data))
    assert loaded.returncode == 0, loaded.stderr
    for word in (
        "accounts",
        "active subscriptions",
        "Starter",
        "Professional",
        "Enterprise",
        "MRR",
        "ARR",
        "2025-09-30",
    ):
        assert word in loaded.stdout
    summary = warehouse_summary(home / "warehouse" / "cfx.duckdb")
    assert summary["accounts"] == 120
    assert summary["arr"] == pytest.approx(12 * summary["mrr"])
    assert summary["mrr"] == pytest.approx(sum(t["mrr"] for t in summary["by_tier"]))


def test_csv_and_parquet_load_the_same_numbers(tmp_path):
    from cfxlib.demo import DemoOptions, generate
    from cfxlib.store.warehouse import ingest

    summaries = []
    for fmt in ("csv", "parquet"):
        data = tmp_path / fmt
        generate(data, DemoOptions(accounts=80, months=10, seed=9, end_month="2025-09", fmt=fmt))
        wh = tmp_path / f"{fmt}.duckdb"
        ingest(data, wh)
        summary = warehouse_summary(wh)
        summary.pop("data_hash")
        summaries.append(summary)
    assert summaries[0] == summaries[1]


def test_the_demo_runs_only_when_asked_and_is_stamped_everywhere(cfx, home, tmp_path):
    """A bare `cfx run` with no data refuses (the scheduled path must never publish fictional
    figures); `--demo` publishes the demo company stamped "Demo data" on every page and PDF page;
    investor sending and data room upload refuse it unless --allow-demo."""
    from cfxlib.core.provenance import DEMO_LABEL, DEMO_NOTE
    from tests.pdf import pdf_text

    small = {"CFX_DEMO__ACCOUNTS": "60", "CFX_DEMO__MONTHS": "8"}
    bare = cfx("run", env=small)
    assert bare.returncode == 2 and "--demo" in bare.stderr and "--data" in bare.stderr, bare.stderr
    assert "Traceback" not in bare.stderr and not (home / "published").exists()
    result = cfx("run", "--demo", env=small)
    assert result.returncode == 0, result.stderr
    assert (home / "demo-data" / "accounts.csv").exists() and (home / "demo-data" / "_demo.json").exists()
    assert (home / "warehouse" / "cfx.duckdb").exists()
    assert "Recurring revenue" in result.stdout
    pub = home / "published"
    assert json.loads((pub / "run.json").read_text())["source"] == "demo"
    assert json.loads((pub / "metrics_snapshot.json").read_text())["source"] == "demo"
    pages = sorted((pub / "site").rglob("*.html"))
    content = [p for p in pages if p.name != "index.html" or "cfx-demo-banner" in p.read_text()]
    assert content and all(DEMO_NOTE in " ".join(p.read_text().split()) for p in content), [p.name for p in content]
    for pdf in sorted((pub / "reports").glob("*.pdf")):
        texts = pdf_text(pdf).split("\f")
        assert texts and all(DEMO_LABEL.lower() in t.lower() for t in texts), pdf.name
    # After a demo run, a bare run (the scheduler's daily refresh) still refuses.
    again = cfx("run")
    assert again.returncode == 2 and "demo company" in again.stderr
    for args in (
        ("investor", "weekly"),
        ("investor", "alerts"),
        ("investor", "board-pack"),
        ("notify", "flush"),
        ("dataroom", "sync"),
    ):
        refused = cfx(*args)
        assert refused.returncode == 2 and "demo company" in refused.stderr and "--allow-demo" in refused.stderr, args
    assert not (home / "investor" / "snapshots").exists() or not any((home / "investor" / "snapshots").iterdir())
    allowed = cfx("investor", "weekly", "--allow-demo")
    assert allowed.returncode == 0, allowed.stderr


def test_user_mistakes_get_a_message_not_a_traceback(cfx, tmp_path):
    missing = cfx("ingest", str(tmp_path / "nope"))
    assert missing.returncode == 2
    assert "data directory does not exist" in missing.stderr and "Traceback" not in missing.stderr
    bad_month = cfx("demo-data", str(tmp_path / "d"), "--end-month", "2099-01")
    assert bad_month.returncode == 2 and "not a complete month" in bad_month.stderr
    bad_fmt = cfx("demo-data", str(tmp_path / "d"), "--format", "xlsx")
    assert bad_fmt.returncode == 2 and "csv or parquet" in bad_fmt.stderr
    bad_setting = cfx("run", env={"CFX_SERVICE__PORT": "http"})
    assert bad_setting.returncode == 2 and "service.port" in bad_setting.stderr


def test_tables_are_never_cut_when_piped(cfx):
    """`cfx token list` (like every table of the CLI) prints whole values into a pipe, not `…`."""
    name = "a-very-long-token-name-for-the-operations-team-of-the-plant-in-rotterdam"
    assert cfx("token", "create", "--role", "analyst", "--name", name).returncode == 0
    listed = cfx("token", "list")
    assert listed.returncode == 0 and name in listed.stdout and "…" not in listed.stdout
