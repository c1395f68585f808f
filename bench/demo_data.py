"""Benchmark: demo-data generation and ingest at 2,000, 20,000 and 100,000 accounts.

    .venv/bin/python bench/demo_data.py [--sizes 2000,20000,100000] [--months 36]

Each step runs as its own process (`cfx demo-data --format parquet`, then `cfx ingest`) so peak
memory (ru_maxrss) is that step's alone. Results go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, measure, now, update_section  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="2000,20000,100000")
    parser.add_argument("--months", type=int, default=36)
    parser.add_argument("--end-month", default="2026-10")
    args = parser.parse_args()
    rows = []
    for n in [int(x) for x in args.sizes.split(",")]:
        work = Path(tempfile.mkdtemp(prefix=f"cfx-bench-{n}-"))
        try:
            data, home = work / "data", work / "home"
            gen = measure(
                [
                    CFX,
                    "demo-data",
                    str(data),
                    "--accounts",
                    str(n),
                    "--months",
                    str(args.months),
                    "--end-month",
                    args.end_month,
                    "--format",
                    "parquet",
                ]
            )
            assert gen.returncode == 0, "demo-data failed"
            load = measure([CFX, "ingest", str(data)], env={"CFX_HOME": str(home)})
            assert load.returncode == 0, "ingest failed"
            con = duckdb.connect(str(home / "warehouse" / "cfx.duckdb"), read_only=True)
            usage_rows = con.execute("SELECT count(*) FROM usage_daily").fetchone()[0]
            total_rows = sum(
                con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
                for t in (
                    "accounts",
                    "subscriptions",
                    "usage_daily",
                    "tickets",
                    "downtime_monthly",
                    "nps_responses",
                    "spend_monthly",
                    "leads",
                    "ops_daily",
                )
            )
            con.close()
            size_mb = sum(p.stat().st_size for p in data.glob("*.parquet")) / 2**20
            rows.append((n, usage_rows, total_rows, size_mb, gen, load))
            print(
                f"{n:>7} accounts: usage rows {usage_rows:,}; generate {gen.seconds:.1f}s {gen.peak_rss_mb:.0f} MB; ingest {load.seconds:.1f}s {load.peak_rss_mb:.0f} MB",
                flush=True,
            )
        finally:
            shutil.rmtree(work, ignore_errors=True)
    base = rows[0]
    lines = [
        f"Machine: {machine()}. Date: {now()}.",
        "",
        f"Command: `.venv/bin/python bench/demo_data.py --sizes {args.sizes} --months {args.months}` "
        "(Parquet; each step a separate process; peak memory = the process's max RSS).",
        "",
        "| accounts | usage_daily rows | all rows | Parquet MB | generate s | generate peak MB | ingest s | ingest peak MB | generate s per 1k accounts | ingest µs per row |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, usage, total, size, gen, load in rows:
        lines.append(
            f"| {n:,} | {usage:,} | {total:,} | {size:,.0f} | {gen.seconds:.1f} | {gen.peak_rss_mb:,.0f} | {load.seconds:.1f} | {load.peak_rss_mb:,.0f} | "
            f"{gen.seconds / n * 1000:.2f} | {load.seconds / total * 1e6:.2f} |"
        )
    if len(rows) > 1:
        last = rows[-1]
        lines += [
            "",
            f"Scaling from {base[0]:,} to {last[0]:,} accounts ({last[0] / base[0]:.0f}x): generation time x{last[4].seconds / base[4].seconds:.1f}, "
            f"ingest time x{last[5].seconds / base[5].seconds:.1f} (rows x{last[2] / base[2]:.1f}); peak memory generate x{last[4].peak_rss_mb / base[4].peak_rss_mb:.1f}, "
            f"ingest x{last[5].peak_rss_mb / base[5].peak_rss_mb:.1f}.",
        ]
    update_section("Demo data generation and ingest (bench/demo_data.py)", "\n".join(lines))


if __name__ == "__main__":
    main()
