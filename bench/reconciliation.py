"""Tier forecasts reconciled with the total: accuracy of each method on past forecasts.

Runs the ARR forecast procedure at the same past origins as the pipeline's backtest (6 origins,
2 months apart, 12 months ahead) on the warehouse of ``$CFX_HOME`` (default demo: `make run`),
reconciles each origin's forecasts with every method, and prints MAPE per series and the largest
gap between the tiers' sum and the total. Usage: ``CFX_HOME=... python bench/reconciliation.py``.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import numpy as np
import pandas as pd
from hierarchicalforecast.core import HierarchicalReconciliation
from hierarchicalforecast.methods import BottomUp, MinTrace, TopDown

from cfxlib.core.home import Home
from cfxlib.core.settings import load_settings
from cfxlib.metrics import arr_forecast
from cfxlib.metrics.forecast import forecast
from cfxlib.store import warehouse

TIERS = ["Starter", "Professional", "Enterprise"]
SERIES = ["Total", *TIERS]


def main() -> int:
    # No options; --help describes the benchmark instead of running it (and rewriting docs/benchmarks.md).
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    warnings.simplefilter("ignore")
    con = warehouse.connect(Home(load_settings().home).warehouse)
    try:
        history = arr_forecast.arr_history(con=con)
    finally:
        con.close()
    summing = pd.DataFrame({"unique_id": SERIES, **{t: [1.0] + [float(u == t) for u in TIERS] for t in TIERS}})
    tags = {"Total": np.array(["Total"]), "Total/Tier": np.array(TIERS)}
    methods = [
        MinTrace(method="ols"),
        MinTrace(method="wls_struct"),
        TopDown(method="forecast_proportions"),
        BottomUp(),
    ]
    months = np.sort(history["ds"].unique())
    scored = []
    for k in range(6, 0, -1):
        origin = months[len(months) - 2 * k - 1]
        fc = forecast(history[history["ds"] <= origin], h=min(12, int((months > origin).sum())))
        rec = HierarchicalReconciliation(methods).reconcile(
            Y_hat_df=fc[["unique_id", "ds", "yhat"]], S_df=summing, tags=tags
        )
        scored.append(rec.merge(history, on=["unique_id", "ds"]))
    points = pd.concat(scored)
    cols = [c for c in points.columns if c.startswith("yhat")]
    names = {c: c.replace("yhat/", "").replace("yhat", "base (unreconciled)") for c in cols}
    rows = []
    for c in cols:
        ape = 100 * (points["y"] - points[c]).abs() / points["y"]
        mape = ape.groupby(points["unique_id"]).mean()
        wide = points.pivot_table(
            index=["ds", points.groupby(["unique_id", "ds"]).cumcount()], columns="unique_id", values=c
        )
        gap = (wide[TIERS].sum(axis=1) / wide["Total"] - 1).abs().max()
        rows.append(
            {
                "method": names[c],
                **{s: f"{mape[s]:.2f}%" for s in SERIES},
                "largest gap, tiers vs total": f"{100 * gap:.3f}%",
            }
        )
    print(f"{points.groupby('unique_id').size().iloc[0]} forecasts per series over 6 origins")
    header = list(rows[0])
    print("| " + " | ".join(header) + " |")
    print("|---" + "|---:" * (len(header) - 1) + "|")
    for row in rows:
        print("| " + " | ".join(str(row[h]) for h in header) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
