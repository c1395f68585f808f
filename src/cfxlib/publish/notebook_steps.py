"""What the pipeline notebooks call: one function per notebook, each writing its artifacts.

Notebooks stay thin (a parameters cell, then one call and a few displays); the work lives here
so it is tested and reusable. Every function reads the warehouse read-only and writes into
``<run_dir>/artifacts``; later steps read earlier steps' artifacts, never recompute them.

Each notebook runs in its own kernel, so a step imports what only it needs inside its function:
scikit-learn, matplotlib and the forecasting libraries cost a kernel 1-2 s to import, and the
steps that do not use them should not pay for them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd

from cfxlib.contract.rules import account_state_at_sql
from cfxlib.core import provenance
from cfxlib.core.home import Home
from cfxlib.core.repo import REPO
from cfxlib.core.settings import Settings, load_settings
from cfxlib.store import lake, warehouse
from cfxlib.store.sqltext import date_literal
from cfxlib.store.summary import data_as_of, last_complete_month

if TYPE_CHECKING:
    from cfxlib.customers.report import CustomerResults
    from cfxlib.metrics.finance import FinanceResults


@dataclass
class Context:
    settings: Settings
    home: Home
    run_dir: Path
    as_of_month: str
    run_id: str

    @property
    def artifacts(self) -> Path:
        return self.run_dir / "artifacts"

    def connect(self):
        """The newest ingested tables (:func:`cfxlib.store.lake.newest`) on the configured engine."""
        return _connect(self.settings, self.home)

    def read_json(self, name: str) -> dict:
        return json.loads((self.artifacts / name).read_text(encoding="utf-8"))

    def write_json(self, name: str, data) -> Path:
        path = self.artifacts / name
        path.write_text(json.dumps(data, indent=1, default=str), encoding="utf-8")
        return path


def _connect(settings: Settings, home: Home):
    spark = settings.spark
    return lake.connect(
        home, settings.engine, spark.master, spark.driver_memory, settings.duckdb.memory_limit, spark.conf
    )


def context(cfx_home: str = "", run_dir: str = "", as_of: str = "") -> Context:
    """Parameters of a notebook -> a context. Empty strings mean: from the environment/settings
    (``$CFX_HOME``), a scratch folder ``$CFX_HOME/scratch``, and the data's last month."""
    if cfx_home:
        os.environ["CFX_HOME"] = cfx_home
    settings = load_settings()
    home = Home(settings.home)
    folder = Path(run_dir) if run_dir else home.root / "scratch"
    (folder / "artifacts" / "figures").mkdir(parents=True, exist_ok=True)
    month = as_of
    if not month:
        con = _connect(settings, home)
        try:
            month = last_complete_month(data_as_of(con))
        finally:
            con.close()
    return Context(settings, home, folder, month, folder.name)


def data_quality(ctx: Context) -> dict:
    """Row counts, coverage and lineage of the warehouse -> ``data_quality.json``."""
    from cfxlib.contract import datadict

    con = ctx.connect()
    try:
        meta = warehouse.ingest_metadata(con)
        coverage = {
            "usage_daily": con.execute(
                "SELECT min(date)::VARCHAR, max(date)::VARCHAR, count(DISTINCT account_id) FROM usage_daily"
            ).fetchone(),
            "subscriptions": con.execute(
                "SELECT min(start_date)::VARCHAR, max(start_date)::VARCHAR, count(DISTINCT account_id) FROM subscriptions"
            ).fetchone(),
            "ops_daily": con.execute(
                "SELECT min(date)::VARCHAR, max(date)::VARCHAR, count(DISTINCT service) FROM ops_daily"
            ).fetchone(),
        }
        last_day = date_literal(pd.Period(ctx.as_of_month, freq="M").end_time.date())
        missing = {
            "tickets_open": con.execute("SELECT count(*) FROM tickets WHERE resolved_at IS NULL").fetchone()[0],
            "tickets_without_csat": con.execute("SELECT count(*) FROM tickets WHERE csat IS NULL").fetchone()[0],
            "active_accounts_without_usage_last_30d": con.execute(
                f"SELECT count(*) FROM ({account_state_at_sql(last_day)}) s WHERE s.mrr > 0 AND s.account_id NOT IN "
                f"(SELECT account_id FROM usage_daily WHERE date > {last_day} - INTERVAL 30 DAY AND date <= {last_day})"
            ).fetchone()[0],
        }
    finally:
        con.close()
    out = {
        "as_of": ctx.as_of_month,
        "data_hash": meta["data_hash"],
        "data_dir": meta["data_dir"],
        "source": meta["source"],
        "loaded_at": meta["loaded_at"],
        "rows": meta["rows"],
        "coverage": {k: {"first": v[0], "last": v[1], "distinct": v[2]} for k, v in coverage.items()},
        "gaps": missing,
    }
    ctx.write_json("data_quality.json", out)
    (ctx.artifacts / "data_dictionary.md").write_text(datadict.render().split("\n", 2)[2], encoding="utf-8")
    return out


