"""Deny by default: every route of the OpenAPI document (and the WebSocket feed) answers each role
and an anonymous caller as documented; a route planted without a declared scope is refused.

The expected roles below are the documentation (README, docs/architecture.md): the test checks
that the OpenAPI document says the same (``x-cfx-roles``) and that the live server does it."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import httpx
import pytest
import uvicorn
import websockets

from cfxlib.api.app import create_app
from cfxlib.core.home import Home
from tests.integration.test_api import Server, token

pytestmark = pytest.mark.xdist_group("pipeline")

ROLES = ("analyst", "executive", "investor", "ingest")
FINANCE_PUBLIC = {"analyst", "executive", "investor"}
STAFF = {"analyst", "executive"}
EXPECTED = {
    ("get", "/healthz"): None,  # public
    ("get", "/api/finance/summary"): FINANCE_PUBLIC,
    ("get", "/api/finance/forecast"): FINANCE_PUBLIC,
    ("get", "/api/finance/unit-economics"): FINANCE_PUBLIC,
    ("get", "/api/finance/retention"): FINANCE_PUBLIC,
    ("get", "/api/ops"): FINANCE_PUBLIC,
    ("get", "/api/finance/mrr"): FINANCE_PUBLIC,  # the investor PDF, email and data room show them too
    ("get", "/api/finance/movements"): FINANCE_PUBLIC,
    ("get", "/api/pilots"): STAFF,
    ("post", "/api/pilots"): {"analyst", "executive"},
    ("get", "/api/customers/health"): STAFF,
    ("get", "/api/customers/at-risk"): STAFF,
    ("get", "/api/customers/at-risk-trend"): STAFF,
    ("get", "/api/customers/churn-distribution"): STAFF,
    ("get", "/api/customers/health-trend"): STAFF,
    ("get", "/api/customers/engagement"): STAFF,
    ("get", "/api/customers/{account_id}/history"): STAFF,
    ("get", "/api/customers/{account_id}"): STAFF,
    ("post", "/api/events"): {"analyst", "ingest"},
    ("get", "/api/interventions"): STAFF,
    ("get", "/api/interventions/{cta_id}"): STAFF,
    ("patch", "/api/interventions/{cta_id}"): {"analyst"},
}
"""Who may call what. A route added to the service must be added here, or this test fails."""


@pytest.fixture(scope="module")
def served(published):
    srv = Server(published).start()
    tokens = {role: token(published, role) for role in ROLES}
    yield srv, tokens
    srv.stop()


def test_every_documented_route_answers_each_role_as_documented(served, published):
    srv, tokens = served
    doc = httpx.get(srv.url + "/openapi.json").json()
    account = httpx.get(
        srv.url + "/api/customers/at-risk?limit=1", headers={"Authorization": f"Bearer {tokens['analyst']}"}
    ).json()["rows"][0]["account_id"]
    operations = {(m, p): op for p, item in doc["paths"].items() for m, op in item.items()}
    assert set(operations) == set(EXPECTED), "routes and the documented access table differ"
    for (method, path), op in operations.items():
        allowed = EXPECTED[(method, path)]
        documented = set(op.get("x-cfx-roles", ROLES)) if op.get("security") else None
        assert documented == allowed, (method, path, documented)
        url = srv.url + path.replace("{account_id}", account).replace("{cta_id}", "cta_none")
        call = lambda headers: httpx.request(method.upper(), url, headers=headers, json={}, timeout=30)  # noqa: B023, E731
        anonymous = call({}).status_code
        assert (anonymous == 401) == (allowed is not None), (method, path, anonymous)
        for role in ROLES:
            status = call({"Authorization": f"Bearer {tokens[role]}"}).status_code
            if allowed is None or role in allowed:
                assert status not in (401, 403) and status < 500, (method, path, role, status)
            else:
                assert status == 403, (method, path, role, status)
    # Routes outside the document: the docs are public, the metrics need any token.
    assert httpx.get(srv.url + "/docs").status_code == 200
    assert httpx.get(srv.url + "/openapi.json").status_code == 200
    assert httpx.get(srv.url + "/metrics").status_code == 401
    assert httpx.get(srv.url + "/metrics", headers={"Authorization": f"Bearer {tokens['ingest']}"}).status_code == 200
    # A path no route serves: 401 without a token (nothing learnt), 404 with one.
    assert httpx.get(srv.url + "/api/nothing-here").status_code == 401
    assert httpx.get(srv.url + "/nothing", headers={"Authorization": f"Bearer {tokens['investor']}"}).status_code == 404


def test_the_feed_answers_each_role_as_documented(served):
    srv, tokens = served
    ws = srv.url.replace("http", "ws") + "/ws/customer-health"

    async def status(query: str) -> int:
        try:
            async with websockets.connect(ws + query, open_timeout=20) as conn:
                await asyncio.wait_for(conn.recv(), 20)
                return 101
        except websockets.exceptions.InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(status("")) == 401
    for role in ROLES:
        expected = 101 if role in STAFF else 403
        assert asyncio.run(status(f"?token={tokens[role]}")) == expected, role


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_route_planted_without_a_scope_is_refused_to_every_role(published_copy):
    app = create_app(Home(published_copy))

    @app.get("/api/planted")
    async def planted():
        return {"secret": "customer list"}

    @app.get("/api/finance/planted")
    async def planted_finance():
        return {"secret": "board numbers"}

    @app.get("/planted")
    async def planted_outside():
        return {"secret": "anything"}

    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 60
        while not server.started and time.time() < deadline:
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port}"
        tokens = {role: app.state.tokens.create(role)[0] for role in ROLES}
        for path in ("/api/planted", "/api/finance/planted", "/planted"):
            assert httpx.get(url + path).status_code == 401, path
            for role in ROLES:
                answer = httpx.get(url + path, headers={"Authorization": f"Bearer {tokens[role]}"})
                assert answer.status_code == 403 and "secret" not in answer.text, (path, role, answer.text)
        assert httpx.get(url + "/healthz").status_code == 200
    finally:
        server.should_exit = True
        thread.join(timeout=30)
