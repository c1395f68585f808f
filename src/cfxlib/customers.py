"""Customer intelligence: churn scores, model card, at-risk accounts, KPIs and retention curves.

Everything here is computed from the warehouse at an as-of month (its last day):

- :func:`churn_scores` trains :class:`~cfxlib.churn.ChurnModel` only on snapshots whose 3-month
  outcome is known at the end of the as-of month and scores every account active then.
- :func:`model_card` evaluates the same procedure out of time: train on earlier cutoffs, test on
  the last labelled ones (with the generator's truth when the data is the demo company).
- :func:`at_risk` joins churn probability, health and drivers, and recommends a playbook action.
- :func:`kpis` — active users, NPS, customer ROI, health distribution, ARR at risk.
- :func:`retention_curves` — Kaplan-Meier customer survival by tier (lifelines).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cfxlib import churn, health
from cfxlib.errors import UserError
from cfxlib.revenue import account_month_sql
from cfxlib.schemas import TIERS
from cfxlib.sqltext import date_literal

TRAIN_CUTOFFS = 24
"""At most this many monthly cutoffs (the latest labelled ones) train a model."""
TEST_CUTOFFS = 6
FIRST_CUTOFF = 3
"""Cutoffs start this many months after the first month with MRR (some history first)."""
AT_RISK_MIN_PROBABILITY = 0.15


class UsageError(UserError):
    pass


# --------------------------------------------------------------------------- churn scores


def _cutoffs(con, as_of_month: str) -> tuple[list[str], list[str]]:
    """(all months up to as-of, labelled cutoffs whose outcome is known at the as-of month end)."""
    months = churn.data_months(con)
    if as_of_month not in months:
        raise UsageError(f"as-of month {as_of_month} is not in the data (months {months[0]} to {months[-1]})")
    upto = months[: months.index(as_of_month) + 1]
    labelled = upto[FIRST_CUTOFF : len(upto) - churn.HORIZON_MONTHS]
    return upto, labelled


def _fit(frame: pd.DataFrame) -> churn.ChurnModel:
    feats = churn.feature_columns(frame)
    return churn.ChurnModel().fit(frame[feats], frame[churn.LABEL])


def _labelled_snapshots(con, cutoffs: list[str], as_of_month: str) -> pd.DataFrame:
    frame = churn.snapshots(con, cutoffs, with_labels=False)
    labels = pd.concat([con.execute(churn._labels_sql(c)).df().assign(cutoff=c) for c in cutoffs], ignore_index=True)
    frame = frame.merge(labels, on=["account_id", "cutoff"], how="left")
    frame[churn.LABEL] = frame[churn.LABEL].fillna(0).astype(int)
    return frame


@dataclass
class ChurnResult:
    as_of_month: str
    scores: pd.DataFrame  # account_id, p_churn_3m and the snapshot features
    model: churn.ChurnModel
    drivers: churn.Drivers
    training_rows: int
    training_cutoffs: list[str]


def churn_scores(con, as_of_month: str) -> ChurnResult:
    """Train on outcomes known at the end of ``as_of_month``; score accounts active then."""
    _, labelled = _cutoffs(con, as_of_month)
    if not labelled:
        raise UsageError(
            f"not enough history before {as_of_month} to train a churn model (need {FIRST_CUTOFF + 4} months)"
        )
    train_cutoffs = labelled[-TRAIN_CUTOFFS:]
    train = _labelled_snapshots(con, train_cutoffs, as_of_month)
    if train[churn.LABEL].nunique() < 2:
        raise UsageError("the training snapshots hold no churned (or no retained) account; cannot train")
    model = _fit(train)
    drivers = churn.Drivers().fit(train, train[churn.LABEL])
    current = churn.snapshot(con, as_of_month, with_labels=False)
    current["p_churn_3m"] = model.predict_proba(current[churn.feature_columns(train)])[:, 1]
    return ChurnResult(as_of_month, current, model, drivers, len(train), train_cutoffs)


def model_card(con, as_of_month: str, truth: pd.DataFrame | None = None) -> dict:
    """Out-of-time evaluation: train on cutoffs whose outcomes were known before the test period,
    test on the last :data:`TEST_CUTOFFS` labelled cutoffs."""
    _, labelled = _cutoffs(con, as_of_month)
    if len(labelled) < TEST_CUTOFFS + churn.HORIZON_MONTHS + 3:
        raise UsageError(f"not enough labelled months before {as_of_month} for an out-of-time evaluation")
    test_cutoffs = labelled[-TEST_CUTOFFS:]
    first_test = labelled.index(test_cutoffs[0])
    train_cutoffs = labelled[: first_test - churn.HORIZON_MONTHS + 1][-TRAIN_CUTOFFS:]
    frame = _labelled_snapshots(con, train_cutoffs + test_cutoffs, as_of_month)
    train = frame[frame["cutoff"].isin(train_cutoffs)]
    test = frame[frame["cutoff"].isin(test_cutoffs)].copy()
    model = _fit(train)
    test["p"] = model.predict_proba(test[churn.feature_columns(train)])[:, 1]
    oracle = None
    if truth is not None:
        test = test.merge(
            truth.rename(columns={"month": "cutoff", "p_churn_3m": "truth"}), on=["account_id", "cutoff"], how="left"
        )
        oracle = test["truth"]
    card = churn.evaluate(test[churn.LABEL], test["p"], truth=oracle)
    card.update(
        {
            "as_of": as_of_month,
            "train_cutoffs": [train_cutoffs[0], train_cutoffs[-1]],
            "test_cutoffs": [test_cutoffs[0], test_cutoffs[-1]],
            "train_rows": int(len(train)),
            "test_rows": int(len(test)),
            "features": churn.feature_columns(train),
            "model": "ChurnModel: logistic regression + gradient boosting blend, sigmoid-calibrated (3-fold)",
        }
    )
    # Health score validation on the same test rows: does a low score precede churn?
    card["health_validation"] = health_validation(con, test_cutoffs, test[["account_id", "cutoff", churn.LABEL]])
    return card


# --------------------------------------------------------------------------- health validation


def health_validation(con, cutoffs: list[str], labels: pd.DataFrame, config: health.HealthConfig | None = None) -> dict:
    """How well the health score and its bands separate churners (next 3 months).

    ROC AUC of (100 - score), churn rate per band, and weights suggested by a logistic
    regression of churn on the standardised components (negative coefficients = protective;
    suggested weight = share of the protective effect), beside the configured ones.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    config = config or health.load_config()
    frames = [health.health_scores(con, churn.month_end(c), config, changes=False).assign(cutoff=c) for c in cutoffs]
    scores = pd.concat(frames, ignore_index=True).merge(labels, on=["account_id", "cutoff"])
    y = scores[churn.LABEL].to_numpy()
    out: dict = {"rows": int(len(scores))}
    if len(np.unique(y)) < 2:
        return out
    out["roc_auc"] = float(roc_auc_score(y, 100 - scores["health_score"].fillna(50)))
    bands = scores.groupby("band")[churn.LABEL].agg(["mean", "size"])
    out["churn_rate_by_band"] = {
        b: {"churn_rate": float(r["mean"]), "accounts": int(r["size"])} for b, r in bands.iterrows()
    }
    X = scores[list(health.COMPONENTS)]
    X = (X.fillna(X.median()) - X.mean()) / X.std().replace(0, 1)
    lr = LogisticRegression(max_iter=2000).fit(X.fillna(0), y)
    protective = np.clip(-lr.coef_[0], 0, None)
    suggested = 100 * protective / protective.sum() if protective.sum() > 0 else np.zeros(len(protective))
    out["weights"] = {
        c: {"configured": config.weights[c], "suggested": float(round(s, 1)), "coefficient": float(k)}
        for c, s, k in zip(health.COMPONENTS, suggested, lr.coef_[0], strict=True)
    }
    out["component_roc_auc"] = {
        c: float(roc_auc_score(y, -scores[c].fillna(scores[c].median())))
        for c in health.COMPONENTS
        if scores[c].notna().any()
    }
    return out


