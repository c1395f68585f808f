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
    # ARR at risk by month, from the churn model without hindsight, beside what did churn
    trend = httpx.get(service.url + "/api/customers/at-risk-trend", headers=auth).json()
    assert len(trend["points"]) == 6 and trend["trained_through"] < trend["points"][0]["month"]
    risk_text = page.inner_text(".cfx-risk-trend")
    assert "ARR at risk (churn model)" in risk_text and page.query_selector(".cfx-risk-trend svg")
    for point in trend["points"]:
        assert point["month"] in risk_text
    assert risk_text.count("not known yet") == sum(p["churned_arr"] is None for p in trend["points"]) == 3
    page.wait_for_selector(".cfx-feed-status:has-text('live')", timeout=30_000)
    at_risk = httpx.get(service.url + "/api/customers/at-risk?limit=10000", headers=auth).json()["rows"]
    table = page.inner_text(".cfx-at-risk")
    assert all(r["account_id"] in table for r in at_risk)
    page.screenshot(path=str(SHOTS / "customer_success.png"), full_page=True)
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
    r = post_nps_today(service, ingest, account, 0, "dash")
    assert r.status_code == 202 and r.json()["health_updates"] == 1
    page.wait_for_selector(f".cfx-last-update:has-text('{account}')", timeout=5_000)
    new = httpx.get(service.url + f"/api/customers/{account}", headers=auth).json()["health"]["health_score"]
    assert f"{new:.1f}" in page.inner_text(".cfx-last-update")
    assert re.search(rf"{account}.*?{new:.0f} \(", page.inner_text(".cfx-at-risk"), re.S)
    assert page.inner_text(".cfx-health-gauge") != gauge_before
    page.screenshot(path=str(SHOTS / "customer_success_after_event.png"), full_page=True)
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
    page.screenshot(path=str(SHOTS / "reporting_portal_financial.png"), full_page=True)
    page.click(".lm-TabBar-tab >> text=System Performance")
    assert page.is_visible("text=Uptime, latency and AI usage")
    page.screenshot(path=str(SHOTS / "reporting_portal_system.png"), full_page=True)
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