def revenue(ctx: Context) -> pd.DataFrame:
    """Revenue metrics and the movements figure (the forecast is step 03's)."""
    from cfxlib.metrics import revenue
    from cfxlib.publish import figures

    con = ctx.connect()
    try:
        monthly = revenue.monthly_metrics(con=con, as_of=ctx.as_of_month)
        by_tier = revenue.monthly_metrics(con=con, by="tier", as_of=ctx.as_of_month)
    finally:
        con.close()
    monthly.to_parquet(ctx.artifacts / "monthly.parquet", index=False)
    by_tier.to_parquet(ctx.artifacts / "monthly_by_tier.parquet", index=False)
    figures.movements_figure(monthly, ctx.artifacts / "figures" / "mrr_movements.png")
    return monthly


def forecast(ctx: Context) -> FinanceResults:
    """Every revenue table, the ARR forecast with its backtest, figures, ``finance.json``."""
    from cfxlib.metrics import finance
    from cfxlib.publish import finance_report, pages

    con = ctx.connect()
    try:
        res = finance.compute(con, as_of=ctx.as_of_month)
    finally:
        con.close()
    payload = finance.payloads(res)
    finance_report.write(res, ctx.artifacts, payload)
    (ctx.artifacts / "financial.md").write_text(pages.financial(payload), encoding="utf-8")
    (ctx.artifacts / "forecast_backtest.md").write_text(pages.forecast_backtest(payload), encoding="utf-8")
    return res


def customer_health(ctx: Context) -> pd.DataFrame:
    """Health scores of every active account at the as-of month end -> ``health.parquet``."""
    from cfxlib.customers import health
    from cfxlib.metrics import ops
    from cfxlib.publish import figures, pages

    con = ctx.connect()
    try:
        month_end = pd.Period(ctx.as_of_month, freq="M").end_time.date()
        frame = health.health_scores(con, month_end)
        history = health.health_history(con, month_end)
        ops_total, ops_by_service = ops.monthly_ops_total(con), ops.monthly_ops(con)
        leads = ops.lead_conversion(con)
    finally:
        con.close()
    frame.to_parquet(ctx.artifacts / "health.parquet", index=False)
    history.to_parquet(ctx.artifacts / "health_history.parquet", index=False)
    ops_total.to_parquet(ctx.artifacts / "ops_monthly.parquet", index=False)
    ops_by_service.to_parquet(ctx.artifacts / "ops_by_service.parquet", index=False)
    leads.to_parquet(ctx.artifacts / "lead_conversion.parquet", index=False)
    figures.ops_figure(
        ops_total, ctx.artifacts / "figures" / "system_performance.png", ctx.settings.thresholds.uptime_min_pct
    )
    (ctx.artifacts / "system_performance.md").write_text(
        pages.system_performance(ops_total, ops_by_service), encoding="utf-8"
    )
    return frame


def churn_model(ctx: Context) -> CustomerResults:
    """Churn scores, at-risk accounts, KPIs, model card -> ``customer_success.json`` and ``.md``."""
    from cfxlib.customers import report as customer_results
    from cfxlib.publish import customer_report, pages

    con = ctx.connect()
    try:
        truth = customer_results.truth_for(warehouse.ingest_metadata(con))
        res = customer_results.compute(con, ctx.as_of_month, truth, ctx.settings.costs.downtime_cost_per_hour_usd)
    finally:
        con.close()
    res.interventions = intervention_section(ctx.home, ctx.as_of_month)
    customer_report.write(res, ctx.artifacts)
    payload = customer_results.payload(res)
    (ctx.artifacts / "interventions.md").write_text(pages.interventions(payload["interventions"]), encoding="utf-8")
    (ctx.artifacts / "customer_health.md").write_text(pages.customer_health(payload), encoding="utf-8")
    (ctx.artifacts / "model_card.md").write_text(pages.model_card(payload), encoding="utf-8")
    return res


