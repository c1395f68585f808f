"""Dashboard pieces without a browser: rendering, filters, the ROI formula, the offline template."""

from __future__ import annotations

import pytest

from cfxlib.customers.roi import customer_roi, downtime_value_usd, roi_multiple
from cfxlib.dashboards.server import dashboard_of, make_template
from cfxlib.dashboards.widgets import filter_rows, render_at_risk, render_gauge

ROWS = [
    {"account_id": "A", "tier": "Starter", "health_score": 40.0, "band": "red"},
    {"account_id": "B", "tier": "Enterprise", "health_score": 80.0, "band": "green"},
    {"account_id": "C", "tier": "Enterprise", "health_score": 60.0, "band": "yellow"},
]


def test_gauge_shows_the_average_and_band_shares():
    text = render_gauge(ROWS)
    assert "60.0" in text and "red 1 (33%)" in text and "green 1 (33%)" in text and "of 3 accounts" in text


def test_at_risk_table_escapes_values_and_uses_live_scores():
    rows = [
        {
            "account_id": '<img src=x onerror="alert(1)">',
            "tier": "Starter",
            "arr": 1200.0,
            "health_score": 40.0,
            "band": "red",
            "p_churn_3m": 0.5,
            "arr_at_risk": 600.0,
            "reasons": ["<b>x</b>"],
            "action": "call",
            "owner": "CSM",
            "due_days": 7,
        }
    ]
    html = render_at_risk(rows, {'<img src=x onerror="alert(1)">': {"health_score": 33.0, "band": "red"}})
    assert "<img" not in html and "&lt;img src=x" in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert "33 (red)" in html


def test_filters_by_tier_band_and_owner_with_live_bands():
    rows = [dict(r, owner="CSM" if r["account_id"] != "C" else "AE") for r in ROWS]
    live = {"B": {"band": "yellow"}}
    assert [r["account_id"] for r in filter_rows(rows, live, "Enterprise", "All", "All")] == ["B", "C"]
    assert [r["account_id"] for r in filter_rows(rows, live, "All", "yellow", "All")] == ["B", "C"]
    assert [r["account_id"] for r in filter_rows(rows, live, "All", "All", "AE")] == ["C"]


def test_roi_is_the_kpi_formula():
    r = customer_roi(40, 25, 500, 1000)
    assert r.value_per_month_usd == downtime_value_usd(15, 500) == 7500
    assert r.roi_multiple == roi_multiple(7500, 1000) == 7.5
    assert r.payback_months == pytest.approx(12 * 1000 / 7500)
    assert customer_roi(10, 10, 500, 1000).payback_months is None
    with pytest.raises(ValueError, match="downtime hours must be a number >= 0"):
        customer_roi(10, -1, 500, 1000)


def test_offline_template_has_no_cdn_link(tmp_path):
    share = make_template(tmp_path)
    index = (share / "voila" / "templates" / "cfx" / "index.html.j2").read_text()
    assert "https://" not in index.split("{#")[0] or "cdn.jsdelivr" not in index
    assert "cdn.jsdelivr.net" not in index and "extends" in index


def test_which_dashboard_a_path_opens():
    assert dashboard_of("/voila/render/customer_success.ipynb") == "customer_success"
    assert dashboard_of("/voila/render/reporting_portal.ipynb") == "reporting_portal"
    assert dashboard_of("/voila/static/main.js") is None


def test_risk_trend_shows_expected_and_realised_churn():
    from cfxlib.dashboards.widgets import render_risk_trend

    points = [
        {
            "month": "2026-05",
            "accounts": 10,
            "arr": 1_000_000.0,
            "arr_at_risk": 40_000.0,
            "expected_churned_accounts": 0.4,
            "churned_arr": 35_000.0,
        },
        {
            "month": "2026-06",
            "accounts": 11,
            "arr": 1_100_000.0,
            "arr_at_risk": 55_000.0,
            "expected_churned_accounts": 0.6,
            "churned_arr": None,
        },
    ]
    html = render_risk_trend({"points": points, "note": "one <model>", "trained_through": "2026-02"})
    assert "$40,000 in 2026-05 → $55,000 in 2026-06" in html
    assert "$35,000" in html and "not known yet" in html and "5.0%" in html
    assert "one &lt;model&gt;" in html
    assert "not enough history" in render_risk_trend({"points": points[:1]})


