"""The investor metrics snapshot: a versioned, documented JSON document.

:class:`MetricsSnapshot` is the schema (``docs/metrics_snapshot.schema.json`` is generated from
it); :func:`build` fills it from a run's finance and customer results and the ops tables.
Its ``alerts`` are the investor alert rules (:mod:`cfxlib.contract.alert_rules`) this month
breaks, e.g. ARR growth under 5% month over month or a service under 99.5% uptime.
"""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from cfxlib.contract import alert_rules
from cfxlib.core.provenance import DATA, Source

SCHEMA_VERSION = "1.1.0"


class Interval(BaseModel):
    model_config = ConfigDict(extra="forbid")
    month: str = Field(description="Forecast month, YYYY-MM.")
    arr: float = Field(description="Point forecast of ARR, USD.")
    lo_80: float
    hi_80: float
    lo_95: float
    hi_95: float
    model: str = Field(description="Model chosen by backtest for total ARR.")
    backtest_mape_pct: float | None = Field(None, description="MAPE of past forecasts of total ARR, %.")
    backtest_coverage_80: float | None = Field(
        None, description="Share of past actuals inside the calibrated 80% interval (held out by origin)."
    )
    backtest_coverage_95: float | None = Field(
        None, description="Share of past actuals inside the calibrated 95% interval (held out by origin)."
    )


class Alert(BaseModel):
    """A rule of ``alerts.yaml`` the month breaks (values in the rule's unit, e.g. %)."""

    model_config = ConfigDict(extra="forbid")
    rule: str | None = Field(None, description="Id of the alert rule.")
    title: str | None = Field(None, description="Name of the rule, e.g. 'ARR growth'.")
    severity: str | None = Field(None, description="info, warning or critical.")
    metric: str
    value: float
    threshold: float
    message: str


class MetricsSnapshot(BaseModel):
    """Investor metrics at a month end. Money in USD; rates as fractions (0.05 = 5%)."""

    model_config = ConfigDict(extra="forbid")
    schema_version: str = Field(SCHEMA_VERSION, description="Semantic version of this schema.")
    as_of: str = Field(description="Month the figures describe, YYYY-MM (month-end snapshot).")
    run_id: str = Field(description="Pipeline run that produced the snapshot.")
    data_hash: str = Field(description="SHA-256 of the input data files.")
    code_commit: str = Field(description="Git commit of the code that computed it.")
    source: Source = Field(
        DATA, description="'demo' for the fictional demo company (never sent to investors), 'data' otherwise."
    )
    mrr: float = Field(description="Monthly recurring revenue at month end.")
    arr: float = Field(description="Annual recurring revenue = 12 x MRR.")
    arr_growth_mom: float | None = Field(description="ARR growth against the previous month end.")
    customers: int = Field(description="Accounts with MRR > 0 at month end.")
    nrr_12m: float | None = Field(description="Net revenue retention over 12 months.")
    grr_12m: float | None = Field(description="Gross revenue retention over 12 months (<= 1).")
    logo_churn_rate: float | None = Field(description="Customers churned in the month / customers at its start.")
    ltv_to_cac: float | None = Field(description="LTV (6-month window) / CAC (3-month window).")
    cac_payback_months: float | None = Field(description="CAC / (ARPA x gross margin), months.")
    uptime_pct: float | None = Field(description="Mean daily service uptime over all services in the month, %.")
    worst_service_uptime_pct: float | None = Field(
        None, description="Uptime of the service with the lowest mean daily uptime in the month, %."
    )
    ai_calls: int | None = Field(description="Calls to AI models in the month.")
    lead_conversion_90d: float | None = Field(
        description="Share of leads converted within 90 days, latest mature month."
    )
    lead_conversion_month: str | None = Field(
        None, description="Creation month of the leads behind lead_conversion_90d."
    )
    arr_forecast_12m: Interval | None = Field(description="ARR 12 months ahead with 80% and 95% intervals.")
    arr_at_risk: float | None = Field(None, description="Sum over active accounts of p(churn within 3 months) x ARR.")
    runway_months: float | None = Field(
        None, description="Months of cash at the trailing quarter's net burn; null when cash is not given."
    )
    alerts: list[Alert] = Field(default_factory=list, description="Thresholds breached this month.")


