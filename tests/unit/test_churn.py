"""ChurnModel follows scikit-learn's contract on any customer table; evaluation figures by hand."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_score

from cfxlib.customers.churn import ChurnModel, calibration_table, evaluate, lift_top_decile


def customer_table(n=1200, seed=0):
    rng = np.random.default_rng(seed)
    usage = rng.normal(0, 1, n)
    plan = rng.choice(["basic", "pro", "max"], n)
    region = rng.choice([f"r{i}" for i in range(30)], n)
    logit = -2 - 1.5 * usage + np.where(plan == "basic", 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    X = pd.DataFrame(
        {
            "usage": usage,
            "plan": plan,
            "region": region,
            "tickets": rng.poisson(2, n).astype(float),
            "flag": rng.random(n) < 0.5,
        }
    )
    X.loc[rng.random(n) < 0.1, "usage"] = np.nan
    X.loc[rng.random(n) < 0.05, "plan"] = None
    return X, y


def test_sklearn_contract_clone_and_cross_validation():
    X, y = customer_table()
    model = ChurnModel()
    assert clone(model).get_params() == model.get_params()
    scores = cross_val_score(model, X, y, cv=StratifiedKFold(5, shuffle=True, random_state=0), scoring="roc_auc")
    assert scores.mean() > 0.75  # the signal is strong; a broken model scores ~0.5
    fitted = clone(model).fit(X, y)
    proba = fitted.predict_proba(X)
    assert proba.shape == (len(X), 2) and np.allclose(proba.sum(axis=1), 1)
    assert set(fitted.predict(X)) <= {0, 1}


def test_unseen_categories_and_missing_columns_values_are_tolerated():
    X, y = customer_table()
    model = ChurnModel().fit(X, y)
    new = X.head(5).copy()
    new.loc[:, "plan"] = ["unheard-of", None, "pro", "basic", "max"]
    new.loc[:, "usage"] = np.nan
    p = model.predict_proba(new)[:, 1]
    assert np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()


def test_scores_in_chunks_equal_scores_at_once(monkeypatch):
    """Rows scored a chunk at a time (bounded memory) get the probabilities they get in one batch,
    in the input's order; columns the model was not fitted on are ignored."""
    from cfxlib.customers import churn

    X, y = customer_table()
    model = ChurnModel().fit(X, y)
    at_once = model.predict_proba(X)
    monkeypatch.setattr(churn, "PREDICT_CHUNK_ROWS", 97)
    chunked = model.predict_proba(X.assign(account_id="a"))
    np.testing.assert_allclose(chunked, at_once, rtol=1e-12, atol=0)
    assert model.predict_proba(X.head(0)).shape == (0, 2)


def test_needs_both_classes():
    X, _ = customer_table(100)
    with pytest.raises(ValueError, match="both churned and retained"):
        ChurnModel().fit(X, np.zeros(len(X)))


def test_evaluation_figures_by_hand():
    y = np.array([0, 0, 0, 0, 0, 0, 0, 0, 1, 1])
    p = np.array([0.1, 0.1, 0.2, 0.2, 0.3, 0.3, 0.4, 0.6, 0.7, 0.9])
    assert lift_top_decile(y, p) == pytest.approx(1.0 / 0.2)
    ev = evaluate(y, p, truth=p)
    assert ev["roc_auc"] == pytest.approx(1.0) and ev["oracle_ratio"] == pytest.approx(1.0)
    assert ev["accuracy"] == pytest.approx(0.9) and ev["accuracy_always_no_churn"] == pytest.approx(0.8)
    cal = calibration_table(y, p, bins=5)
    assert len(cal) == 5 and cal["accounts"].sum() == 10


def test_snapshot_cache_fits_once_and_offers_only_models_blind_to_a_month():
    """`SnapshotCache.fit` memoises per set of cutoffs; `fitted_by` returns only a model whose
    training outcomes (cutoff + 3 months) were all known at the month's end."""
    import numpy as np
    import pandas as pd

    from cfxlib.customers import churn, scoring

    cache = scoring.SnapshotCache(con=None)
    rng = np.random.default_rng(3)

    def labelled(month: str) -> pd.DataFrame:
        n = 200
        frame = pd.DataFrame({"account_id": [f"A{i}" for i in range(n)], "cutoff": month})
        frame["mrr"] = rng.uniform(50, 500, n)
        frame[churn.LABEL] = (rng.random(n) < 0.3).astype(int)
        return frame

    cache._labelled_month = lambda month, keep: labelled(month)  # no warehouse needed for this rule
    first = cache.fit(["2025-01", "2025-02"])
    assert cache.fit(["2025-01", "2025-02"]) is first
    assert first.outcomes_known_at == "2025-05"
    assert cache.fitted_by("2025-04") is None
    assert cache.fitted_by("2025-05") is first
    later = cache.fit(["2025-02", "2025-03"])
    assert cache.fitted_by("2025-05") is first and cache.fitted_by("2025-06") is later


