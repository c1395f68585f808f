"""The demo company: deterministic, complete, valid, and with learnable churn signal."""

from __future__ import annotations

import hashlib
from datetime import date

import numpy as np
import pandas as pd
import pytest

from cfxlib.contract.schemas import TABLES
from cfxlib.demo import DemoOptions, DemoOptionsError, generate


def _hashes(folder) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    generate(out, DemoOptions(accounts=400, months=24, seed=3, end_month="2025-12"))
    return out


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_same_options_give_byte_identical_files(tmp_path, fmt):
    opts = DemoOptions(accounts=150, months=12, seed=11, end_month="2025-06", fmt=fmt)
    generate(tmp_path / "a", opts)
    generate(tmp_path / "b", opts)
    a, b = _hashes(tmp_path / "a"), _hashes(tmp_path / "b")
    # the tables, the optional interventions table, two truth files, fundraising.yaml, the demo marker
    assert a == b and len(a) == len(TABLES) + 5
    generate(tmp_path / "c", DemoOptions(accounts=150, months=12, seed=12, end_month="2025-06", fmt=fmt))
    assert _hashes(tmp_path / "c") != a


def test_every_table_and_the_truth_are_written(demo):
    for name in TABLES:
        assert (demo / f"{name}.csv").stat().st_size > 100, name
    truth = pd.read_csv(demo / "_truth" / "churn_probability.csv")
    assert list(truth.columns) == ["account_id", "month", "p_churn_3m"]
    assert truth["p_churn_3m"].between(0, 1).all()
    assert truth["month"].str.match(r"^\d{4}-\d{2}$").all()


def test_dates_and_timestamps_are_written_in_the_contract_format(demo, tmp_path):
    """Dates ``YYYY-MM-DD``, timestamps ``YYYY-MM-DDTHH:MM:SSZ`` in CSV and UTC in Parquet, a missing one an empty cell (the sinks convert them without Python objects)."""
    import pyarrow.parquet as pq

    kinds = {(t, c): col.metadata["kind"] for t, spec in TABLES.items() for c, col in spec.columns.items()}
    pattern = {"date": r"^\d{4}-\d{2}-\d{2}$", "timestamp": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"}
    seen = set()
    for (table, column), kind in kinds.items():
        if kind in pattern:
            text = pd.read_csv(demo / f"{table}.csv", dtype=str, keep_default_na=False)[column]
            filled = text[text != ""]
            assert len(filled) and filled.str.match(pattern[kind]).all(), (table, column)
            seen.add(kind)
            if (table, column) == ("tickets", "resolved_at"):
                assert (text == "").any()  # open tickets
    assert seen == {"date", "timestamp"}
    generate(tmp_path, DemoOptions(accounts=60, months=6, seed=3, end_month="2025-12", fmt="parquet"))
    tickets = pq.read_table(tmp_path / "tickets.parquet")
    for column in ("opened_at", "resolved_at"):
        assert tickets.schema.field(column).type.tz == "UTC"  # Parquet keeps them as ms
    assert tickets.column("resolved_at").null_count > 0
    usage = pq.read_table(tmp_path / "usage_daily.parquet")
    assert str(usage.schema.field("date").type) == "date32[day]"
    csv = pd.read_csv(demo / "tickets.csv")
    opened = pd.to_datetime(csv["opened_at"])
    assert opened.dt.tz is not None and (opened.dt.second != 0).any()  # seconds are kept


def test_no_dates_after_the_end_month(demo):
    usage = pd.read_csv(demo / "usage_daily.csv", parse_dates=["date"])
    assert usage["date"].max() <= pd.Timestamp("2025-12-31")
    tickets = pd.read_csv(demo / "tickets.csv")
    assert (pd.to_datetime(tickets["resolved_at"].dropna()) < pd.Timestamp("2026-01-01", tz="UTC")).all()


def test_business_shape(demo):
    subs = pd.read_csv(demo / "subscriptions.csv", parse_dates=["start_date", "end_date"])
    assert set(subs["tier"]) == {"Starter", "Professional", "Enterprise"}
    assert set(subs["billing_period_months"]) == {1, 12}
    # annual plans cost less per month than 12 monthly payments for the same seats and tier
    subs["per_seat_month"] = subs["amount_usd"] / subs["billing_period_months"] / subs["seats"]
    by = subs.groupby(["tier", "billing_period_months"])["per_seat_month"].median().unstack()
    assert (by[12] < by[1]).all()
    assert subs["end_date"].notna().any(), "some subscriptions end (churn, changes)"
    accounts_with_changes = subs.groupby("account_id").size()
    assert (accounts_with_changes > 1).any(), "seat or tier changes exist"
    leads = pd.read_csv(demo / "leads.csv")
    conversion = leads["converted_date"].notna().mean()
    assert 0.1 < conversion < 0.35


def test_truth_predicts_churn_and_churners_used_the_product_less(demo):
    """Realised 3-month churn follows the truth (learnable signal exists)."""
    from sklearn.metrics import roc_auc_score

    truth = pd.read_csv(demo / "_truth" / "churn_probability.csv")
    subs = pd.read_csv(demo / "subscriptions.csv", parse_dates=["start_date", "end_date"])
    months = sorted(truth["month"].unique())
    active = {}
    for m in months:
        end = pd.Period(m).end_time.normalize()
        live = subs[(subs.start_date <= end) & (subs.end_date.isna() | (subs.end_date > end))]
        active[m] = set(live["account_id"])
    rows = []
    for i, m in enumerate(months[:-3]):
        future = months[i + 1 : i + 4]
        for acc, p in truth.loc[truth.month == m, ["account_id", "p_churn_3m"]].itertuples(index=False):
            rows.append((p, any(acc not in active[f] for f in future)))
    p, y = np.array(rows, dtype=float).T
    assert 0.01 < y.mean() < 0.3
    assert roc_auc_score(y, p) > 0.75


def test_end_month_must_be_complete():
    with pytest.raises(DemoOptionsError, match="not a complete month"):
        generate("/tmp/never", DemoOptions(end_month="2030-01"), today=date(2026, 11, 27))


def test_a_batch_without_calls_to_action_still_writes_its_truth_files():
    """At 100,000 accounts a batch of 2,000 can open no call to action: its truth frames keep the ordering column the writer sorts on,
    instead of failing with KeyError '_n' (seen in bench/scale.py)."""
    import numpy as np
    import pandas as pd

    from cfxlib.demo.generate import Calendar, DemoOptions, _Batch, _company

    opts = DemoOptions(accounts=50, months=12, seed=7)
    cal = Calendar.ending(pd.Period("2026-10", freq="M"), opts.months)
    company = _company(opts, cal, np.random.default_rng([7, 0]))
    batch = _Batch(np.arange(1, 51), company, slice(0, 50), cal, np.random.default_rng([7, 1, 0]))
    for t in range(cal.months):
        batch.month(t)
    batch.ctas, batch.truth = [], []  # as in a batch where nobody was called and nothing recorded
    tables = batch.finish()
    for name, by in (("_truth_interventions", ["_n", "opened_date"]), ("_truth", ["_n", "month"])):
        assert tables[name].empty
        tables[name].sort_values(by, kind="stable")  # what generate() does with them
    assert "_n" in tables["interventions"].columns
