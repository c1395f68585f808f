"""Writing the finance results of a run: tables (Parquet), figures (PNG) and ``finance.json``."""

from __future__ import annotations

import json
from pathlib import Path

from cfxlib.metrics.finance import FinanceResults, payloads
from cfxlib.publish import figures


def write(res: FinanceResults, out_dir: Path, payload: dict | None = None) -> dict[str, Path]:
    """Write tables (Parquet), figures (PNG) and payloads (JSON, ``payloads(res)`` unless given) into ``out_dir``."""
    out_dir = Path(out_dir)
    (out_dir / "figures").mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}
    tables = {
        "monthly": res.monthly,
        "monthly_by_tier": res.monthly_by_tier,
        "retention": res.retention,
        "retention_by_tier": res.retention_by_tier,
        "cohorts": res.cohorts,
        "unit_economics": res.unit_economics,
        "arr_history": res.arr_history,
        "arr_forecast": res.comparison,
        "arr_bottom_up": res.bottom_up,
        "forecast_backtest_points": res.backtest["points"],
        "forecast_backtest_by_horizon": res.backtest["by_horizon"],
    }
    for name, frame in tables.items():
        path = out_dir / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        files[name] = path
    files["arr_forecast_png"] = figures.forecast_figure(
        res.arr_history, res.forecast, out_dir / "figures" / "arr_forecast.png"
    )
    # the weekly email's chart: the total alone, one panel, legible at a phone's width
    files["arr_forecast_email_png"] = figures.forecast_figure(
        res.arr_history,
        res.forecast[res.forecast["unique_id"] == "Total"],
        out_dir / "figures" / "arr_forecast_email.png",
        title="Total ARR: history and 12-month forecast",
    )
    fig = out_dir / "figures"
    files["mrr_movements_png"] = figures.movements_figure(res.monthly, fig / "mrr_movements.png")
    files["mrr_bridge_png"] = figures.bridge_figure(res.monthly, fig / "mrr_bridge.png")
    files["mrr_by_tier_png"] = figures.mrr_by_tier_figure(res.monthly_by_tier, fig / "mrr_by_tier.png")
    files["cohorts_png"] = figures.cohort_heatmap(res.cohorts, fig / "cohort_retention.png")
    files["retention_png"] = figures.retention_trends_figure(res.retention, res.monthly, fig / "retention_trends.png")
    if not res.backtest["points"].empty:
        files["backtest_png"] = figures.backtest_figure(res.arr_history, res.backtest["points"], fig / "backtest.png")
    if res.fundraising:
        funds = figures.use_of_funds_figure(res.fundraising, fig / "use_of_funds.png")
        if funds:
            files["use_of_funds_png"] = funds
    path = out_dir / "finance.json"
    path.write_text(json.dumps(payload if payload is not None else payloads(res), indent=1), encoding="utf-8")
    files["finance_json"] = path
    return files
