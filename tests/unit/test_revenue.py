"""Revenue metrics against hand-computed values, and properties on random histories."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cfxlib.metrics import revenue

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


def test_mrr_is_exact_decimal_rounded_half_up():
    """64,602.78 / 12 = 5,383.565 exactly: half a cent, so 5,383.57 (binary floating point gives
    5,383.564999... and would round down). ARR is 12 x the rounded MRR."""
    subs = subs_frame(
        [
            ("a", "X", "Enterprise", 10, 12, 64602.78, "2025-01-01", None),
            ("b", "Y", "Starter", 1, 12, 0.06, "2025-01-01", None),  # 0.5 cent a month
            ("c", "Z", "Starter", 1, 12, 0.18, "2025-01-01", None),  # 1.5 cents: rounds to 2
        ]
    )
    got = revenue.account_mrr(subs, as_of="2025-01").set_index("account_id")
    assert got.loc["X", "mrr"] == 5383.57 and got.loc["X", "arr"] == 64602.84
    assert got.loc["Y", "mrr"] == 0.01 and got.loc["Z", "mrr"] == 0.02
    total = revenue.monthly_metrics(subs, as_of="2025-01").iloc[-1]
    assert total["mrr"] == 5383.60 and total["arr"] == 64603.20
    assert repr(float(total["arr"])) == "64603.2"


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
    """Brute force in exact fractions: account MRR in whole cents at each month end, from the
    definition (exact sum of amount / billing period, rounded half away from zero)."""
    out: dict = {}
    for m in months:
        end = pd.Period(m).end_time.normalize()
        for row in subs.itertuples():
            start, stop = pd.Timestamp(row.start_date), row.end_date
            if start <= end and (pd.isna(stop) or pd.Timestamp(stop) > end):
                exact = Fraction(Decimal(str(row.amount_usd)) * 100) / row.billing_period_months
                out[(m, row.account_id)] = out.get((m, row.account_id), Fraction(0)) + exact
    return {k: half_up(v) for k, v in out.items() if half_up(v) > 0}


def half_up(cents: Fraction) -> int:
    """A non-negative exact amount of cents rounded half away from zero to whole cents."""
    return int(cents + Fraction(1, 2))  # floor(x + 1/2) for x >= 0


def as_cents(values) -> np.ndarray:
    """Money values (floats holding whole cents) as integers; fails if any is not whole cents."""
    arr = np.asarray(values, dtype=float) * 100
    whole = np.rint(arr)
    assert np.all(np.abs(arr - whole) < 1e-6), "a money value is not a whole number of cents"
    return whole.astype(np.int64)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_properties_on_random_histories(subs):
    as_of = "2025-12"
    total = revenue.mrr_movements(subs, as_of=as_of)
    if total.empty:
        return
    by_tier = revenue.mrr_movements(subs, by="tier", as_of=as_of)
    for frame in (total, by_tier):
        assert (frame[COLS] >= 0).all().all()
        c = {col: as_cents(frame[col]) for col in COLS}
        # the identity, exact to the cent in every row
        assert np.array_equal(
            c["mrr_start"] + c["new"] + c["expansion"] + c["reactivation"] - c["contraction"] - c["churn"], c["mrr_end"]
        )
    # the tier breakdown adds up to the total, column by column, to the cent
    summed = by_tier.groupby("month")[COLS].sum().reindex(total["month"]).reset_index(drop=True)
    assert np.array_equal(as_cents(summed.to_numpy()), as_cents(total[COLS].to_numpy()))
    # months chain, and MRR matches the exact-fraction reference to the cent
    assert np.array_equal(as_cents(total["mrr_start"].iloc[1:]), as_cents(total["mrr_end"].iloc[:-1]))
    ref = reference_account_mrr(subs, total["month"].tolist())
    per_month = pd.Series(ref, dtype="int64").groupby(level=0).sum() if ref else pd.Series(dtype="int64")
    assert np.array_equal(as_cents(total["mrr_end"]), per_month.reindex(total["month"]).fillna(0).to_numpy())
    metrics = revenue.monthly_metrics(subs, as_of=as_of)
    assert np.array_equal(as_cents(metrics["arr"]), 12 * as_cents(metrics["mrr"]))
    ret = revenue.retention(subs, window=3, as_of=as_of)
    assert (ret["grr"] <= 1 + 1e-12).all() and (ret["grr"] >= 0).all()
    assert (ret["nrr"] >= ret["grr"] - 1e-12).all()
