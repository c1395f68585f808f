"""Held-out interval coverage of the ARR forecast across demo companies (seeds).

The forecast's 80% and 95% intervals are rescaled by split-conformal factors learnt from its own
rolling-origin backtest (cfxlib.metrics.calibration); the coverage it publishes is held out by
origin. On one company that figure rests on 42 past forecasts per series (six origins), so it
moves by several points with the data alone. This bench generates the demo company with several
seeds (same size, same months), runs the published backtest on each (the procedure of
``cfx run``'s finance step) and reports each series' held-out coverage per seed, then the mean,
the range and how often it fell within 5 points of nominal. Results go to docs/benchmarks.md.

    .venv/bin/python bench/interval_coverage.py [--seed 1 --seed 2 ...] [--accounts 2000]
"""

from __future__ import annotations

import argparse
import math
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine, now, update_section  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))
SEEDS = (1, 2, 3, 4, 5, 6, 42)
SERIES = ("Total", "Starter", "Professional", "Enterprise")
LEVELS = (80, 95)


def backtest_of_seed(seed: int, accounts: int, months: int, work: Path) -> dict:
    """Generate and ingest the demo company with ``seed``; its backtest's figures per series."""
    import duckdb

    from cfxlib.metrics import arr_forecast
    from cfxlib.metrics.forecast import CandidateCache

    home, data = work / f"home-{seed}", work / f"data-{seed}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CFX_")}, "CFX_HOME": str(home)}
    demo = [CFX, "demo-data", str(data), "--seed", str(seed), "--accounts", str(accounts), "--months", str(months)]
    subprocess.run(demo, env=env, check=True, capture_output=True)
    subprocess.run([CFX, "ingest", str(data)], env=env, check=True, capture_output=True)
    with duckdb.connect(str(home / "warehouse" / "cfx.duckdb"), read_only=True) as con:
        history = arr_forecast.arr_history(con=con)
    report = arr_forecast.backtest_report(
        history, h=12, origins=6, step=2, hierarchical=True, cache=CandidateCache()
    )  # as metrics.finance.compute runs it
    shutil.rmtree(home, ignore_errors=True)
    shutil.rmtree(data, ignore_errors=True)
    points = report["points"]
    return {
        name: {
            "held_out": {lv: figures["reconciled"][f"coverage_{lv}"] for lv in LEVELS},
            "uncalibrated": {lv: figures["uncalibrated"][f"coverage_{lv}"] for lv in LEVELS},
            "forecasts": int((points["unique_id"] == name).sum()),
        }
        for name, figures in report["by_series"].items()
    }


def pct(x: float) -> str:
    return f"{100 * x:.0f}%"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, action="append", help=f"demo seeds (default {SEEDS})")
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    seeds = tuple(args.seed or SEEDS)
    started = now()
    work = Path(tempfile.mkdtemp(prefix="cfx-bench-coverage-"))
    try:
        results = {}
        for seed in seeds:
            results[seed] = backtest_of_seed(seed, args.accounts, args.months, work)
            print(seed, {s: results[seed][s]["held_out"] for s in SERIES if s in results[seed]}, flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    head = "| seed | " + " | ".join(f"{s} 80% / 95%" for s in SERIES) + " |"
    rows = [head, "|---:|" + "---:|" * len(SERIES)]
    for seed in seeds:
        cells = [
            " / ".join(pct(results[seed][s]["held_out"][lv]) for lv in LEVELS) if s in results[seed] else "–"
            for s in SERIES
        ]
        rows.append(f"| {seed} | " + " | ".join(cells) + " |")
    summary = ["| series, level | held out: mean (min-max) | within 5 points of nominal | before calibration: mean |"]
    summary.append("|---|---:|---:|---:|")
    for s in SERIES:
        for lv in LEVELS:
            held = [results[k][s]["held_out"][lv] for k in seeds if s in results[k]]
            raw = [results[k][s]["uncalibrated"][lv] for k in seeds if s in results[k]]
            within = sum(abs(v - lv / 100) <= 0.05 + 1e-9 for v in held)
            summary.append(
                f"| {s} {lv}% | {pct(sum(held) / len(held))} ({pct(min(held))}-{pct(max(held))}) | "
                f"{within} of {len(held)} | {pct(sum(raw) / len(raw))} |"
            )
    n = results[seeds[0]]["Total"]["forecasts"]
    se = math.sqrt(0.8 * 0.2 / n)
    lines = [
        f"Machine: {machine()}. Date: {started} to {now()}.",
        "",
        f"Command: `.venv/bin/python bench/interval_coverage.py {' '.join(f'--seed {k}' for k in seeds)} "
        f"--accounts {args.accounts} --months {args.months}` — per seed the demo company generated and ingested, "
        "then the forecast's rolling-origin backtest as `cfx run` runs it (6 origins 2 months apart, horizons up "
        "to 12 months, reconciled, split-conformal factors learnt from the other origins). Coverage: share of "
        f"past actuals inside the interval, held out by origin; {n} past forecasts per series, so one company's "
        f"figure has a binomial standard error of about {100 * se:.0f} points at 80%.",
        "",
        *rows,
        "",
        *summary,
    ]
    update_section("Forecast interval coverage across demo companies (bench/interval_coverage.py)", "\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
