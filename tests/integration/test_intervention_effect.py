"""The effect report against a known truth: the demo company's calls to action have playbooks with
a true effect on churn (adoption workshop halves the hazard, ROI review cuts it by a quarter, the
detractor follow-up does nothing) and a random holdout. Across seeds, the 90% intervals must cover
the true effect about as often as they claim (docs/benchmarks.md has 30 seeds of 2,000 accounts)."""

from __future__ import annotations

from datetime import date

import pytest

from cfxlib.demo import DemoOptions, generate
from cfxlib.interventions.effect import check_against_truth

pytestmark = pytest.mark.xdist_group("effect")


def test_intervals_cover_the_true_effect_about_as_often_as_they_claim(tmp_path):
    figures = []
    for seed in range(1, 9):
        folder = tmp_path / f"seed-{seed}"
        generate(folder, DemoOptions(accounts=1200, months=24, seed=seed, end_month="2025-12"))
        figures += check_against_truth(folder, date(2025, 12, 31))
    assert len(figures) >= 24, f"only {len(figures)} measurable figures"
    covered = sum(f["covered"] for f in figures) / len(figures)
    # 90% nominal: below 75% (or every one of 30+ covered with useless widths) would be a broken interval
    assert covered >= 0.75, f"coverage {covered:.0%}"
    widths = [f["interval"][1] - f["interval"][0] for f in figures]
    assert sum(widths) / len(widths) < 0.5
    workshop = [f for f in figures if f["playbook"] == "adoption workshop"]
    assert workshop and all(f["true_effect"] < -0.05 for f in workshop)  # the truth itself: it helps
    bias = sum(f["difference"] - f["true_effect"] for f in workshop) / len(workshop)
    assert abs(bias) < 0.12, f"mean estimate minus truth {bias:+.3f}"  # about 2.5 standard errors of 8 seeds
    noop = [f for f in figures if f["playbook"] == "detractor follow-up"]
    assert noop and all(abs(f["true_effect"]) < 1e-9 for f in noop)