# --------------------------------------------------------------------------- playbooks and at-risk


class _When(BaseModel):
    model_config = ConfigDict(extra="forbid")
    driver: str | None = None
    min_churn_probability: float | None = Field(None, ge=0, le=1)
    max_component: dict[str, float] | None = None


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    when: _When = _When()
    action: str
    owner: str
    due_days: int = Field(ge=0)

    def matches(self, row: dict) -> bool:
        w = self.when
        if w.driver is not None and w.driver not in row.get("drivers", []):
            return False
        if w.min_churn_probability is not None and row.get("p_churn_3m", 0) < w.min_churn_probability:
            return False
        for comp, limit in (w.max_component or {}).items():
            value = row.get(comp)
            if value is None or pd.isna(value) or value > limit:
                return False
        return True


def load_playbooks(path: Path | None = None) -> list[Playbook]:
    text = (
        Path(path).read_text(encoding="utf-8")
        if path
        else resources.files("cfxlib").joinpath("config/playbooks.yaml").read_text(encoding="utf-8")
    )
    try:
        data = yaml.safe_load(text) or {}
        books = [Playbook.model_validate(p) for p in data.get("playbooks", [])]
    except (ValidationError, yaml.YAMLError) as exc:
        raise UsageError(f"invalid playbook catalogue {path or 'cfxlib/config/playbooks.yaml'}: {exc}") from None
    unknown = {b.when.driver for b in books if b.when.driver} - set(churn.DRIVER_FEATURES)
    if unknown:
        raise UsageError(
            f"playbook catalogue names unknown driver(s) {sorted(unknown)}; known: {', '.join(churn.DRIVER_FEATURES)}"
        )
    return books