def build(
    run_id: str,
    data_hash: str,
    commit: str,
    finance: dict,
    customer: dict | None,
    ops_total,
    leads,
    thresholds,
    rules,
    source: Source = DATA,
) -> MetricsSnapshot:
    """The snapshot from the finance payload, the customer payload and the ops/lead tables.

    ``rules`` are the alert rules (:func:`cfxlib.contract.alert_rules.load`) and ``thresholds``
    the settings their thresholds may refer to.
    """
    s = finance["summary"]
    month = s["as_of"]
    ops_row = ops_total[ops_total["month"] == month]
    mature = leads[leads["mature"]]
    lead_row = mature.iloc[-1] if len(mature) else None
    fc = s.get("arr_forecast_12m")
    bt = finance.get("forecast", {}).get("backtest") or {}
    snap = MetricsSnapshot(
        as_of=month,
        run_id=run_id,
        data_hash=data_hash,
        code_commit=commit,
        source=source,
        mrr=s["mrr"],
        arr=s["arr"],
        arr_growth_mom=s["arr_growth_mom"],
        customers=s["customers"],
        nrr_12m=s["nrr_12m"],
        grr_12m=s["grr_12m"],
        logo_churn_rate=s["logo_churn_rate"],
        ltv_to_cac=s["ltv_to_cac"],
        cac_payback_months=s["cac_payback_months"],
        uptime_pct=float(ops_row["uptime_pct"].iloc[0]) if len(ops_row) else None,
        worst_service_uptime_pct=float(ops_row["worst_service_uptime_pct"].iloc[0]) if len(ops_row) else None,
        ai_calls=int(ops_row["ai_calls"].iloc[0]) if len(ops_row) else None,
        lead_conversion_90d=float(lead_row["conversion_90d"]) if lead_row is not None else None,
        lead_conversion_month=str(lead_row["month"]) if lead_row is not None else None,
        arr_forecast_12m=None
        if not fc
        else Interval(
            **{k: fc[k] for k in ("month", "arr", "lo_80", "hi_80", "lo_95", "hi_95", "model")},
            backtest_mape_pct=bt.get("mape"),
            backtest_coverage_80=bt.get("coverage_80"),
            backtest_coverage_95=bt.get("coverage_95"),
        ),
        arr_at_risk=(customer or {}).get("kpis", {}).get("arr_at_risk"),
    )
    snap.runway_months = ((finance.get("efficiency") or {}).get("runway_months") or {}).get("value")
    for breach in alert_rules.breaches(snap.model_dump(), rules, thresholds):
        snap.alerts.append(
            Alert(
                **breach.model_dump(exclude={"rule", "title", "severity", "metric"}),
                rule=breach.rule,
                title=breach.title,
                severity=breach.severity,
                metric=breach.metric,
            )
        )
    return snap


def published(home) -> dict:
    """The latest publication's ``metrics_snapshot.json`` (a :class:`cfxlib.core.home.Home`);
    a clear error when nothing is published yet."""
    from cfxlib.core.errors import UserError

    path = home.published / "metrics_snapshot.json"
    if not path.exists():
        raise UserError(f"no published run under {home.root}: run `cfx run` first (looked for {path})")
    return json.loads(path.read_text(encoding="utf-8"))


def refuse_demo(home, allow_demo: bool, what: str) -> None:
    """Stop ``what`` (e.g. "cfx investor weekly sends") when the latest publication is the demo
    company, unless ``allow_demo`` (``--allow-demo``, for a test inbox or bucket)."""
    from cfxlib.core.errors import UserError
    from cfxlib.core.provenance import DEMO

    path = home.published / "metrics_snapshot.json"
    if allow_demo or not path.exists():
        return
    if json.loads(path.read_text(encoding="utf-8")).get("source") == DEMO:
        raise UserError(
            f"the latest publication is the demo company (fictional figures): {what} nothing of it. "
            "Publish your data with `cfx run --data DIR` (or set data_dir), or pass --allow-demo to try this "
            "on a test inbox or bucket"
        )


def schema_json() -> str:
    schema = MetricsSnapshot.model_json_schema()
    schema["$id"] = f"https://chatterfix.example/schemas/metrics_snapshot/{SCHEMA_VERSION}"
    return json.dumps(schema, indent=2) + "\n"


def write_schema(path: Path) -> bool:
    from cfxlib.core.outputs import write_text_if_changed

    return write_text_if_changed(path, schema_json())
