"""Markdown fragments for the site and reports, written from a run's artifacts.

Every number on the site, in the launch report and in the investor PDF comes from these
functions, which read only the run's JSON payloads (``finance.json``, ``customer_success.json``,
``metrics_snapshot.json``) and tables — never typed by hand. The Quarto pages in ``reports/``
include the fragments (``{{< include _artifacts/NAME.md >}}``).
"""

from __future__ import annotations

import pandas as pd

from cfxlib.publish import history
from cfxlib.publish.escape import md
from cfxlib.publish.formats import num, pct, usd


def month_over_month(series: list[dict], key: str, month: str) -> float | None:
    """Relative change of `key` from the month before `month` to `month` in a monthly series."""
    idx = next((i for i, r in enumerate(series) if r["month"] == month), None)
    if idx is None or idx == 0 or series[idx - 1].get(key) in (None, 0):
        return None
    return series[idx][key] / series[idx - 1][key] - 1


def week_change(snapshot: dict, last_week: dict | None, field: str, how: str) -> str:
    """The change of ``field`` since ``last_week`` as text (see :func:`history.change`); a dash when unknown."""
    value = history.change(snapshot, last_week, field, how)
    if value is None:
        return "—"
    if how == "relative":
        return pct(value, signed=True)
    if how == "points":
        return f"{100 * value:+.1f} pp"
    return f"{value:+.3f} pp"


def kpi_table(snapshot: dict, finance: dict, customer: dict | None, last_week: dict | None = None) -> str:
    """Headline KPIs with month-over-month change where it is defined, and the change since the
    last weekly investor snapshot (``last_week``; a dash when there is none)."""
    s, month = finance["summary"], snapshot["as_of"]
    mrr_rows = finance["mrr"]
    ue = {r["month"]: r for r in finance["unit_economics"]}
    prev_month = mrr_rows[-2]["month"] if len(mrr_rows) > 1 else None
    ltv_cac_prev = ue.get(prev_month, {}).get("ltv_to_cac") if prev_month else None
    rows = [
        ("ARR", usd(s["arr"]), pct(s["arr_growth_mom"], signed=True)),
        ("MRR", usd(s["mrr"]), pct(s["arr_growth_mom"], signed=True)),
        ("Customers", f"{s['customers']:,}", pct(month_over_month(mrr_rows, "customers", month), signed=True)),
        ("ARPA (per month)", usd(s["arpa"]), pct(month_over_month(mrr_rows, "arpa", month), signed=True)),
        ("Net revenue retention (12 months)", pct(s["nrr_12m"]), ""),
        ("Gross revenue retention (12 months)", pct(s["grr_12m"]), ""),
        ("Logo churn (month)", pct(s["logo_churn_rate"], 2), ""),
        ("Quick ratio", num(s["quick_ratio"]), ""),
        (
            "LTV : CAC",
            num(s["ltv_to_cac"]),
            ""
            if ltv_cac_prev in (None, 0) or s["ltv_to_cac"] is None
            else pct(s["ltv_to_cac"] / ltv_cac_prev - 1, signed=True),
        ),
        ("CAC payback", f"{num(s['cac_payback_months'])} months", ""),
        (
            "Uptime (month; mean of services)",
            "n/a" if snapshot.get("uptime_pct") is None else f"{snapshot['uptime_pct']:.3f}%",
            ""
            if snapshot.get("worst_service_uptime_pct") is None
            else f"worst service {snapshot['worst_service_uptime_pct']:.3f}%",
        ),
        ("AI calls (month)", "n/a" if snapshot.get("ai_calls") is None else f"{snapshot['ai_calls']:,}", ""),
        (
            "Lead conversion within 90 days",
            pct(snapshot.get("lead_conversion_90d")),
            f"leads of {snapshot.get('lead_conversion_month') or 'n/a'}",
        ),
    ]
    if customer:
        rows.append(
            (
                "ARR at risk (3-month churn probability x ARR)",
                usd(customer["kpis"]["arr_at_risk"]),
                pct(customer["kpis"]["arr_at_risk_share"]) + " of ARR",
            )
        )
    fields = {
        "ARR": ("arr", "relative"),
        "MRR": ("mrr", "relative"),
        "Customers": ("customers", "relative"),
        "Net revenue retention (12 months)": ("nrr_12m", "points"),
        "Gross revenue retention (12 months)": ("grr_12m", "points"),
        "Logo churn (month)": ("logo_churn_rate", "points"),
        "Uptime (month; mean of services)": ("uptime_pct", "uptime"),
        "ARR at risk (3-month churn probability x ARR)": ("arr_at_risk", "relative"),
    }
    week = f"vs week {last_week['week']}" if last_week else "vs last week"
    out = [f"| KPI ({month}) | value | change vs previous month | {week} |", "|:---|---:|---:|---:|"]
    for a, b, c in rows:
        wow = week_change(snapshot, last_week, *fields[a]) if a in fields else ""
        out.append(f"| {a} | {b} | {c} | {wow} |")
    if last_week is None:
        out += ["", "*No weekly investor snapshot before this week yet (`cfx investor weekly` keeps one a week).*"]
    return "\n".join(out)


