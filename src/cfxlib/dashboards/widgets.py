"""Dashboard widgets (ipywidgets), their data from the service, and live updates.

Two dashboards compose these: :class:`CustomerSuccess` (book health, at-risk accounts with
filters, account detail, ROI calculator, live feed) and :class:`ReportingPortal` (tabs
Financial, Customer Health, System Performance with month-range and tier filters). Stable CSS
classes for outside checks: ``cfx-health-gauge``, ``cfx-at-risk``, ``cfx-feed-status``,
``cfx-last-update``. Every value from the data is HTML-escaped.

The classes hold their state in plain Python and render HTML strings, so they are tested
without a browser (``render_*`` functions); the widgets only display them.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable

import ipywidgets as w

from cfxlib.core.provenance import DEMO, DEMO_NOTE
from cfxlib.customers.roi import customer_roi
from cfxlib.dashboards.client import AccessDenied, FeedListener, ServiceClient
from cfxlib.publish.formats import pct, usd  # the site's number formats
from cfxlib.publish.theme import ACCENT, BAND_COLOURS, NEGATIVE, POSITIVE

BANDS = ("red", "yellow", "green")
TABLE_ROWS = 50
"""At-risk rows shown at once (the filters narrow the list); the rest is counted below the table."""

TIERS = ("Starter", "Professional", "Enterprise")
ALL = "All"

STYLE = """
<style>
.cfx-card { border:1px solid #e3e8ef; border-radius:8px; padding:12px 16px; margin:6px 0; background:#fff; }
.cfx-card h3 { margin:0 0 6px; font-size:15px; color:#1f3b57; }
.cfx-big { font-size:30px; font-weight:700; color:#1f3b57; }
.cfx-bar { display:flex; height:14px; border-radius:4px; overflow:hidden; margin:6px 0; }
.cfx-table { border-collapse:collapse; width:100%; font-size:13px; }
.cfx-table th { text-align:left; background:#eef3f9; padding:5px 8px; }
.cfx-table td { padding:5px 8px; border-bottom:1px solid #e3e8ef; vertical-align:top; }
.cfx-table td.num, .cfx-table th.num { text-align:right; font-variant-numeric:tabular-nums; }
.cfx-muted { color:#5b6b7c; font-size:12px; }
.cfx-feed-status, .cfx-last-update { margin-right:24px; }
.lm-TabBar-tab { min-width:190px !important; }
.cfx-demo-banner { background:#fff4d6; color:#7a4700; border:1px solid #9a5b00; border-radius:4px; font-weight:600; padding:6px 12px; margin:6px 0; }
</style>
"""


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


def render_gauge(rows: list[dict], title: str = "Book health", updates: int | None = None) -> str:
    """Average health score of ``rows`` and the share of accounts per band (and, on a live
    dashboard, how many live updates it has taken)."""
    scores = [r["health_score"] for r in rows if r.get("health_score") is not None]
    if not scores:
        return f'<div class="cfx-card"><h3>{esc(title)}</h3>No scored accounts.</div>'
    mean = sum(scores) / len(scores)
    counts = {b: sum(1 for r in rows if r.get("band") == b) for b in BANDS}
    total = sum(counts.values()) or 1
    bar = "".join(
        f'<div title="{b}: {counts[b]}" style="width:{100 * counts[b] / total:.2f}%;background:{BAND_COLOURS[b]}"></div>'
        for b in BANDS
    )
    legend = " · ".join(f"{b} {counts[b]:,} ({100 * counts[b] / total:.0f}%)" for b in BANDS)
    return (
        f'<div class="cfx-card"><h3>{esc(title)}</h3>'
        f'<div class="cfx-big">{mean:.1f}<span class="cfx-muted"> / 100 average health</span></div>'
        f'<div class="cfx-bar">{bar}</div><div class="cfx-muted">{esc(legend)} of {len(rows):,} accounts'
        + ("" if updates is None else f" · {updates:,} live update{'s' if updates != 1 else ''}")
        + "</div></div>"
    )


def sparkline(values: list[float], width: int = 320, height: int = 60, colour: str = ACCENT) -> str:
    """An inline SVG line of ``values`` (no axes), scaled to its own range."""
    pts = [v for v in values if v is not None]
    if len(pts) < 2:
        return ""
    lo, hi = min(pts), max(pts)
    span = (hi - lo) or 1.0
    step = width / (len(pts) - 1)
    path = " ".join(f"{i * step:.1f},{height - 4 - (v - lo) / span * (height - 8):.1f}" for i, v in enumerate(pts))
    return (
        f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">'
        f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/></svg>'
    )


def render_trend(points: list[dict], key: str, label: str, colour: str = ACCENT, digits: int = 1) -> str:
    """A titled sparkline of ``key`` over ``points`` with its first and last values."""
    values = [p.get(key) for p in points]
    known = [v for v in values if v is not None]
    if len(known) < 2:
        return f'<p class="cfx-muted">{esc(label)}: not enough history.</p>'
    return (
        f'<div class="cfx-trend"><div class="cfx-muted">{esc(label)}: {known[0]:.{digits}f} on {esc(points[0]["as_of"])} '
        f"→ {known[-1]:.{digits}f} on {esc(points[-1]['as_of'])}</div>{sparkline(values, colour=colour)}</div>"
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
        + sparkline([p["arr_at_risk"] for p in points], colour=NEGATIVE)
        + table(["month", "ARR at risk", "share of ARR", "ARR that churned within 3 months"], rows, {1, 2, 3})
        + f'<p class="cfx-muted">{esc(trend.get("note") or "")}.</p>'
        + (
            f'<p class="cfx-muted cfx-risk-current">This month\'s ARR at risk from the current model, the figure on '
            f"the site, in the investor PDF and in the snapshot: <b>{usd(trend['current_arr_at_risk'])}</b>. The "
            f"trend's last point ({usd(last['arr_at_risk'])}) comes from a model trained only on outcomes known by "
            f"{esc(trend.get('trained_through') or 'an earlier month')}, so that every month is scored the same way; "
            "the two differ by that model.</p>"
            if trend.get("current_arr_at_risk") is not None
            else ""
        )
        + "</div>"
    )


def render_account(row: dict | None, risk: dict | None, history: list[dict] | None = None) -> str:
    """One account: its score, band, five components, churn probability and recommended action."""
    if row is None:
        return '<div class="cfx-card">Select an account.</div>'
    comps = ("usage_rate", "ticket_resolution", "downtime_reduction", "nps", "engagement_trend")
    cells = [[esc(c.replace("_", " ")), "n/a" if row.get(c) is None else f"{row[c]:.0f}"] for c in comps]
    action = (risk or {}).get("action") or "no playbook action"
    reasons = "; ".join((risk or {}).get("reasons") or []) or "none"
    return (
        f'<div class="cfx-card"><h3>{esc((risk or {}).get("account_name") or "")} {esc(row["account_id"])} · {esc(row.get("tier"))}</h3>'
        f'<div class="cfx-big">{row.get("health_score") or 0:.1f}<span class="cfx-muted"> {esc(row.get("band"))}'
        f", as of {esc(row.get('as_of'))}</span></div>"
        + table(["component", "score (0-100)"], cells, {1})
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
        self.gauge = w.HTML(render_gauge(list(self.health.values()), updates=0))
        self.gauge.add_class("cfx-health-gauge")
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
        self.churn = w.HTML()
        self.churn.add_class("cfx-churn-distribution")
        self.trend = w.HTML()
        self.trend.add_class("cfx-book-trend")
        self.risk_trend = w.HTML()
        self.risk_trend.add_class("cfx-risk-trend")
        self.header = w.HTML()
        self.header.add_class("cfx-header")
        self.refresh_publication_views()
        self.refresh_table()
        self.refresh_detail()
        header = self.header
        self.view = w.VBox(
            [
                header,
                w.HBox([self.status, self.last]),
                self.gauge,
                self.trend,
                self.risk_trend,
                self.churn,
                w.HTML("<h3>At-risk accounts</h3>"),
                w.HBox([self.tier, self.band, self.owner]),
                self.table,
                w.HTML("<h3>Account</h3>"),
                self.account,
                self.detail,
                w.HTML("<h3>Interventions</h3>"),
                self.queue.view,
                w.HTML("<h3>ROI calculator</h3>"),
                self.roi_form,
                w.HTML("<h3>Pilots</h3>"),
                self.pilots.view,
            ]
        )

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
        """Take one feed message: a snapshot replaces the book; an update changes one account; an
        intervention (a call to action opened, changed or closed) goes to the queue."""
        if message["type"] == "intervention":
            self.queue.apply(message)
            return
        if message["type"] == "snapshot":
            self.health = {r["account_id"]: r for r in message["accounts"]}
            self.histories.clear()
            if message.get("run_id") and message["run_id"] != self.run_id:
                self.run_id = message["run_id"]  # a new publication: refresh what it decides
                risk = self.client.get("/api/customers/at-risk", limit=10_000)
                self.at_risk, self.as_of = risk["rows"], risk["as_of"]
                self.refresh_publication_views()
        else:
            before = self.health.get(message["account_id"], {}).get("health_score")
            self.health[message["account_id"]] = {k: v for k, v in message.items() if k not in ("type", "cause")}
            self.updates += 1
            change = "" if before is None else f" (was {before:.1f})"
            cause = (message.get("cause") or {}).get("table", "")
            self.last.value = (
                f"last update: <b>{esc(message['account_id'])}</b> health {message['health_score']:.1f}{change}"
                f" · {esc(cause)} · {time.strftime('%H:%M:%S')}"
            )
        self.gauge.value = render_gauge(list(self.health.values()), updates=self.updates)
        # re-render only what shows the changed account (a snapshot changes everything)
        if message["type"] == "snapshot" or message["account_id"] in self.shown:
            self.refresh_table()
        if message["type"] == "snapshot" or message["account_id"] == self.account.value:
            self.refresh_detail()

    def refresh_publication_views(self) -> None:
        """The parts a publication decides: book trend, ARR at risk by month, churn bins, then the
        header (last, so a header naming the new run means the rest already shows it)."""
        book = self.client.get("/api/customers/health-trend")["points"]
        self.trend.value = (
            '<div class="cfx-card"><h3>The book over 90 days (weekly)</h3>'
            + render_trend(book, "mean_health", "Average health")
            + render_trend(book, "red", "Accounts in the red band (at risk by health)", colour=NEGATIVE, digits=0)
            + "</div>"
        )
        self.risk_trend.value = (
            '<div class="cfx-card"><h3>ARR at risk over recent months</h3>'
            + render_risk_trend(self.client.get("/api/customers/at-risk-trend"))
            + "</div>"
        )
        self.churn.value = render_churn_distribution(self.client.get("/api/customers/churn-distribution")["bins"])
        self.header.value = (
            STYLE + demo_banner(self.source) + f"<h2>Customer success · as of {esc(self.as_of)}</h2>"
            f'<p class="cfx-muted">run {esc(self.run_id)} · scores update live from the service</p>'
        )

    def set_status(self, state: str) -> None:
        colour = {"live": POSITIVE, "connecting": BAND_COLOURS["yellow"]}.get(state, NEGATIVE)
        self.status.value = f'<span style="color:{colour}">●</span> feed: {esc(state)}'

    def start_live(self) -> FeedListener:
        listener = FeedListener(self.client, self.apply, self.set_status)
        listener.start()
        return listener


def render_churn_distribution(bins: list[dict]) -> str:
    """Accounts per tier and 10-point churn-probability band, as horizontal bars per tier."""
    if not bins:
        return '<div class="cfx-card">No churn scores.</div>'
    top = max(b["accounts"] for b in bins) or 1
    rows = []
    for tier in TIERS:
        cells = []
        for b in (x for x in bins if x["tier"] == tier):
            width = 100 * b["accounts"] / top
            cells.append(
                f'<div title="{esc(tier)} {b["low"]:.0%}-{b["high"]:.0%}: {b["accounts"]} accounts, {usd(b["arr"])} ARR"'
                f' style="display:flex;align-items:center;gap:6px;font-size:11px">'
                f'<span style="width:64px;color:#5b6b7c">{b["low"]:.0%}-{b["high"]:.0%}</span>'
                f'<span style="display:inline-block;height:9px;width:{width:.1f}%;max-width:260px;background:#2f6db5"></span>'
                f"{b['accounts']}</div>"
            )
        rows.append(f'<div style="flex:1;min-width:260px"><b>{esc(tier)}</b>{"".join(cells)}</div>')
    return (
        '<div class="cfx-card"><h3>3-month churn probability by tier (accounts)</h3>'
        f'<div style="display:flex;gap:18px;flex-wrap:wrap">{"".join(rows)}</div></div>'
    )


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


# --------------------------------------------------------------------------- reporting portal


class ReportingPortal:
    """Tabs Financial, Customer Health and System Performance, from the service's endpoints
    with the viewer's token; a section the role may not read says so instead."""

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
        summary = self._get("/api/finance/summary")
        months = [r["month"] for r in (self._get("/api/finance/mrr") or {}).get("rows", [])]
        self.start = w.Dropdown(
            options=months or ["-"],
            value=(months[-12] if len(months) >= 12 else (months or ["-"])[0]),
            description="From",
        )
        self.end = w.Dropdown(options=months or ["-"], value=(months or ["-"])[-1], description="To")
        self.tier = w.Dropdown(options=[ALL, *TIERS], value=ALL, description="Tier")
        self.financial = w.HTML()
        self.customer = w.HTML()
        self.system = w.HTML()
        self.summary = summary
        for control in (self.start, self.end, self.tier):
            control.observe(lambda _change: self.refresh(), names="value")
        self.refresh()
        self.tabs = w.Tab(children=[w.VBox([self.financial]), w.VBox([self.customer]), w.VBox([self.system])])
        self.tabs.titles = ("Financial", "Customer Health", "System Performance")
        as_of = (summary or {}).get("as_of", "n/a")
        self.view = w.VBox(
            [
                w.HTML(
                    STYLE
                    + demo_banner((summary or {}).get("source", "data"))
                    + f"<h2>Reporting portal · as of {esc(as_of)}</h2>"
                ),
                w.HBox([self.start, self.end, self.tier]),
                self.tabs,
            ]
        )

    def _get(self, path: str, **params) -> dict | None:
        try:
            return self.client.get(path, **params)
        except AccessDenied:
            return None

    def refresh(self) -> None:
        self.financial.value = self.render_financial()
        self.customer.value = self.render_customer()
        self.system.value = self.render_system()

    def _range(self) -> dict:
        return {
            "from": self.start.value if self.start.value != "-" else None,
            "to": self.end.value if self.end.value != "-" else None,
        }

    def render_financial(self) -> str:
        s = self.summary
        parts = []
        if s:
            parts.append(
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
        by_tier = self.tier.value != ALL
        moves = self._get("/api/finance/movements", by="tier" if by_tier else None, **self._range())
        if moves is None:
            parts.append('<div class="cfx-card">MRR movements: not available for your role.</div>')
        else:
            rows = [r for r in moves["rows"] if not by_tier or r.get("tier") == self.tier.value]
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
                for r in rows
            ]
            title = f"MRR movements ({esc(self.tier.value)})" if by_tier else "MRR movements"
            parts.append(
                f'<div class="cfx-card"><h3>{title}</h3>'
                + table(
                    ["month", "start", "new", "expansion", "reactivation", "contraction", "churn", "end"],
                    cells,
                    set(range(1, 8)),
                )
                + "</div>"
            )
        fc = self._get("/api/finance/forecast")
        if fc:
            uid = self.tier.value if by_tier else "Total"
            pts = [p for p in fc["points"] if p["unique_id"] == uid]
            cells = [
                [
                    esc(p["month"]),
                    usd(p["yhat"]),
                    f"{usd(p['yhat_lo_80'])} – {usd(p['yhat_hi_80'])}",
                    f"{usd(p['yhat_lo_95'])} – {usd(p['yhat_hi_95'])}",
                ]
                for p in pts
            ]
            parts.append(
                f'<div class="cfx-card"><h3>ARR forecast ({esc(uid)})</h3>'
                + table(["month", "forecast", "80% interval", "95% interval"], cells, {1, 2, 3})
                + "</div>"
            )
        ue = self._get("/api/finance/unit-economics")
        if ue and ue["rows"]:
            u = [r for r in ue["rows"] if r.get("ltv") is not None]
            if u:
                u = u[-1]
                parts.append(
                    '<div class="cfx-card"><h3>Unit economics</h3>'
                    + table(
                        ["CAC", "LTV", "LTV : CAC", "CAC payback"],
                        [
                            [
                                usd(u["cac"]),
                                usd(u["ltv"]),
                                f"{u['ltv_to_cac']:.1f}",
                                f"{u['cac_payback_months']:.1f} months",
                            ]
                        ],
                        {0, 1, 2, 3},
                    )
                    + "</div>"
                )
        return "".join(parts) or '<div class="cfx-card">No financial data for your role.</div>'

    def render_customer(self) -> str:
        try:
            rows = self.client.all_health()
        except AccessDenied:
            return '<div class="cfx-card">Customer health is not available for your role.</div>'
        if self.tier.value != ALL:
            rows = [r for r in rows if r.get("tier") == self.tier.value]
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
        return (
            render_gauge(rows, "Health")
            + '<div class="cfx-card"><h3>Health by tier and band</h3>'
            + table(["tier", "accounts", *BANDS, "mean health"], per_tier, {1, 2, 3, 4, 5})
            + "</div>"
            + (f'<div class="cfx-card"><h3>Top at-risk accounts</h3>{top}</div>' if top else "")
        )

    def render_system(self) -> str:
        ops = self._get("/api/ops")
        if ops is None:
            return '<div class="cfx-card">System performance is not available for your role.</div>'
        start, end = self._range()["from"], self._range()["to"]
        months = [
            m for m in ops["monthly"] if (start is None or m["month"] >= start) and (end is None or m["month"] <= end)
        ]
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
        last = months[-1]["month"] if months else None
        services = [
            [
                esc(r["service"]),
                f"{r['uptime_pct']:.3f}%",
                f"{(r.get('p95_latency_ms') or 0):,.0f} ms",
                f"{(r.get('ai_calls') or 0):,.0f}",
            ]
            for r in ops["by_service"]
            if r["month"] == last
        ]
        return (
            '<div class="cfx-card"><h3>Uptime, latency and AI usage</h3>'
            + table(
                ["month", "uptime", "worst service", "p95 latency", "requests", "error rate", "AI calls"],
                cells,
                {1, 2, 3, 4, 5, 6},
            )
            + "</div>"
            + f'<div class="cfx-card"><h3>Services in {esc(last)}</h3>'
            + table(["service", "uptime", "p95 latency", "AI calls"], services, {1, 2, 3})
            + "</div>"
        )
