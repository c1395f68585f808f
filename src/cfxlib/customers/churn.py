"""Churn prediction: leakage-free snapshots, a calibrated classifier, evaluation and drivers.

- :func:`snapshot` — for every account active at a month-end cutoff, features computed only
  from data up to the end of that day, and (when known) the label: churned (no MRR at some month
  end) within the next three months.
- :class:`ChurnModel` — a scikit-learn classifier for any customer table (numeric and
  text/categorical columns, missing values): a blend of logistic regression and gradient
  boosting, with probabilities calibrated by cross-validation.
- :func:`evaluate` — ROC AUC, PR AUC, Brier score, lift in the top decile, calibration curve,
  accuracy beside always predicting "no churn", and (on the demo) the ratio to the generator's
  true probabilities.
- :class:`Drivers` — the top reasons behind an account's risk, in words.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, VotingClassifier
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler
from sklearn.utils.validation import check_is_fitted
from threadpoolctl import threadpool_limits

from cfxlib.contract.rules import account_month_sql, active_at_sql
from cfxlib.customers.drivers import DRIVER_FEATURES, plural  # noqa: F401 - churn.DRIVER_FEATURES stays
from cfxlib.customers.health import aggregates_sql, usage_aggregates_sql, usage_window_sql
from cfxlib.store.sqltext import date_literal

HORIZON_MONTHS = 3
ID_COLUMNS = ("account_id", "cutoff")
LABEL = "churned_3m"
CATEGORICAL = ("tier", "industry", "region")
MISSING_CODE = -1.0
"""A missing text value's code for the linear model's one-hot encoding (a category of its own)."""
PARALLEL_PREDICT_ROWS = 20_000
"""From this many rows, :meth:`ChurnModel.predict_proba` uses every OpenMP thread."""
PREDICT_CHUNK_ROWS = 200_000
""":meth:`ChurnModel.predict_proba` scores at most this many rows at once (bounded memory)."""
ENSEMBLE_MAX_ROWS = 30_000
"""Below this many training rows, ``ChurnModel(ensemble="auto")`` averages its three calibrated
fold models; from it on, two folds calibrate one model fitted on every row (the same accuracy
out of time from 25,000 rows on, and a third of the scoring time: docs/benchmarks.md, "Churn
model calibration folds"). The default demo's models train on about 16,000 and 8,000 rows."""


# --------------------------------------------------------------------------- snapshots


def month_end(month: str) -> date:
    return pd.Period(month, freq="M").end_time.date()


def _usage_features(d: str) -> dict[str, str]:
    """The churn model's usage features, aggregated in the health aggregates' scan of
    ``usage_daily`` (:func:`~cfxlib.customers.health.aggregates_sql`): 90 and 30 days up to
    ``d``, a SQL date expression."""
    last_90 = f"FILTER (WHERE date > {d} - INTERVAL 90 DAY)"
    last_30 = f"FILTER (WHERE date > {d} - INTERVAL 30 DAY)"
    return {
        "users_90d": f"avg(active_users) {last_90}",
        "work_orders_30d": f"sum(work_orders_created) {last_30}::DOUBLE",
        "work_orders_done_30d": f"sum(work_orders_completed) {last_30}::DOUBLE",
        "ai_requests_30d": f"sum(ai_requests) {last_30}::DOUBLE",
        "assets": f"max(assets_monitored) {last_30}::DOUBLE",
    }


def _account_months_sql(last_month: str, cached: str | None = None) -> str:
    """:func:`~cfxlib.contract.rules.account_month_sql` through ``last_month`` (a SQL date
    expression), or the same rows read from ``cached``, a table of it computed through a later
    month: a month's state does not depend on how far the series runs."""
    if cached:
        return f"SELECT * FROM {cached} WHERE month <= {last_month}"
    return account_month_sql(last_month)


def usage_by_cutoff_sql(pairs: str) -> str:
    """SQL: the snapshot's usage aggregates for every (``account_id``, ``cutoff``) row of the
    table ``pairs`` (``cutoff`` a DATE, a month's last day), in one scan of ``usage_daily``: the
    ``usage`` table of :func:`snapshot` for many months' sampled accounts at once."""
    return f"""
    SELECT p.account_id, p.cutoff,
           {usage_aggregates_sql("p.cutoff", _usage_features("p.cutoff"))}
    FROM {pairs} p JOIN usage_daily u ON u.account_id = p.account_id AND {usage_window_sql("p.cutoff")}
    GROUP BY p.account_id, p.cutoff
    """


def _features_sql(
    cutoff: date, account_months: str | None = None, accounts: str | None = None, usage: str | None = None
) -> str:
    """SQL: the snapshot features at ``cutoff`` (see :func:`snapshot`); ``accounts``, a table or
    query with an ``account_id`` column, keeps only those accounts' rows, each the same as without
    it; ``usage``: the usage aggregates already computed (:func:`usage_by_cutoff_sql`)."""
    d = date_literal(cutoff)
    month = date_literal(cutoff.replace(day=1))
    only = f" AND account_id IN (SELECT account_id FROM {accounts})" if accounts else ""
    return f"""
    WITH h AS ({aggregates_sql(cutoff, _usage_features(d), accounts, usage)}),
    am AS ({_account_months_sql(month, account_months)}),
    mrr AS (
        SELECT account_id,
               max(mrr) FILTER (WHERE month = {month})::DOUBLE AS mrr,
               max(mrr) FILTER (WHERE month = {month} - INTERVAL 3 MONTH)::DOUBLE AS mrr_3m_ago,
               min(month) AS first_month,
               count(*) AS months_active
        FROM am WHERE month <= {month}{only} GROUP BY account_id
    ),
    tk AS (
        SELECT account_id,
               count(*)::DOUBLE AS tickets_90d,
               count(*) FILTER (WHERE priority IN ('high', 'urgent'))::DOUBLE AS urgent_tickets_90d,
               avg(csat) FILTER (WHERE resolved_at <= {d} + INTERVAL 1 DAY) AS csat_90d
        FROM tickets WHERE opened_at < {d} + INTERVAL 1 DAY AND opened_at >= {d} - INTERVAL 89 DAY{only} GROUP BY account_id
    ),
    nps AS (
        SELECT account_id, arg_max(score, date)::DOUBLE AS nps_last, count(*)::DOUBLE AS nps_answers_12m
        FROM nps_responses WHERE date <= {d} AND date > {d} - INTERVAL 365 DAY{only} GROUP BY account_id
    ),
    renewal AS (
        SELECT account_id,
               min(12 - (date_diff('month', start_date, {d}) % 12)) AS months_to_renewal,
               1 AS annual_plan
        FROM subscriptions
        WHERE billing_period_months = 12 AND {active_at_sql(d, "subscriptions")}{only}
        GROUP BY account_id
    )
    SELECT h.account_id, {d} AS cutoff, h.tier, a.industry, a.region,
           h.seats, h.users_30d, h.users_prev, h.users_90d,
           h.users_30d / nullif(h.seats, 0) AS utilisation,
           h.users_30d / nullif(h.users_prev, 0) AS usage_trend,
           h.work_orders_30d, h.work_orders_done_30d / nullif(h.work_orders_30d, 0) AS work_order_completion,
           h.ai_requests_30d / nullif(h.users_30d, 0) AS ai_requests_per_user, h.assets,
           coalesce(t.tickets_90d, 0) AS tickets_90d, coalesce(t.urgent_tickets_90d, 0) AS urgent_tickets_90d, t.csat_90d,
           h.tickets_on_time / nullif(h.tickets_scored, 0) AS ticket_sla_share, h.open_overdue,
           1 - h.downtime_hours / nullif(h.baseline_hours, 0) AS downtime_reduction,
           h.nps_mean, n.nps_last, coalesce(n.nps_answers_12m, 0) AS nps_answers_12m,
           date_diff('month', m.first_month, {month}) AS tenure_months,
           m.mrr, m.mrr / nullif(m.mrr_3m_ago, 0) - 1 AS mrr_change_3m,
           coalesce(r.annual_plan, 0) AS annual_plan,
           coalesce(r.months_to_renewal, 1) AS months_to_renewal
    FROM h
    JOIN mrr m USING (account_id)
    LEFT JOIN accounts a USING (account_id)
    LEFT JOIN tk t USING (account_id)
    LEFT JOIN nps n USING (account_id)
    LEFT JOIN renewal r USING (account_id)
    WHERE m.mrr IS NOT NULL
    ORDER BY h.account_id
    """


def _labels_sql(cutoff_month: str, account_months: str | None = None) -> str:
    month = date_literal(pd.Period(cutoff_month, freq="M").start_time.date())
    last = f"{month} + INTERVAL {HORIZON_MONTHS} MONTH"
    return f"""
    WITH am AS ({_account_months_sql(last, account_months)})
    SELECT account_id,
           CASE WHEN count(*) FILTER (WHERE month > {month} AND month <= {last}) < {HORIZON_MONTHS} THEN 1 ELSE 0 END AS {LABEL}
    FROM am WHERE month >= {month} AND month <= {last}
    GROUP BY account_id
    HAVING count(*) FILTER (WHERE month = {month}) = 1
    """


def data_months(con) -> list[str]:
    """Months with MRR, ``YYYY-MM``, through the data's as-of month."""
    from cfxlib.store.summary import data_as_of

    as_of = data_as_of(con)
    last = date_literal(as_of.replace(day=1))
    sql = f"SELECT DISTINCT strftime(month, '%Y-%m') FROM ({account_month_sql(last)}) ORDER BY 1"
    return [r[0] for r in con.execute(sql).fetchall()]


def snapshot(
    con,
    month: str,
    with_labels: bool = True,
    account_months: str | None = None,
    accounts: str | None = None,
    usage: str | None = None,
) -> pd.DataFrame:
    """Features of every account active at the end of ``month`` (data up to that day only).

    With ``with_labels`` and when the three following months are in the data, adds ``churned_3m``
    (1 when the account had no MRR at one of the next three month ends). ``account_months``:
    see :func:`_account_months_sql`; ``accounts`` (a table or query with an ``account_id``
    column): only those accounts' rows; ``usage``: see :func:`usage_by_cutoff_sql`.
    """
    frame = con.execute(_features_sql(month_end(month), account_months, accounts, usage)).df()
    frame["cutoff"] = month
    if with_labels:
        months = data_months(con)
        if month in months and months.index(month) + HORIZON_MONTHS < len(months):
            labels = con.execute(_labels_sql(month, account_months)).df()
            frame = frame.merge(labels, on="account_id", how="left")
            frame[LABEL] = frame[LABEL].fillna(0).astype(int)
    return frame


def feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in (*ID_COLUMNS, LABEL)]