def recommend(row: dict, books: list[Playbook]) -> dict:
    """The playbook for the account's most important driver that has one (catalogue order breaks
    ties); without such a match, the first general entry (no driver condition) that matches."""

    def pick(book: Playbook) -> dict:
        return {"playbook": book.name, "action": book.action, "owner": book.owner, "due_days": book.due_days}

    for driver in row.get("drivers", []):
        for book in books:
            if book.when.driver == driver and book.matches(row):
                return pick(book)
    for book in books:
        if book.when.driver is None and book.matches(row):
            return pick(book)
    return {"playbook": None, "action": None, "owner": None, "due_days": None}


def at_risk(
    result: ChurnResult,
    health_frame: pd.DataFrame,
    books: list[Playbook] | None = None,
    min_probability: float = AT_RISK_MIN_PROBABILITY,
) -> pd.DataFrame:
    """Every account with its risk, sorted by ARR at risk; ``at_risk`` flags p >= min or a red band.

    Columns: account_id, tier, arr, health_score, band, p_churn_3m, arr_at_risk (= p x ARR),
    drivers, reasons, playbook, action, owner, due_days, and the component scores.
    """
    books = books if books is not None else load_playbooks()
    s = result.scores
    frame = s[["account_id", "tier", "mrr"]].assign(arr=lambda d: 12 * d["mrr"], p_churn_3m=s["p_churn_3m"])
    frame = frame.drop(columns="mrr").merge(
        health_frame[["account_id", "health_score", "band", *health.COMPONENTS]], on="account_id", how="left"
    )
    explained = result.drivers.explain(s)
    frame["drivers"] = explained["drivers"].to_numpy()
    frame["reasons"] = explained["reasons"].to_numpy()
    frame["arr_at_risk"] = frame["p_churn_3m"] * frame["arr"]
    recs = pd.DataFrame([recommend(r, books) for r in frame.to_dict("records")], index=frame.index)
    frame = pd.concat([frame, recs], axis=1)
    frame["at_risk"] = (frame["p_churn_3m"] >= min_probability) | (frame["band"] == "red")
    cols = [
        "account_id",
        "tier",
        "arr",
        "health_score",
        "band",
        "p_churn_3m",
        "arr_at_risk",
        "drivers",
        "reasons",
        "playbook",
        "action",
        "owner",
        "due_days",
        "at_risk",
        *health.COMPONENTS,
    ]
    return frame[cols].sort_values("arr_at_risk", ascending=False).reset_index(drop=True)


# --------------------------------------------------------------------------- KPIs


