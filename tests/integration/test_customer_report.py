"""`cfx churn score` and `cfx report customer-success` on a small demo company."""

from __future__ import annotations

import json

import pandas as pd

from tests.conftest import run_cfx


def test_churn_score_writes_every_active_account(demo_home, tmp_path):
    out = tmp_path / "scores.csv"
    result = run_cfx("churn", "score", "--as-of", "2025-09", "--out", str(out), home=demo_home)
    assert result.returncode == 0, result.stderr
    scores = pd.read_csv(out)
    # the contract's two columns first, then what a reader needs to act, riskiest first
    assert list(scores.columns) == ["account_id", "p_churn_3m", "tier", "arr", "health_score", "band", "reasons"]
    assert scores["p_churn_3m"].between(0, 1).all() and scores["account_id"].is_unique
    assert scores["p_churn_3m"].is_monotonic_decreasing
    assert set(scores["tier"]) <= {"Starter", "Professional", "Enterprise"} and (scores["arr"] > 0).all()
    assert set(scores["band"].dropna()) <= {"red", "yellow", "green"}
    assert scores["reasons"].fillna("").str.len().gt(0).mean() > 0.5
    from cfxlib.metrics import revenue
    from cfxlib.store import warehouse

    con = warehouse.connect(demo_home / "warehouse" / "cfx.duckdb")
    try:
        active = revenue.account_mrr(con=con, as_of="2025-09")
    finally:
        con.close()
    assert set(scores["account_id"]) == set(active.loc[active["month"] == "2025-09", "account_id"])


def test_churn_score_refuses_bad_months(demo_home, tmp_path):
    bad = run_cfx("churn", "score", "--as-of", "2025-13", "--out", str(tmp_path / "x.csv"), home=demo_home)
    assert bad.returncode == 2 and "YYYY-MM" in bad.stderr
    early = run_cfx("churn", "score", "--as-of", "2019-01", "--out", str(tmp_path / "x.csv"), home=demo_home)
    assert early.returncode == 2 and "not in the data" in early.stderr and "Traceback" not in early.stderr