# --------------------------------------------------------------------------- the model


def _split_columns(X: pd.DataFrame) -> tuple[list[str], list[str]]:
    numeric, categorical = [], []
    for c in X.columns:
        if pd.api.types.is_bool_dtype(X[c]) or pd.api.types.is_numeric_dtype(X[c]):
            numeric.append(c)
        else:
            categorical.append(c)
    return numeric, categorical


def _as_frame(X) -> pd.DataFrame:
    frame = X.copy() if isinstance(X, pd.DataFrame) else pd.DataFrame(np.asarray(X))
    frame.columns = [str(c) for c in frame.columns]
    for c in frame.columns:
        if pd.api.types.is_bool_dtype(frame[c]):
            frame[c] = frame[c].astype(float)
        elif not pd.api.types.is_numeric_dtype(frame[c]):  # text: every value a str, missing ones NaN
            values = frame[c].astype("object")
            frame[c] = values.astype(str).astype("object").where(values.notna(), np.nan)
    return frame


class ChurnModel(ClassifierMixin, BaseEstimator):
    """Calibrated churn classifier for any customer table.

    Numeric columns are used as they are (missing values allowed); every other column is
    treated as categorical text (rare categories pooled, unseen ones tolerated). The model is a
    blend of two learners, averaged in probability:

    - logistic regression on standardised numerics (median-imputed, with missing-value
      indicators) and one-hot categories (``C``),
    - histogram gradient boosting with native missing-value and categorical handling
      (``learning_rate``, ``max_leaf_nodes``, ``min_samples_leaf``, ``l2_regularization``,
      early stopping on a validation split),

    then calibrated with ``calibration`` ("isotonic" or "sigmoid") on ``cv`` folds
    (``CalibratedClassifierCV``). ``blend`` is the weight of the boosting model.

    ``ensemble``: True keeps the ``cv`` calibrated fold models and averages them (every row is
    scored ``cv`` times); False calibrates on the folds' out-of-fold predictions and keeps one
    model fitted on every row; "auto" (the default) averages below
    :data:`ENSEMBLE_MAX_ROWS` training rows and keeps one model from there, where ``cv="auto"``
    then means two folds instead of three. docs/benchmarks.md ("Churn model calibration folds")
    has the measurements behind the choice: averaging helps on little data, and past it only
    multiplies the scoring time.
    """

    def __init__(
        self,
        blend: float = 0.5,
        C: float = 0.3,
        learning_rate: float = 0.05,
        max_leaf_nodes: int = 15,
        min_samples_leaf: int = 40,
        l2_regularization: float = 1.0,
        max_iter: int = 400,
        calibration: str = "sigmoid",
        cv: int | str = "auto",
        ensemble: bool | str = "auto",
        random_state: int = 0,
    ):
        self.blend = blend
        self.C = C
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.max_iter = max_iter
        self.calibration = calibration
        self.cv = cv
        self.ensemble = ensemble
        self.random_state = random_state

    def _build(self, numeric: list[str], categorical: list[str], minority: int = 1_000):
        linear = Pipeline(
            [
                (
                    "prep",
                    ColumnTransformer(
                        [
                            (
                                "num",
                                make_pipeline(SimpleImputer(strategy="median", add_indicator=True), StandardScaler()),
                                numeric,
                            ),
                            (
                                "cat",
                                make_pipeline(
                                    SimpleImputer(strategy="constant", fill_value=MISSING_CODE),
                                    OneHotEncoder(
                                        handle_unknown="infrequent_if_exist", min_frequency=5, sparse_output=False
                                    ),
                                ),
                                categorical,
                            ),
                        ],
                        remainder="drop",
                    ),
                ),
                ("lr", LogisticRegression(C=self.C, max_iter=2000)),
            ]
        )
        boosted = Pipeline(
            [
                (
                    "prep",
                    ColumnTransformer(
                        [
                            ("num", "passthrough", numeric),
                            (
                                "cat",
                                OrdinalEncoder(
                                    handle_unknown="use_encoded_value",
                                    unknown_value=np.nan,
                                    encoded_missing_value=np.nan,
                                    max_categories=200,
                                ),
                                categorical,
                            ),
                        ],
                        remainder="drop",
                    ),
                ),
                (
                    "gb",
                    HistGradientBoostingClassifier(
                        learning_rate=self.learning_rate,
                        max_leaf_nodes=self.max_leaf_nodes,
                        min_samples_leaf=self.min_samples_leaf,
                        l2_regularization=self.l2_regularization,
                        max_iter=self.max_iter,
                        early_stopping=minority >= 20,  # the validation split needs both classes
                        validation_fraction=0.15,
                        n_iter_no_change=30,
                        categorical_features=[False] * len(numeric) + [True] * len(categorical),
                        random_state=self.random_state,
                    ),
                ),
            ]
        )
        # scikit-learn's soft voting: the weighted mean of the two calibrated probabilities
        return VotingClassifier(
            [("linear", linear), ("boosted", boosted)], voting="soft", weights=[1 - self.blend, self.blend]
        )

    def fit(self, X, y):
        # One OpenMP thread: with several processes on two cores (pipeline lanes, test workers),
        # gradient boosting's spinning OpenMP threads slowed fits by two orders of magnitude.
        with threadpool_limits(limits=1):
            return self._fit(X, y)

    def _fit(self, X, y):
        frame = _as_frame(X)
        y = np.asarray(y).astype(int)
        self.numeric_, self.categorical_ = _split_columns(frame)
        self.categories_ = {c: np.array(sorted(frame[c].dropna().unique()), dtype=object) for c in self.categorical_}
        frame = self._codes(frame)
        self.feature_names_in_ = np.array(frame.columns, dtype=object)
        self.n_features_in_ = frame.shape[1]
        self.classes_ = np.unique(y)
        if len(self.classes_) < 2:
            raise ValueError("ChurnModel needs both churned and retained examples to fit")
        minority = int(np.bincount(y).min())
        base = self._build(self.numeric_, self.categorical_, minority)
        self.ensemble_, self.cv_ = self._calibration_plan(len(y))
        # calibration folds need a few examples of each class; with very few, fit uncalibrated
        folds = min(self.cv_, minority // 5)
        if folds >= 2:
            self.model_ = CalibratedClassifierCV(base, method=self.calibration, cv=folds, ensemble=self.ensemble_).fit(
                frame, y
            )
        else:
            self.model_ = base.fit(frame, y)
        return self

    def description(self) -> str:
        """What was fitted, in words (the model card's ``model``)."""
        check_is_fitted(self, "model_")
        if not isinstance(self.model_, CalibratedClassifierCV):
            how = "uncalibrated (too few churned examples for calibration folds)"
        elif self.ensemble_:
            how = f"{self.calibration}-calibrated on {self.cv_} folds, the {self.cv_} fold models averaged"
        else:
            how = (
                f"{self.calibration}-calibrated on {self.cv_} folds' out-of-fold scores, one model fitted on every row"
            )
        return f"ChurnModel: logistic regression + gradient boosting blend, {how}"

    def _calibration_plan(self, rows: int) -> tuple[bool, int]:
        """(average the fold models?, folds) for ``rows`` training rows, ``"auto"`` resolved."""
        if self.ensemble == "auto":
            ensemble = rows < ENSEMBLE_MAX_ROWS
        elif isinstance(self.ensemble, bool):
            ensemble = self.ensemble
        else:
            raise ValueError(f"ensemble must be True, False or 'auto', not {self.ensemble!r}")
        if self.cv == "auto":
            return ensemble, 3 if ensemble else 2
        if isinstance(self.cv, bool) or not isinstance(self.cv, int) or self.cv < 2:
            raise ValueError(f"cv must be a whole number of folds, at least 2, or 'auto', not {self.cv!r}")
        return ensemble, self.cv

    def predict_proba(self, X) -> np.ndarray:
        """p(class) of every row of ``X``, :data:`PREDICT_CHUNK_ROWS` rows at a time: each
        chunk's copies (text codes, every calibrated model's transformed features) are freed
        before the next, so scoring 800,000 rows needs no more memory than 200,000. Columns of
        ``X`` the model was not fitted on are ignored; no rows give an empty array."""
        check_is_fitted(self, "model_")
        if not isinstance(X, pd.DataFrame):
            X = _as_frame(X)
        columns = list(self.feature_names_in_)
        parts = [
            self._predict_chunk(X.iloc[start : start + PREDICT_CHUNK_ROWS][columns])
            for start in range(0, len(X), PREDICT_CHUNK_ROWS)
        ]
        return np.concatenate(parts) if parts else np.empty((0, len(self.classes_)))

    def _predict_chunk(self, X: pd.DataFrame) -> np.ndarray:
        frame = self._codes(_as_frame(X))
        # Every OpenMP thread for many rows (each tree's parallel loop then has work enough for
        # its threads; 100,000 accounts x 10 months scored in half the time on 2 cores); one for
        # fewer, where the threads' spinning between trees costs more than it saves.
        with threadpool_limits(limits=None if len(frame) >= PARALLEL_PREDICT_ROWS else 1):
            return self.model_.predict_proba(frame[list(self.feature_names_in_)])

    def _codes(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Text columns as numbers, so the encoders inside take their vectorised path rather than
        a Python call per value: a category's position among the sorted categories seen in fit
        (the order the encoders would give the text), NaN when missing, and one past the last for
        a category not seen in fit (an unknown value to the encoders, as the text was)."""
        for c, categories in self.categories_.items():
            codes = pd.Categorical(frame[c], categories=categories).codes.astype(float)
            unseen = (codes == -1) & frame[c].notna().to_numpy()
            codes[codes == -1] = np.nan
            codes[unseen] = len(categories)
            frame[c] = codes
        return frame

    def predict(self, X) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


# --------------------------------------------------------------------------- evaluation


def lift_top_decile(y: np.ndarray, p: np.ndarray) -> float:
    """Churn rate among the 10% highest-risk accounts / the overall churn rate."""
    n = max(1, int(np.ceil(0.1 * len(p))))
    top = np.argsort(-p, kind="stable")[:n]
    base = y.mean()
    return float(y[top].mean() / base) if base > 0 else float("nan")


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Predicted vs observed churn rate by decile of predicted probability."""
    frame = pd.DataFrame({"y": y, "p": p})
    frame["bin"] = pd.qcut(frame["p"].rank(method="first"), q=min(bins, len(frame)), labels=False)
    return (
        frame.groupby("bin")
        .agg(predicted=("p", "mean"), observed=("y", "mean"), accounts=("y", "size"))
        .reset_index(drop=True)
    )


def evaluate(y, p, truth=None) -> dict:
    """Honest figures for a churn model on held-out rows (``truth``: the generator's probabilities)."""
    from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    out = {
        "rows": len(y),
        "churn_rate": float(y.mean()),
        "roc_auc": float(roc_auc_score(y, p)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "brier_base_rate": float(brier_score_loss(y, np.full_like(p, y.mean()))),
        "lift_top_decile": lift_top_decile(y, p),
        "accuracy": float(((p >= 0.5).astype(int) == y).mean()),
        "accuracy_always_no_churn": float((y == 0).mean()),
        "calibration": calibration_table(y, p).to_dict(orient="records"),
    }
    if truth is not None:
        truth = np.asarray(truth, dtype=float)
        ok = ~np.isnan(truth)
        out["oracle_roc_auc"] = float(roc_auc_score(y[ok], truth[ok]))
        out["model_roc_auc_same_rows"] = float(roc_auc_score(y[ok], p[ok]))
        out["oracle_ratio"] = out["model_roc_auc_same_rows"] / out["oracle_roc_auc"]
        out["oracle_pr_auc"] = float(average_precision_score(y[ok], truth[ok]))
    return out


# --------------------------------------------------------------------------- drivers

MIN_CONTRIBUTION = 0.15
"""A driver must add at least this much to the account's log-odds of churn to be named."""


def _describe(driver: str, row: Mapping) -> str:
    v = row.get(DRIVER_FEATURES[driver][0])
    fmt = {
        "falling_usage": lambda: f"Usage is {abs(1 - v) * 100:.0f}% {'below' if v < 1 else 'above'} its earlier level",
        "low_utilisation": lambda: (
            f"Only {v * 100:.0f}% of {row.get('seats', 0):.0f} seats are active on an average day"
        ),
        "ticket_backlog": lambda: f"{plural(v, 'open support ticket')} past their target time",
        "slow_ticket_resolution": lambda: (
            "No recent ticket was resolved on time"
            if v < 0.005
            else f"Only {v * 100:.0f}% of recent tickets were resolved on time"
        ),
        "weak_downtime_reduction": lambda: (
            f"Equipment downtime is only {v * 100:.0f}% below the pre-ChatterFix baseline"
            if v > 0.005
            else f"Equipment downtime is {abs(v) * 100:.0f}% above the pre-ChatterFix baseline"
            if v < -0.005
            else "Equipment downtime is no lower than before ChatterFix"
        ),
        "low_nps": lambda: f"NPS answers average {v:.1f} out of 10",
        "short_tenure": lambda: f"Customer for only {plural(v, 'month')}" if v >= 1 else "New customer (first month)",
        "shrinking_revenue": lambda: (
            "Recurring revenue has not grown in 3 months"
            if abs(v) < 0.005
            else f"Recurring revenue changed {v * 100:+.0f}% in 3 months"
        ),
        "renewal_due": lambda: (
            "Annual renewal due this month" if round(v) == 0 else f"Annual renewal due in {plural(v, 'month')}"
        ),
    }[driver]
    try:
        return fmt() if v is not None and not pd.isna(v) else driver.replace("_", " ")
    except (TypeError, ValueError):
        return driver.replace("_", " ")


@dataclass
class Drivers:
    """Top reasons behind each account's risk.

    A logistic regression on the standardised driver features (:data:`DRIVER_FEATURES`) is fit
    on the training snapshots; an account's reasons are the features whose contribution
    (coefficient x standardised value) pushes its risk up the most, for features whose
    coefficient has the expected sign.
    """

    top: int = 3

    def fit(self, frame: pd.DataFrame, y) -> Drivers:
        cols = [f for f, _ in DRIVER_FEATURES.values() if f in frame.columns]
        X = frame[cols].astype(float)
        self.columns_ = cols
        self.median_ = X.median()
        Xf = X.fillna(self.median_)
        self.mean_, self.std_ = Xf.mean(), Xf.std().replace(0, 1)
        lr = LogisticRegression(C=1.0, max_iter=2000).fit((Xf - self.mean_) / self.std_, np.asarray(y).astype(int))
        self.coef_ = pd.Series(lr.coef_[0], index=cols)
        return self

    def explain(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``drivers`` (names) and ``reasons`` (sentences), top ``top`` per row.

        Ties in contribution go to the driver whose name sorts last (as ``sorted(reverse=True)``).
        """
        Xf = frame[self.columns_].astype(float).fillna(self.median_)
        contrib = ((Xf - self.mean_) / self.std_) * self.coef_
        # only drivers whose learned effect has the expected direction
        candidates = [
            (driver, feature)
            for driver, (feature, direction) in DRIVER_FEATURES.items()
            if feature in self.columns_ and np.sign(self.coef_[feature]) == direction
        ]
        n = len(frame)
        value = np.empty((n, 0)) if not candidates else np.column_stack([contrib[f].to_numpy() for _, f in candidates])
        named = value > MIN_CONTRIBUTION
        for j, (driver, feature) in enumerate(candidates):
            named[:, j] &= frame[feature].notna().to_numpy()
            if driver == "renewal_due":  # monthly plans renew every month: not a reason
                plan = frame["annual_plan"] if "annual_plan" in frame else pd.Series(0, index=frame.index)
                named[:, j] &= plan.fillna(0).astype(bool).to_numpy()
        # per row: named drivers by contribution, ties to the name that sorts last, the top few
        drivers = [d for d, _ in candidates]
        name_rank = np.broadcast_to(np.argsort(np.argsort(drivers)), value.shape)
        order = np.lexsort((-name_rank, -np.where(named, value, -np.inf)), axis=-1)[:, : self.top]
        counts = np.minimum(named.sum(axis=1), self.top)
        # the values a reason quotes, as Python numbers (see _describe)
        quoted = {f: frame[f].tolist() for f in {*(f for _, f in candidates), "seats"} if f in frame.columns}
        names, texts = [], []
        for i, (picked, count) in enumerate(zip(order.tolist(), counts.tolist(), strict=True)):
            picks = [drivers[j] for j in picked[:count]]
            names.append(picks)
            row = {k: v[i] for k, v in quoted.items()} if picks else {}
            texts.append([_describe(d, row) for d in picks])
        return pd.DataFrame({"drivers": names, "reasons": texts}, index=frame.index)
