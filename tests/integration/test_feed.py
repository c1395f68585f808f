"""The live feed under stress and the service across a publication switch, with real servers
and clients: a client that stops reading is cut off without holding up others; the fast path
is what `cfx serve` runs; the portable path works under another ASGI server; a new
publication is served without a restart or a failed request."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import shutil
import socket
import threading
import time

import httpx
import pytest
import websockets

from cfxlib.api.app import PUBLISH_EVERY, create_app, server_config
from cfxlib.core.home import Home
from cfxlib.publish.pipeline import _switch
from tests.integration.test_api import Server, _free_port, token

pytestmark = pytest.mark.xdist_group("pipeline")


@pytest.fixture
def own_home(published, tmp_path):
    """A private copy of the published home, so switching and posting here disturbs no other test."""
    home = tmp_path / "home"
    shutil.copytree(published, home, symlinks=True, ignore=shutil.ignore_patterns("events"))
    return home


def _accounts(home) -> list[str]:
    return [r["account_id"] for r in json.loads((home / "published" / "customer_success.json").read_text())["at_risk"]]


def _nps(n: int, accounts: list[str], prefix: str) -> list[dict]:
    return [
        {
            "table": "nps_responses",
            "response_id": f"{prefix}-{i}",
            "account_id": accounts[i % len(accounts)],
            "date": "2025-12-31",
            "score": i % 11,
        }
        for i in range(n)
    ]


def _usage_flips(n: int, accounts: list[str]) -> list[dict]:
    """Usage rows that rewrite one day per account: 0 active users in the first part the service
    scores (PUBLISH_EVERY events), 40 in the second, and so on, so each part changes the score of
    every account it names (a part sends one update per changed account)."""
    return [
        {
            "table": "usage_daily",
            "account_id": accounts[i % len(accounts)],
            "date": "2025-12-31",
            "active_users": 40 * ((i // PUBLISH_EVERY) % 2),
            "work_orders_created": 0,
            "work_orders_completed": 0,
            "assets_monitored": 1,
            "ai_requests": 0,
        }
        for i in range(n)
    ]


def _stalled_client(port: int, tok: str) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws/customer-health?token={tok} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def test_stalled_client_is_cut_off_and_others_get_everything(own_home):
    """A client that reads nothing at all is told and disconnected after feed_stall_s; a reading
    client gets every account's every change, or its newest state marked with how many earlier
    states it replaced (conflated: N), and is never cut."""
    srv = Server(own_home, env={"CFX_SERVICE__FEED_BUFFER_BYTES": "1000000", "CFX_SERVICE__FEED_STALL_S": "3"}).start()
    try:
        analyst, ingest = token(own_home, "analyst"), token(own_home, "ingest")
        accounts = [
            a["account_id"]
            for a in httpx.get(
                srv.url + "/api/customers/health?page_size=1000", headers={"Authorization": f"Bearer {analyst}"}
            ).json()["accounts"]
        ]
        stalled = _stalled_client(srv.port, analyst)

        async def scenario():
            reported = 0
            async with websockets.connect(
                f"ws://127.0.0.1:{srv.port}/ws/customer-health?token={analyst}", max_size=2**24
            ) as ws:
                assert json.loads(await ws.recv())["type"] == "snapshot"
                counts = {"update": 0, "bytes": 0, "states": 0}

                async def read():
                    async for raw in ws:
                        counts["bytes"] += len(raw)
                        message = json.loads(raw)
                        kind = message["type"]
                        counts[kind] = counts.get(kind, 0) + 1
                        if kind == "update":
                            counts["states"] += 1 + message.get("conflated", 0)

                reader = asyncio.create_task(read())
                async with httpx.AsyncClient(timeout=60) as client:
                    for batch in range(36):
                        r = await client.post(
                            srv.url + "/api/events",
                            json={"events": _usage_flips(1000, accounts[batch % 2 :])},
                            headers={"Authorization": f"Bearer {ingest}"},
                        )
                        assert r.status_code == 202, r.text
                        reported += r.json()["health_updates"]
                        await asyncio.sleep(0.2)
                deadline = time.time() + 30
                while counts["states"] < reported and time.time() < deadline and not reader.done():
                    await asyncio.sleep(0.1)
                reader.cancel()
            return counts, reported

        counts, reported = asyncio.run(scenario())
        # the reading client lost nothing: every change arrived, or was conflated into a newer state
        assert reported > 5_000 and counts["states"] == reported
        assert "error" not in counts
        # the stalled client was disconnected: told (after what had been buffered) when it reads in
        # time, its connection aborted otherwise (it read nothing, so the message may never reach it)
        stalled.settimeout(60)
        data = b""
        while b"read nothing for 3 s" not in data:
            try:
                chunk = stalled.recv(1 << 20)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                break
            data += chunk
        # kernel buffers (a few MB), the bound and one burst, not all the updates
        assert counts["bytes"] > 5_000_000 and len(data) < 0.6 * counts["bytes"]
        stalled.close()
        assert httpx.get(srv.url + "/healthz").status_code == 200
    finally:
        srv.stop()


def test_cfx_serve_writes_frames_directly(own_home):
    """The configuration `cfx serve` uses (server_config) takes the direct-write path."""
    import uvicorn

    app = create_app(Home(own_home))
    port = _free_port()
    server = uvicorn.Server(server_config(app, "127.0.0.1", port))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 30
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        analyst = token(own_home, "analyst")

        async def connect():
            async with websockets.connect(f"ws://127.0.0.1:{port}/ws/customer-health?token={analyst}") as ws:
                await ws.recv()
                return [c.direct for c in app.state.service.feed.clients]

        assert asyncio.run(connect()) == [True]
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_portable_path_under_another_asgi_server(own_home):
    """Under Starlette's TestClient (no uvicorn transport) updates go through ASGI sends."""
    from starlette.testclient import TestClient

    app = create_app(Home(own_home))
    analyst, ingest = token(own_home, "analyst"), token(own_home, "ingest")
    account = _accounts(own_home)[0]
    with TestClient(app) as client, client.websocket_connect(f"/ws/customer-health?token={analyst}") as ws:
        snapshot = ws.receive_json()
        assert snapshot["type"] == "snapshot"
        assert [c.direct for c in app.state.service.feed.clients] == [False]
        before = next(a for a in snapshot["accounts"] if a["account_id"] == account)["health_score"]
        event = _nps(1, [account], "portable")[0] | {"score": 0 if before > 50 else 10}
        r = client.post("/api/events", json={"events": [event]}, headers={"Authorization": f"Bearer {ingest}"})
        assert r.status_code == 202 and r.json()["health_updates"] == 1
        msg = ws.receive_json()
        while msg["type"] == "intervention":  # a call to action the answer opened leaves first
            assert msg["account_id"] == account
            msg = ws.receive_json()
        assert msg["type"] == "update" and msg["account_id"] == account
        assert msg["cause"] == {"table": "nps_responses", "response_id": "portable-0"}


