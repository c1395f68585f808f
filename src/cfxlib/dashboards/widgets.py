"""Dashboard widgets (ipywidgets), their data from the service, and live updates.

Two dashboards compose these: :class:`CustomerSuccess` (book health, at-risk accounts with
filters, account detail, ROI calculator, live feed; here) and
:class:`~cfxlib.dashboards.portal.ReportingPortal` (tabs Financial, Customer Health, System
Performance with month-range and tier filters). Stable CSS classes for outside checks:
``cfx-health-gauge``, ``cfx-at-risk``, ``cfx-feed-status``, ``cfx-last-update``, ``cfx-chart``
on every chart. Every value from the data is HTML-escaped.

Charts are bqplot figures from :mod:`cfxlib.dashboards.charts`, updated in place; text and
tables are HTML strings from the ``render_*`` functions, tested without a browser.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable

import ipywidgets as w

from cfxlib.core.provenance import DEMO, DEMO_NOTE
from cfxlib.customers.roi import customer_roi
from cfxlib.dashboards import charts
from cfxlib.dashboards.client import AccessDenied, FeedListener, ServiceClient
from cfxlib.publish import theme
from cfxlib.publish.formats import pct, usd  # the site's number formats
from cfxlib.publish.theme import BAND_COLOURS, NEGATIVE, POSITIVE

BANDS = ("red", "yellow", "green")
TABLE_ROWS = 50
"""At-risk rows shown at once (the filters narrow the list); the rest is counted below the table."""

TIERS = ("Starter", "Professional", "Enterprise")
ALL = "All"

STYLE = (
    """