def test_a_dashboard_says_when_the_service_is_not_reachable():
    import socket

    from cfxlib.dashboards.client import ServiceClient
    from cfxlib.dashboards.portal import ReportingPortal
    from cfxlib.dashboards.widgets import CustomerSuccess, Unavailable

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once the socket closes
    client = ServiceClient(f"http://127.0.0.1:{port}", "cfx_token")
    for made in (CustomerSuccess.open(client), ReportingPortal.open(client, 1)):
        assert isinstance(made, Unavailable) and made.start_live() is None
        assert f"127.0.0.1:{port}" in made.view.value and "cfx serve" in made.view.value
        assert "cfx-unavailable" in made.view._dom_classes


def test_the_risk_trend_names_the_current_figure_beside_its_own():
    from cfxlib.dashboards.widgets import render_risk_trend

    trend = {
        "trained_through": "2025-06",
        "note": "scored without hindsight",
        "current_arr_at_risk": 1_150_000.0,
        "points": [
            {"month": "2025-07", "arr": 1e7, "arr_at_risk": 1.1e6, "churned_arr": None},
            {"month": "2025-08", "arr": 1e7, "arr_at_risk": 1.2e6, "churned_arr": None},
        ],
    }
    html = render_risk_trend(trend)
    assert "$1.15M" in html and "$1.20M" in html and "trained on snapshots up to 2025-06 and their outcomes" in html


