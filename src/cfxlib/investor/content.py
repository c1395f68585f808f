"""What the notices say: alert emails and the weekly investor update (plain text and HTML).

HTML goes through Jinja2 with autoescaping, so names and messages from the data can never add
markup. Figures are formatted with the site's helpers (:mod:`cfxlib.publish.pages`), so the
update, the site and the PDFs say the same thing.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from importlib import resources

import jinja2

from cfxlib.contract import alert_rules
from cfxlib.notify.outbox import Attachment, EmailContent
from cfxlib.publish.formats import pct, usd
from cfxlib.publish.pages import forecast_sentence, month_over_month, week_change

_ENV = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: (resources.files("cfxlib") / "investor" / "templates" / name).read_text(encoding="utf-8")
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
)


def _value(rule: alert_rules.Rule, value: float | None) -> str:
    if value is None:
        return "n/a"
    unit = rule.unit
    return f"{value:,.2f}{unit}"


def alert_email(rule: alert_rules.Rule, kind: str, status, snapshot: dict) -> EmailContent:
    """The email for a firing, reminder or resolved notice (the subject names the rule)."""
    value, threshold = _value(rule, status.value), _value(rule, status.threshold)
    word = "under" if rule.condition == "below" else "over"
    if kind == "resolved":
        subject = f"[ChatterFix] resolved: {rule.title} is back at {value} ({snapshot['as_of']})"
        heading = f"Resolved: {rule.title}"
        message = (
            f"{rule.title} was {value} in {snapshot['as_of']}, no longer {word} the {threshold} threshold. "
            f"The alert that fired in {status.since} is resolved."
        )
    else:
        again = " (reminder: still firing)" if kind == "reminder" else ""
        subject = f"[ChatterFix] {rule.severity.upper()}: {rule.title} {value}, {word} {threshold} ({snapshot['as_of']}){again}"
        heading = f"{rule.title} {word} its threshold{again}"
        message = status.message or f"{rule.title} was {value} in {snapshot['as_of']}, {word} the {threshold} threshold"
        message += "."
    html = _ENV.get_template("alert.html.j2").render(
        subject=subject,
        heading=heading,
        message=message,
        title=rule.title,
        rule_id=rule.id,
        severity=rule.severity,
        value=value,
        threshold=threshold,
        condition=rule.condition,
        as_of=snapshot["as_of"],
        since=status.since or "n/a",
        description=rule.description,
        run_id=snapshot.get("run_id", "n/a"),
    )
    text = "\n".join(
        [
            heading,
            "",
            message,
            "",
            f"Rule:       {rule.title} ({rule.id}, {rule.severity})",
            f"Value:      {value}",
            f"Threshold:  {rule.condition} {threshold}",
            f"Month:      {snapshot['as_of']}",
            f"Since:      {status.since or 'n/a'}",
            "",
            rule.description,
            f"Run {snapshot.get('run_id', 'n/a')} - sent by cfx",
        ]
    )
    return EmailContent(subject=subject, text=text + "\n", html=html)


@dataclass(frozen=True)
class Row:
    label: str
    value: str
    wow: str
    mom: str


def _points(x: float | None, digits: int = 1) -> str:
    return "—" if x is None else f"{100 * x:+.{digits}f} pp"


def kpi_rows(snap: dict, last_week: dict | None, finance: dict | None) -> list[Row]:
    """KPIs with week-over-week (against ``last_week``) and month-over-month change."""
    fin = finance or {}
    months = fin.get("mrr") or []
    ret = (fin.get("retention") or {}).get("nrr_grr") or []
    month = snap["as_of"]

    def wow(field: str, how: str) -> str:
        return week_change(snap, last_week, field, how)

    def ret_mom(key: str) -> str:
        idx = next((i for i, r in enumerate(ret) if r["month"] == month), None)
        if not idx or ret[idx - 1].get(key) is None or ret[idx].get(key) is None:
            return "—"
        return _points(ret[idx][key] - ret[idx - 1][key])

    def opt(x, fmt) -> str:
        return "n/a" if x is None else fmt(x)

    share = None if snap.get("arr_at_risk") is None or not snap.get("arr") else snap["arr_at_risk"] / snap["arr"]
    return [
        Row("ARR", usd(snap["arr"]), wow("arr", "relative"), pct(snap.get("arr_growth_mom"), signed=True)),
        Row("MRR", usd(snap["mrr"]), wow("mrr", "relative"), pct(snap.get("arr_growth_mom"), signed=True)),
        Row(
            "Customers",
            f"{snap['customers']:,}",
            wow("customers", "relative"),
            pct(month_over_month(months, "customers", month), signed=True) if months else "—",
        ),
        Row("Net revenue retention (12 months)", pct(snap.get("nrr_12m")), wow("nrr_12m", "points"), ret_mom("nrr")),
        Row("Gross revenue retention (12 months)", pct(snap.get("grr_12m")), wow("grr_12m", "points"), ret_mom("grr")),
        Row("Logo churn (month)", pct(snap.get("logo_churn_rate"), 2), wow("logo_churn_rate", "points"), "—"),
        Row(
            "Uptime, worst service (month)",
            opt(snap.get("worst_service_uptime_pct"), lambda x: f"{x:.3f}%"),
            wow("worst_service_uptime_pct", "uptime"),
            "—",
        ),
        Row(
            "ARR at risk (3 months)",
            usd(snap.get("arr_at_risk")) + (f" ({pct(share)} of ARR)" if share is not None else ""),
            wow("arr_at_risk", "relative"),
            "—",
        ),
        Row("Runway", opt(snap.get("runway_months"), lambda x: f"{x:.1f} months"), "—", "—"),
    ]


def funding_line(finance: dict | None) -> str | None:
    doc = (finance or {}).get("fundraising") or {}
    rnd = doc.get("round") or {}
    if not rnd:
        return None
    committed = rnd.get("committed_usd")
    text = f"{rnd['name']}: {usd(committed) if committed is not None else 'commitments not provided'} committed of {usd(rnd['target_usd'])}"
    text += f"; lead: {rnd['lead']}." if rnd.get("lead") else "; lead: not provided."
    return text


@dataclass
class WeeklyUpdate:
    subject: str
    text: str
    html_email: str
    html_archive: str


def weekly_update(
    week: str,
    snap: dict,
    last_week: dict | None,
    finance: dict | None,
    firing: list[dict],
    chart_cid: str | None,
    chart_png: bytes | None,
    has_pdf: bool,
    archive: str,
) -> WeeklyUpdate:
    """The week's update: the email HTML (chart as ``cid:``) and a standalone copy (chart inline)."""
    rows = kpi_rows(snap, last_week, finance)
    title = f"ChatterFix investor update, week {week}"
    growth = pct(snap.get("arr_growth_mom"), signed=True)
    subject = f"ChatterFix investor update {week}: ARR {usd(snap['arr'])} ({growth} MoM)"
    forecast = forecast_sentence(snap).replace("**", "")
    note = (
        "The investor metrics PDF is attached." if has_pdf else "The investor metrics PDF was not found for this run."
    )
    context = dict(
        title=title,
        as_of=snap["as_of"],
        week=week,
        run_id=snap.get("run_id", "n/a"),
        data_hash=(snap.get("data_hash") or "")[:12],
        rows=rows,
        last_week=last_week["week"] if last_week else None,
        forecast=forecast,
        alerts=firing,
        funding=funding_line(finance),
        attachment_note=note,
        archive=archive,
    )
    template = _ENV.get_template("weekly_update.html.j2")
    html_email = template.render(chart_src=f"cid:{chart_cid}" if chart_cid and chart_png else None, **context)
    inline = "data:image/png;base64," + base64.b64encode(chart_png).decode("ascii") if chart_png else None
    html_archive = template.render(chart_src=inline, **context)
    width = max(len(r.label) for r in rows)
    lines = [
        title,
        f"Figures as of the end of {snap['as_of']} (run {context['run_id']}, data {context['data_hash']})",
        "",
    ]
    lines.append(f"{'KPI'.ljust(width)}  {'value':>22}  {'vs last week':>12}  {'vs prev month':>13}")
    lines += [f"{r.label.ljust(width)}  {r.value:>22}  {r.wow:>12}  {r.mom:>13}" for r in rows]
    lines += ["", "Forecast", forecast, "", "Alerts"]
    lines += [f"- {a['title']} ({a['severity']}, since {a['since']}): {a['message']}" for a in firing] or [
        "No alert is firing."
    ]
    if context["funding"]:
        lines += ["", "Fundraising", context["funding"]]
    lines += ["", f"{note} Sent by cfx for ChatterFix; ask us for the week's archived copy ({archive})."]
    return WeeklyUpdate(subject=subject, text="\n".join(lines) + "\n", html_email=html_email, html_archive=html_archive)


def email_content(update: WeeklyUpdate, attachments: list[Attachment]) -> EmailContent:
    return EmailContent(subject=update.subject, text=update.text, html=update.html_email, attachments=attachments)