def test_new_publication_is_served_without_restart_or_failed_request(own_home):
    srv = Server(own_home).start()
    try:
        analyst = token(own_home, "analyst")
        old_run = httpx.get(srv.url + "/healthz").json()["run_id"]
        # a second publication: a copy of the current run under a new id (what `cfx run` leaves)
        current = (own_home / os.readlink(own_home / "published")).resolve()
        fresh = current.parent / (current.name + "-next")
        shutil.copytree(current, fresh)
        for name in ("run.json", "metrics_snapshot.json"):
            doc = json.loads((fresh / name).read_text())
            doc["run_id"] = "switch-test"
            (fresh / name).write_text(json.dumps(doc))

        statuses, seen, stop = [], set(), threading.Event()

        def hammer():
            with httpx.Client(headers={"Authorization": f"Bearer {analyst}"}, timeout=10) as client:
                while not stop.is_set():
                    for path in ("/api/finance/summary", "/api/customers/health?page_size=5", "/healthz"):
                        r = client.get(srv.url + path)
                        statuses.append(r.status_code)
                        seen.add(r.json().get("run_id"))

        async def feed():
            url = f"ws://127.0.0.1:{srv.port}/ws/customer-health?token={analyst}"
            async with websockets.connect(url, max_size=2**24) as ws:
                first = json.loads(await ws.recv())
                assert first["type"] == "snapshot" and first["run_id"] == old_run
                workers = [threading.Thread(target=hammer) for _ in range(3)]
                for w in workers:
                    w.start()
                await asyncio.sleep(1)
                _switch(Home(own_home), fresh)
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                    if msg["type"] == "snapshot":
                        break
                await asyncio.sleep(1)
                stop.set()
                for w in workers:
                    w.join()
                return msg

        resync = asyncio.run(feed())
        assert resync["run_id"] == "switch-test" and resync["accounts"]
        assert httpx.get(srv.url + "/healthz").json()["run_id"] == "switch-test"
        assert len(statuses) > 50 and set(statuses) == {200}
        assert seen == {old_run, "switch-test"}
    finally:
        srv.stop()
