"""Benchmark: the whole main job at 2,000, 20,000 and 100,000 accounts x 36 months, per step,
on DuckDB, and on Spark (local mode) at 20,000.

    .venv/bin/python bench/scale.py [--sizes 2000,20000,100000] [--spark 20000]

For each size and engine, in a fresh home: `cfx demo-data` (generate; CSV for DuckDB, Parquet
for Spark), `cfx ingest --engine E` (validate and load), then `cfx run --engine E` (every notebook
step, render, publish), each timed with its peak memory (the
largest process of the command, notebook kernels included); step times from the run's run.json.
Results go to docs/benchmarks.md; growth is reported as time per 1,000 accounts.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, measure, now, update_section  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))


def one(accounts: int, engine: str) -> dict:
    """Generate, ingest and run in a fresh home. DuckDB: CSV input loaded into the warehouse;
    Spark: Parquet input validated on Spark and written as its tables (no DuckDB on the way)."""
    work = Path(tempfile.mkdtemp(prefix=f"cfx-scale-{accounts}-{engine}-"))
    home, data = work / "home", work / "data"
    env = {"CFX_HOME": str(home)}
    fmt = "parquet" if engine == "spark" else "csv"
    try:
        gen = measure(
            [
                CFX,
                "demo-data",
                str(data),
                "--accounts",
                str(accounts),
                "--months",
                "36",
                "--seed",
                "7",
                "--format",
                fmt,
            ],
            env=env,
        )
        assert gen.returncode == 0, "demo-data failed"
        ingest = measure([CFX, "ingest", str(data), "--engine", engine], env=env)
        assert ingest.returncode == 0, f"ingest --engine {engine} failed at {accounts} accounts"
        run = measure([CFX, "run", "--demo", "--engine", engine], env=env)
        assert run.returncode == 0, f"cfx run --engine {engine} failed at {accounts} accounts"
        steps = json.loads((home / "published" / "run.json").read_text())["steps"]
        print(
            f"{accounts:,} accounts, {engine}: generate {gen.seconds:.0f} s, ingest {ingest.seconds:.0f} s, "
            f"run {run.seconds:.0f} s ({run.peak_rss_mb:,.0f} MB)",
            flush=True,
        )
        return {
            "accounts": accounts,
            "engine": engine,
            "generate": gen,
            "ingest": ingest,
            "run": run,
            "steps": {k: v.get("seconds", 0) for k, v in steps.items()},
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="2000,20000,100000")
    parser.add_argument("--spark", default="20000", help="sizes also run on Spark (comma-separated)")
    parser.add_argument("--section", default="Scale: end to end by size", help="docs/benchmarks.md section to write")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    spark = {int(s) for s in args.spark.split(",") if s}
    rows = []
    for n in sizes:
        rows += [one(n, engine) for engine in (["duckdb", "spark"] if n in spark else ["duckdb"])]
    step_names = list(rows[0]["steps"])
    section = "" if args.section == parser.get_default("section") else f" --section '{args.section}'"
    lines = [
        f"Machine: {machine()}. Date: {now()}.",
        "",
        f"Command: `.venv/bin/python bench/scale.py --sizes {args.sizes} --spark '{args.spark}'{section}` — the demo company "
        "at each size x 36 months (seed 7), in a fresh home per engine: generate, ingest, then `cfx run`. "
        "DuckDB: CSV input loaded into the warehouse; Spark: Parquet input validated on Spark and written as "
        "its tables (`cfx ingest --engine spark`), every step reading them there.",
        "",
        "| accounts | engine | generate | ingest | run | end to end | s per 1,000 accounts | peak memory (MB) | "
        + " | ".join(step_names)
        + " |",
        "|---:|---|---:|---:|---:|---:|---:|---:|" + "---:|" * len(step_names),
    ]
    for r in rows:
        total = r["generate"].seconds + r["ingest"].seconds + r["run"].seconds
        peak = max(r["generate"].peak_rss_mb, r["ingest"].peak_rss_mb, r["run"].peak_rss_mb)
        lines.append(
            f"| {r['accounts']:,} | {r['engine']} | {r['generate'].seconds:.0f} s | {r['ingest'].seconds:.0f} s | "
            f"{r['run'].seconds:.0f} s | **{total:.0f} s** | {1000 * total / r['accounts']:.1f} | {peak:,.0f} | "
            + " | ".join(f"{r['steps'].get(s, 0):.0f}" for s in step_names)
            + " |"
        )
    lines += [
        "",
        "Step columns are seconds inside `cfx run` (two at a time: 03 and 05 first, the others as a lane frees up).",
    ]
    update_section(args.section, "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
