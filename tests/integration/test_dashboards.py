"""The Voilà dashboards against a real `cfx serve` and `cfx dashboards`, in headless Chromium."""

from __future__ import annotations

import base64
import binascii
import contextlib
import datetime
import os
import re
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from cfxlib.customers.roi import customer_roi
from cfxlib.dashboards.server import FRONTEND_EXTENSIONS
from tests.conftest import CFX, REPO
from tests.integration.test_api import Server, _free_port, token

pytestmark = pytest.mark.xdist_group("pipeline")

CHROMIUM = os.environ.get("CFX_CHROMIUM", "/usr/bin/chromium")
SHOTS = Path(os.environ.get("CFX_TEST_ARTIFACTS", REPO / "test-artifacts")) / "dashboards"


class Dashboards:
    def __init__(self, home, api: str):
        self.home, self.port = home, _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("CFX_")}, "CFX_HOME": str(home)}
        self.log = tempfile.NamedTemporaryFile(prefix="cfx-dash-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(CFX), "dashboards", "--port", str(self.port), "--api", api],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                httpx.get(self.url + "/login", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("dashboards did not start:\n" + Path(self.log.name).read_text())

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="module")
def stack(published, tmp_path_factory):
    import shutil

    home = tmp_path_factory.mktemp("dash") / "home"
    shutil.copytree(published, home, symlinks=True, ignore=shutil.ignore_patterns("events"))
    service = Server(home).start()
    dash = Dashboards(home, service.url)
    yield home, service, dash
    dash.stop()
    service.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def post_nps_today(service, ingest: str, account: str, score: int, tag: str) -> httpx.Response:
    """POST one NPS answer dated today for ``account`` (the real case: newer than the publication)."""
    event = {
        "table": "nps_responses",
        "response_id": f"{tag}-{time.time()}",
        "account_id": account,
        "date": datetime.date.today().isoformat(),
        "score": score,
    }
    return httpx.post(
        service.url + "/api/events", json={"events": [event]}, headers={"Authorization": f"Bearer {ingest}"}
    )


def open_page(browser, url: str):
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    outside: list[str] = []
    page.on(
        "request",
        lambda r: None if r.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:")) else outside.append(r.url),
    )
    response = page.goto(url)
    return page, response, outside


CHART = """sel => { const f = document.querySelector(sel); if (!f) return null;
  const outside = e => !e.closest('.g_legend, .legend, [class^="legend"]');
  return {
    title: (f.querySelector('.mainheading') || {}).textContent || '',
    ticks: [...f.querySelectorAll('.axis')].map(a => [...a.querySelectorAll('.tick text')].map(t => t.textContent))
      .filter(t => t.length),
    axis_labels: [...f.querySelectorAll('.axislabel')].map(t => t.textContent).filter(t => t),
    legend: [...f.querySelectorAll('.legendtext')].map(t => t.textContent),
    dots: [...f.querySelectorAll('.dot')].filter(outside).length,
    bars: [...f.querySelectorAll('rect.bar')].length,
    labels: [...f.querySelectorAll('text.label')].map(t => t.textContent),
    lines: [...f.querySelectorAll('path.line')].filter(outside).map(p => p.getAttribute('d') || ''),
  }; }"""
"""What a bqplot chart shows, read from its DOM: title, tick labels per axis, axis labels, legend,
data points (markers outside the legend), bars, text labels and each line's path."""


def chart(page, css: str) -> dict:
    return page.evaluate(CHART, f".cfx-chart.{css}")


def wait_chart(page, css: str, check, timeout_s: float = 10.0) -> dict:
    """The chart once ``check(chart)`` holds (widget state reaches the page message by message)."""
    deadline = time.time() + timeout_s
    while True:
        seen = chart(page, css)
        if seen and check(seen):
            return seen
        if time.time() > deadline:
            raise AssertionError(f"{css}: {seen}")
        page.wait_for_timeout(100)