<style>
.cfx-card { border:1px solid #e3e8ef; border-radius:8px; padding:12px 16px; margin:6px 0; background:#fff; }
.cfx-card h3 { margin:0 0 6px; font-size:15px; color:#1f3b57; }
.cfx-big { font-size:30px; font-weight:700; color:#1f3b57; }
.cfx-table { border-collapse:collapse; width:100%; font-size:13px; }
.cfx-table th { text-align:left; background:#eef3f9; padding:5px 8px; }
.cfx-table td { padding:5px 8px; border-bottom:1px solid #e3e8ef; vertical-align:top; }
.cfx-table td.num, .cfx-table th.num { text-align:right; font-variant-numeric:tabular-nums; }
.cfx-muted { color:#5b6b7c; font-size:12px; }
.cfx-feed-status, .cfx-last-update { margin-right:24px; }
.cfx-statusbar { position:sticky; top:0; z-index:20; background:#fff; border-bottom:1px solid #e3e8ef; padding:2px 0; }
/* the bar sticks within its nearest scrolling ancestor: let that be the page, not a box around it
   (plain class selectors: a :has() rule makes the browser re-check its ancestors on every update) */
.jp-OutputArea, .jp-OutputArea-child, .jp-OutputArea-output, .cfx-page { overflow:visible !important; }
.lm-TabBar-tab { min-width:190px !important; }
.cfx-demo-banner { background:#fff4d6; color:#7a4700; border:1px solid #9a5b00; border-radius:4px; font-weight:600; padding:6px 12px; margin:6px 0; }
.cfx-chart { border:1px solid #e3e8ef; border-radius:8px; margin:6px 0; }
"""
    + theme.chart_css()
    + """
</style>
"""
)


def esc(value) -> str:
    return html.escape("" if value is None else str(value))


class Unavailable:
    """What a dashboard shows when the service cannot be reached: where it looked and what to do,
    instead of a notebook error (CSS class ``cfx-unavailable``)."""

    def __init__(self, client: ServiceClient, why: str):
        self.view = w.HTML(
            STYLE
            + '<div class="cfx-card"><h3>The cfx service is not reachable</h3>'
            + f"<p>This dashboard reads its figures from <code>{esc(client.base)}</code>, which did not answer "
            + f"({esc(why)}). Start it with <code>cfx serve</code> (or <code>cfx up</code>), then reload this page.</p></div>"
        )
        self.view.add_class("cfx-unavailable")

    def start_live(self) -> None:
        return None


def service_error(exc: Exception) -> str | None:
    """A short reason when ``exc`` means the service cannot be reached (else None)."""
    import httpx

    if isinstance(exc, httpx.TransportError):
        return type(exc).__name__
    if isinstance(exc, httpx.HTTPStatusError) and exc.response.status_code >= 500:
        return f"it answered {exc.response.status_code}"
    return None


def demo_banner(source: str) -> str:
    """The visible "Demo data" mark of a demo publication (empty for real data)."""
    if source != DEMO:
        return ""
    return f'<div class="cfx-demo-banner" role="note">{esc(DEMO_NOTE)}</div>'


def table(headers: list[str], rows: Iterable[list[str]], numeric: set[int] = frozenset()) -> str:
    """An HTML table from already-escaped cells."""
    head = "".join(f'<th class="{"num" if i in numeric else ""}">{h}</th>' for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f'<td class="{"num" if i in numeric else ""}">{c}</td>' for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f'<table class="cfx-table"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


# --------------------------------------------------------------------------- rendering (pure)


def render_gauge(rows: list[dict], title: str = "Book health") -> str:
    """Average health score of ``rows`` (one decimal) and the share of accounts per band. The text
    changes only when one of them does: a live page sends it to the browser only then."""
    scores = [r["health_score"] for r in rows if r.get("health_score") is not None]
    if not scores:
        return f'<div class="cfx-card"><h3>{esc(title)}</h3>No scored accounts.</div>'
    mean = sum(scores) / len(scores)
    counts = {b: sum(1 for r in rows if r.get("band") == b) for b in BANDS}
    total = sum(counts.values()) or 1
    legend = "<br>".join(f"{b} {counts[b]:,} ({100 * counts[b] / total:.0f}%)" for b in BANDS)
    return (
        f'<div class="cfx-card"><h3>{esc(title)}</h3>'
        f'<div class="cfx-big">{mean:.1f}<span class="cfx-muted"> / 100 average health</span></div>'
        f'<div class="cfx-muted">{legend}<br>of {len(rows):,} accounts</div></div>'
    )


def render_trend(points: list[dict], key: str, label: str, digits: int = 1) -> str:
    """One line naming ``key``'s first and last values over ``points`` (the chart draws them)."""
    values = [p.get(key) for p in points]
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return f'<p class="cfx-muted">{esc(label)}: not enough history.</p>'
    return (
        f'<div class="cfx-trend"><div class="cfx-muted">{esc(label)}: {known[0]:.{digits}f} on {esc(points[0]["as_of"])} '
        f"→ {known[-1]:.{digits}f} on {esc(points[-1]['as_of'])}</div></div>"
    )


def render_risk_trend(trend: dict) -> str:
    """ARR at risk by month from the churn model, beside the ARR that did churn (once known)."""
    points = trend.get("points") or []
    if len(points) < 2:
        return f'<p class="cfx-muted">ARR at risk by month: {esc(trend.get("note") or "not enough history")}.</p>'
    first, last = points[0], points[-1]
    rows = [
        [
            esc(p["month"]),
            usd(p["arr_at_risk"]),
            pct(p["arr_at_risk"] / p["arr"]) if p["arr"] else "n/a",
            "not known yet" if p["churned_arr"] is None else usd(p["churned_arr"]),
        ]
        for p in points
    ]
    return (
        f'<div class="cfx-trend"><div class="cfx-muted">ARR at risk (churn model): {usd(first["arr_at_risk"])} in '
        f"{esc(first['month'])} → {usd(last['arr_at_risk'])} in {esc(last['month'])}</div>"
        + table(["month", "ARR at risk", "share of ARR", "ARR that churned within 3 months"], rows, {1, 2, 3})
        + f'<p class="cfx-muted">{esc(trend.get("note") or "")}.</p>'
        + (
            f'<p class="cfx-muted cfx-risk-current">This month\'s ARR at risk from the current model, the figure on '
            f"the site, in the investor PDF and in the snapshot: <b>{usd(trend['current_arr_at_risk'])}</b>. The "
            f"trend's last point ({usd(last['arr_at_risk'])}) comes from a model trained on snapshots up to "
            f"{esc(trend.get('trained_through') or 'an earlier month')} and their outcomes, all known before the "
            "first month shown, so that every month is scored the same way; "
            "the two differ by that model.</p>"
            if trend.get("current_arr_at_risk") is not None
            else ""
        )
        + "</div>"
    )


COMPONENTS = {
    "usage_rate": "usage",
    "ticket_resolution": "tickets",
    "downtime_reduction": "downtime",
    "nps": "NPS",
    "engagement_trend": "engagement",
}
"""The health score's components and their short names on the account's chart."""


def book_point(rows: Iterable[dict]) -> dict | None:
    """The book now, as a point of the 90-day trend: the newest ``as_of`` of ``rows``, their mean
    health and accounts per band."""
    rows = [r for r in rows if r.get("health_score") is not None]
    if not rows:
        return None
    point = {"as_of": max(str(r.get("as_of") or "") for r in rows)}
    point["mean_health"] = sum(r["health_score"] for r in rows) / len(rows)
    point |= {b: sum(1 for r in rows if r.get("band") == b) for b in BANDS}
    return point


def with_live_point(points: list[dict], live: dict | None) -> list[dict]:
    """The weekly ``points`` then the live book: it replaces the last point when dated the same
    day or earlier (nothing newer has happened), and is added after it otherwise."""
    if live is None or not live["as_of"]:
        return list(points)
    if points and live["as_of"] <= points[-1]["as_of"]:
        return [*points[:-1], {**points[-1], **{k: v for k, v in live.items() if k != "as_of"}}]
    return [*points, live]


def score_chart(title: str, series: str, css: str, bands: dict[float, str]) -> charts.TimeLines:
    """A health score (0-100) over dates, with the band limits as dashed lines."""
    return charts.TimeLines(
        title,
        [series],
        "score (0-100)",
        css,
        colours=[theme.NAVY],
        y_min=0,
        y_max=100,
        references=bands,
        legend_location="bottom-right",
    )


def render_account(row: dict | None, risk: dict | None, history: list[dict] | None = None) -> str:
    """One account: its score, band, five components, churn probability and recommended action."""
    if row is None:
        return '<div class="cfx-card">Select an account.</div>'
    action = (risk or {}).get("action") or "no playbook action"
    reasons = "; ".join((risk or {}).get("reasons") or []) or "none"
    return (
        f'<div class="cfx-card"><h3>{esc((risk or {}).get("account_name") or "")} {esc(row["account_id"])} · {esc(row.get("tier"))}</h3>'
        f'<div class="cfx-big">{row.get("health_score") or 0:.1f}<span class="cfx-muted"> {esc(row.get("band"))}'
        f", as of {esc(row.get('as_of'))}</span></div>"
        + render_trend(history or [], "health_score", "Health, weekly over 90 days then live")
        + f'<p class="cfx-muted">p(churn, 3 months) {pct((risk or {}).get("p_churn_3m"))}; reasons: {esc(reasons)}; '
        f"action: {esc(action)} ({esc((risk or {}).get('owner'))}, due in {esc((risk or {}).get('due_days'))} days)</p></div>"
    )


def render_at_risk(rows: list[dict], health: dict[str, dict]) -> str:
    """The at-risk table (live health where known), highest ARR at risk first."""
    out = []
    for r in rows:
        live = health.get(r["account_id"], {})
        score, band = live.get("health_score", r.get("health_score")), live.get("band", r.get("band"))
        out.append(
            [
                f"<b>{esc(r.get('account_name') or '')}</b><br><span class='cfx-muted'>{esc(r['account_id'])}</span>",
                esc(r.get("tier")),
                usd(r.get("arr")),
                f"{score:.0f} ({esc(band)})" if score is not None else "n/a",
                pct(r.get("p_churn_3m")),
                usd(r.get("arr_at_risk")),
                "<br>".join(f"• {esc(x)}" for x in (r.get("reasons") or [])) or "-",
                esc(r.get("action") or r.get("playbook") or "-"),
                esc(r.get("owner") or "-"),
                esc(r.get("due_days")),
            ]
        )
    headers = [
        "account",
        "tier",
        "ARR",
        "health",
        "p(churn 3m)",
        "ARR at risk",
        "reasons",
        "action",
        "owner",
        "due (days)",
    ]
    if not out:
        return '<div class="cfx-card">No account matches the filters.</div>'
    return table(headers, out, {2, 3, 4, 5, 9})


def filter_rows(rows: list[dict], health: dict[str, dict], tier: str, band: str, owner: str) -> list[dict]:
    """At-risk rows matching the filters (``All`` matches anything); band is the live band."""

    def live_band(r):
        return health.get(r["account_id"], {}).get("band", r.get("band"))

    return [
        r
        for r in rows
        if (tier == ALL or r.get("tier") == tier)
        and (band == ALL or live_band(r) == band)
        and (owner == ALL or r.get("owner") == owner)
    ]


def render_roi(result) -> str:
    return (
        '<div class="cfx-card"><h3>ROI</h3>'
        + table(
            ["measure", "value"],
            [
                ["downtime hours avoided per month", f"{result.hours_avoided_per_month:,.1f}"],
                ["annual value of downtime avoided", usd(result.annual_value_usd)],
                ["annual subscription cost", usd(result.annual_cost_usd)],
                ["ROI multiple", "n/a" if result.roi_multiple is None else f"{result.roi_multiple:.1f}x"],
                ["payback", "n/a" if result.payback_months is None else f"{result.payback_months:.1f} months"],
            ],
            {1},
        )
        + "</div>"
    )


# --------------------------------------------------------------------------- customer success


class CustomerSuccess:
    """The customer success dashboard: build with a :class:`ServiceClient`, show :attr:`view`,
    then :meth:`start_live` (from the kernel) to follow the feed."""

    @classmethod
    def open(cls, client: ServiceClient, cost_per_downtime_hour_usd: float = 500.0):
        """The dashboard, or :class:`Unavailable` when the service cannot be reached."""
        try:
            return cls(client, cost_per_downtime_hour_usd)
        except Exception as exc:
            why = service_error(exc)
            if why is None:
                raise
            return Unavailable(client, why)

    def __init__(self, client: ServiceClient, cost_per_downtime_hour_usd: float = 500.0):
        self.client = client
        self.health: dict[str, dict] = {r["account_id"]: r for r in client.all_health()}
        risk = client.get("/api/customers/at-risk", limit=10_000)
        self.as_of, self.run_id = risk["as_of"], risk["run_id"]
        self.source = risk.get("source", "data")
        self.at_risk: list[dict] = risk["rows"]
        self.updates = 0
        self.shown: set[str] = set()
        self.histories: dict[str, list[dict]] = {}
        self.book = client.get("/api/customers/health-trend")
        red, yellow = self.book["bands"]["red"], self.book["bands"]["yellow"]  # the service's, as it scores
        self.gauge_chart = charts.Gauge("Book health · average score", red, yellow)
        self.gauge = w.HTML()
        self.gauge.layout = w.Layout(min_width="220px")
        self.gauge_box = w.HBox([self.gauge_chart.widget, self.gauge])
        self.gauge_box.add_class("cfx-health-gauge")
        bands = {red: f"red up to {red:g}", yellow: f"yellow up to {yellow:g}"}
        self.book_health = score_chart(
            "Average health, weekly then live", "average health", "cfx-book-health-chart", bands
        )
        self.book_bands = charts.TimeLines(
            "Accounts per band, weekly then live",
            list(BANDS),
            "accounts",
            "cfx-book-bands-chart",
            y_format=charts.COUNT,
            colours=[BAND_COLOURS[b] for b in BANDS],
            y_min=0,
        )
        self.components_chart = charts.BarChart(
            "Health components",
            ["score"],
            "score (0-100)",
            "cfx-components-chart",
            y_format=".0f",
            colours=[theme.ACCENT],
            x_label="component",
            y_max=100,
        )
        self.history_chart = score_chart(
            "Health, weekly over 90 days then live", "health", "cfx-account-history-chart", bands
        )
        self.risk_chart = charts.BarChart(
            "ARR at risk by month (churn model) and ARR that churned",
            ["ARR at risk"],
            "USD",
            "cfx-risk-chart",
            y_format=charts.MONEY,
            colours=[theme.LOSS],
            x_label="month",
            points={"ARR that churned within 3 months": theme.NAVY},
        )
        self.churn_chart = charts.BarChart(
            "3-month churn probability by tier",
            list(TIERS),
            "accounts",
            "cfx-churn-chart",
            colours=[theme.PALETTE[t] for t in TIERS],
            x_label="p(churn in 3 months)",
        )
        owners = sorted({r.get("owner") for r in self.at_risk if r.get("owner")})
        self.tier = w.Dropdown(options=[ALL, *TIERS], value=ALL, description="Tier")
        self.band = w.Dropdown(options=[ALL, *BANDS], value=ALL, description="Band")
        self.owner = w.Dropdown(options=[ALL, *owners], value=ALL, description="Owner")
        self.table = w.HTML()
        self.table.add_class("cfx-at-risk")
        self.account = w.Dropdown(
            options=[(f"{r.get('account_name') or ''} ({r['account_id']})", r["account_id"]) for r in self.at_risk],
            description="Account",
            layout=w.Layout(width="480px"),
        )
        self.detail = w.HTML()
        self.status = w.HTML("feed: not started")
        self.status.add_class("cfx-feed-status")
        self.last = w.HTML("last update: none yet")
        self.last.add_class("cfx-last-update")
        for control in (self.tier, self.band, self.owner):
            control.observe(lambda _change: self.refresh_table(), names="value")
        self.account.observe(lambda _change: self.refresh_detail(), names="value")
        self.roi_form = self._roi_form(cost_per_downtime_hour_usd)
        self.pilots = PilotLauncher(client)
        from cfxlib.dashboards.interventions import InterventionsQueue  # it imports this module's helpers

        self.queue = InterventionsQueue(client)
        self.churn_text = w.HTML()
        self.churn = w.VBox([self.churn_chart.widget, self.churn_text])
        self.churn.add_class("cfx-churn-distribution")
        self.trend_text = w.HTML()
        self.trend = w.VBox(
            [self.trend_text, w.HBox([self.book_health.widget, self.book_bands.widget], layout=w.Layout(width="100%"))]
        )
        self.trend.add_class("cfx-book-trend")
        self.risk_text = w.HTML()
        self.risk_trend = w.VBox([self.risk_chart.widget, self.risk_text])
        self.risk_trend.add_class("cfx-risk-trend")
        self.refresh_book()
        self.header = w.HTML()
        self.header.add_class("cfx-header")
        self.refresh_publication_views()
        self.refresh_table()
        self.refresh_detail()
        self.statusbar = w.HBox([self.status, self.last])
        self.statusbar.add_class("cfx-statusbar")  # sticks to the top: in view while the page scrolls
        header = self.header
        self.view = w.VBox(
            [
                header,
                self.statusbar,
                self.gauge_box,
                self.trend,
                self.risk_trend,
                self.churn,
                w.HTML("<h3>At-risk accounts</h3>"),
                w.HBox([self.tier, self.band, self.owner]),
                self.table,
                w.HTML("<h3>Account</h3>"),
                self.account,
                self.detail,
                w.HBox([self.components_chart.widget, self.history_chart.widget], layout=w.Layout(width="100%")),
                w.HTML("<h3>Interventions</h3>"),
                self.queue.view,
                w.HTML("<h3>ROI calculator</h3>"),
                self.roi_form,
                w.HTML("<h3>Pilots</h3>"),
                self.pilots.view,
            ]
        )
        self.view.add_class("cfx-page")  # not a scroll box: the status bar sticks to the window

    # -- rendering
    def refresh_table(self) -> None:
        rows = filter_rows(self.at_risk, self.health, self.tier.value, self.band.value, self.owner.value)
        shown = rows[:TABLE_ROWS]
        self.shown = {r["account_id"] for r in shown}
        more = f'<p class="cfx-muted">{len(shown)} of {len(rows):,} accounts, most ARR at risk first</p>'
        self.table.value = render_at_risk(shown, self.health) + (more if len(rows) > len(shown) else "")

    def refresh_detail(self) -> None:
        """Show the selected account. Its 90-day history is fetched once per account (not on
        every live update, which runs in the feed loop); the live score is its last point."""
        acc = self.account.value
        risk = next((r for r in self.at_risk if r["account_id"] == acc), None)
        if acc and acc not in self.histories:
            try:
                self.histories[acc] = self.client.get(f"/api/customers/{acc}/history")["points"]
            except Exception:  # noqa: BLE001 - the detail still shows without its trend
                self.histories[acc] = []
        history = list(self.histories.get(acc, []))
        live = self.health.get(acc)
        if (
            live
            and history
            and (history[-1]["as_of"], history[-1]["health_score"])
            != (
                live.get("as_of"),
                live.get("health_score"),
            )
        ):
            history.append({"as_of": live.get("as_of"), "health_score": live.get("health_score")})
        self.detail.value = render_account(live, risk, history)
        name = (risk or {}).get("account_name") or acc or ""
        self.components_chart.update(
            list(COMPONENTS.values()),
            [(live or {}).get(c) for c in COMPONENTS],
            title=f"Health components of {name}",
        )
        self.history_chart.update(
            {
                "health": (
                    charts.day_dates(p["as_of"] for p in history),
                    charts.floats(p["health_score"] for p in history),
                )
            }
        )

    def refresh_book(self) -> None:
        """The gauge and the 90-day book trend, with the live book as the trend's last point.

        The live mean is drawn at the precision the page prints it (one decimal: 0.1 point is
        0.35 pixel of the needle's sweep and under a pixel of the trend's height), so an event
        that moves the book's mean by less sends no chart update to the browser: with 2,000
        accounts one answer moves it by about 0.005 point, and each update sent costs every open
        page a message and a frame (docs/benchmarks.md)."""
        rows = list(self.health.values())
        live = book_point(rows)
        if live is not None:
            live["mean_health"] = round(live["mean_health"], 1)
        self.gauge_chart.update(None if live is None else live["mean_health"])
        points = with_live_point(self.book.get("points") or [], live)
        dates = charts.day_dates(p["as_of"] for p in points)
        self.book_health.update({"average health": (dates, charts.floats(p["mean_health"] for p in points))})
        self.book_bands.update({b: (dates, charts.floats(p[b] for p in points)) for b in BANDS})
        self.gauge.value = render_gauge(rows, title="Accounts per band")

    def _roi_form(self, cost_per_hour: float) -> w.Widget:
        first = self.at_risk[0] if self.at_risk else {}
        before = w.FloatText(value=40.0, description="Downtime before (h/month)", style={"description_width": "190px"})
        after = w.FloatText(value=25.0, description="Downtime now (h/month)", style={"description_width": "190px"})
        cost = w.FloatText(
            value=cost_per_hour, description="Cost per downtime hour ($)", style={"description_width": "190px"}
        )
        sub = w.FloatText(
            value=round((first.get("arr") or 12_000) / 12, 2),
            description="Subscription ($/month)",
            style={"description_width": "190px"},
        )
        out = w.HTML()
        out.add_class("cfx-roi")

        def compute(_change=None) -> None:
            try:
                out.value = render_roi(customer_roi(before.value, after.value, cost.value, sub.value))
            except ValueError as exc:
                out.value = f'<div class="cfx-card">{esc(exc)}</div>'

        for field in (before, after, cost, sub):
            field.observe(compute, names="value")
        compute()
        return w.VBox([before, after, cost, sub, out])

    # -- live
    def apply(self, message: dict) -> None:
        """Take one feed message (see :meth:`apply_all`)."""
        self.apply_all([message])

    def apply_all(self, messages: list[dict]) -> None:
        """Take feed messages in order, then redraw once: a snapshot replaces the book; an update
        changes one account; an intervention (a call to action opened, changed or closed) goes to
        the queue. A POST of many events arrives as one update per account, back to back: the
        page then gets one redraw for all of them, not one per account."""
        snapshot, changed, last, before = False, set(), None, {}
        for message in messages:
            if message["type"] == "intervention":
                self.queue.apply(message)
            elif message["type"] == "snapshot":
                snapshot, changed, last, before = True, set(), None, {}
                self.health = {r["account_id"]: r for r in message["accounts"]}
                self.histories.clear()
                if message.get("run_id") and message["run_id"] != self.run_id:
                    self.run_id = message["run_id"]  # a new publication: refresh what it decides
                    risk = self.client.get("/api/customers/at-risk", limit=10_000)
                    self.at_risk, self.as_of = risk["rows"], risk["as_of"]
                    self.refresh_publication_views()
            else:
                account = message["account_id"]
                before.setdefault(account, self.health.get(account, {}).get("health_score"))
                self.health[account] = {k: v for k, v in message.items() if k not in ("type", "cause")}
                self.updates += 1
                changed.add(account)
                last = message
        if not snapshot and not changed:
            return
        self.refresh_book()
        # re-render only what shows a changed account (a snapshot changes everything)
        if snapshot or changed & self.shown:
            self.refresh_table()
        if snapshot or self.account.value in changed:
            self.refresh_detail()
        if last is not None:  # last: a page showing the new count shows the rest of the change
            was = before.get(last["account_id"])
            change = "" if was is None else f" (was {was:.1f})"
            cause = (last.get("cause") or {}).get("table", "")
            self.last.value = (
                f"{self.updates:,} live update{'s' if self.updates != 1 else ''} · last: "
                f"<b>{esc(last['account_id'])}</b> health {last['health_score']:.1f}{change}"
                f" · {esc(cause)} · {time.strftime('%H:%M:%S')}"
            )

    def refresh_publication_views(self) -> None:
        """The parts a publication decides: book trend, ARR at risk by month, churn bins, then the
        header (last, so a header naming the new run means the rest already shows it)."""
        self.book = self.client.get("/api/customers/health-trend")
        book = self.book["points"]
        self.trend_text.value = (
            '<div class="cfx-card"><h3>The book over 90 days (weekly, then live)</h3>'
            + render_trend(book, "mean_health", "Average health")
            + render_trend(book, "red", "Accounts in the red band (at risk by health)", digits=0)
            + "</div>"
        )
        self.refresh_book()
        risk = self.client.get("/api/customers/at-risk-trend")
        points = risk.get("points") or []
        known = [p for p in points if p.get("churned_arr") is not None]
        self.risk_chart.update(
            [p["month"] for p in points],
            [p["arr_at_risk"] for p in points],
            points={
                "ARR that churned within 3 months": ([p["month"] for p in known], [p["churned_arr"] for p in known])
            },
        )
        self.risk_text.value = (
            '<div class="cfx-card"><h3>ARR at risk over recent months</h3>' + render_risk_trend(risk) + "</div>"
        )
        bins = self.client.get("/api/customers/churn-distribution")["bins"]
        labels = churn_bin_labels(bins)
        self.churn_chart.update(
            labels,
            {
                t: [next((b["accounts"] for b in bins if b["tier"] == t and bin_label(b) == x), 0) for x in labels]
                for t in TIERS
            },
        )
        self.churn_text.value = render_churn_distribution(bins)
        self.header.value = (
            STYLE + demo_banner(self.source) + f"<h2>Customer success · as of {esc(self.as_of)}</h2>"
            f'<p class="cfx-muted">run {esc(self.run_id)} · scores update live from the service</p>'
        )

    def set_status(self, state: str) -> None:
        colour = {"live": POSITIVE, "connecting": BAND_COLOURS["yellow"]}.get(state, NEGATIVE)
        self.status.value = f'<span style="color:{colour}">●</span> feed: {esc(state)}'

    def start_live(self) -> FeedListener:
        listener = FeedListener(self.client, self.apply_all, self.set_status)
        listener.start()
        return listener


def bin_label(b: dict) -> str:
    """A churn-probability bin as text: ``10-20%``."""
    return f"{100 * b['low']:.0f}-{100 * b['high']:.0f}%"


def churn_bin_labels(bins: list[dict]) -> list[str]:
    """The bins' labels, lowest probability first, each once."""
    return [bin_label(b) for b in sorted({(b["low"], b["high"]): b for b in bins}.values(), key=lambda b: b["low"])]


def render_churn_distribution(bins: list[dict]) -> str:
    """Per tier: accounts scored, their mean 3-month churn probability and the ARR in bins of
    50% or more (the chart above draws every bin)."""
    if not bins:
        return '<div class="cfx-card">No churn scores.</div>'
    rows = []
    for tier in TIERS:
        mine = [b for b in bins if b["tier"] == tier]
        accounts = sum(b["accounts"] for b in mine)
        if not accounts:
            continue
        mean = sum(b["accounts"] * (b["low"] + b["high"]) / 2 for b in mine) / accounts
        high = sum(b["arr"] for b in mine if b["low"] >= 0.5)
        rows.append([esc(tier), f"{accounts:,}", f"{100 * mean:.0f}%", usd(high)])
    return table(["tier", "accounts", "mean p(churn), bin middles", "ARR with p(churn) 50% or more"], rows, {1, 2, 3})


def render_pilots(pilots: list[dict]) -> str:
    if not pilots:
        return '<div class="cfx-card">No pilot recorded yet.</div>'
    rows = [
        [
            esc(p["pilot_id"]),
            esc(p["company"]),
            esc(p["tier"]),
            f"{p['seats']:,}",
            esc(p["start_date"]),
            esc(p["status"]),
            esc(p["contact_email"]),
        ]
        for p in reversed(pilots)
    ]
    return table(["pilot", "company", "tier", "seats", "start", "status", "contact"], rows, {3})


def render_field_errors(detail) -> str:
    """FastAPI's 422 ``detail`` as one line per field: ``contact_email: String should match ...``."""
    if not isinstance(detail, list):
        return f"<div class='cfx-card'>{esc(detail)}</div>"
    lines = [f"<li><b>{esc(e['loc'][-1])}</b>: {esc(e.get('msg'))}</li>" for e in detail if e.get("loc")]
    return f"<div class='cfx-card cfx-errors'>Please correct:<ul>{''.join(lines)}</ul></div>"


class PilotLauncher:
    """A form that records a pilot through ``POST /api/pilots`` and lists ``GET /api/pilots``."""

    def __init__(self, client: ServiceClient):
        import datetime

        self.client = client
        style = {"description_width": "130px"}
        self.company = w.Text(description="Company", style=style)
        self.email = w.Text(description="Contact email", style=style)
        self.tier = w.Dropdown(options=list(TIERS), value="Professional", description="Tier", style=style)
        self.seats = w.IntText(value=25, description="Seats", style=style)
        self.start = w.Text(value=datetime.date.today().isoformat(), description="Start date", style=style)
        self.criteria = w.Textarea(description="Success criteria", style=style, layout=w.Layout(width="520px"))
        self.submit = w.Button(description="Record pilot", button_style="primary")
        self.message = w.HTML()
        self.message.add_class("cfx-pilot-message")
        self.table = w.HTML()
        self.table.add_class("cfx-pilots")
        self.submit.on_click(lambda _b: self.record())
        self.refresh()
        self.view = w.VBox(
            [
                self.company,
                self.email,
                self.tier,
                self.seats,
                self.start,
                self.criteria,
                self.submit,
                self.message,
                self.table,
            ]
        )

    def refresh(self) -> None:
        try:
            self.table.value = render_pilots(self.client.get("/api/pilots")["pilots"])
        except AccessDenied:
            self.table.value = '<div class="cfx-card">Pilots are not available for your role.</div>'

    def record(self) -> None:
        body = {
            "company": self.company.value.strip(),
            "contact_email": self.email.value.strip(),
            "tier": self.tier.value,
            "seats": self.seats.value,
            "start_date": self.start.value.strip(),
            "success_criteria": self.criteria.value.strip(),
        }
        r = self.client.post("/api/pilots", body)
        if r.status_code == 201:
            self.message.value = f"Recorded {esc(r.json()['pilot_id'])} for {esc(body['company'])}."
            self.refresh()
        elif r.status_code == 422:
            self.message.value = render_field_errors(r.json().get("detail"))
        else:
            self.message.value = (
                f"<div class='cfx-card'>The service answered {r.status_code}: {esc(r.text[:300])}</div>"
            )