def test_customer_success_report(demo_home, tmp_path):
    out = tmp_path / "cs"
    result = run_cfx(
        "report",
        "customer-success",
        "--format",
        "json",
        "--format",
        "md",
        "--out",
        str(out),
        home=demo_home,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr
    payload = json.loads((out / "customer_success.json").read_text())
    assert payload["as_of"] == "2025-12"
    card = payload["model_card"]
    for key in (
        "roc_auc",
        "pr_auc",
        "brier",
        "lift_top_decile",
        "accuracy",
        "accuracy_always_no_churn",
        "calibration",
        "oracle_ratio",
    ):
        assert key in card, key
    assert 0.5 < card["roc_auc"] <= 1
    risk = payload["at_risk"]
    assert risk and all(r["action"] and r["owner"] for r in risk)
    arr_at_risk = [r["arr_at_risk"] for r in risk]
    assert arr_at_risk == sorted(arr_at_risk, reverse=True)
    for key in ("active_users", "nps", "customer_roi", "health", "arr_at_risk"):
        assert key in payload["kpis"]
    # The at-risk trend is scored by the model card's model (fitted once, not twice): trained on
    # the card's training cutoffs, every one of whose outcomes was known before the months shown.
    trend = payload["at_risk_trend"]
    assert trend["trained_through"] == card["train_cutoffs"][1]
    known_at = pd.Period(trend["trained_through"], freq="M") + 3
    assert str(known_at) <= trend["points"][0]["month"] and str(known_at) in trend["note"]
    # a detail quotes the account's churn feature, not the health component of the same name
    # (a 0-100 score once made "Downtime is 772% below the pre-ChatterFix baseline")
    quoted = pd.read_csv(out / "at_risk.csv")["detail"].dropna().str.extract(r"Downtime is (\d+)% (?:below|above)")[0]
    assert quoted.notna().any() and quoted.dropna().astype(int).le(100).all()
    md = (out / "customer_success.md").read_text()
    assert "## Churn model card" in md and "ROC AUC" in md and "## At-risk accounts" in md
    for png in ("churn_calibration.png", "retention_km.png", "health_by_tier.png"):
        assert (out / "figures" / png).stat().st_size > 10_000


def test_customer_success_markdown_goes_to_stdout_without_out(demo_home):
    result = run_cfx("report", "customer-success", "--format", "md", home=demo_home)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.startswith("# Customer success report") and "## At-risk accounts" in result.stdout
    assert "accounts at risk" in result.stderr  # the headline goes to stderr, leaving stdout clean
    assert not (demo_home / "reports" / "customer-success" / "customer_success.md").exists()


def test_customer_success_names_the_files_it_wrote(demo_home, tmp_path):
    result = run_cfx("report", "customer-success", "--out", str(tmp_path / "cs"), home=demo_home)
    assert result.returncode == 0, result.stderr[-2000:]
    for name in ("customer_success.json", "customer_success.md", "at_risk.csv", "churn_calibration.png"):
        assert str(tmp_path / "cs") in result.stdout and name in result.stdout, name


def test_a_capped_training_sample_has_the_rows_and_values_of_full_snapshots(demo_home):
    """With more labelled rows than the cap, the cache picks the sample from the snapshots'
    accounts and computes only its features (one usage scan for every month): the rows and every
    value are those that full snapshots would give, however the months were cached before."""
    from cfxlib.customers import scoring
    from cfxlib.store import warehouse

    con = warehouse.connect(demo_home / "warehouse" / "cfx.duckdb", read_only=True)
    try:
        cache = scoring.SnapshotCache(con, max_rows=700)
        _, labelled = scoring._cutoffs(cache.data_months(), "2025-09")
        cutoffs = labelled[-12:]
        expected, expected_available = scoring.SnapshotCache(con, max_rows=700)._training_from_snapshots(cutoffs)
        assert len(expected) == 700 < expected_available

        cache.features(cutoffs[4])  # one month's full snapshot already cached
        cache.training(cutoffs[:6])  # an earlier sample of other cutoffs: some rows computed before
        sampled, available = cache.training(cutoffs)
        assert available == expected_available
        pd.testing.assert_frame_equal(sampled, expected)
        assert sampled[scoring.churn.LABEL].sum() > 0

        prepared = scoring.SnapshotCache(con, max_rows=700)  # both models' samples computed at once
        prepared.prefetch(cutoffs[-3:])  # some full snapshots on a second connection meanwhile
        prepared.prepare_training([cutoffs[:6], cutoffs])
        prepared.features(cutoffs[-1])
        pd.testing.assert_frame_equal(prepared.training(cutoffs)[0], expected)
        prepared.close()
    finally:
        con.close()


def test_months_scored_one_ahead_and_released_change_no_figure(demo_home, monkeypatch):
    """With room for one month computed ahead (as at 1,000,000 accounts), the card's months are
    scored in order and their features released: no month's features stay in memory, and the
    model card and at-risk trend are those of a cache that keeps every month."""
    from cfxlib.customers import report, scoring
    from cfxlib.store import warehouse

    con = warehouse.connect(demo_home / "warehouse" / "cfx.duckdb", read_only=True)
    try:
        keeps_all = scoring.SnapshotCache(con)
        card = scoring.model_card(con, "2025-09", cache=keeps_all)
        trend = scoring.at_risk_trend(con, "2025-09", cache=keeps_all)
        assert keeps_all.fitted_by("2025-04") is not None and trend["points"]

        monkeypatch.setattr(scoring, "PREFETCH_ROWS", 1)
        cache = scoring.SnapshotCache(con)
        months = scoring.full_snapshot_months(cache.data_months(), "2025-09")
        assert len(months) >= 8
        cache.prefetch(months)
        assert len(cache.held_months()) == 1  # one month computed ahead, not eight
        scoring.churn_scores(con, "2025-09", cache)
        scoring.score_card_months(cache, "2025-09")
        assert cache.held_months() == []
        assert list(cache.ids(months[-1]).columns) == ["account_id", "cutoff", "mrr"]
        # an account's id is one string shared by every released month, not a copy per month
        first, last = cache.ids(months[1]), cache.ids(months[-1])
        common = sorted(set(first["account_id"]) & set(last["account_id"]))[:50]
        assert len(common) == 50
        for account in common:
            a = first["account_id"].to_numpy()[first["account_id"].to_numpy() == account][0]
            b = last["account_id"].to_numpy()[last["account_id"].to_numpy() == account][0]
            assert a is b
        cache.close()

        released = report.compute(con, "2025-09")
        assert released.card == card
        assert released.risk_trend == trend
    finally:
        con.close()


def test_playbooks_recommended_in_chunks_equal_all_at_once(demo_home, monkeypatch):
    """The at-risk table built a few accounts at a time (bounded memory) is the one built at once:
    each account keeps its own drivers, facts and playbook."""
    from cfxlib.customers import health, playbooks, scoring
    from cfxlib.store import warehouse

    con = warehouse.connect(demo_home / "warehouse" / "cfx.duckdb", read_only=True)
    try:
        result = scoring.churn_scores(con, "2025-09")
        health_frame = health.health_scores(con, pd.Period("2025-09", freq="M").end_time.date())
    finally:
        con.close()
    at_once = playbooks.at_risk(result, health_frame)
    monkeypatch.setattr(playbooks, "RECOMMEND_CHUNK_ROWS", 37)
    chunked = playbooks.at_risk(result, health_frame)
    assert len(at_once) > 37 and at_once["detail"].notna().sum() > 10
    pd.testing.assert_frame_equal(chunked, at_once)