def test_feed_listener_hands_over_messages_already_received_together():
    """A real websocket server sends 60 updates back to back, then one more 0.3 s later: the
    listener hands the first 60 over in one or a few lists (the page redraws once for them), all
    in order, and the late one apart, and says it is live."""
    import asyncio
    import json

    import websockets

    from cfxlib.dashboards.client import FeedListener, ServiceClient

    async def feed(ws):
        await ws.send(json.dumps({"type": "snapshot", "accounts": []}))
        for k in range(60):
            await ws.send(json.dumps({"type": "update", "account_id": f"A{k}"}))
        await asyncio.sleep(0.3)
        await ws.send(json.dumps({"type": "update", "account_id": "late"}))
        await ws.send(json.dumps({"type": "noise"}))  # an unknown type is not handed over
        await ws.wait_closed()

    async def main():
        batches, states = [], []
        async with websockets.serve(feed, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            listener = FeedListener(ServiceClient(f"http://127.0.0.1:{port}", "t"), batches.append, states.append)
            task = asyncio.get_running_loop().create_task(listener.run())
            while sum(len(b) for b in batches) < 62:
                await asyncio.sleep(0.05)
            task.cancel()
        return batches, states

    batches, states = asyncio.run(asyncio.wait_for(main(), 20))
    taken = [m.get("account_id", m["type"]) for b in batches for m in b]
    assert taken == ["snapshot", *(f"A{k}" for k in range(60)), "late"]
    assert len(batches) <= 4 and batches[-1] == [{"type": "update", "account_id": "late"}]
    assert states[:2] == ["connecting", "live"]


def test_a_preheated_kernel_waits_for_its_viewer_then_reads_the_token(monkeypatch):
    """A real WebSocket server stands in for Voilà's /voila/query/<kernel id> socket: the kernel
    asks with its own id and takes the request's variables (the viewer's token) from it; outside
    a preheated kernel nothing is asked."""
    import json
    import threading

    from websockets.sync.server import serve

    from cfxlib.dashboards.client import ServiceClient, wait_for_viewer

    asked: list[str] = []

    def handler(ws):
        asked.append(ws.request.path)
        ws.send(json.dumps({"QUERY_STRING": "token=cfx_viewer&x=1", "SERVER_NAME": "127.0.0.1"}))

    with serve(handler, "127.0.0.1", 0) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        port = server.socket.getsockname()[1]
        for key in ("VOILA_WS_BASE_URL", "QUERY_STRING"):
            monkeypatch.delenv(key, raising=False)
        monkeypatch.setenv("VOILA_PREHEAT", "False")
        wait_for_viewer()
        assert asked == [] and "QUERY_STRING" not in __import__("os").environ
        monkeypatch.setenv("VOILA_PREHEAT", "True")
        monkeypatch.setenv("VOILA_APP_IP", "127.0.0.1")
        monkeypatch.setenv("VOILA_APP_PORT", str(port))
        monkeypatch.setenv("VOILA_SERVER_URL", "/")
        monkeypatch.setenv("VOILA_KERNEL_ID", "k-123")
        monkeypatch.setattr("cfxlib.dashboards.client._viewer_received", False)
        client = ServiceClient.from_environment()
        again = ServiceClient.from_environment()  # the kernel's viewer is known: not asked twice
        server.shutdown()
    assert asked == ["/voila/query/k-123"]
    assert client.token == again.token == "cfx_viewer" and client.http.headers["Authorization"] == "Bearer cfx_viewer"


def test_the_kernel_limit_does_not_count_kernels_waiting_in_the_pool():
    import asyncio

    from cfxlib.dashboards.server import viewing_kernels

    class Manager:  # the two things viewing_kernels reads of Voilà's kernel manager
        def __init__(self, ids, pools):
            self._ids, self._pools = ids, pools

        def list_kernel_ids(self):
            return list(self._ids)

    async def scenario():
        ready = asyncio.get_running_loop().create_future()
        ready.set_result({"kernel_id": "p1"})
        starting = asyncio.get_running_loop().create_future()  # still being preheated: counted
        assert viewing_kernels(Manager(["v1", "v2", "p1", "p2"], {"cs.ipynb": [ready, starting]})) == 3
        assert viewing_kernels(Manager(["v1"], {})) == 1
        assert viewing_kernels(Manager([], {"cs.ipynb": [ready]})) == 0
        starting.cancel()

    asyncio.run(scenario())


def test_the_request_socket_refuses_other_machines():
    """Voilà's request socket hands a viewer's token to whoever names the kernel: only loopback
    connections may."""
    from types import SimpleNamespace

    from voila.request_info_handler import RequestInfoSocketHandler

    from cfxlib.dashboards.server import loopback_only_request_info

    loopback_only_request_info()
    loopback_only_request_info()  # twice: still one guard
    closed, waiters = [], RequestInfoSocketHandler._waiters

    def viewer(ip):  # what open() uses of a tornado WebSocketHandler
        return SimpleNamespace(request=SimpleNamespace(remote_ip=ip), close=lambda **kw: closed.append(kw), _cache={})

    far = viewer("10.1.2.3")
    RequestInfoSocketHandler.open(far, "k-far")
    assert closed and closed[0]["code"] == 1008 and "k-far" not in waiters
    near = viewer("127.0.0.1")
    RequestInfoSocketHandler.open(near, "k-near")
    assert waiters.pop("k-near") is near and len(closed) == 1


def test_a_taken_preheated_kernel_is_replaced_at_once_not_once_it_is_ready():
    """Voilà's own order refills the pool only after the taken kernel is ready: until then a
    second viewer finds the pool empty and the next kernel's start waits behind the first's."""
    import asyncio
    import logging
    from types import SimpleNamespace

    import voila.app
    from jupyter_server.services.kernels.kernelmanager import AsyncMappingKernelManager

    from cfxlib.dashboards.server import refill_when_taken

    voila_factory = voila.app.voila_kernel_manager_factory
    refill_when_taken()
    refill_when_taken()  # twice: still one wrapper
    try:
        factory = voila.app.voila_kernel_manager_factory
        manager_class = factory(AsyncMappingKernelManager, True, 1)
        assert factory(AsyncMappingKernelManager, False, 1) is not manager_class  # no pool: Voilà's class
    finally:
        voila.app.voila_kernel_manager_factory = voila_factory

    async def scenario():
        manager = manager_class.__new__(manager_class)  # Voilà's get_rendered_notebook, no kernels started
        manager.log = logging.getLogger("voila-test")
        loop = asyncio.get_running_loop()
        taken = loop.create_future()  # the pool's kernel, still being preheated
        manager._pools = {"cs.ipynb": [taken]}
        refills = []

        def fill_if_needed(delay=None, notebook_name=None, extra_kernel_env_variables=None, **kw):
            pool = manager._pools[notebook_name]
            if not pool:  # Voilà's fill_if_needed starts kernels until the pool is full (size 1)
                refills.append(loop.create_future())
                pool.append(refills[-1])

        manager.fill_if_needed = fill_if_needed
        viewer = asyncio.create_task(manager.get_rendered_notebook(notebook_name="cs.ipynb"))
        await asyncio.sleep(0)
        assert not taken.done() and len(refills) == 1  # replaced while the taken kernel still starts
        assert manager._pools["cs.ipynb"] == refills  # a second viewer would find a kernel
        renderer = SimpleNamespace(stop_generator=False, rendered_cache=["<div>"])
        taken.set_result({"renderer": renderer, "task": "render", "kernel_id": "k1"})
        assert await viewer == ("render", ["<div>"], "k1")
        assert len(refills) == 1 and renderer.stop_generator  # Voilà's own refill found the pool full
        refills[0].cancel()

    asyncio.run(scenario())