def test_drivers_are_ranked_by_contribution_ties_to_the_name_sorting_last():
    """`Drivers.explain`: named only above the minimum contribution and with a known value, at
    most `top`, largest contribution first; an exact tie goes to the driver whose name sorts
    last; renewal is a reason only on an annual plan."""
    from cfxlib.customers.churn import Drivers

    cols = ["usage_trend", "utilisation", "open_overdue", "nps_mean", "months_to_renewal"]
    d = Drivers(top=3)
    d.columns_ = cols
    d.median_ = pd.Series(0.0, index=cols)
    d.mean_ = pd.Series([0.0, 0.6, 0.0, 0.0, 0.0], index=cols)
    d.std_ = pd.Series(1.0, index=cols)
    # every driver's learned effect in its expected direction
    d.coef_ = pd.Series([-1.0, -1.0, 1.0, -1.0, -1.0], index=cols)
    frame = pd.DataFrame(
        {
            # contributions: falling_usage 0.5, low_utilisation 0.5 (tie), ticket_backlog 2, low_nps 0.1
            "usage_trend": [-0.5, -0.5, np.nan],
            "utilisation": [0.1, 0.1, 0.0],
            "open_overdue": [2.0, 2.0, 0.0],
            "nps_mean": [-0.1, -0.1, -1.0],
            "months_to_renewal": [-5.0, -5.0, -5.0],
            "annual_plan": [0, 1, 1],
            "seats": [10.0, 10.0, 20.0],
        }
    )
    out = d.explain(frame)
    assert out["drivers"].tolist() == [
        ["ticket_backlog", "low_utilisation", "falling_usage"],
        ["renewal_due", "ticket_backlog", "low_utilisation"],
        ["renewal_due", "low_nps", "low_utilisation"],
    ]
    assert out["reasons"][0][0] == "2 open support tickets past their target time"
    assert out["reasons"][2][2] == "Only 0% of 20 seats are active on an average day"


def test_a_sampled_model_card_quotes_the_measured_cost_of_the_sample():
    """The card of a run trained on a sample says what the sample cost when it was measured
    (config/churn_sample_check.yaml, written by bench/churn.py); a card trained on every row
    says nothing of it."""
    from cfxlib.customers import scoring
    from cfxlib.publish import pages

    check = scoring.sample_check()
    assert check is not None and check["rows_sample"] < check["rows_all"]
    card = {
        "model": "ChurnModel",
        "train_cutoffs": ["2024-03", "2025-12"],
        "test_cutoffs": ["2026-03", "2026-08"],
        "test_rows": 348_315,
        "churn_rate": 0.05,
        "roc_auc": 0.86,
        "pr_auc": 0.25,
        "brier": 0.044,
        "brier_base_rate": 0.047,
        "lift_top_decile": 4.1,
        "accuracy": 0.95,
        "accuracy_always_no_churn": 0.95,
        "train_rows": 50_000,
        "train_rows_available": 417_200,
        "sample_check": check,
    }
    text = pages.model_card({"model_card": card})
    assert "a uniform sample (fixed keys) of 50,000 of the 417,200 account-months" in text
    assert f"ROC AUC {check['roc_auc_all']:.4f} trained on all {check['rows_all']:,} rows" in text
    every_row = {**card, "train_rows_available": 50_000, "sample_check": None}
    assert "costs little accuracy" not in pages.model_card({"model_card": every_row})


def test_calibration_plan_averages_fold_models_on_little_data_and_keeps_one_model_past_it(monkeypatch):
    """``ensemble="auto"``: three averaged calibrated fold models below ``ENSEMBLE_MAX_ROWS``
    training rows, one model on every row calibrated on two folds from there; the model card's
    description says which; bad settings are refused by name."""
    from sklearn.calibration import CalibratedClassifierCV

    from cfxlib.customers import churn

    X, y = customer_table()
    small = ChurnModel().fit(X, y)
    assert (small.ensemble_, small.cv_) == (True, 3)
    assert len(small.model_.calibrated_classifiers_) == 3
    assert "3 fold models averaged" in small.description()

    monkeypatch.setattr(churn, "ENSEMBLE_MAX_ROWS", len(X))
    large = ChurnModel().fit(X, y)
    assert (large.ensemble_, large.cv_) == (False, 2)
    assert isinstance(large.model_, CalibratedClassifierCV) and len(large.model_.calibrated_classifiers_) == 1
    assert "one model fitted on every row" in large.description()
    p = large.predict_proba(X)[:, 1]
    assert 0.75 < roc_auc_score(y, p) < 1

    forced = ChurnModel(ensemble=True, cv=4).fit(X, y)
    assert (forced.ensemble_, forced.cv_) == (True, 4) and len(forced.model_.calibrated_classifiers_) == 4
    for bad in ({"ensemble": "sometimes"}, {"cv": 1}, {"cv": "three"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            ChurnModel(**bad).fit(X, y)