def kpis(con, as_of_month: str, health_frame: pd.DataFrame, risk: pd.DataFrame, downtime_cost_per_hour: float) -> dict:
    """KPI summary at the as-of month (amounts in USD).

    - active users: ``dau`` = mean daily active users (summed over accounts) in the month;
      ``mau_lower_bound`` = sum over accounts of their peak daily active users in the month (the
      data holds daily counts, not user ids, so monthly distinct users are at least this).
    - NPS = % promoters (9-10) - % detractors (0-6) of the month's answers, overall and by tier,
      and its monthly trend.
    - customer ROI: value of downtime avoided = (baseline - downtime hours) x cost per hour,
      against subscription cost (MRR) of the reporting accounts; ``roi`` = value / cost.
    - health distribution by tier and band; ARR at risk = sum of p(churn in 3 months) x ARR.
    """
    start = pd.Period(as_of_month, freq="M").start_time.date()
    month = date_literal(start)
    am = f"({account_month_sql(month)})"
    users = con.execute(
        f"""
        WITH am AS (SELECT * FROM {am}),
        daily AS (
            SELECT date_trunc('month', u.date) AS month, am.tier, u.date, sum(u.active_users) AS users
            FROM usage_daily u JOIN am ON am.account_id = u.account_id AND am.month = date_trunc('month', u.date)
            GROUP BY ALL
        ),
        peaks AS (
            SELECT date_trunc('month', u.date) AS month, am.tier, u.account_id, max(u.active_users) AS peak
            FROM usage_daily u JOIN am ON am.account_id = u.account_id AND am.month = date_trunc('month', u.date)
            GROUP BY ALL
        )
        SELECT strftime(d.month, '%Y-%m') AS month, d.tier, avg(d.users) AS dau,
               (SELECT sum(peak) FROM peaks p WHERE p.month = d.month AND p.tier = d.tier) AS mau_lower_bound
        FROM daily d GROUP BY d.month, d.tier ORDER BY d.month, d.tier
        """
    ).df()
    nps = con.execute(
        f"""
        WITH am AS (SELECT * FROM {am})
        SELECT strftime(date_trunc('month', n.date), '%Y-%m') AS month, coalesce(am.tier, 'Unknown') AS tier,
               count(*) AS answers,
               100.0 * avg(CASE WHEN score >= 9 THEN 1 ELSE 0 END) - 100.0 * avg(CASE WHEN score <= 6 THEN 1 ELSE 0 END) AS nps
        FROM nps_responses n
        LEFT JOIN am ON am.account_id = n.account_id AND am.month = date_trunc('month', n.date)
        GROUP BY ALL ORDER BY 1, 2
        """
    ).df()
    nps_total = con.execute(
        """
        SELECT strftime(date_trunc('month', date), '%Y-%m') AS month, count(*) AS answers,
               100.0 * avg(CASE WHEN score >= 9 THEN 1 ELSE 0 END) - 100.0 * avg(CASE WHEN score <= 6 THEN 1 ELSE 0 END) AS nps
        FROM nps_responses GROUP BY 1 ORDER BY 1
        """
    ).df()
    roi = con.execute(
        f"""
        WITH am AS (SELECT * FROM {am})
        SELECT strftime(d.month, '%Y-%m') AS month, count(*) AS accounts,
               sum(d.baseline_downtime_hours - d.downtime_hours) AS hours_avoided,
               sum(am.mrr)::DOUBLE AS subscription_cost
        FROM downtime_monthly d JOIN am ON am.account_id = d.account_id AND am.month = d.month
        GROUP BY d.month ORDER BY d.month
        """
    ).df()
    roi["value_usd"] = roi["hours_avoided"] * downtime_cost_per_hour
    roi["roi"] = roi["value_usd"] / roi["subscription_cost"]
    last_users = users[users["month"] == as_of_month]
    last_nps = nps[nps["month"] == as_of_month]
    recent_nps = nps_total.tail(3)
    dist = health_frame.groupby(["tier", "band"]).size().unstack(fill_value=0)
    return {
        "as_of": as_of_month,
        "active_users": {
            "dau": float(last_users["dau"].sum()),
            "mau_lower_bound": float(last_users["mau_lower_bound"].sum()),
            "by_tier": last_users[["tier", "dau", "mau_lower_bound"]].to_dict(orient="records"),
            "trend": users.groupby("month")[["dau", "mau_lower_bound"]]
            .sum()
            .reset_index()
            .tail(12)
            .to_dict(orient="records"),
        },
        "nps": {
            "month": float(nps_total["nps"].iloc[-1]) if len(nps_total) else None,
            "last_3_months": float(np.average(recent_nps["nps"], weights=recent_nps["answers"]))
            if len(recent_nps)
            else None,
            "answers_month": int(nps_total["answers"].iloc[-1]) if len(nps_total) else 0,
            "by_tier": last_nps[["tier", "nps", "answers"]].to_dict(orient="records"),
            "trend": nps_total.tail(12).to_dict(orient="records"),
        },
        "customer_roi": {
            "downtime_cost_per_hour_usd": downtime_cost_per_hour,
            "month": roi.iloc[-1].to_dict() if len(roi) else None,
            "trend": roi.tail(12).to_dict(orient="records"),
        },
        "health": {
            "mean_score": float(health_frame["health_score"].mean()),
            "distribution": {
                t: {b: int(dist.loc[t].get(b, 0)) for b in ("red", "yellow", "green")} for t in dist.index
            },
            "by_band": {b: int(n) for b, n in health_frame["band"].value_counts().items()},
        },
        "arr_at_risk": float(risk["arr_at_risk"].sum()),
        "arr_at_risk_share": float(risk["arr_at_risk"].sum() / risk["arr"].sum()) if risk["arr"].sum() else None,
        "accounts_at_risk": int(risk["at_risk"].sum()),
    }


