"""Health: formulas by hand, configuration rules, and batch = incremental on the demo."""

from __future__ import annotations

from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest

from cfxlib.core.errors import UserError
from cfxlib.customers import health
from cfxlib.demo import DemoOptions, generate
from cfxlib.store import warehouse


def test_component_formulas_by_hand():
    agg = pd.DataFrame(
        [
            # 5 of 20 seats active -> utilisation 0.25 -> 50; 3 of 4 on time, 1 overdue -> 70*0.75 + 30*(2/3)
            dict(
                seats=20,
                users_30d=5,
                users_prev=5,
                tickets_scored=4,
                tickets_on_time=3,
                open_overdue=1,
                downtime_hours=75,
                baseline_hours=100,
                nps_mean=8.0,
            ),
            # no tickets -> 100; usage doubled -> 100; downtime halved -> 100; no NPS -> missing
            dict(
                seats=10,
                users_30d=8,
                users_prev=4,
                tickets_scored=0,
                tickets_on_time=0,
                open_overdue=0,
                downtime_hours=40,
                baseline_hours=100,
                nps_mean=np.nan,
            ),
        ]
    )
    comps = health.component_scores(agg)
    assert comps.loc[0, "usage_rate"] == pytest.approx(50)
    assert comps.loc[0, "ticket_resolution"] == pytest.approx(70 * 0.75 + 30 * (2 / 3))
    assert comps.loc[0, "downtime_reduction"] == pytest.approx(50)
    assert comps.loc[0, "nps"] == pytest.approx(80)
    assert comps.loc[0, "engagement_trend"] == pytest.approx(100 * 0.5 / 0.6)
    assert comps.loc[1, ["usage_rate", "ticket_resolution", "downtime_reduction", "engagement_trend"]].tolist() == [
        100,
        100,
        100,
        100,
    ]
    assert np.isnan(comps.loc[1, "nps"])
    cfg = health.load_config()
    out = health.combine(comps, cfg)
    # missing NPS: the other weights are renormalised (30+20+20+15 = 85)
    assert out.loc[1, "health_score"] == pytest.approx(100.0)
    expected0 = (
        30 * 50 + 20 * comps.loc[0, "ticket_resolution"] + 20 * 50 + 15 * 80 + 15 * comps.loc[0, "engagement_trend"]
    ) / 100
    assert out.loc[0, "health_score"] == pytest.approx(round(expected0, 1))
    contrib = out.loc[0, [f"contrib_{c}" for c in health.COMPONENTS]].sum()
    assert contrib == pytest.approx(out.loc[0, "health_score"], abs=0.06)
    assert out.loc[0, "band"] == "yellow" and out.loc[1, "band"] == "green"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("weights: {usage_rate: 60, ticket_resolution: 20, downtime_reduction: 20, nps: 15}", "sum to 100"),
        ("weights: {usage_rate: 100, happiness: 0}", "unknown component"),
        ("weights: {usage_rate: 120, nps: -20}", "non-negative"),
        ("weights: {usage_rate: 100}\nbands: {red: 80, yellow: 60}", "below bands.yellow"),
        ("weights: {usage_rate: 100}\nextra: 1", "extra"),
    ],
)
def test_config_is_validated(tmp_path, text, message):
    path = tmp_path / "health.yaml"
    path.write_text(text)
    with pytest.raises(UserError, match=message):
        health.load_config(path)


def test_custom_bands(tmp_path):
    path = tmp_path / "h.yaml"
    path.write_text("weights: {usage_rate: 100}\nbands: {red: 30, yellow: 90}\n")
    cfg = health.load_config(path)
    assert list(cfg.band([30, 30.1, 90, 90.1])) == ["red", "yellow", "yellow", "green"]


@pytest.fixture(scope="module")
def demo_con(tmp_path_factory):
    root = tmp_path_factory.mktemp("health")
    generate(root / "data", DemoOptions(accounts=250, months=14, seed=8, end_month="2025-12"))
    warehouse.ingest(root / "data", root / "cfx.duckdb")
    con = warehouse.connect(root / "cfx.duckdb")
    yield con
    con.close()


def test_incremental_scorer_agrees_with_batch(demo_con):
    """Load state 14 days before D, replay every event up to D one by one, compare with batch at D."""
    con = demo_con
    d0, d = date(2025, 12, 17), date(2025, 12, 31)
    scorer = health.HealthScorer.from_warehouse(con, d0)
    end = pd.Timestamp(d) + pd.Timedelta(days=1)
    start = pd.Timestamp(d0) + pd.Timedelta(days=1)
    events = [
        ("usage_daily", r)
        for r in con.execute("SELECT * FROM usage_daily WHERE date > ? AND date <= ? ORDER BY date", [d0, d])
        .df()
        .to_dict("records")
    ]
    tickets = con.execute(
        "SELECT ticket_id, account_id, opened_at, CASE WHEN resolved_at < ? THEN resolved_at END AS resolved_at, priority "
        "FROM tickets WHERE (opened_at >= ? AND opened_at < ?) OR (resolved_at >= ? AND resolved_at < ?)",
        [end, start, end, start, end],
    ).df()
    events += [("tickets", r) for r in tickets.to_dict("records")]
    events += [
        ("nps_responses", r)
        for r in con.execute("SELECT * FROM nps_responses WHERE date > ? AND date <= ?", [d0, d])
        .df()
        .to_dict("records")
    ]
    events += [
        ("downtime_monthly", r)
        for r in con.execute("SELECT * FROM downtime_monthly WHERE month = DATE '2025-12-01'").df().to_dict("records")
    ]
    assert len(events) > 1000
    last = None
    for table, row in events:
        last = scorer.update(table, row, as_of=d)
    assert 0 <= last["health_score"] <= 100
    # subscriptions are not live events: take seats as of D
    for account_id, seats, tier in con.execute(
        "SELECT account_id, sum(seats)::DOUBLE, arg_max(tier, amount_usd / billing_period_months) FROM subscriptions "
        "WHERE start_date <= ? AND (end_date IS NULL OR end_date > ?) GROUP BY account_id",
        [d, d],
    ).fetchall():
        scorer.set_account(account_id, seats, tier)
    batch = health.health_scores(con, d, changes=False).set_index("account_id")
    scorer.scores(d0)  # scoring another day in between must not leave stale cached parts behind
    inc = scorer.scores(d).set_index("account_id").loc[batch.index]
    for col in ("health_score", *health.COMPONENTS):
        a, b = batch[col].to_numpy(dtype=float), inc[col].to_numpy(dtype=float)
        assert np.allclose(a, b, equal_nan=True, atol=1e-9), col
    assert (batch["band"] == inc["band"]).all()
    accounts = list(batch.index)
    assert scorer.score_many(accounts, d) == [scorer.score(a, d) for a in accounts]  # exactly, row by row


def test_changes_over_30_and_90_days(demo_con):
    d = date(2025, 12, 31)
    now = health.health_scores(demo_con, d).set_index("account_id")
    before = health.health_scores(demo_con, d - timedelta(days=30), changes=False).set_index("account_id")
    common = now.index.intersection(before.index)
    assert np.allclose(
        now.loc[common, "change_30d"], now.loc[common, "health_score"] - before.loc[common, "health_score"]
    )
    assert now["change_90d"].notna().any()
