"""Revenue metrics against hand-computed values, and properties on random histories."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfxlib import revenue

COLS = ["mrr_start", "new", "expansion", "reactivation", "contraction", "churn", "mrr_end"]


def subs_frame(rows):
    return pd.DataFrame(
        rows,
        columns=[
            "subscription_id",
            "account_id",
            "tier",
            "seats",
            "billing_period_months",
            "amount_usd",
            "start_date",
            "end_date",
        ],
    )


@pytest.fixture
def history():
    """A: Starter from Jan, adds Professional in Feb (expansion), drops it in Apr (contraction).
    B: Professional annual, churns in March. C: Starter in Feb only (churn in Mar), back in Apr."""
    return subs_frame(
        [
            ("s1", "A", "Starter", 2, 1, 100.0, "2025-01-15", None),
            ("s2", "A", "Professional", 2, 1, 200.0, "2025-02-10", "2025-04-05"),
            ("s3", "B", "Professional", 10, 12, 12000.0, "2025-01-01", "2025-03-10"),
            ("s4", "C", "Starter", 1, 1, 50.0, "2025-02-01", "2025-03-01"),
            ("s5", "C", "Starter", 1, 1, 60.0, "2025-04-20", None),
        ]
    )


def test_movements_total_by_hand(history):
    got = revenue.mrr_movements(history, as_of="2025-04").set_index("month")[COLS]
    want = pd.DataFrame(
        [
            [0, 1100, 0, 0, 0, 0, 1100],
            [1100, 50, 200, 0, 0, 0, 1350],
            [1350, 0, 0, 0, 0, 1050, 300],
            [300, 0, 0, 60, 200, 0, 160],
        ],
        columns=COLS,
        index=pd.Index(["2025-01", "2025-02", "2025-03", "2025-04"], name="month"),
    ).astype(float)
    pd.testing.assert_frame_equal(got, want)


def test_movements_by_tier_by_hand(history):
    got = revenue.mrr_movements(history, by="tier", as_of="2025-04").set_index(["month", "tier"])[COLS]
    rows = {
        ("2025-01", "Starter"): [0, 100, 0, 0, 0, 0, 100],
        ("2025-01", "Professional"): [0, 1000, 0, 0, 0, 0, 1000],
        ("2025-02", "Starter"): [0, 50, 0, 0, 0, 0, 50],
        ("2025-02", "Professional"): [1100, 0, 200, 0, 0, 0, 1300],  # A moved to Professional
        ("2025-03", "Starter"): [50, 0, 0, 0, 0, 50, 0],
        ("2025-03", "Professional"): [1300, 0, 0, 0, 0, 1000, 300],
        ("2025-04", "Starter"): [300, 0, 0, 60, 200, 0, 160],  # A back to Starter
        ("2025-04", "Professional"): [0, 0, 0, 0, 0, 0, 0],
    }
    for (month, tier), values in rows.items():
        assert got.loc[(month, tier)].tolist() == values, (month, tier)
    assert (got.xs("Enterprise", level="tier") == 0).all().all()


def test_monthly_rates_by_hand(history):
    m = revenue.monthly_metrics(history, as_of="2025-04").set_index("month")
    assert m.loc["2025-03", "logo_churn_rate"] == pytest.approx(2 / 3)
    assert m.loc["2025-03", "gross_mrr_churn_rate"] == pytest.approx(1050 / 1350)
    assert m.loc["2025-04", "net_mrr_churn_rate"] == pytest.approx(200 / 300)
    assert m.loc["2025-04", "quick_ratio"] == pytest.approx(60 / 200)
    assert m.loc["2025-02", "arr_growth_mom"] == pytest.approx(1350 / 1100 - 1)
    assert m.loc["2025-02", "arpa"] == pytest.approx(1350 / 3)
    assert m.loc["2025-02", "arr"] == pytest.approx(12 * 1350)
    assert np.isnan(m.loc["2025-01", "logo_churn_rate"])  # no customers at the start
    lo, hi = m.loc["2025-03", ["logo_churn_lo", "logo_churn_hi"]]
    assert lo < 2 / 3 < hi and lo == pytest.approx(0.2077, abs=1e-3) and hi == pytest.approx(0.9385, abs=1e-3)


def test_retention_by_hand(history):
    r = revenue.retention(history, window=2, as_of="2025-04").set_index("month")
    assert r.loc["2025-04", "cohort_customers"] == 3
    assert r.loc["2025-04", "retained_customers"] == 2
    assert r.loc["2025-04", "nrr"] == pytest.approx(160 / 1350)
    assert r.loc["2025-04", "grr"] == pytest.approx((100 + 50) / 1350)
    assert r.loc["2025-03", "nrr"] == pytest.approx(300 / 1100)


def test_cohorts_by_hand(history):
    c = revenue.cohorts(history, as_of="2025-04").set_index(["cohort", "age"])
    assert c.loc[("2025-01", 0), "customers"] == 2
    assert c.loc[("2025-01", 2), "logo_retention"] == pytest.approx(0.5)
    assert c.loc[("2025-01", 1), "net_mrr_retention"] == pytest.approx(1300 / 1100)
    assert c.loc[("2025-02", 2), "net_mrr_retention"] == pytest.approx(60 / 50)


def test_unit_economics_by_hand(history):
    spend = pd.DataFrame(
        {
            "month": ["2025-01", "2025-02", "2025-03", "2025-04"],
            "sales_usd": [600.0, 1200.0, 1800.0, 2400.0],
            "marketing_usd": [400.0, 800.0, 1200.0, 1600.0],
            "cost_of_revenue_usd": [110.0, 135.0, 30.0, 16.0],
        }
    )
    u = revenue.unit_economics(history, spend, as_of="2025-04", ltv_window=2).set_index("month")
    assert np.isnan(u.loc["2025-03", "cac"])  # needs December's spend
    assert u.loc["2025-04", "cac"] == pytest.approx((1000 + 2000 + 3000) / 1)
    assert u.loc["2025-04", "gross_margin"] == pytest.approx((160 - 16) / 160)
    arpa, gm, churn = 460 / 3, (460 - 46) / 460, 2 / 4
    assert u.loc["2025-04", "ltv"] == pytest.approx(arpa * gm / churn)
    assert u.loc["2025-04", "ltv_to_cac"] == pytest.approx(arpa * gm / churn / 6000)
    assert u.loc["2025-04", "cac_payback_months"] == pytest.approx(6000 / (arpa * gm))
    assert u.loc["2025-04", "ltv_lo"] < u.loc["2025-04", "ltv"] < u.loc["2025-04", "ltv_hi"]


def test_tier_ties_go_to_the_higher_tier():
    subs = subs_frame(
        [
            ("a", "X", "Starter", 1, 1, 100.0, "2025-01-01", None),
            ("b", "X", "Enterprise", 1, 1, 100.0, "2025-01-01", None),
        ]
    )
    got = revenue.account_mrr(subs, as_of="2025-01")
    assert got["tier"].tolist() == ["Enterprise"] and got["mrr"].tolist() == [200.0]


# --------------------------------------------------------------------------- properties

TIERS = ["Starter", "Professional", "Enterprise"]


@st.composite
def histories(draw):
    rows = []
    for a in range(draw(st.integers(1, 6))):
        for k in range(draw(st.integers(1, 4))):
            start = pd.Timestamp("2024-01-01") + pd.Timedelta(days=draw(st.integers(0, 500)))
            end = start + pd.Timedelta(days=draw(st.integers(1, 400))) if draw(st.booleans()) else None
            billing = draw(st.sampled_from([1, 12]))
            amount = draw(st.integers(0, 500_000)) / 100
            rows.append((f"s{a}-{k}", f"A{a}", draw(st.sampled_from(TIERS)), 1, billing, amount, start, end))
    return subs_frame(rows)


def reference_account_mrr(subs: pd.DataFrame, months: list[str]) -> dict:
    """Brute force: account MRR at each month end, straight from the definition."""
    out = {}
    for m in months:
        end = pd.Period(m).end_time.normalize()
        for row in subs.itertuples():
            start, stop = pd.Timestamp(row.start_date), row.end_date
            if start <= end and (pd.isna(stop) or pd.Timestamp(stop) > end):
                out[(m, row.account_id)] = out.get((m, row.account_id), 0) + row.amount_usd / row.billing_period_months
    return {k: cents(v) for k, v in out.items() if cents(v) > 0}


def cents(value: float) -> float:
    """Round to cents as the SQL does (DuckDB ``round``: half away from zero on the exact binary
    value); Python's ``round`` sends ties to even, so 1.50 / 12 = 0.125 would differ."""
    return float(Decimal(value).quantize(Decimal("0.01"), ROUND_HALF_UP))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_properties_on_random_histories(subs):
    as_of = "2025-12"
    total = revenue.mrr_movements(subs, as_of=as_of)
    if total.empty:
        return
    by_tier = revenue.mrr_movements(subs, by="tier", as_of=as_of)
    for frame in (total, by_tier):
        assert (frame[COLS] >= -1e-9).all().all()
        identity = (
            frame["mrr_start"]
            + frame["new"]
            + frame["expansion"]
            + frame["reactivation"]
            - frame["contraction"]
            - frame["churn"]
        )
        assert np.allclose(identity, frame["mrr_end"], atol=0.005)
    # the tier breakdown adds up to the total, column by column
    summed = by_tier.groupby("month")[COLS].sum().reindex(total["month"]).reset_index(drop=True)
    assert np.allclose(summed.to_numpy(), total[COLS].to_numpy(), atol=0.005)
    # months chain, and MRR matches the definition computed by brute force
    assert np.allclose(total["mrr_start"].iloc[1:].to_numpy(), total["mrr_end"].iloc[:-1].to_numpy())
    ref = reference_account_mrr(subs, total["month"].tolist())
    per_month = pd.Series(ref).groupby(level=0).sum() if ref else pd.Series(dtype=float)
    assert np.allclose(
        total.set_index("month")["mrr_end"], per_month.reindex(total["month"]).fillna(0).to_numpy(), atol=0.005
    )
    metrics = revenue.monthly_metrics(subs, as_of=as_of)
    assert np.allclose(metrics["arr"], 12 * metrics["mrr"])
    ret = revenue.retention(subs, window=3, as_of=as_of)
    assert (ret["grr"] <= 1 + 1e-12).all() and (ret["grr"] >= 0).all()
    assert (ret["nrr"] >= ret["grr"] - 1e-12).all()
