"""One definition per concept: revenue, health, churn and the summary agree on who is active and
in which tier, in every month of a demo; point-in-time runs are as of one month everywhere."""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal
from fractions import Fraction

import pandas as pd
import pytest

from cfxlib.contract.rules import account_state_at_sql
from cfxlib.customers import churn, health
from cfxlib.metrics import revenue
from cfxlib.store import warehouse
from cfxlib.store.sqltext import date_literal
from cfxlib.store.summary import warehouse_summary
from tests.conftest import run_cfx
from tests.pdf import pdf_text


def test_active_accounts_and_tiers_agree_in_every_month(demo_home):
    con = warehouse.connect(demo_home / "warehouse" / "cfx.duckdb")
    try:
        mrr = revenue.account_mrr(con=con)
        months = sorted(mrr["month"].unique())
        assert len(months) >= 20
        for month in months:
            end = pd.Period(month, freq="M").end_time.date()
            state = con.execute(f"SELECT account_id, tier, mrr FROM ({account_state_at_sql(date_literal(end))})").df()
            paying = state[state["mrr"] > 0].set_index("account_id")["tier"].sort_index()
            rev = mrr[mrr["month"] == month].set_index("account_id")["tier"].sort_index()
            assert rev.to_dict() == paying.to_dict(), month
            scores = health.health_scores(con, end, changes=False).set_index("account_id")["tier"].sort_index()
            assert scores.to_dict() == state.set_index("account_id")["tier"].sort_index().to_dict(), month
            snap = churn.snapshot(con, month, with_labels=False).set_index("account_id")["tier"].sort_index()
            assert snap.to_dict() == scores.to_dict(), month
    finally:
        con.close()
    summary = warehouse_summary(demo_home / "warehouse" / "cfx.duckdb")
    last = mrr[mrr["month"] == months[-1]]
    assert summary["active_customers"] == len(last)
    for row in summary["by_tier"]:
        assert row["customers"] == int((last["tier"] == row["tier"]).sum())
        assert row["mrr"] == pytest.approx(last.loc[last["tier"] == row["tier"], "mrr"].sum(), abs=0.001)


def contract_mrr(data_dir, at: date) -> Decimal:
    """The contract's MRR at ``at`` straight from the files: exact sums, each account rounded
    half up to the cent."""
    subs = pd.read_csv(data_dir / "subscriptions.csv", dtype=str, keep_default_na=False)
    per_account: dict[str, Fraction] = {}
    for r in subs.itertuples():
        start = date.fromisoformat(r.start_date)
        end = date.fromisoformat(r.end_date) if r.end_date else None
        if start <= at and (end is None or end > at):
            value = Fraction(Decimal(r.amount_usd)) / int(r.billing_period_months)
            per_account[r.account_id] = per_account.get(r.account_id, Fraction(0)) + value
    cents = sum(int(v * 100 + Fraction(1, 2)) for v in per_account.values())
    return Decimal(cents) / 100


@pytest.mark.xdist_group("pipeline")
def test_as_of_six_months_back_is_one_month_everywhere(published, tmp_path):
    """`cfx run --as-of` on data that runs to December: rows after June 30 are left out (and
    counted), not refused, and every artifact is as of 2025-06."""
    data = published / "demo-data"
    home = tmp_path / "home"
    result = run_cfx("run", "--data", str(data), "--as-of", "2025-06-30", home=home, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "left out" in result.stdout and "Point in time 2025-06-30" in result.stdout
    pub = home / "published"
    snap = json.loads((pub / "metrics_snapshot.json").read_text())
    fin = json.loads((pub / "finance.json").read_text())
    cust = json.loads((pub / "customer_success.json").read_text())
    run = json.loads((pub / "run.json").read_text())
    assert snap["as_of"] == fin["summary"]["as_of"] == cust["as_of"] == run["as_of"] == "2025-06"
    assert fin["mrr"][-1]["month"] == "2025-06" and fin["forecast"]["as_of"] == "2025-06"
    assert min(p["month"] for p in fin["forecast"]["points"]) == "2025-07"
    assert max(r["month"] for r in fin["retention"]["nrr_grr"]) <= "2025-06"
    assert Decimal(str(snap["mrr"])) == contract_mrr(data, date(2025, 6, 30))
    assert Decimal(str(snap["arr"])) == 12 * contract_mrr(data, date(2025, 6, 30))
    health_frame = pd.read_parquet(pub / "artifacts" / "health.parquet")
    assert set(health_frame["as_of"].astype(str)) == {"2025-06-30"}
    site = (pub / "site" / "reports" / "index.html").read_text()
    assert "2025-06" in site and "2025-12" not in site
    for pdf in (pub / "reports").glob("*.pdf"):
        text = pdf_text(pdf)
        assert "2025-06" in text and "2025-12" not in text, pdf.name
    # the warehouse holds nothing dated after the point in time
    con = warehouse.connect(home / "warehouse" / "cfx.duckdb")
    try:
        assert con.execute("SELECT max(date) FROM usage_daily").fetchone()[0] <= date(2025, 6, 30)
        assert con.execute("SELECT count(*) FROM subscriptions WHERE end_date > DATE '2025-06-30'").fetchone()[0] == 0
        meta = warehouse.ingest_metadata(con)
    finally:
        con.close()
    assert meta["as_of"] == "2025-06-30" and meta["left_out"]["usage_daily"] > 0