def assert_chart(seen: dict, title: str, axes: int = 2) -> None:
    """A chart with its title and ``axes`` axes that carry tick labels and names."""
    assert title in seen["title"], seen
    assert len(seen["ticks"]) == axes and all(len(t) >= 2 for t in seen["ticks"]), seen
    assert len(seen["axis_labels"]) >= 1 or axes == 0, seen


def shoot(page, name: str, selector: str | None = None) -> None:
    """A screenshot into test-artifacts/dashboards/: of one element, or of the whole page (Voilà
    scrolls inside its body, so the viewport is stretched to the content first)."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    if selector:
        page.locator(selector).first.screenshot(path=str(SHOTS / name))
        return
    height = page.evaluate("Math.max(...[...document.querySelectorAll('body *')].map(e => e.scrollHeight))")
    page.set_viewport_size({"width": 1366, "height": min(max(height, 900), 6000)})
    page.wait_for_timeout(500)
    page.screenshot(path=str(SHOTS / name))
    page.set_viewport_size({"width": 1366, "height": 900})


def test_missing_unknown_and_investor_tokens_are_refused(stack, browser):
    home, _, dash = stack
    investor = token(home, "investor")
    for suffix in ("", "?token=not-a-token"):
        page, response, _ = open_page(browser, dash.url + "/voila/render/customer_success.ipynb" + suffix)
        assert response.status == 401 and "A cfx API token is needed" in page.inner_text("body")
        assert page.query_selector(".cfx-health-gauge") is None
        page.close()
    page, response, _ = open_page(browser, dash.url + f"/voila/render/customer_success.ipynb?token={investor}")
    assert response.status == 403 and "may not open the customer_success dashboard" in page.inner_text("body")
    assert page.query_selector(".cfx-health-gauge") is None
    page.close()
    # the investor may open the portal, whose customer data stays closed to the role
    page, response, outside = open_page(browser, dash.url + f"/voila/render/reporting_portal.ipynb?token={investor}")
    assert response.status == 200
    page.wait_for_selector(".lm-TabBar-tab", timeout=60_000)
    page.click(".lm-TabBar-tab >> text=Customer Health")
    assert page.is_visible("text=Customer health is not available for your role")
    assert not outside
    page.close()
    # the server's log names the requests without their tokens, and a refusal is not a traceback
    logged = Path(dash.log.name).read_text(encoding="utf-8", errors="replace")
    assert "customer_success.ipynb" in logged and investor not in logged and "token=***" in logged
    assert "Cannot redirect after headers have been written" not in logged and "Traceback" not in logged


def test_page_views_start_from_preheated_kernels_each_with_its_own_viewer(stack, browser):
    """Voilà keeps kernels preheated (started, imports done) until a viewer asks: each page view
    takes one, and each kernel acts with the token of the viewer it was handed, not another's,
    however the views follow one another."""
    home, _, dash = stack
    investor, analyst = token(home, "investor"), token(home, "analyst")
    for who, role in ((investor, "investor"), (analyst, "analyst"), (investor, "investor")):
        page, response, _ = open_page(browser, dash.url + f"/voila/render/reporting_portal.ipynb?token={who}")
        assert response.status == 200
        page.wait_for_selector(".lm-TabBar-tab", timeout=60_000)
        page.click(".lm-TabBar-tab >> text=Customer Health")
        closed = page.is_visible("text=Customer health is not available for your role")
        assert closed == (role == "investor"), role
        page.close()
    logged = Path(dash.log.name).read_text(encoding="utf-8", errors="replace")
    assert logged.count("Using pre-heated kernel") >= 3 and "for reporting_portal.ipynb" in logged
    assert investor not in logged and analyst not in logged and "Traceback" not in logged


def test_customer_success_live_filters_and_calculator(stack, browser):
    home, service, dash = stack
    SHOTS.mkdir(parents=True, exist_ok=True)
    analyst, ingest = token(home, "analyst"), token(home, "ingest")
    auth = {"Authorization": f"Bearer {analyst}"}
    health = httpx.get(service.url + "/api/customers/health?page_size=1000", headers=auth).json()
    scores = [r["health_score"] for r in health["accounts"]]
    assert health["total"] == len(scores)
    page, response, outside = open_page(browser, dash.url + f"/voila/render/customer_success.ipynb?token={analyst}")
    assert response.status == 200
    page.wait_for_selector(".cfx-health-gauge", timeout=60_000)
    assert f"{sum(scores) / len(scores):.1f}" in page.inner_text(".cfx-health-gauge")
    # the demo publication says so on the page; the session cookie holds a random id, not the token
    assert "Demo data" in page.inner_text(".cfx-header")
    cookies = page.context.cookies()
    assert cookies and all(analyst not in c["value"] and analyst[4:20] not in c["value"] for c in cookies)
    for cookie in cookies:  # tornado's signed value: "2|1:0|10:<time>|<len>:<name>|<len>:<base64 value>|<sig>"
        for part in cookie["value"].split("|"):
            with contextlib.suppress(binascii.Error):
                assert analyst.encode() not in base64.b64decode(part.split(":", 1)[-1] + "==")
    # the page loads the widget manager's JavaScript only, not every JupyterLab extension installed
    loaded = page.evaluate("performance.getEntriesByType('resource').map(e => e.name)")
    extensions = {
        re.search(r"/voila/labextensions/(@[^/]+/[^/]+|[^/@]+)/", u).group(1) for u in loaded if "/labextensions/" in u
    }
    assert extensions == set(FRONTEND_EXTENSIONS), extensions
    assert "Average health" in page.inner_text(".cfx-book-trend") and page.query_selector(".cfx-book-trend svg")
    assert "Enterprise" in page.inner_text(".cfx-churn-distribution")
    # every chart has its title, axes with ticks and names, and the data's points
    mean = sum(scores) / len(scores)
    gauge = wait_chart(page, "cfx-gauge-chart", lambda c: f"{mean:.1f}" in c["labels"])
    assert "Book health" in gauge["title"] and {"red", "yellow", "green", "0", "100"} <= set(gauge["labels"])
    book = httpx.get(service.url + "/api/customers/health-trend", headers=auth).json()
    limits = book["bands"]
    assert {str(int(limits["red"])), str(int(limits["yellow"]))} <= set(gauge["labels"])
    weekly = len(book["points"])
    health_chart = wait_chart(page, "cfx-book-health-chart", lambda c: c["dots"] >= weekly)
    assert_chart(health_chart, "Average health, weekly then live")
    assert health_chart["dots"] in (weekly, weekly + 1)  # the live book: the last week's point or one after it
    assert "score (0-100)" in health_chart["axis_labels"] and "average health" in health_chart["legend"]
    assert f"red up to {limits['red']:g}" in health_chart["legend"]
    bands_chart = chart(page, "cfx-book-bands-chart")
    assert_chart(bands_chart, "Accounts per band")
    assert bands_chart["legend"] == ["red", "yellow", "green"] and bands_chart["dots"] == 3 * health_chart["dots"]
    churn_bins = httpx.get(service.url + "/api/customers/churn-distribution", headers=auth).json()["bins"]
    churn_chart = chart(page, "cfx-churn-chart")
    assert_chart(churn_chart, "3-month churn probability by tier")
    assert churn_chart["legend"] == ["Starter", "Professional", "Enterprise"]
    assert churn_chart["bars"] == 3 * len({(b["low"], b["high"]) for b in churn_bins})
    assert churn_chart["ticks"][0][0] == "0-10%" and "p(churn in 3 months)" in churn_chart["axis_labels"]
    components = chart(page, "cfx-components-chart")
    assert_chart(components, "Health components of")
    assert components["bars"] == 5 and components["ticks"][0] == ["usage", "tickets", "downtime", "NPS", "engagement"]
    assert_chart(chart(page, "cfx-account-history-chart"), "Health, weekly over 90 days then live")
    # ARR at risk by month, from the churn model without hindsight, beside what did churn
    trend = httpx.get(service.url + "/api/customers/at-risk-trend", headers=auth).json()
    assert len(trend["points"]) == 6 and trend["trained_through"] < trend["points"][0]["month"]
    risk_text = page.inner_text(".cfx-risk-trend")
    assert "ARR at risk (churn model)" in risk_text and page.query_selector(".cfx-risk-trend svg")
    for point in trend["points"]:
        assert point["month"] in risk_text
    assert risk_text.count("not known yet") == sum(p["churned_arr"] is None for p in trend["points"]) == 3
    risk_chart = chart(page, "cfx-risk-chart")
    assert_chart(risk_chart, "ARR at risk by month")
    assert risk_chart["bars"] == 6 and risk_chart["ticks"][0] == [p["month"] for p in trend["points"]]
    assert any(t.startswith("$") for t in risk_chart["ticks"][1])
    assert risk_chart["dots"] == sum(p["churned_arr"] is not None for p in trend["points"])
    page.wait_for_selector(".cfx-feed-status:has-text('live')", timeout=30_000)
    at_risk = httpx.get(service.url + "/api/customers/at-risk?limit=10000", headers=auth).json()["rows"]
    table = page.inner_text(".cfx-at-risk")
    assert all(r["account_id"] in table for r in at_risk)
    shoot(page, "customer_success.png")
    for css in ("cfx-health-gauge", "cfx-book-trend", "cfx-risk-chart", "cfx-churn-chart"):
        shoot(page, f"customer_success_{css.removeprefix('cfx-')}.png", f".{css}")
    # filters change the table
    page.select_option(".widget-dropdown:has-text('Tier') select", "Enterprise")
    page.wait_for_function("!document.querySelector('.cfx-at-risk').innerText.includes('Starter')", timeout=10_000)
    shown = [r["account_id"] for r in at_risk if r["account_id"] in page.inner_text(".cfx-at-risk")]
    assert shown and all(next(x for x in at_risk if x["account_id"] == a)["tier"] == "Enterprise" for a in shown)
    page.select_option(".widget-dropdown:has-text('Tier') select", "All")
    # the ROI calculator shows the formula's values
    expected = customer_roi(40.0, 25.0, 500.0, round(at_risk[0]["arr"] / 12, 2))
    roi = page.inner_text(".cfx-roi")
    assert f"{expected.roi_multiple:.1f}x" in roi and f"{expected.payback_months:.1f} months" in roi
    # an event dated today changes the account's row, the gauge and the last-update line live
    account = at_risk[0]["account_id"]
    gauge_before = page.inner_text(".cfx-health-gauge")
    needle_before = chart(page, "cfx-gauge-chart")["lines"][-1]
    # mark the charts' SVG nodes: updated in place, they are the same nodes after the event
    page.evaluate(
        "for (const c of ['cfx-gauge-chart', 'cfx-book-health-chart']) document.querySelector('.' + c + ' svg').cfxMark = c"
    )
    trend_before = chart(page, "cfx-book-health-chart")
    history_before = chart(page, "cfx-account-history-chart")
    r = post_nps_today(service, ingest, account, 0, "dash")
    assert r.status_code == 202 and r.json()["health_updates"] == 1
    page.wait_for_selector(f".cfx-last-update:has-text('{account}')", timeout=5_000)
    new = httpx.get(service.url + f"/api/customers/{account}", headers=auth).json()["health"]["health_score"]
    assert "1 live update · last:" in page.inner_text(".cfx-last-update")
    assert f"{new:.1f}" in page.inner_text(".cfx-last-update")
    assert re.search(rf"{account}.*?{new:.0f} \(", page.inner_text(".cfx-at-risk"), re.S)
    # one POST of detractor answers for the next 30 accounts at risk: their updates reach the
    # page back to back, and move the book's mean by more than the page's one decimal
    others, today = [r["account_id"] for r in at_risk[1:31]], datetime.date.today().isoformat()
    events = [
        {"table": "nps_responses", "response_id": f"dash-many-{k}", "account_id": a, "date": today, "score": 0}
        for k, a in enumerate(others)
    ]
    r = httpx.post(service.url + "/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 202, r.text
    count = 1 + r.json()["health_updates"]
    page.wait_for_selector(f".cfx-last-update:has-text('{count} live updates')", timeout=10_000)
    assert page.inner_text(".cfx-health-gauge") != gauge_before
    # the events moved the gauge's needle and the book's trend, in place (same page, same figures)
    live_mean = sum(
        r["health_score"]
        for r in httpx.get(service.url + "/api/customers/health?page_size=1000", headers=auth).json()["accounts"]
    ) / len(scores)
    gauge = wait_chart(page, "cfx-gauge-chart", lambda c: c["lines"][-1] != needle_before)
    assert f"{live_mean:.1f}" in gauge["labels"] and f"{live_mean:.1f}" in page.inner_text(".cfx-health-gauge")
    wait_chart(page, "cfx-book-health-chart", lambda c: c["lines"] != trend_before["lines"])
    # the selected account (the first at risk) is the one that changed: its history has today's point
    history = wait_chart(page, "cfx-account-history-chart", lambda c: c["lines"] != history_before["lines"])
    assert history["dots"] >= history_before["dots"]
    assert page.evaluate(
        "['cfx-gauge-chart', 'cfx-book-health-chart'].every(c => document.querySelector('.' + c + ' svg').cfxMark === c)"
    ), "a chart was drawn anew instead of updated in place"
    # the feed's status stays in view while the page scrolls down to the pilots
    page.locator(".cfx-pilots").scroll_into_view_if_needed()
    box = page.locator(".cfx-feed-status").bounding_box()
    assert box is not None and 0 <= box["y"] < 900 and page.locator(".cfx-feed-status").is_visible()
    shoot(page, "customer_success_after_event.png")
    shoot(page, "customer_success_gauge_after_event.png", ".cfx-health-gauge")
    assert not outside, outside
    page.close()


def test_interventions_view_takes_live_ctas_and_saves_a_note(stack, browser):
    """A detractor answer dated today opens a call to action that appears in the queue without a
    reload; the form moves it to in progress with a note; markup in the note is shown literally."""
    home, service, dash = stack
    SHOTS.mkdir(parents=True, exist_ok=True)
    analyst, ingest = token(home, "analyst"), token(home, "ingest")
    auth = {"Authorization": f"Bearer {analyst}"}
    page, response, outside = open_page(browser, dash.url + f"/voila/render/customer_success.ipynb?token={analyst}")
    assert response.status == 200
    page.wait_for_selector(".cfx-interventions", timeout=60_000)
    page.wait_for_selector(".cfx-feed-status:has-text('live')", timeout=30_000)
    taken = {
        c["account_id"] for c in httpx.get(service.url + "/api/interventions", headers=auth).json()["interventions"]
    }
    health = httpx.get(service.url + "/api/customers/health?page_size=1000", headers=auth).json()["accounts"]
    account = next(a["account_id"] for a in health if a["account_id"] not in taken)
    assert account not in page.inner_text(".cfx-interventions")
    r = post_nps_today(service, ingest, account, 0, "dash-cta")
    assert r.status_code == 202
    page.wait_for_selector(f".cfx-interventions:has-text('{account}')", timeout=10_000)
    # an answer of 0 may fire other rules too (a health drop): the detractor's CTA is the one to work
    (cta,) = httpx.get(service.url + f"/api/interventions?account={account}&rule=detractor", headers=auth).json()[
        "interventions"
    ]
    assert cta["rule"] == "detractor" and cta["status"] == "open"
    label = f"{cta['account_name'] or account} · detractor · due {cta['due_date']}"
    page.select_option(".cfx-cta-pick select", label=label)
    page.select_option(".cfx-cta-status select", label="in_progress")
    hostile = '<img src=x onerror=alert(1)> called "Plant 7" & agreed a date'
    page.fill(".cfx-cta-note textarea", hostile)
    page.click(".cfx-cta-save button, button.cfx-cta-save")
    page.wait_for_selector(".cfx-cta-message:has-text('saved')", timeout=10_000)
    stored = httpx.get(service.url + f"/api/interventions/{cta['id']}", headers=auth).json()
    assert stored["status"] == "in_progress" and stored["notes"][-1]["text"] == hostile
    page.wait_for_selector(f".cfx-interventions:has-text('{account}')", timeout=5_000)
    assert hostile in page.inner_text(".cfx-interventions")
    assert page.query_selector(".cfx-interventions img") is None
    page.screenshot(path=str(SHOTS / "customer_success_interventions.png"), full_page=True)
    assert not outside, outside
    page.close()


def test_reporting_portal_tabs_agree_with_the_publication(stack, browser):
    home, service, dash = stack
    import json

    executive = token(home, "executive")
    page, response, outside = open_page(browser, dash.url + f"/voila/render/reporting_portal.ipynb?token={executive}")
    assert response.status == 200
    page.wait_for_selector(".lm-TabBar-tab", timeout=60_000)
    titles = page.eval_on_selector_all(".lm-TabBar-tabLabel", "els => els.map(e => e.textContent)")
    assert titles == ["Financial", "Customer Health", "System Performance"]
    summary = json.loads((home / "published" / "finance.json").read_text())["summary"]
    arr = f"${summary['arr'] / 1e6:,.2f}M" if summary["arr"] >= 1e6 else f"${summary['arr']:,.0f}"
    assert (
        arr in page.inner_text("body") and arr in (home / "published" / "site" / "reports" / "index.html").read_text()
    )
    auth = {"Authorization": f"Bearer {executive}"}
    months = [r["month"] for r in httpx.get(service.url + "/api/finance/mrr", headers=auth).json()["rows"]]
    shown = months[-12:]
    # Financial: ARR with its forecast and intervals, MRR by tier, the bridge, all following the filters
    forecast = wait_chart(page, "cfx-forecast-chart", lambda c: c["dots"] > 0)
    assert_chart(forecast, "ARR and its forecast · Total")
    points = [
        p
        for p in httpx.get(service.url + "/api/finance/forecast", headers=auth).json()["points"]
        if p["unique_id"] == "Total"
    ]
    assert forecast["dots"] == len(shown) + 1 + len(points)  # actuals, then the forecast from the last actual
    assert forecast["legend"] == ["ARR (actual)", "ARR (forecast)"] and "ARR (USD)" in forecast["axis_labels"]
    assert any(t.startswith("$") and t.endswith("M") for t in forecast["ticks"][1])
    mrr_chart = chart(page, "cfx-mrr-chart")
    assert_chart(mrr_chart, "MRR by tier")
    assert mrr_chart["legend"] == ["Starter", "Professional", "Enterprise"] and mrr_chart["dots"] == 3 * len(shown)
    bridge = chart(page, "cfx-bridge-chart")
    assert_chart(bridge, f"MRR bridge · Total · {shown[0]} to {shown[-1]}")
    assert bridge["ticks"][0] == ["start", "new", "expansion", "reactivation", "contraction", "churn", "end"]
    shoot(page, "reporting_portal_financial.png")
    for css in ("cfx-forecast-chart", "cfx-mrr-chart", "cfx-bridge-chart"):
        shoot(page, f"reporting_portal_{css.removeprefix('cfx-')}.png", f".{css}")
    page.select_option(".widget-dropdown:has-text('Tier') select", "Enterprise")
    forecast = wait_chart(page, "cfx-forecast-chart", lambda c: "Enterprise" in c["title"])
    mrr_chart = wait_chart(page, "cfx-mrr-chart", lambda c: c["legend"] == ["Enterprise"])
    assert mrr_chart["dots"] == len(shown)
    wait_chart(page, "cfx-bridge-chart", lambda c: "Enterprise" in c["title"])
    page.select_option(".widget-dropdown:has-text('From') select", months[-6])
    mrr_chart = wait_chart(page, "cfx-mrr-chart", lambda c: c["dots"] == 6)
    wait_chart(page, "cfx-bridge-chart", lambda c: f"{months[-6]} to {months[-1]}" in c["title"])
    shoot(page, "reporting_portal_financial_enterprise_6_months.png", ".cfx-bridge-chart")
    # Customer Health: gauge, tier and band, NPS and active users by month, following the filters
    page.click(".lm-TabBar-tab >> text=Customer Health")
    nps = wait_chart(page, "cfx-nps-chart", lambda c: c["dots"] > 0)
    assert_chart(nps, "NPS by month")
    assert nps["legend"] == ["NPS 0", "Total", "Enterprise"] and nps["dots"] <= 2 * 6
    users = chart(page, "cfx-engagement-chart")
    assert_chart(users, "Daily active users")
    assert users["dots"] == 2 * 6 and "users" in users["axis_labels"]
    assert chart(page, "cfx-tier-band-chart")["ticks"][0] == ["Enterprise"]
    page.select_option(".widget-dropdown:has-text('Tier') select", "All")
    nps = wait_chart(page, "cfx-nps-chart", lambda c: len(c["legend"]) == 5)
    assert_chart(chart(page, "cfx-tier-band-chart"), "Accounts by tier and health band")
    shoot(page, "reporting_portal_customer_health.png")
    # System Performance: uptime per service against the target, latency, AI calls
    page.click(".lm-TabBar-tab >> text=System Performance")
    assert page.is_visible("text=Uptime, latency and AI usage")
    uptime = wait_chart(page, "cfx-uptime-chart", lambda c: c["dots"] > 0)
    assert_chart(uptime, "Uptime per service")
    ops = httpx.get(service.url + "/api/ops", headers=auth).json()
    services = sorted({r["service"] for r in ops["by_service"]})
    assert uptime["legend"] == ["99.5% target", *services] and uptime["dots"] == 6 * len(services)
    assert_chart(chart(page, "cfx-latency-chart"), "p95 latency per service")
    ai = chart(page, "cfx-ai-chart")
    assert_chart(ai, "AI calls per month")
    assert ai["bars"] == 6 and ai["ticks"][0] == months[-6:]
    page.select_option(".widget-dropdown:has-text('From') select", months[-3])
    wait_chart(page, "cfx-ai-chart", lambda c: c["bars"] == 3)
    shoot(page, "reporting_portal_system.png")
    assert not outside, outside
    page.close()


def test_pilot_form_refuses_bad_input_with_field_errors_and_lists_a_good_pilot(stack, browser):
    home, service, dash = stack
    analyst = token(home, "analyst")
    page, response, outside = open_page(browser, dash.url + f"/voila/render/customer_success.ipynb?token={analyst}")
    page.wait_for_selector(".cfx-pilots", timeout=60_000)

    def fill(label: str, value: str) -> None:
        page.fill(f".widget-text:has-text('{label}') input, .widget-textarea:has-text('{label}') textarea", value)

    fill("Company", "Acme <Plant> & Co")
    fill("Contact email", "not-an-email")
    fill("Success criteria", "Cut unplanned downtime by 20% in 60 days")
    page.click("button:has-text('Record pilot')")
    page.wait_for_selector(".cfx-errors", timeout=10_000)
    assert "contact_email" in page.inner_text(".cfx-errors")
    fill("Contact email", "maria@acme.example")
    page.click("button:has-text('Record pilot')")
    page.wait_for_selector(".cfx-pilots:has-text('Acme <Plant> & Co')", timeout=10_000)
    assert "Recorded PILOT-" in page.inner_text(".cfx-pilot-message")
    stored = httpx.get(service.url + "/api/pilots", headers={"Authorization": f"Bearer {analyst}"}).json()["pilots"]
    assert stored[-1]["company"] == "Acme <Plant> & Co" and stored[-1]["contact_email"] == "maria@acme.example"
    page.screenshot(path=str(SHOTS / "pilots.png"), full_page=True)
    assert not outside
    page.close()


def test_feed_reconnects_after_the_service_restarts(stack, browser):
    """The service goes down: the page says so; it comes back on the same address: the page is
    live again by itself and keeps taking updates."""
    home, service, dash = stack
    analyst, ingest = token(home, "analyst"), token(home, "ingest")
    page, _, outside = open_page(browser, dash.url + f"/voila/render/customer_success.ipynb?token={analyst}")
    page.wait_for_selector(".cfx-feed-status:has-text('live')", timeout=60_000)
    service.stop()
    page.wait_for_selector(
        ".cfx-feed-status:has-text('offline'), .cfx-feed-status:has-text('connecting')", timeout=15_000
    )
    service.start()  # same port, same home
    page.wait_for_selector(".cfx-feed-status:has-text('live')", timeout=60_000)
    account = httpx.get(
        service.url + "/api/customers/at-risk?limit=1", headers={"Authorization": f"Bearer {analyst}"}
    ).json()["rows"][0]["account_id"]
    r = post_nps_today(service, ingest, account, 10, "dash-reconnect")
    assert r.status_code == 202 and r.json()["health_updates"] == 1
    page.wait_for_selector(f".cfx-last-update:has-text('{account}')", timeout=10_000)
    assert not outside
    page.close()


def test_an_open_page_takes_a_new_publication(stack, browser):
    """A new run is published while the page is open: the page takes its snapshot and shows the
    new run and what it decides (header, ARR at risk by month) without a reload."""
    import json
    import shutil

    home, _service, dash = stack
    analyst = token(home, "analyst")
    page, _, outside = open_page(browser, dash.url + f"/voila/render/customer_success.ipynb?token={analyst}")
    page.wait_for_selector(".cfx-feed-status:has-text('live')", timeout=60_000)
    old_run = json.loads((home / "published" / "run.json").read_text())["run_id"]
    assert old_run in page.inner_text(".cfx-header")
    # publish a new run: a copy of the current one under a new id, with a changed at-risk trend
    current = (home / "published").resolve().parent
    new_run = current.name + "-next"
    shutil.copytree(current, current.with_name(new_run), symlinks=True)
    pub = current.with_name(new_run) / "publish"
    run = json.loads((pub / "run.json").read_text())
    run["run_id"] = new_run
    (pub / "run.json").write_text(json.dumps(run))
    customers = json.loads((pub / "customer_success.json").read_text())
    customers["at_risk_trend"]["note"] = "re-scored by the next run"
    (pub / "customer_success.json").write_text(json.dumps(customers))
    link = home / "published"
    tmp_link = home / "published.new"
    os.symlink(os.path.relpath(pub, home), tmp_link)
    os.replace(tmp_link, link)  # atomically, as the pipeline publishes
    page.wait_for_selector(f".cfx-header:has-text('{new_run}')", timeout=15_000)
    # the header is written last: the trend already shows the new publication (widget state
    # reaches the browser message by message, so allow it a moment to arrive)
    page.wait_for_selector(".cfx-risk-trend:has-text('re-scored by the next run')", timeout=5_000)
    assert page.is_visible(".cfx-feed-status:has-text('live')")
    page.screenshot(path=str(SHOTS / "customer_success_new_publication.png"), full_page=True)
    assert not outside
    page.close()
