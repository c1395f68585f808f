"""Alert rules and their memory: pending for N snapshots, firing once, reminders at the interval,
resolved once; never flapping on the same snapshot; rule files with line and field in errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from cfxlib.contract import alert_rules
from cfxlib.contract.issues import InputError
from cfxlib.core.settings import Thresholds
from cfxlib.investor.alerts import RuleStatus, step

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def snap(month: str, growth: float | None, data: str = "a") -> dict:
    return {"as_of": month, "data_hash": (data * 64)[:64], "arr_growth_mom": growth, "arr": 1e6, "mrr": 1e6 / 12}


def rule(**kw) -> alert_rules.Rule:
    base = dict(
        id="arr-growth",
        title="ARR growth",
        metric="arr_growth_mom_pct",
        condition="below",
        threshold_setting="arr_growth_mom_min_pct",
        repeat_every="7d",
    )
    return alert_rules.Rule(**{**base, **kw})


def run(r, snaps_and_times):
    status, kinds = RuleStatus(), []
    for s, t in snaps_and_times:
        status, notice = step(r, status, s, Thresholds(), t)
        kinds.append(notice.kind if notice else None)
    return status, kinds


def test_fires_once_reminds_at_its_interval_and_resolves_once():
    r = rule()
    status, kinds = run(
        r,
        [
            (snap("2026-08", 0.08), T0),
            (snap("2026-09", 0.02), T0 + timedelta(days=1)),  # fails: fires
            (snap("2026-09", 0.02), T0 + timedelta(days=2)),  # same snapshot again: nothing
            (snap("2026-10", 0.03, "b"), T0 + timedelta(days=5)),  # still failing, within 7 days
            (snap("2026-10", 0.03, "b"), T0 + timedelta(days=8, hours=1)),  # 7 days after firing: one reminder
            (snap("2026-10", 0.03, "b"), T0 + timedelta(days=9)),
            (snap("2026-11", 0.06, "c"), T0 + timedelta(days=10)),  # recovers: resolved once
            (snap("2026-11", 0.06, "c"), T0 + timedelta(days=11)),
        ],
    )
    assert kinds == [None, "firing", None, None, "reminder", None, "resolved", None]
    assert status.state == "inactive" and status.failing_snapshots == 0


def test_for_consecutive_snapshots_counts_new_snapshots_only():
    r = rule(for_snapshots=2)
    status, kinds = run(
        r,
        [
            (snap("2026-09", 0.01), T0),
            (snap("2026-09", 0.01), T0 + timedelta(hours=1)),  # a re-run is not a second snapshot
            (snap("2026-10", 0.01, "b"), T0 + timedelta(days=1)),
        ],
    )
    assert kinds == [None, None, "firing"]
    # pending then passing goes back to inactive without any notice
    status, kinds = run(r, [(snap("2026-09", 0.01), T0), (snap("2026-10", 0.09, "b"), T0)])
    assert kinds == [None, None] and status.state == "inactive"


def test_missing_values_are_not_judged():
    r = rule()
    status, kinds = run(r, [(snap("2026-09", 0.01), T0), (snap("2026-10", None, "b"), T0 + timedelta(days=1))])
    assert kinds == ["firing", None] and status.state == "firing"


def test_notice_keys_are_stable_per_episode():
    r = rule()
    s1, n1 = step(r, RuleStatus(), snap("2026-09", 0.01), Thresholds(), T0)
    _, again = step(r, RuleStatus(), snap("2026-09", 0.01), Thresholds(), T0 + timedelta(minutes=5))
    assert n1.key == again.key  # a crash before the state was saved repeats the same key
    _, resolved = step(r, s1, snap("2026-10", 0.09, "b"), Thresholds(), T0)
    assert resolved.key.startswith("alert/arr-growth/2026-09/") and resolved.key.endswith("/resolved")


def test_thresholds_come_from_settings():
    r = rule()
    assert alert_rules.breaches(snap("2026-09", 0.04), [r], Thresholds()) != []
    assert alert_rules.breaches(snap("2026-09", 0.04), [r], Thresholds(arr_growth_mom_min_pct=3)) == []


def test_default_rules_load_and_the_uptime_rule_watches_every_service():
    rules = {r.id: r for r in alert_rules.load(None, Thresholds())}
    assert {"arr-growth", "uptime", "nrr", "grr", "logo-churn", "runway", "at-risk-arr"} <= set(rules)
    s = {"as_of": "2026-10", "uptime_pct": 99.9, "worst_service_uptime_pct": 99.3}
    assert [b.rule for b in alert_rules.breaches(s, [rules["uptime"]], Thresholds())] == ["uptime"]


def test_a_home_changes_only_the_keys_it_gives(tmp_path):
    (tmp_path / "alerts.yaml").write_text(
        "schema_version: 1\nrules:\n"
        "  - {id: uptime, metric: uptime_average_pct}\n"
        "  - {id: arr-growth, threshold: 3}\n"
        "  - {id: runway, enabled: false}\n"
        "  - id: big-customers\n    title: Customers\n    metric: logo_churn_pct\n    condition: above\n    threshold: 1\n"
    )
    rules = {r.id: r for r in alert_rules.load(tmp_path, Thresholds())}
    assert rules["uptime"].metric == "uptime_average_pct" and rules["uptime"].severity == "critical"
    assert rules["arr-growth"].threshold == 3 and rules["arr-growth"].threshold_setting is None
    assert "runway" not in rules and "big-customers" in rules


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "schema_version: 1\nrules:\n  - {id: uptime, condition: sideways}\n",
            r"alerts.yaml:3: column 'rules.0.condition'",
        ),
        (
            "schema_version: 1\nrules:\n  - {id: nrr, repeat_every: soon}\n",
            r"alerts.yaml:3: .*rules.0.repeat_every.*30m, 12h",
        ),
        (
            "schema_version: 1\nrules:\n  - id: x\n    title: X\n    metric: mrr\n    condition: below\n    threshold: 1\n",
            r"unknown metric 'mrr'",
        ),
        ("schema_version: 2\nrules: []\n", r"alerts.yaml:1: column 'schema_version'"),
    ],
)
def test_rule_file_errors_name_line_and_field(tmp_path, text, expected):
    (tmp_path / "alerts.yaml").write_text(text)
    with pytest.raises(InputError, match=expected):
        alert_rules.load(tmp_path, Thresholds())
