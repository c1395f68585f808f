"""The reporting portal: tabs Financial, Customer Health and System Performance, drawn from the
service's endpoints with the viewer's token, following one month range and one tier filter.

- Financial: the summary, ARR history with its forecast and 80%/95% intervals, MRR by tier, the
  MRR bridge over the selected months, then the exact figures as tables.
- Customer Health: the health gauge with the band limits, accounts per tier and band, NPS and
  active users by month, the top at-risk accounts.
- System Performance: uptime per service against the 99.5% target, p95 latency per service,
  AI calls per month, then the monthly table. The operations data is not kept per tier, so the
  tier filter does not apply to this tab (it says so).

A section the role may not read says so instead of its charts. Charts are built once and updated
in place when a filter changes (:mod:`cfxlib.dashboards.charts`).
"""

from __future__ import annotations

import ipywidgets as w

from cfxlib.dashboards import charts
from cfxlib.dashboards.client import AccessDenied, ServiceClient
from cfxlib.dashboards.widgets import (
    ALL,
    BANDS,
    STYLE,
    TIERS,
    Unavailable,
    demo_banner,
    esc,
    render_at_risk,
    render_gauge,
    service_error,
    table,
)
from cfxlib.publish import theme
from cfxlib.publish.formats import pct, usd

UPTIME_TARGET_PCT = 99.5
"""The uptime every service is held to, % of the month (the dashed line on the uptime chart)."""


def in_range(rows: list[dict], start: str | None, end: str | None) -> list[dict]:
    """Rows whose ``month`` lies in [start, end] (either end open when None)."""
    return [r for r in rows if (start is None or r["month"] >= start) and (end is None or r["month"] <= end)]


