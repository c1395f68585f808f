"""The numbers the prose of the site and reports quotes, as Quarto variables (``_variables.yml``).

The sentences live in the ``.qmd`` pages of ``reports/`` where an analyst edits them; each number
is a ``{{< var name >}}`` shortcode resolved from the file this module writes for a run (by Quarto,
or by the built-in renderer: :func:`cfxlib.publish.render.resolve_shortcodes`). Values are
display text: formatted (``$33.66M``, ``+6.1%``) and Markdown-escaped when they come from data.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import yaml

from cfxlib.publish.escape import md
from cfxlib.publish.formats import num, pct, usd
from cfxlib.publish.funding import MISSING


def build(snapshot: dict, finance: dict, customer: dict | None, ops_total: pd.DataFrame, generated: str) -> dict:
    """Nested mapping of display strings (see ``docs/reports.md`` for the names)."""
    s = finance["summary"]
    tiers = {t["tier"]: t for t in s["by_tier"]}
    k = (customer or {}).get("kpis", {})
    roi_all = k.get("customer_roi") or {}
    roi = roi_all.get("month") or {}
    fc = snapshot.get("arr_forecast_12m") or {}
    total_points = [p for p in finance["forecast"]["points"] if p["unique_id"] == "Total"]
    last = total_points[-1] if total_points else {}
    bt = finance["forecast"].get("backtest") or {}
    by_series = finance["forecast"].get("backtest_by_series") or {}
    up = ops_total.tail(1).to_dict("records")
    up = up[0] if up else {}
    rnd = (finance.get("fundraising") or {}).get("round") or {}
    models = finance["forecast"].get("models") or {}
    return {
        "run": {
            "id": snapshot["run_id"],
            "as_of": snapshot["as_of"],
            "data": snapshot["data_hash"][:12],
            "commit": snapshot["code_commit"][:12],
            "generated": generated,
            "schema": str(snapshot.get("schema_version", "")),
        },
        "arr": usd(s["arr"]),
        "mrr": usd(s["mrr"]),
        "arr_growth_mom": pct(s["arr_growth_mom"], signed=True),
        "customers": f"{s['customers']:,}",
        "enterprise_arr": usd((tiers.get("Enterprise") or {}).get("arr")),
        "enterprise_customers": f"{(tiers.get('Enterprise') or {}).get('customers', 0):,}",
        "nrr": pct(s["nrr_12m"]),
        "grr": pct(s["grr_12m"]),
        "logo_churn": pct(s["logo_churn_rate"], 2),
        "roi": {
            "value": usd(roi.get("value_usd")),
            "multiple": f"{num(roi.get('roi'))}x",
            "hours": num(roi.get("hours_avoided"), 0),
            "cost_per_hour": usd(roi_all.get("downtime_cost_per_hour_usd")),
            "subscriptions": usd(roi.get("subscription_cost")),
        },
        "risk": {
            "accounts": f"{k.get('accounts_at_risk', 0):,}",
            "arr": usd(k.get("arr_at_risk")),
            "share": pct(k.get("arr_at_risk_share")),
        },
        "forecast": {
            "month": fc.get("month", "n/a"),
            "arr": usd(fc.get("arr")),
            "lo80": usd(fc.get("lo_80")),
            "hi80": usd(fc.get("hi_80")),
            "lo95": usd(fc.get("lo_95")),
            "hi95": usd(fc.get("hi_95")),
            "growth": pct(fc["arr"] / s["arr"] - 1, 0, signed=True) if fc.get("arr") and s["arr"] else "n/a",
            "mape": f"{bt['mape']:.1f}%" if bt.get("mape") is not None else "n/a",
            "coverage80": pct(bt.get("coverage_80"), 0),
            "coverage95": pct(bt.get("coverage_95"), 0),
            "origins": str(bt.get("origins", 0)),
            "bottom_up": usd(last.get("arr_bottom_up")),
            "gap": pct(last["gap_pct"] / 100, 1, signed=True) if last.get("gap_pct") is not None else "n/a",
            "reconciliation": md(finance["forecast"].get("reconciliation") or "none"),
            "tier_mape_base": _tier_mape(by_series, "base"),
            "tier_mape_reconciled": _tier_mape(by_series, "reconciled"),
            "models": md(", ".join(f"{name}: {model}" for name, model in models.items())) or "n/a",
        },
        "funding": {
            "round": md(rnd.get("name")) if rnd else MISSING,
            "target": usd(rnd.get("target_usd")) if rnd else MISSING,
            "committed": usd(rnd["committed_usd"]) if rnd.get("committed_usd") is not None else MISSING,
            "lead": md(rnd["lead"]) if rnd.get("lead") else MISSING,
        },
        "ops": {
            "month": up.get("month", "n/a"),
            "uptime": f"{up['uptime_pct']:.3f}%" if up else "n/a",
            "worst_uptime": f"{up['worst_service_uptime_pct']:.3f}%" if up else "n/a",
            "p95": f"{up['p95_latency_ms']:,.0f} ms" if up else "n/a",
            "ai_calls": f"{up['ai_calls']:,.0f}" if up else "n/a",
        },
    }


def _tier_mape(by_series: dict, kind: str) -> str:
    parts = [f"{name} {v[kind]['mape']:.1f}%" for name, v in by_series.items() if name != "Total" and kind in v]
    return ", ".join(parts) or "n/a"


def write(variables: dict, path: Path) -> Path:
    path.write_text(
        "# Generated by cfx for one run: the numbers the .qmd pages quote with {{< var name >}}.\n"
        + yaml.safe_dump(variables, sort_keys=False, allow_unicode=True, width=1000),
        encoding="utf-8",
    )
    return path


def lookup(variables: dict, name: str):
    """``a.b.c`` in nested mappings (Quarto's dotted variable names); KeyError when absent."""
    value = variables
    for part in name.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(name)
        value = value[part]
    return value
