"""The funding-status section: the founders' fundraising file beside what the data gives.

Reads ``finance.json``'s ``fundraising`` (the validated file, :mod:`cfxlib.contract.fundraising`)
and ``efficiency`` (:mod:`cfxlib.metrics.efficiency`). A judgement field the file leaves out is
written as *not provided*; a measure the data cannot give says what it needs.
"""

from __future__ import annotations

from cfxlib.publish.escape import md
from cfxlib.publish.formats import pct, usd

MISSING = "*not provided*"


def _or_missing(value, fmt=md) -> str:
    return MISSING if value in (None, "") else fmt(value)


def _measure(entry: dict | None, fmt) -> str:
    if not entry:
        return "n/a"
    if entry.get("value") is None:
        return f"n/a — {md(entry.get('reason') or 'not available')}"
    return fmt(entry["value"])


def efficiency_table(eff: dict, gross_margin) -> str:
    q = eff.get("quarter") or ["?", "?"]
    runway = eff.get("runway_months") or {}
    rows = [
        (
            "Net burn per month",
            _measure(eff.get("net_burn_per_month"), usd),
            "operating expenses - revenue, mean of the quarter",
        ),
        (
            "Runway",
            _measure(runway, lambda v: f"{v:,.1f} months"),
            f"cash / net burn, from {runway.get('from') or 'the cash date'}",
        ),
        (
            "Burn multiple",
            _measure(eff.get("burn_multiple"), lambda v: f"{v:,.2f}x"),
            "net burn / net new ARR, quarter",
        ),
        ("Net new ARR (quarter)", _measure(eff.get("net_new_arr_quarter"), usd), "ARR now - ARR three months before"),
        (
            "Magic number",
            _measure(eff.get("magic_number"), lambda v: f"{v:,.2f}"),
            "annualised revenue added / previous quarter's sales and marketing",
        ),
        ("ARR growth (12 months)", _measure(eff.get("arr_growth_12m"), pct), ""),
        ("Operating margin", _measure(eff.get("operating_margin"), pct), "(revenue - operating expenses) / revenue"),
        ("Rule of 40", _measure(eff.get("rule_of_40"), lambda v: f"{v:,.0f}"), "ARR growth % + operating margin %"),
        ("Gross margin", pct(gross_margin), "(MRR - cost of revenue) / MRR"),
    ]
    lines = [
        f"What the data gives, over the quarter {q[0]} to {q[1]}:",
        "",
        "| measure | value | definition |",
        "|:---|---:|:---|",
    ]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def section(finance: dict, figure: str | None = "_artifacts/figures/use_of_funds.png") -> str:
    """Markdown (level-3 headings) for the funding status; to be included under a level-2 heading."""
    doc = finance.get("fundraising")
    eff = finance.get("efficiency") or {}
    gross_margin = (finance.get("summary") or {}).get("gross_margin")
    if not doc:
        return "\n\n".join(
            [
                "No fundraising file: add `fundraising.yaml` to the data directory (see `docs/fundraising.md`) "
                "to report the round, use of funds, market and competitors.",
                efficiency_table(eff, gross_margin),
            ]
        )
    rnd = doc.get("round") or {}
    target, committed = rnd.get("target_usd"), rnd.get("committed_usd")
    share = f" ({pct(committed / target, 0)} of target)" if committed is not None and target else ""
    lines = [
        f"*From the founders' `fundraising.yaml`, updated {md(doc['updated'])}; figures below it from the data.*",
        "",
    ]
    if rnd:
        lines += [
            "| round | target | committed | lead | instrument | pre-money valuation |",
            "|:---|---:|---:|:---|:---|---:|",
            f"| {md(rnd['name'])} | {usd(target)} | {_or_missing(committed, usd)}{share} | {_or_missing(rnd.get('lead'))} | "
            f"{_or_missing(rnd.get('instrument'))} | {_or_missing(rnd.get('pre_money_valuation_usd'), usd)} |",
            "",
        ]
        if rnd.get("timeline"):
            lines += ["| milestone | date | status |", "|:---|:---|:---|"]
            lines += [f"| {md(m['milestone'])} | {m['date']} | {md(m['status'])} |" for m in rnd["timeline"]]
            lines.append("")
    else:
        lines += ["Round: *not provided*.", ""]
    if figure and rnd and doc.get("use_of_funds"):
        lines += [f"![Use of funds and commitments]({figure})", ""]
    if doc.get("use_of_funds"):
        lines += ["### Use of funds", "", "| use | share | amount | what it buys |", "|:---|---:|---:|:---|"]
        for u in doc["use_of_funds"]:
            amount = usd(u["share"] * target) if target else "n/a"
            lines.append(f"| {md(u['category'])} | {pct(u['share'], 0)} | {amount} | {md(u['purpose'])} |")
        lines.append("")
    else:
        lines += ["Use of funds: *not provided*.", ""]
    lines += ["### Burn, runway and efficiency", "", efficiency_table(eff, gross_margin), ""]
    market = doc.get("market") or {}
    lines += ["### Market", ""]
    if any(market.get(k) for k in ("tam", "sam", "som")):
        arr = (finance.get("summary") or {}).get("arr")
        lines += [
            "| market | annual spend | what is counted | ChatterFix ARR share | source |",
            "|:---|---:|:---|---:|:---|",
        ]
        for key, label in (("tam", "TAM"), ("sam", "SAM"), ("som", "SOM")):
            f = market.get(key)
            if not f:
                lines.append(f"| {label} | {MISSING} | | | |")
                continue
            src = f["source"]
            cite = md(src["title"]) + (f" ({src['year']})" if src.get("year") else "")
            if src.get("url"):
                cite = f"[{cite}](<{src['url']}>)"
            lines.append(
                f"| {label} | {usd(f['value_usd'])} | {md(f['definition'])} | {pct(arr / f['value_usd'], 1) if arr else 'n/a'} | {cite} |"
            )
        lines.append("")
    else:
        lines += ["Market size: *not provided*.", ""]
    lines += ["### Competitors", ""]
    if doc.get("competitors"):
        lines += ["| competitor | how it positions itself | how ChatterFix differs |", "|:---|:---|:---|"]
        lines += [f"| {md(c['name'])} | {md(c['positioning'])} | {md(c['difference'])} |" for c in doc["competitors"]]
    else:
        lines.append("Competitors: *not provided*.")
    return "\n".join(lines) + "\n"