class ReportingPortal:
    """Tabs Financial, Customer Health and System Performance with month-range and tier filters."""

    @classmethod
    def open(cls, client: ServiceClient, first_tab: int = 0):
        """The portal on ``first_tab``, or :class:`Unavailable` when the service cannot be reached."""
        try:
            portal = cls(client)
        except Exception as exc:
            why = service_error(exc)
            if why is None:
                raise
            return Unavailable(client, why)
        portal.tabs.selected_index = first_tab
        return portal

    def __init__(self, client: ServiceClient):
        self.client = client
        self.summary = self._get("/api/finance/summary")
        months = [r["month"] for r in (self._get("/api/finance/mrr") or {}).get("rows", [])]
        self.start = w.Dropdown(
            options=months or ["-"],
            value=(months[-12] if len(months) >= 12 else (months or ["-"])[0]),
            description="From",
        )
        self.end = w.Dropdown(options=months or ["-"], value=(months or ["-"])[-1], description="To")
        self.tier = w.Dropdown(options=[ALL, *TIERS], value=ALL, description="Tier")
        self.financial = self._financial_tab()
        self.customer = self._customer_tab()
        self.system = self._system_tab()
        for control in (self.start, self.end, self.tier):
            control.observe(lambda _change: self.refresh(), names="value")
        self.refresh()
        self.tabs = w.Tab(children=[self.financial, self.customer, self.system])
        self.tabs.titles = ("Financial", "Customer Health", "System Performance")
        as_of = (self.summary or {}).get("as_of", "n/a")
        self.view = w.VBox(
            [
                w.HTML(
                    STYLE
                    + demo_banner((self.summary or {}).get("source", "data"))
                    + f"<h2>Reporting portal · as of {esc(as_of)}</h2>"
                ),
                w.HBox([self.start, self.end, self.tier]),
                self.tabs,
            ]
        )

    # -- data
    def _get(self, path: str, **params) -> dict | None:
        try:
            return self.client.get(path, **params)
        except AccessDenied:
            return None

    def _range(self) -> dict:
        return {
            "from": self.start.value if self.start.value != "-" else None,
            "to": self.end.value if self.end.value != "-" else None,
        }

    def _series(self) -> str:
        """The series the filters select: ``Total`` or a tier."""
        return "Total" if self.tier.value == ALL else self.tier.value

    # -- layout (built once; refresh() fills them)
    def _financial_tab(self) -> w.Widget:
        self.fin_summary = w.HTML()
        self.forecast_chart = charts.ForecastChart("ARR and its forecast")
        self.forecast_note = w.HTML()
        self.mrr_chart = charts.TimeLines(
            "MRR by tier",
            list(TIERS),
            "MRR (USD)",
            "cfx-mrr-chart",
            y_format=charts.MONEY,
            date_format=charts.MONTH,
            colours=[theme.PALETTE[t] for t in TIERS],
            y_min=0,
        )
        self.bridge_chart = charts.BridgeChart("MRR bridge")
        self.fin_tables = w.HTML()
        self.fin_charts = w.VBox(
            [self.forecast_chart.widget, self.forecast_note, self.mrr_chart.widget, self.bridge_chart.widget]
        )
        return w.VBox([self.fin_summary, self.fin_charts, self.fin_tables])

    def _customer_tab(self) -> w.Widget:
        bands = (self._get("/api/customers/health-trend") or {}).get("bands")
        self.cust_gauge = charts.Gauge(
            "Health · average score", *((bands["red"], bands["yellow"]) if bands else (None, None))
        )
        self.cust_gauge_text = w.HTML()
        self.cust_bands_chart = charts.BarChart(
            "Accounts by tier and health band",
            list(BANDS),
            "accounts",
            "cfx-tier-band-chart",
            colours=[theme.BAND_COLOURS[b] for b in BANDS],
            kind="stacked",
            x_label="tier",
        )
        series = ["Total", *TIERS]
        colours = [theme.PALETTE[s] for s in series]
        self.nps_chart = charts.TimeLines(
            "NPS by month",
            series,
            "NPS (-100 to 100)",
            "cfx-nps-chart",
            y_format=".0f",
            date_format=charts.MONTH,
            colours=colours,
            references={0.0: "NPS 0"},
        )
        self.users_chart = charts.TimeLines(
            "Daily active users by month (mean)",
            series,
            "users",
            "cfx-engagement-chart",
            y_format=charts.COUNT,
            date_format=charts.MONTH,
            colours=colours,
            y_min=0,
        )
        self.cust_tables = w.HTML()
        self.cust_closed = w.HTML()
        self.cust_charts = w.VBox(
            [
                w.HBox([self.cust_gauge.widget, self.cust_gauge_text]),
                self.cust_bands_chart.widget,
                self.nps_chart.widget,
                self.users_chart.widget,
                self.cust_tables,
            ]
        )
        self.cust_charts.add_class("cfx-health-gauge")
        return w.VBox([self.cust_closed, self.cust_charts])

    def _system_tab(self) -> w.Widget:
        ops = self._get("/api/ops") or {"monthly": [], "by_service": []}
        services = sorted({r["service"] for r in ops["by_service"]})
        self.uptime_chart = charts.TimeLines(
            "Uptime per service",
            services,
            "uptime (% of the month)",
            "cfx-uptime-chart",
            y_format=".2f",
            date_format=charts.MONTH,
            y_max=100.0,
            references={UPTIME_TARGET_PCT: f"{UPTIME_TARGET_PCT}% target"},
            legend_location="bottom-right",
        )
        self.latency_chart = charts.TimeLines(
            "p95 latency per service (monthly mean of daily p95)",
            services,
            "milliseconds",
            "cfx-latency-chart",
            y_format=",.0f",
            date_format=charts.MONTH,
            y_min=0,
        )
        self.ai_chart = charts.BarChart(
            "AI calls per month", ["AI calls"], "calls", "cfx-ai-chart", colours=[theme.ACCENT], x_label="month"
        )
        self.sys_text = w.HTML()
        self.sys_charts = w.VBox(
            [self.uptime_chart.widget, self.latency_chart.widget, self.ai_chart.widget, self.sys_text]
        )
        return w.VBox([self.sys_charts])

    # -- refresh
    def refresh(self) -> None:
        self.refresh_financial()
        self.refresh_customer()
        self.refresh_system()

    def refresh_financial(self) -> None:
        span, series = self._range(), self._series()
        by_tier = series != "Total"
        self.fin_summary.value = self.render_summary()
        mrr = self._get("/api/finance/mrr", by="tier", **span)
        total = self._get("/api/finance/mrr", **span)
        fc = self._get("/api/finance/forecast")
        moves = self._get("/api/finance/movements", by="tier" if by_tier else None, **span)
        if mrr is None or total is None or moves is None:
            self.fin_charts.layout.display = "none"
            self.fin_tables.value = '<div class="cfx-card">MRR and ARR are not available for your role.</div>'
            return
        self.fin_charts.layout.display = None
        history = [r for r in mrr["rows"] if r["tier"] == series] if by_tier else total["rows"]
        points = [p for p in (fc or {}).get("points", []) if p["unique_id"] == series]
        self.forecast_chart.update(
            history, points, title=f"ARR and its forecast · {series} · shaded: 80% and 95% intervals"
        )
        backtest = (fc or {}).get("backtest") or {}
        self.forecast_note.value = (
            f"<p class=\"cfx-muted\">Shaded: the forecast's 80% and 95% intervals. On the forecast's own backtest "
            f"the total's intervals held {pct(backtest.get('coverage_80'))} and {pct(backtest.get('coverage_95'))} "
            f"of past actuals ({backtest.get('points', 0)} forecasts from {backtest.get('origins', 0)} origins).</p>"
            if backtest.get("coverage_80") is not None
            else ""
        )
        tiers = [series] if by_tier else list(TIERS)
        self.mrr_chart.update(
            {
                t: (
                    charts.month_dates(r["month"] for r in mrr["rows"] if r["tier"] == t),
                    charts.floats(r["mrr"] for r in mrr["rows"] if r["tier"] == t),
                )
                for t in tiers
            }
        )
        rows = [r for r in moves["rows"] if not by_tier or r.get("tier") == series]
        first, last = (rows[0]["month"], rows[-1]["month"]) if rows else ("-", "-")
        self.bridge_chart.update(rows, title=f"MRR bridge · {series} · {first} to {last}")
        self.fin_tables.value = self.render_financial_tables(rows, points, series)

    def render_summary(self) -> str:
        s = self.summary
        if not s:
            return ""
        return (
            '<div class="cfx-card"><h3>Recurring revenue</h3>'
            + table(
                ["measure", "value"],
                [
                    ["ARR", usd(s.get("arr"))],
                    ["MRR", usd(s.get("mrr"))],
                    ["ARR growth (month)", pct(s.get("arr_growth_mom"))],
                    ["Customers", f"{s.get('customers', 0):,}"],
                    ["NRR (12 months)", pct(s.get("nrr_12m"))],
                    ["GRR (12 months)", pct(s.get("grr_12m"))],
                    ["LTV : CAC", "n/a" if s.get("ltv_to_cac") is None else f"{s['ltv_to_cac']:.1f}"],
                ],
                {1},
            )
            + "</div>"
        )

    def render_financial_tables(self, moves: list[dict], points: list[dict], series: str) -> str:
        """The exact figures behind the charts: MRR movements by month and the forecast."""
        cells = [
            [
                esc(r["month"]),
                usd(r["mrr_start"]),
                usd(r["new"]),
                usd(r["expansion"]),
                usd(r["reactivation"]),
                usd(r["contraction"]),
                usd(r["churn"]),
                usd(r["mrr_end"]),
            ]
            for r in moves
        ]
        parts = [
            f'<div class="cfx-card"><h3>MRR movements ({esc(series)})</h3>'
            + table(
                ["month", "start", "new", "expansion", "reactivation", "contraction", "churn", "end"],
                cells,
                set(range(1, 8)),
            )
            + "</div>"
        ]
        if points:
            forecast = [
                [
                    esc(p["month"]),
                    usd(p["yhat"]),
                    f"{usd(p['yhat_lo_80'])} – {usd(p['yhat_hi_80'])}",
                    f"{usd(p['yhat_lo_95'])} – {usd(p['yhat_hi_95'])}",
                ]
                for p in points
            ]
            parts.append(
                f'<div class="cfx-card"><h3>ARR forecast ({esc(series)})</h3>'
                + table(["month", "forecast", "80% interval", "95% interval"], forecast, {1, 2, 3})
                + "</div>"
            )
        ue = self._get("/api/finance/unit-economics")
        known = [r for r in (ue or {}).get("rows", []) if r.get("ltv") is not None]
        if known:
            u = known[-1]
            parts.append(
                '<div class="cfx-card"><h3>Unit economics</h3>'
                + table(
                    ["CAC", "LTV", "LTV : CAC", "CAC payback"],
                    [[usd(u["cac"]), usd(u["ltv"]), f"{u['ltv_to_cac']:.1f}", f"{u['cac_payback_months']:.1f} months"]],
                    {0, 1, 2, 3},
                )
                + "</div>"
            )
        return "".join(parts)

    def refresh_customer(self) -> None:
        try:
            rows = self.client.all_health()
        except AccessDenied:
            self.cust_charts.layout.display = "none"
            self.cust_closed.value = '<div class="cfx-card">Customer health is not available for your role.</div>'
            return
        self.cust_charts.layout.display = None
        series = self._series()
        if series != "Total":
            rows = [r for r in rows if r.get("tier") == series]
        scores = [r["health_score"] for r in rows if r.get("health_score") is not None]
        self.cust_gauge.update(sum(scores) / len(scores) if scores else None)
        self.cust_gauge.widget.title = f"Health · average score · {series}"
        self.cust_gauge_text.value = render_gauge(rows, "Accounts per band")
        tiers = [series] if series != "Total" else list(TIERS)
        self.cust_bands_chart.update(
            tiers,
            {b: [sum(1 for r in rows if r.get("tier") == t and r.get("band") == b) for t in tiers] for b in BANDS},
        )
        engagement = (self._get("/api/customers/engagement", **self._range()) or {}).get("rows", [])
        shown = ["Total", series] if series != "Total" else ["Total", *TIERS]
        nps, users = {}, {}
        for name in shown:
            mine = [r for r in engagement if r["series"] == name]
            dates = charts.month_dates(r["month"] for r in mine)
            nps[name] = (dates, charts.floats(r["nps"] for r in mine))
            users[name] = (dates, charts.floats(r["dau"] for r in mine))
        self.nps_chart.update(nps)
        self.users_chart.update(users)
        per_tier = []
        for tier in TIERS:
            t = [r for r in rows if r.get("tier") == tier]
            if t:
                per_tier.append(
                    [
                        esc(tier),
                        f"{len(t):,}",
                        *[f"{sum(1 for r in t if r.get('band') == b):,}" for b in BANDS],
                        f"{sum(r['health_score'] for r in t) / len(t):.1f}",
                    ]
                )
        risk = self._get("/api/customers/at-risk", limit=10)
        top = render_at_risk(risk["rows"], {}) if risk else ""
        self.cust_tables.value = (
            '<div class="cfx-card"><h3>Health by tier and band</h3>'
            + table(["tier", "accounts", *BANDS, "mean health"], per_tier, {1, 2, 3, 4, 5})
            + "</div>"
            + (f'<div class="cfx-card"><h3>Top at-risk accounts</h3>{top}</div>' if top else "")
        )

    def refresh_system(self) -> None:
        ops = self._get("/api/ops")
        if ops is None:
            self.sys_charts.children = [
                w.HTML('<div class="cfx-card">System performance is not available for your role.</div>')
            ]
            return
        span = self._range()
        months = in_range(ops["monthly"], span["from"], span["to"])
        by_service = in_range(ops["by_service"], span["from"], span["to"])
        uptime, latency = {}, {}
        for name in self.uptime_chart.lines:
            mine = [r for r in by_service if r["service"] == name]
            dates = charts.month_dates(r["month"] for r in mine)
            uptime[name] = (dates, charts.floats(r["uptime_pct"] for r in mine))
            latency[name] = (dates, charts.floats(r.get("p95_latency_ms") for r in mine))
        self.uptime_chart.update(uptime)
        self.latency_chart.update(latency)
        self.ai_chart.update([m["month"] for m in months], [m.get("ai_calls") or 0 for m in months])
        self.sys_text.value = self.render_system_table(months)

    def render_system_table(self, months: list[dict]) -> str:
        cells = [
            [
                esc(m["month"]),
                f"{m['uptime_pct']:.3f}%",
                f"{(m.get('worst_service_uptime_pct') or 0):.3f}%",
                f"{(m.get('p95_latency_ms') or 0):,.0f} ms",
                f"{(m.get('requests') or 0):,.0f}",
                f"{100 * (m.get('error_rate') or 0):.3f}%",
                f"{(m.get('ai_calls') or 0):,.0f}",
            ]
            for m in months
        ]
        note = (
            f'<p class="cfx-muted">Operations are recorded per service, not per tier: the tier filter '
            f"({esc(self.tier.value)}) does not apply here.</p>"
            if self.tier.value != ALL
            else ""
        )
        return (
            '<div class="cfx-card"><h3>Uptime, latency and AI usage</h3>'
            + note
            + table(
                ["month", "uptime", "worst service", "p95 latency", "requests", "error rate", "AI calls"],
                cells,
                {1, 2, 3, 4, 5, 6},
            )
            + "</div>"
        )