def intervention_section(home: Home, as_of_month: str) -> dict:
    """``customer_success.json``'s ``interventions``: the effect report (the data's
    ``interventions`` table and cfx's own CTAs with a known outcome at the as-of month) and the
    work on cfx's own CTAs (see :mod:`cfxlib.interventions.effect`). Computed on the embedded
    engine whichever engine runs the job (small tables; the same figures either way)."""
    from datetime import UTC, datetime

    from cfxlib.interventions import effect, notices

    store = notices.store_for(home)
    try:
        ctas = store.list() if store.path.exists() else []
    finally:
        store.close()
    own = pd.DataFrame(
        [
            {
                "account_id": c["account_id"],
                "opened_date": c["opened_at"][:10],
                "rule": c["rule"],
                "playbook": c["playbook"],
                "holdout": bool(c["holdout"]),
            }
            for c in ctas
        ]
    )
    as_of = pd.Period(as_of_month, freq="M").end_time.date()
    summary = effect.summary(ctas, datetime.now(UTC).date())
    try:
        con = lake.connect_embedded(home)
    except FileNotFoundError as exc:  # the lake's tables are in a bucket only Spark reads
        report = effect.report(own.iloc[0:0] if len(own) else pd.DataFrame())
        report["overall"]["reason"] = f"not computed: {exc}"
        return {"effect": report, "summary": summary}
    try:
        known = effect.outcomes(con, as_of, own)
    finally:
        con.close()
    return {"effect": effect.report(known), "summary": summary}


def investor_snapshot(ctx: Context, commit: str = "unknown") -> dict:
    """``metrics_snapshot.json``, the launch report (Markdown, HTML, PDF) and the investor PDF."""
    from cfxlib.contract import alert_rules
    from cfxlib.publish import history, pages, render, snapshot, variables

    fin = ctx.read_json("finance.json")
    cust = ctx.read_json("customer_success.json")
    quality = ctx.read_json("data_quality.json")
    ops_total = pd.read_parquet(ctx.artifacts / "ops_monthly.parquet")
    leads = pd.read_parquet(ctx.artifacts / "lead_conversion.parquet")
    snap = snapshot.build(
        ctx.run_id,
        quality["data_hash"],
        commit,
        fin,
        cust,
        ops_total,
        leads,
        ctx.settings.thresholds,
        alert_rules.load(ctx.settings.home, ctx.settings.thresholds),
        source=quality.get("source", provenance.DATA),
    )
    data = json.loads(snap.model_dump_json())
    ctx.write_json("metrics_snapshot.json", data)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    last_week = history.previous_week(
        history.snapshots_dir(ctx.settings.home), history.iso_week(datetime.now(UTC).date())
    )
    (ctx.artifacts / "overview.md").write_text(pages.overview(data, fin, cust, generated, last_week), encoding="utf-8")
    for name, text in pages.report_fragments(data, fin, cust, last_week).items():
        (ctx.artifacts / name).write_text(text + "\n", encoding="utf-8")
    values = variables.build(data, fin, cust, ops_total, generated)
    variables.write(values, ctx.artifacts / "variables.yml")
    reports = ctx.run_dir / "reports"
    reports.mkdir(exist_ok=True)
    demo = data["source"] == provenance.DEMO
    footer = f"{provenance.DEMO_LABEL.upper() + ' · ' if demo else ''}ChatterFix · cfx run {ctx.run_id} · data {quality['data_hash'][:12]}"
    banner = provenance.DEMO_NOTE if demo else ""
    # The reports are the site's .qmd pages, rendered from a folder laid out like the site's
    # (the page beside _artifacts/), so includes and figures resolve the same way.
    pdf_base = ctx.run_dir / "pdf-build"
    shutil.rmtree(pdf_base, ignore_errors=True)
    shutil.copytree(ctx.artifacts, pdf_base / "_artifacts", ignore=shutil.ignore_patterns("*.parquet", "*.csv"))
    shutil.copytree(ctx.artifacts / "figures", reports / "figures", dirs_exist_ok=True)
    for page, stem in REPORTS:
        shutil.copy2(REPORT_PAGES / page, pdf_base / page)
        heading, body = render.report_markdown(pdf_base / page, values)
        text = f"# ChatterFix {heading[0].lower() + heading[1:]} — {data['as_of']}\n\n{body.strip()}\n"
        (reports / f"{stem}.md").write_text(text.replace("_artifacts/figures/", "figures/"), encoding="utf-8")
        render.render_html_report(
            text.replace("_artifacts/figures/", "figures/"), reports / f"{stem}.html", heading, footer, banner
        )
        render.render_pdf(text, pdf_base, reports / f"{stem}.pdf", f"ChatterFix {heading.lower()}", footer, banner)
    return data


REPORT_PAGES = REPO / "reports"
"""The site's pages in the repository (prose of the reports; see docs/reports.md)."""
REPORTS = (("launch-report.qmd", "enterprise_launch_report"), ("investor-summary.qmd", "investor_metrics"))
"""Reports rendered as Markdown, HTML and PDF: (page, file stem)."""
