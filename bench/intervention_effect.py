"""Benchmark: does the intervention effect report's 90% interval cover the true effect 90% of the time?

    .venv/bin/python bench/intervention_effect.py [--seeds 30] [--accounts 2000] [--months 36]

The demo generator gives at-risk accounts calls to action with one of three playbooks whose true
effect on the monthly churn hazard is known (adoption workshop x0.5, ROI review x0.75, detractor
follow-up x1.0 = none) and holds 30% out. For each seed it writes a demo company, computes the
effect report (cfxlib.interventions.effect) as of the data's last month, and compares each
interval with the true mean effect over the same accounts (_truth/intervention_effects.csv).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, now, update_section  # noqa: E402


def main() -> None:
    from cfxlib.demo import DemoOptions, generate
    from cfxlib.interventions.effect import check_against_truth

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=30)
    parser.add_argument("--accounts", type=int, default=2000)
    parser.add_argument("--months", type=int, default=36)
    args = parser.parse_args()
    rows, start = [], time.perf_counter()
    for seed in range(1, args.seeds + 1):
        with tempfile.TemporaryDirectory() as tmp:
            generate(Path(tmp), DemoOptions(accounts=args.accounts, months=args.months, seed=seed, end_month="2025-12"))
            for fig in check_against_truth(Path(tmp), pd.Timestamp("2025-12-31").date()):
                rows.append({"seed": seed, **fig, "width": fig["interval"][1] - fig["interval"][0]})
        print(f"seed {seed}: {sum(r['covered'] for r in rows)}/{len(rows)} covered so far", flush=True)
    frame = pd.DataFrame(rows)
    table = frame.groupby("playbook").agg(
        intervals=("covered", "size"),
        covered=("covered", "mean"),
        true_effect=("true_effect", "mean"),
        estimate=("difference", "mean"),
        width=("width", "mean"),
        treated=("treated", "mean"),
        holdout=("holdout", "mean"),
    )
    lines = [
        f"Machine: {machine()}; date {now()}; {time.perf_counter() - start:.0f} s.",
        "",
        f"Command: `.venv/bin/python bench/intervention_effect.py --seeds {args.seeds} --accounts {args.accounts} "
        f"--months {args.months}` — {args.seeds} demo companies, effect report as of 2025-12 (3-month churn, "
        "treated minus held out, 90% Newcombe interval) against the generator's true effect over the same accounts.",
        "",
        "| playbook | intervals | covered | mean true effect | mean estimate | mean width | treated | held out |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in table.iterrows():
        lines.append(
            f"| {name} | {int(r.intervals)} | {100 * r.covered:.0f}% | {100 * r.true_effect:+.1f} pts | "
            f"{100 * r.estimate:+.1f} pts | {100 * r.width:.1f} pts | {r.treated:.0f} | {r.holdout:.0f} |"
        )
    total = frame["covered"].mean()
    lines += [
        "",
        f"All intervals: {frame['covered'].sum()} of {len(frame)} cover the truth ({100 * total:.0f}%; nominal 90%).",
    ]
    body = "\n".join(lines)
    print(body)
    update_section("Interventions: effect interval coverage (bench/intervention_effect.py)", body)


if __name__ == "__main__":
    main()