# --------------------------------------------------------------------------- survival


def retention_curves(con, as_of_month: str) -> pd.DataFrame:
    """Kaplan-Meier customer survival by tier (tier at signup).

    Duration = months from an account's first month with MRR to its first churn (no MRR at a
    month end), censored at the as-of month for accounts still active. Returns ``tier, month,
    survival, lower_95, upper_95``.
    """
    from lifelines import KaplanMeierFitter

    start = pd.Period(as_of_month, freq="M").start_time.date()
    frame = con.execute(
        f"""
        WITH am AS ({account_month_sql(date_literal(start))}),
        seq AS (
            SELECT account_id, month, tier,
                   lead(month) OVER (PARTITION BY account_id ORDER BY month) AS next_month,
                   first_value(tier) OVER (PARTITION BY account_id ORDER BY month) AS first_tier,
                   min(month) OVER (PARTITION BY account_id) AS first_month
            FROM am
        ),
        first_gap AS (
            SELECT account_id, first_tier, first_month,
                   min(month) FILTER (WHERE next_month IS NULL OR next_month > month + INTERVAL 1 MONTH) AS last_run_month
            FROM seq GROUP BY account_id, first_tier, first_month
        )
        SELECT account_id, first_tier AS tier,
               date_diff('month', first_month, last_run_month) + 1 AS duration,
               CASE WHEN last_run_month < {date_literal(start)} THEN 1 ELSE 0 END AS churned
        FROM first_gap
        """
    ).df()
    rows = []
    for tier in TIERS:
        part = frame[frame["tier"] == tier]
        if part.empty:
            continue
        kmf = KaplanMeierFitter().fit(part["duration"], part["churned"], label=tier)
        ci = kmf.confidence_interval_survival_function_
        for t, s in kmf.survival_function_[tier].items():
            rows.append(
                {
                    "tier": tier,
                    "month": int(t),
                    "survival": float(s),
                    "lower_95": float(ci.loc[t].iloc[0]),
                    "upper_95": float(ci.loc[t].iloc[1]),
                }
            )
    return pd.DataFrame(rows)


def survival_at(curves: pd.DataFrame, months=(6, 12, 24)) -> dict:
    out = {}
    for tier, g in curves.groupby("tier"):
        out[tier] = {}
        for m in months:
            past = g[g["month"] <= m]
            out[tier][f"{m}m"] = float(past["survival"].iloc[-1]) if len(past) else None
    return out


def as_of_month_of(con) -> str:
    from cfxlib.summary import data_as_of

    d: date = data_as_of(con)
    return f"{d.year:04d}-{d.month:02d}"