def calibration_lines(bt: dict, by_series: dict) -> list[str]:
    """How the intervals are calibrated, with each series' coverage before and after (held out)."""
    cal = bt.get("calibration")
    if not cal:
        return []
    lines = [
        "**Calibrated intervals.** The models' own intervals were too narrow for some series and too wide for others. "
        "Each series' 80% and 95% intervals are the forecast plus or minus a share of it per month ahead. That share "
        "is the split-conformal quantile of past forecasts' errors (as a share of the forecast, per month ahead), so "
        "an interval widens with the horizon as past errors did; ARR is never below 0. The coverage shown is held "
        "out: each past month's intervals were built from the errors of the other past months only.",
        "",
        "| series | 80%: ± per month ahead | 95%: ± per month ahead | inside 80%: models' own | calibrated "
        "| inside 95%: models' own | calibrated |",
        "|:---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("Total", "Starter", "Professional", "Enterprise"):
        k = cal["factors"].get(name)
        s = by_series.get(name) or (
            {"reconciled": bt, "uncalibrated": bt.get("uncalibrated")} if name == "Total" else None
        )
        if not k or not s or not s.get("uncalibrated"):
            continue
        raw, held = s["uncalibrated"], s["reconciled"]
        lines.append(
            f"| {name} | {pct(k['80'], 1)} | {pct(k['95'], 1)} | {pct(raw['coverage_80'], 0)} | {pct(held['coverage_80'], 0)} | "
            f"{pct(raw['coverage_95'], 0)} | {pct(held['coverage_95'], 0)} |"
        )
    return [*lines, ""]


def forecast_sentence(snapshot: dict) -> str:
    fc = snapshot.get("arr_forecast_12m")
    if not fc:
        return "No ARR forecast (not enough history)."
    held = fc.get("backtest_coverage_80") is not None
    c80 = f", which held {pct(fc['backtest_coverage_80'], 0)} of past actuals" if held else ""
    c95 = f", which held {pct(fc['backtest_coverage_95'], 0)}" if fc.get("backtest_coverage_95") is not None else ""
    text = (
        f"ARR in {fc['month']} is forecast at **{usd(fc['arr'])}** (80% interval {usd(fc['lo_80'])} to {usd(fc['hi_80'])}{c80}; "
        f"95% interval {usd(fc['lo_95'])} to {usd(fc['hi_95'])}{c95})."
    )
    if fc.get("backtest_mape_pct") is not None:
        text += (
            f" Forecasts made the same way at past months missed actual ARR by {fc['backtest_mape_pct']:.1f}% on average "
            "(MAPE); the interval coverage is measured on past forecasts whose calibration did not see them."
        )
    return text


def alerts_block(snapshot: dict) -> str:
    if not snapshot.get("alerts"):
        return "No investor alert this month: every alert rule (ARR growth, uptime, retention, churn, runway, ARR at risk) is within its threshold."
    return "\n".join(f"- **Alert:** {md(a['message'])}." for a in snapshot["alerts"])


REPORT_LINKS = (
    ("Investor metrics (PDF)", "reports/investor_metrics.pdf"),
    ("Investor metrics (Markdown)", "reports/investor_metrics.md"),
    ("Enterprise launch report (PDF)", "reports/enterprise_launch_report.pdf"),
    ("Enterprise launch report (Markdown)", "reports/enterprise_launch_report.md"),
    ("Customer success report (Markdown)", "customer_success.md"),
    ("Metrics snapshot (JSON)", "metrics_snapshot.json"),
)
"""The published files the overview links to, relative to the publication folder (the site
lives in its ``site/`` folder, the overview page in ``site/reports/``)."""


def overview(
    snapshot: dict, finance: dict, customer: dict | None, generated_at: str | None = None, last_week: dict | None = None
) -> str:
    links = " · ".join(f"[{label}](../../{path})" for label, path in REPORT_LINKS)
    when = f" Generated {generated_at}." if generated_at else ""
    return "\n\n".join(
        [
            f"Figures as of the end of **{snapshot['as_of']}** — run `{snapshot['run_id']}`, data `{snapshot['data_hash'][:12]}`, code `{snapshot['code_commit'][:12]}`.{when}",
            f"Reports of this run: {links}.",
            alerts_block(snapshot),
            "## Key figures",
            kpi_table(snapshot, finance, customer, last_week),
            "## 12-month ARR forecast",
            forecast_sentence(snapshot),
            "![ARR history and forecast, total and by tier](_artifacts/figures/arr_forecast.png)",
            "## Revenue",
            "![MRR bridge over the last 12 months](_artifacts/figures/mrr_bridge.png)",
            "![Revenue retention and logo churn](_artifacts/figures/retention_trends.png)",
        ]
    )


def financial(finance: dict) -> str:
    tiers = finance["summary"]["by_tier"]
    lines = [
        "### Recurring revenue by tier",
        "",
        "| tier | customers | MRR | ARR | ARPA | logo churn (month) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for t in tiers:
        lines.append(
            f"| {md(t['tier'])} | {t['customers']:,} | {usd(t['mrr'])} | {usd(t['arr'])} | {usd(t['arpa'])} | {pct(t['logo_churn_rate'], 2)} |"
        )
    lines += ["", "![MRR by tier](_artifacts/figures/mrr_by_tier.png)", ""]
    lines += ["", "### MRR movements", "", "![MRR bridge over 12 months](_artifacts/figures/mrr_bridge.png)", ""]
    lines += ["![MRR movements by month](_artifacts/figures/mrr_movements.png)", ""]
    lines += [
        "| month | MRR at start | new | expansion | reactivation | contraction | churn | MRR at end |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for m in finance["movements"][-6:]:
        lines.append(
            f"| {m['month']} | {usd(m['mrr_start'])} | {usd(m['new'])} | {usd(m['expansion'])} | {usd(m['reactivation'])} | "
            f"{usd(m['contraction'])} | {usd(m['churn'])} | {usd(m['mrr_end'])} |"
        )
    lines += ["", "### ARR forecast", "", "![ARR forecast](_artifacts/figures/arr_forecast.png)", ""]
    lines += [forecast_gap_sentence(finance), ""]
    pts = [p for p in finance["forecast"]["points"] if p["unique_id"] == "Total"]
    lines += [
        "| month | forecast | 80% interval | 95% interval | bottom-up | gap |",
        "|:---|---:|---:|---:|---:|---:|",
    ]
    for p in pts[2::3]:
        lines.append(
            f"| {p['month']} | {usd(p['yhat'])} | {usd(p['yhat_lo_80'])} – {usd(p['yhat_hi_80'])} | {usd(p['yhat_lo_95'])} – {usd(p['yhat_hi_95'])} | "
            f"{usd(p['arr_bottom_up'])} | {pct(p['gap_pct'] / 100, signed=True) if p.get('gap_pct') is not None else 'n/a'} |"
        )
    ue = [r for r in finance["unit_economics"] if r.get("ltv") is not None]
    lines += ["", "### Unit economics", ""]
    if ue:
        u = ue[-1]
        lines += [
            "| measure | value | definition |",
            "|---|---:|---|",
            f"| CAC | {usd(u['cac'])} | S&M spend of the previous month / new customers, trailing 3 months |",
            f"| Gross margin | {pct(u['gross_margin'])} | (MRR - cost of revenue) / MRR |",
            f"| LTV | {usd(u['ltv'])} ({usd(u['ltv_lo'])} – {usd(u['ltv_hi'])}) | ARPA x gross margin / monthly logo churn, trailing 6 months; range from the churn rate's 95% interval |",
            f"| LTV : CAC | {num(u['ltv_to_cac'])} | |",
            f"| CAC payback | {num(u['cac_payback_months'])} months | CAC / (ARPA x gross margin) |",
        ]
    ret = finance["retention"]["nrr_grr"]
    if ret:
        lines += [
            "",
            "### Retention",
            "",
            f"Net revenue retention over 12 months: **{pct(ret[-1]['nrr'])}**; gross: **{pct(ret[-1]['grr'])}** (cohort of {ret[-1]['cohort_customers']:,} customers).",
            "",
            "![Revenue retention and logo churn](_artifacts/figures/retention_trends.png)",
            "",
            "![Cohort net MRR retention](_artifacts/figures/cohort_retention.png)",
        ]
    return "\n".join(lines)


def forecast_gap_sentence(finance: dict) -> str:
    """Why the bottom-up projection differs from the forecast, in one sentence with its figures."""
    pts = [p for p in finance["forecast"]["points"] if p["unique_id"] == "Total" and p.get("arr_bottom_up") is not None]
    if not pts:
        return ""
    last = pts[-1]
    return (
        f"Tier forecasts are reconciled so that they add up to the total every month ({md(finance['forecast'].get('reconciliation') or 'none')}). "
        f"The bottom-up projection ({usd(last['arr_bottom_up'])} in {last['month']}, {pct(last['gap_pct'] / 100, 1, signed=True)} against the forecast) "
        "is a cross-check, not a forecast: it assumes each tier keeps its trailing 12-month net revenue retention and adds new ARR "
        "at its average of the last 6 months, so it leaves out the growth of new business that the time-series forecast carries forward."
    )


def at_risk_table(customer: dict, top: int = 15) -> str:
    """The riskiest accounts by ARR at risk: who, how much, why, what to do, who and by when."""
    as_of_end = pd.Period(customer["as_of"], freq="M").end_time.normalize()
    lines = [
        "| account | ARR at risk | why | action | owner, due |",
        "|:-----------------|-------------:|:---------------------------|:-----------------------------------|:-----------|",
    ]
    for r in customer["at_risk"][:top]:
        who = f"**{md(r.get('account_name') or r['account_id'])}** ({md(r['account_id'])}), {md(r['tier'])}"
        risk = (
            f"{usd(r['arr_at_risk'])} of {usd(r['arr'])} — p(churn) {pct(r['p_churn_3m'], 0)}, "
            f"health {num(r['health_score'], 0)} ({r['band']})"
        )
        why = " · ".join(md(x) for x in r["reasons"]) or "-"
        due = (
            (as_of_end + pd.Timedelta(days=int(r["due_days"]))).date().isoformat()
            if r.get("due_days") is not None
            else "-"
        )
        play = r.get("playbook")
        steps = [md(r.get("detail") or r.get("action") or ""), md(r.get("next_step") or "")]
        action = " ".join([f"**{md(play[:1].upper() + play[1:])}**:", *[x for x in steps if x]]) if play else "-"
        lines.append(f"| {who} | {risk} | {why} | {action} | {md(r.get('owner') or '-')}, by {due} |")
    return "\n".join(lines)


def customer_health(customer: dict) -> str:
    k = customer["kpis"]
    lines = [
        "| KPI | value |",
        "|:---|---:|",
        f"| Daily active users (mean over the month) | {k['active_users']['dau']:,.0f} |",
        f"| Monthly active users (lower bound) | {k['active_users']['mau_lower_bound']:,.0f} |",
        f"| NPS (last 3 months) | {num(k['nps']['last_3_months'], 0)} |",
        f"| Customer ROI (value of downtime avoided / subscription cost) | {num((k['customer_roi']['month'] or {}).get('roi'))}x |",
        f"| Mean health score | {num(k['health']['mean_score'])} |",
        f"| Accounts at risk | {k['accounts_at_risk']:,} |",
        f"| ARR at risk | {usd(k['arr_at_risk'])} |",
        "",
        "![Health score distribution](_artifacts/figures/health_distribution.png)",
        "",
        "![Health bands by tier](_artifacts/figures/health_by_tier.png)",
        "",
        "### NPS by tier (this month)",
        "",
        "| tier | NPS | answers |",
        "|:---|---:|---:|",
    ]
    for r in k["nps"]["by_tier"]:
        note = " (too few answers to read)" if r["answers"] < 5 else ""
        lines.append(f"| {md(r['tier'])} | {num(r['nps'], 0)}{note} | {r['answers']:,} |")
    lines += ["", "### At-risk accounts (top 15 by ARR at risk)", "", at_risk_table(customer)]
    if customer.get("interventions", {}).get("effect") or customer.get("interventions", {}).get("summary"):
        lines += ["", "### Calls to action", "", interventions(customer["interventions"])]
    lines += ["", "![Customer retention by tier](_artifacts/figures/retention_km.png)"]
    return "\n".join(lines)


def interventions(section: dict) -> str:
    """Calls to action: the work on them (opened, closed, overdue, time to first action, by
    playbook) and whether they work (3-month churn of treated against held-out accounts)."""
    effect, work = section.get("effect") or {}, section.get("summary") or {}
    lines = []
    if work:
        o = work["overall"]
        lines += [
            f"Calls to action on {work['as_of_day']}: {o['opened']:,} opened by the rules ({work['held_out']:,} more "
            f"held out), {o['active']:,} active, {o['overdue']:,} overdue, {o['closed_recovered']:,} closed as "
            f"recovered and {o['closed_churned']:,} as churned; median time to first action "
            + (
                "n/a (none acted on yet)."
                if o["median_hours_to_first_action"] is None
                else f"{o['median_hours_to_first_action']:,.1f} hours."
            )
            + " Open the queue with `cfx interventions list` or the customer success dashboard.",
            "",
            "| playbook | opened | active | overdue | recovered | churned | median hours to first action |",
            "|:---|---:|---:|---:|---:|---:|---:|",
        ]
        for b in work["by_playbook"]:
            hours = "n/a" if b["median_hours_to_first_action"] is None else f"{b['median_hours_to_first_action']:,.1f}"
            lines.append(
                f"| {md(b['playbook'])} | {b['opened']:,} | {b['active']:,} | {b['overdue']:,} | "
                f"{b['closed_recovered']:,} | {b['closed_churned']:,} | {hours} |"
            )
        lines.append("")
    if effect:
        lines += [
            f"**Did they work?** Churn within {md(effect['window'])}, accounts whose playbook was followed against "
            f"accounts held out at random; difference = treated minus held out (negative: fewer churned), with its "
            f"{effect['level']:.0%} interval ({md(effect['method'])}).",
            "",
            "| playbook | treated | held out | churn treated | churn held out | difference | 90% interval |",
            "|:---|---:|---:|---:|---:|---:|:---|",
        ]
        for fig in [*effect["playbooks"], effect["overall"]]:
            name = "**overall**" if fig["playbook"] == "overall" else md(fig["playbook"])
            if fig.get("measurable"):
                low, high = fig["interval"]
                lines.append(
                    f"| {name} | {fig['treated']:,} | {fig['holdout']:,} | {pct(fig['churn_treated'])} | "
                    f"{pct(fig['churn_holdout'])} | {100 * fig['difference']:+.1f} pts | "
                    f"{100 * low:+.1f} to {100 * high:+.1f} pts |"
                )
            else:
                lines.append(
                    f"| {name} | {fig['treated']:,} | {fig['holdout']:,} | n/a | n/a | not measurable | {md(fig['reason'])} |"
                )
    return "\n".join(lines) if lines else "No calls to action yet."


def system_performance(ops_total: pd.DataFrame, ops: pd.DataFrame) -> str:
    last = ops_total.tail(6)
    lines = [
        "| month | uptime | worst service | p95 latency | requests | error rate | AI calls |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in last.to_dict("records"):
        lines.append(
            f"| {r['month']} | {r['uptime_pct']:.3f}% | {r['worst_service_uptime_pct']:.3f}% | {r['p95_latency_ms']:,.0f} ms | "
            f"{r['requests']:,.0f} | {100 * r['error_rate']:.3f}% | {r['ai_calls']:,.0f} |"
        )
    month = ops_total["month"].iloc[-1]
    lines += [
        "",
        f"### Services in {month}",
        "",
        "| service | uptime | p95 latency | requests | error rate | AI calls |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in ops[ops["month"] == month].to_dict("records"):
        lines.append(
            f"| {md(r['service'])} | {r['uptime_pct']:.3f}% | {r['p95_latency_ms']:,.0f} ms | {r['requests']:,.0f} | {100 * r['error_rate']:.3f}% | {r['ai_calls']:,.0f} |"
        )
    lines += ["", "![Uptime and AI usage](_artifacts/figures/system_performance.png)"]
    return "\n".join(lines)


def _train_rows(card: dict) -> str:
    """'N account-months', or 'a sample of N of the M account-months' for a large book."""
    rows, available = card["train_rows"], card.get("train_rows_available", card["train_rows"])
    if available > rows:
        return f"a uniform sample (fixed keys) of {rows:,} of the {available:,} account-months"
    return f"{rows:,} account-months"


def _sample_note(card: dict) -> list[str]:
    """For a sampled training set: what the sample cost in accuracy when it was last measured."""
    check = card.get("sample_check")
    if not check:
        return []
    return [
        "",
        f"Training on a sample costs little accuracy: on a {check['accounts']:,}-account demo company "
        f"({check['date']}), the same out-of-time test gave ROC AUC {check['roc_auc_all']:.4f} trained on all "
        f"{check['rows_all']:,} rows and {check['roc_auc_sample']:.4f} on a sample of {check['rows_sample']:,} "
        f"(PR AUC {check['pr_auc_all']:.4f} and {check['pr_auc_sample']:.4f}).",
    ]


def calibration_note(calibration: list[dict]) -> str:
    """What the calibration curve says about the riskiest decile, where decisions are made: how
    far the predicted churn rate is from the observed one and, with the decile's size, whether
    that gap is more than chance (a two-sided binomial 95% band around the prediction)."""
    import math

    top = max(calibration, key=lambda r: r["predicted"])
    predicted, observed, n = top["predicted"], top["observed"], int(top.get("accounts") or 0)
    band = 1.96 * math.sqrt(max(predicted * (1 - predicted), 1e-9) / n) if n else float("nan")
    gap = observed - predicted
    head = (
        f"In the riskiest tenth of the test rows ({n:,} account-months) the model predicted a churn rate of "
        f"{pct(predicted)} and {pct(observed)} churned"
    )
    if n and abs(gap) <= band:
        return head + f": within the {pct(band)} that chance alone allows at this size, so no correction is made."
    if gap > 0:
        return (
            head
            + f": it **under-predicts** by {100 * gap:.1f} points, more than chance allows (±{pct(band)}). Read the "
            "riskiest accounts' probabilities as lower bounds: their order by risk (ROC AUC, lift) is unaffected, "
            "but the expected ARR at risk for these accounts is understated by about "
            f"{gap / predicted:.0%}."
        )
    return (
        head + f": it **over-predicts** by {100 * -gap:.1f} points, more than chance allows (±{pct(band)}). The "
        "order by risk is unaffected, but the expected ARR at risk for these accounts is overstated by about "
        f"{-gap / predicted:.0%}."
    )


def model_card(customer: dict) -> str:
    card = customer["model_card"]
    if "roc_auc" not in card:
        return card.get("unavailable", "The model card is not available for this run.")
    lines = [
        f"{md(card['model'])}. Trained on month-end snapshots {card['train_cutoffs'][0]} to {card['train_cutoffs'][1]} "
        f"({_train_rows(card)}) and tested **out of time** on {card['test_cutoffs'][0]} to {card['test_cutoffs'][1]} "
        f"({card['test_rows']:,} account-months; 3-month churn rate {pct(card['churn_rate'])}). Features use only data up to each snapshot's day.",
        "",
        "| measure | value | for reference |",
        "|---|---:|---|",
        f"| ROC AUC | {card['roc_auc']:.3f} | 0.5 = random |",
        f"| PR AUC | {card['pr_auc']:.3f} | base rate {card['churn_rate']:.3f} |",
        f"| Brier score | {card['brier']:.4f} | predicting the base rate: {card['brier_base_rate']:.4f} |",
        f"| Lift in the top decile | {card['lift_top_decile']:.1f}x | churn rate of the riskiest 10% / overall |",
        f"| Accuracy at 0.5 | {pct(card['accuracy'])} | always predicting 'no churn': {pct(card['accuracy_always_no_churn'])} |",
    ]
    if "oracle_ratio" in card:
        lines.append(
            f"| AUC / AUC of the demo generator's true probabilities | {card['oracle_ratio']:.3f} | oracle AUC {card['oracle_roc_auc']:.3f} |"
        )
    lines += [
        "",
        "Accuracy is shown only beside its trivial baseline: with few churners, a model that never predicts churn is 'accurate' too.",
        *_sample_note(card),
        "",
        "![Calibration](_artifacts/figures/churn_calibration.png)",
    ]
    if card.get("calibration"):
        lines += ["", calibration_note(card["calibration"])]
    hv = card.get("health_validation", {})
    if "roc_auc" in hv:
        lines += [
            "",
            "### Does the health score predict churn?",
            "",
            f"ROC AUC of the health score (lower = riskier) on the same rows: **{hv['roc_auc']:.3f}**.",
            "",
            "| band | churn rate within 3 months | accounts |",
            "|---|---:|---:|",
        ]
        for band in ("red", "yellow", "green"):
            if band in hv["churn_rate_by_band"]:
                b = hv["churn_rate_by_band"][band]
                lines.append(f"| {band} | {pct(b['churn_rate'])} | {b['accounts']:,} |")
        lines += [
            "",
            "| component | configured weight | suggested by logistic fit | AUC alone |",
            "|---|---:|---:|---:|",
        ]
        for c, w in hv["weights"].items():
            lines.append(
                f"| {c} | {w['configured']:.0f} | {w['suggested']:.1f} | {hv['component_roc_auc'].get(c, float('nan')):.3f} |"
            )
    return "\n".join(lines)


def forecast_backtest(finance: dict) -> str:
    """Past forecasts against actuals: overall, by horizon (coverage only where enough forecasts),
    per origin, and reconciled against base per series."""
    fc = finance["forecast"]
    bt = fc["backtest"]
    if not bt:
        return "Not enough history for a backtest."
    by_h = pd.DataFrame(fc.get("backtest_by_horizon") or [])
    floor = bt.get("min_forecasts_for_coverage", 3)
    lines = [
        f"The forecast procedure (model choice, intervals and reconciliation) was re-run at {bt['origins']} past months, "
        f"using only the history up to each month, and compared with what happened ({bt['points']} forecasts of total ARR).",
        "",
        "![Past forecasts against actuals](_artifacts/figures/backtest.png)",
        "",
        f"Total ARR: MAPE **{bt['mape']:.1f}%**; actual values inside the 80% interval **{pct(bt['coverage_80'], 0)}** of the time, "
        f"inside the 95% interval **{pct(bt['coverage_95'], 0)}**.",
        "",
        *calibration_lines(bt, fc.get("backtest_by_series") or {}),
        "### By months ahead",
        "",
        f"Coverage is shown only where at least {floor} past forecasts reach that far; below that, one hit or miss moves it by a third or more.",
        "",
        "| months ahead | MAPE | inside 80% | inside 95% | forecasts |",
        "|---:|---:|---:|---:|---:|",
    ]
    for r in by_h.to_dict("records"):
        stated = r.get("coverage_stated", r["forecasts"] >= floor)
        c80 = pct(r["coverage_80"], 0) if stated else "too few"
        c95 = pct(r["coverage_95"], 0) if stated else "too few"
        lines.append(f"| {r['horizon']} | {r['mape']:.1f}% | {c80} | {c95} | {r['forecasts']} |")
    points = pd.DataFrame(fc.get("backtest_points") or [])
    if not points.empty:
        total = points[points["unique_id"] == "Total"]
        lines += [
            "",
            "### Each past forecast",
            "",
            "| made at | months scored | actual at the last month | forecast | error | inside 80% |",
            "|:---|---:|---:|---:|---:|:---|",
        ]
        for origin, g in total.groupby("origin"):
            end = g.sort_values("horizon").iloc[-1]
            inside = end["yhat_lo_80"] <= end["actual"] <= end["yhat_hi_80"]
            lines.append(
                f"| {origin} | {len(g)} | {usd(end['actual'])} ({end['month']}) | {usd(end['yhat'])} | "
                f"{pct(end['yhat'] / end['actual'] - 1, 1, signed=True)} | {'yes' if inside else 'no'} |"
            )
    by_series = fc.get("backtest_by_series") or {}
    if by_series:
        lines += [
            "",
            "### Reconciled against base forecasts",
            "",
            f"Reconciliation: {md(fc.get('reconciliation') or 'none')} — the tiers then add up to the total at every month.",
            "",
            "| series | MAPE base | MAPE reconciled | inside 80% base | inside 80% reconciled | inside 95% base | inside 95% reconciled |",
            "|:---|---:|---:|---:|---:|---:|---:|",
        ]
        for name in ("Total", "Starter", "Professional", "Enterprise"):
            if name in by_series:
                b, r = by_series[name]["base"], by_series[name]["reconciled"]
                lines.append(
                    f"| {name} | {b['mape']:.1f}% | {r['mape']:.1f}% | {pct(b['coverage_80'], 0)} | {pct(r['coverage_80'], 0)} | "
                    f"{pct(b['coverage_95'], 0)} | {pct(r['coverage_95'], 0)} |"
                )
    models = ", ".join(f"{md(k)}: {md(v)}" for k, v in fc["models"].items())
    lines += ["", f"Models chosen this run by backtest (per series): {models}."]
    return "\n".join(lines)


def unit_economics_table(finance: dict) -> str:
    ue = [r for r in finance["unit_economics"] if r.get("ltv") is not None]
    if not ue:
        return "Not enough history for unit economics."
    u = ue[-1]
    return "\n".join(
        [
            "| CAC | gross margin | LTV | LTV : CAC | CAC payback |",
            "|---:|---:|---:|---:|---:|",
            f"| {usd(u['cac'])} | {pct(u['gross_margin'])} | {usd(u['ltv'])} | {num(u['ltv_to_cac'])} | {num(u['cac_payback_months'])} months |",
        ]
    )


def report_fragments(
    snapshot: dict, finance: dict, customer: dict | None, last_week: dict | None = None
) -> dict[str, str]:
    """Generated tables the launch report and investor summary include (``_artifacts/NAME.md``)."""
    from cfxlib.publish import funding

    return {
        "alerts.md": alerts_block(snapshot),
        "kpi_table.md": kpi_table(snapshot, finance, customer, last_week),
        "funding_status.md": funding.section(finance),
        "unit_economics.md": unit_economics_table(finance),
        "at_risk_top.md": at_risk_table(customer, top=10) if customer else "No customer results in this run.",
    }
