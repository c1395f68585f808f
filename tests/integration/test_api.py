"""The live service against a real uvicorn server, httpx and the websockets client."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest
import websockets

from cfxlib.customers import health
from cfxlib.store import warehouse
from cfxlib.store.eventlog import EventLog
from tests.conftest import CFX, run_cfx

pytestmark = pytest.mark.xdist_group("pipeline")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, home, env: dict | None = None, args: tuple[str, ...] = ()):
        self.home, self.port, self.args = home, _free_port(), tuple(args)
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None
        self.env = env or {}

    def start(self):
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CFX_")},
            "CFX_HOME": str(self.home),
            **self.env,
        }
        # output to a file: a pipe nobody reads fills up with access-log lines and blocks the server
        self.log = tempfile.NamedTemporaryFile(prefix="cfx-serve-", suffix=".log", delete=False)  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(CFX), "serve", "--port", str(self.port), *self.args],
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.3)
        raise RuntimeError("server did not start:\n" + self.output() if self.proc.poll() is not None else "timeout")

    def output(self) -> str:
        return Path(self.log.name).read_text(encoding="utf-8", errors="replace")

    def stop(self, sig=signal.SIGTERM):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=20)


def token(home, role, *extra):
    result = run_cfx("token", "create", "--role", role, *extra, home=home)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


@pytest.fixture(scope="module")
def server(published):
    srv = Server(published).start()
    yield srv
    srv.stop()


def test_healthz_and_token_rules(server, published):
    body = httpx.get(server.url + "/healthz").json()
    assert body["status"] == ("ok" if body["healthy"] else "degraded") and body["pid"]
    analyst, investor, ingest = (token(published, r) for r in ("analyst", "investor", "ingest"))
    get = lambda path, t=None: httpx.get(server.url + path, headers={"Authorization": f"Bearer {t}"} if t else {})  # noqa: E731
    assert get("/api/finance/summary").status_code == 401
    assert get("/api/finance/summary", "cfx_not-a-token").status_code == 401
    summary = get("/api/finance/summary", investor)
    assert summary.status_code == 200
    snap = json.loads((published / "published" / "metrics_snapshot.json").read_text())
    body = summary.json()
    assert (
        body["as_of"] == snap["as_of"]
        and body["arr"] == pytest.approx(snap["arr"])
        and body["mrr"] == pytest.approx(snap["mrr"])
    )
    assert get("/api/finance/forecast", investor).status_code == 200
    assert get("/api/finance/mrr", investor).status_code == 200  # as in the investor PDF and data room
    assert get("/api/customers/health", investor).status_code == 403
    assert get("/api/finance/summary", ingest).status_code == 403
    rows = get("/api/finance/mrr?by=tier&from=2025-06&to=2025-08", analyst).json()["rows"]
    assert {r["month"] for r in rows} == {"2025-06", "2025-07", "2025-08"} and len(rows) == 9
    assert get("/api/finance/mrr?from=2025-13", analyst).status_code == 422
    page = get("/api/customers/health?tier=Starter&band=green&page=1&page_size=5", analyst).json()
    assert len(page["accounts"]) <= 5 and all(a["tier"] == "Starter" and a["band"] == "green" for a in page["accounts"])
    assert get("/api/customers/health?page=0", analyst).status_code == 422
    first = get("/api/customers/at-risk?limit=1", analyst).json()["rows"][0]
    detail = get(f"/api/customers/{first['account_id']}", analyst).json()
    assert detail["recommendation"]["action"] and 0 <= detail["health"]["health_score"] <= 100
    assert get("/api/customers/NOPE-1", analyst).status_code == 404
    listed = run_cfx("token", "list", home=published).stdout
    assert "analyst" in listed and analyst not in listed
    token_id = json.loads((published / "tokens.json").read_text())[-1]["id"]
    assert run_cfx("token", "revoke", token_id, home=published).returncode == 0
    assert get("/api/finance/summary", ingest).status_code == 401  # the revoked one (last created)


def test_token_is_checked_before_input_and_bodies_are_bounded(server, published):
    """Anonymous callers get 401 whatever they send (no 422 telling them about parameters);
    a body over the limit gets 413 whether or not it declares its length."""
    assert httpx.get(server.url + "/api/customers/health?page=0").status_code == 401
    assert httpx.get(server.url + "/api/no-such-route").status_code == 401
    assert httpx.post(server.url + "/api/events", content=b"not json").status_code == 401
    ingest = token(published, "ingest")
    headers = {"Authorization": f"Bearer {ingest}", "Content-Type": "application/json"}

    def chunks():
        yield b'{"events": ['
        for _ in range(2_000):
            yield (
                b'{"table": "nps_responses", "response_id": "x", "account_id": "y", "date": "2025-12-31", "score": 1},'
                * 10
            )
        yield b"{}]}"

    r = httpx.post(server.url + "/api/events", content=chunks(), headers=headers)  # chunked, ~2 MB
    assert r.status_code == 413, r.text
    r = httpx.post(server.url + "/api/events", content=b" " * 1_100_000, headers=headers)
    assert r.status_code == 413


def test_openapi_has_a_model_for_every_answer(server):
    schema = httpx.get(server.url + "/openapi.json").json()
    assert schema["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    for path, methods in schema["paths"].items():
        for method, op in methods.items():
            ok = next(v for k, v in op["responses"].items() if k.startswith("2"))
            ref = ok["content"]["application/json"]["schema"].get("$ref", "")
            assert ref.startswith("#/components/schemas/"), (method, path, ok)
            assert path == "/healthz" or op.get("security") == [{"bearer": []}], path
            # every error answer the route gives is documented with its model
            for code, answer in op["responses"].items():
                if code.startswith(("4", "5")):
                    assert answer["content"]["application/json"]["schema"], (method, path, code)


def test_bad_events_get_field_errors_and_store_nothing(server, published):
    ingest = token(published, "ingest")
    stored = EventLog(published / "events")
    before = stored.read()
    bad = {
        "events": [
            {
                "table": "nps_responses",
                "response_id": "r-ok",
                "account_id": "ACC-000001",
                "date": "2025-12-30",
                "score": 9,
            },
            {
                "table": "nps_responses",
                "response_id": "r-bad",
                "account_id": "ACC-000001",
                "date": "2025-12-30",
                "score": 11,
            },
            {"table": "usage_daily", "account_id": "NOPE", "date": "yesterday"},
            {"table": "invoices"},
        ]
    }
    r = httpx.post(server.url + "/api/events", json=bad, headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 422
    assert "validate;dur=" in r.headers["server-timing"] and "store" not in r.headers["server-timing"]
    errors = r.json()["errors"]
    assert {k: errors[0][k] for k in ("index", "field")} == {"index": 1, "field": "score"} or any(
        e["index"] == 1 and e["field"] == "score" for e in errors
    )
    assert any(e["index"] == 2 and e["field"] == "active_users" for e in errors)
    assert any(e["index"] == 3 and e["field"] == "table" for e in errors)
    assert stored.read() == before
    assert (
        httpx.post(
            server.url + "/api/events",
            content=b"{not json",
            headers={"Authorization": f"Bearer {ingest}", "content-type": "application/json"},
        ).status_code
        == 422
    )
    big = b'{"events": [' + b",".join([b'{"table": "x"}'] * 80_000) + b"]}"
    assert (
        httpx.post(
            server.url + "/api/events",
            content=big,
            headers={"Authorization": f"Bearer {ingest}", "content-type": "application/json"},
        ).status_code
        == 413
    )


def test_event_updates_websocket_and_matches_batch(server, published, tmp_path):
    analyst = token(published, "analyst")
    ingest = token(published, "ingest")

    async def scenario():
        url = f"ws://127.0.0.1:{server.port}/ws/customer-health?token={analyst}&tier=Starter"
        async with websockets.connect(url, max_size=2**24) as ws:
            snapshot = json.loads(await ws.recv())
            assert snapshot["type"] == "snapshot" and snapshot["accounts"]
            assert {a["tier"] for a in snapshot["accounts"]} == {"Starter"}
            account = snapshot["accounts"][0]
            event = {
                "table": "nps_responses",
                "response_id": "live-test-1",
                "account_id": account["account_id"],
                "date": "2025-12-31",
                "score": 0,
            }
            start = time.perf_counter()
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    server.url + "/api/events", json={"events": [event]}, headers={"Authorization": f"Bearer {ingest}"}
                )
            assert r.status_code == 202, r.text
            stages = dict(part.strip().split(";dur=") for part in r.headers["server-timing"].split(","))
            assert {"validate", "lock", "store", "score", "sync", "total"} <= set(stages)
            assert all(0 <= float(ms) < 60_000 for ms in stages.values())
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
                if msg["type"] == "update":
                    break
            elapsed = time.perf_counter() - start
            return account, event, msg, elapsed

    account, event, msg, elapsed = asyncio.run(scenario())
    assert msg["account_id"] == account["account_id"] and elapsed < 1.0
    assert msg["health_score"] != account["health_score"]
    # the batch computation on the warehouse plus the same event gives the same score
    copy = tmp_path / "wh.duckdb"
    copy.write_bytes((published / "warehouse" / "cfx.duckdb").read_bytes())
    con = warehouse.connect(copy, read_only=False)
    try:
        con.execute(
            "INSERT INTO nps_responses (response_id, account_id, date, score) VALUES (?, ?, ?, ?)",
            [event["response_id"], event["account_id"], event["date"], event["score"]],
        )
        batch = health.health_scores(con, __import__("datetime").date(2025, 12, 31), changes=False).set_index(
            "account_id"
        )
    finally:
        con.close()
    assert batch.loc[account["account_id"], "health_score"] == pytest.approx(msg["health_score"])


def test_a_batch_sends_one_update_per_changed_account(server, published):
    """Two events for one account in one POST: one update, the account's state after both,
    naming the later event as its cause."""
    analyst, ingest = token(published, "analyst"), token(published, "ingest")

    async def scenario():
        url = f"ws://127.0.0.1:{server.port}/ws/customer-health?token={analyst}"
        async with websockets.connect(url, max_size=2**24) as ws:
            # an account without NPS answers in the window, so its NPS component is exactly ours
            account = next(a for a in json.loads(await ws.recv())["accounts"] if a["nps"] is None)
            events = [
                {"table": "nps_responses", "response_id": f"pair-{i}", "account_id": account["account_id"]}
                | {"date": "2025-12-31", "score": score}
                for i, score in enumerate((0, 1))
            ]
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    server.url + "/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"}
                )
            assert r.status_code == 202, r.text
            updates = []
            with contextlib.suppress(TimeoutError):
                while True:
                    msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=1.5))
                    if msg["type"] == "update":
                        updates.append(msg)
            return account, r.json(), updates

    account, answer, updates = asyncio.run(scenario())
    assert answer["accepted"] == 2 and answer["health_updates"] == 1 and answer["worker"] == server.proc.pid
    assert [(u["account_id"], u["cause"]["response_id"]) for u in updates] == [(account["account_id"], "pair-1")]
    assert updates[0]["nps"] == 5.0  # 10 x mean(0, 1): both answers count, not only the last


def test_websocket_refuses_bad_tokens_and_roles(server, published):
    ingest = token(published, "ingest")

    async def attempt(tok):
        try:
            async with websockets.connect(f"ws://127.0.0.1:{server.port}/ws/customer-health?token={tok}"):
                return 101
        except websockets.exceptions.InvalidStatus as exc:
            return exc.response.status_code

    assert asyncio.run(attempt("nope")) == 401
    assert asyncio.run(attempt(ingest)) == 403


def test_event_survives_sigkill(published, tmp_path):
    """A 202'd event is on disk when the server dies; a second server on the same home is refused
    with a message (the event log has one writer); a restart recovers and serves."""
    home = tmp_path / "home"  # a private copy: the shared server writes the shared home's events
    shutil.copytree(published, home, symlinks=True, ignore=shutil.ignore_patterns("events"))
    srv = Server(home).start()
    second = run_cfx("serve", "--port", str(_free_port()), home=home, timeout=120)
    assert second.returncode == 2 and "second `cfx serve`" in second.stderr, second.stderr[-2000:]
    assert "Traceback" not in second.stderr
    ingest = token(home, "ingest")
    event = {
        "table": "usage_daily",
        "account_id": "ACC-000001",
        "date": "2025-12-31",
        "active_users": 1,
        "work_orders_created": 0,
        "work_orders_completed": 0,
        "assets_monitored": 5,
        "ai_requests": 0,
    }
    acc = json.loads((home / "published" / "customer_success.json").read_text())["at_risk"][0]["account_id"]
    event["account_id"] = acc
    r = httpx.post(srv.url + "/api/events", json={"events": [event]}, headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 202
    srv.stop(signal.SIGKILL)
    lines = EventLog(home / "events").read()
    assert any(e["account_id"] == acc and e["table"] == "usage_daily" and e["date"] == "2025-12-31" for e in lines)
    again = Server(home).start()
    try:
        assert httpx.get(again.url + "/healthz").status_code == 200
    finally:
        again.stop()


def test_next_run_includes_live_events(server, published):
    """Events accepted by the service are in the warehouse after the next `cfx run`."""
    import duckdb

    ingest = token(published, "ingest")
    account = json.loads((published / "published" / "customer_success.json").read_text())["at_risk"][0]["account_id"]
    events = [
        {
            "table": "nps_responses",
            "response_id": "live-next-run-1",
            "account_id": account,
            "date": "2025-12-30",
            "score": 3,
        },
        # repeats a day the usage file already has: the file wins, no duplicate key
        {
            "table": "usage_daily",
            "account_id": account,
            "date": "2025-12-30",
            "active_users": 1,
            "work_orders_created": 0,
            "work_orders_completed": 0,
            "assets_monitored": 5,
            "ai_requests": 0,
        },
    ]
    r = httpx.post(server.url + "/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"})
    assert r.status_code == 202, r.text
    result = run_cfx("run", "--demo", home=published, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    con = duckdb.connect(str(published / "warehouse" / "cfx.duckdb"), read_only=True)
    try:
        live = con.execute(
            "SELECT count(*), min(_line) FROM nps_responses WHERE response_id = 'live-next-run-1'"
        ).fetchall()[0]
        dup = con.execute(
            "SELECT count(*) FROM (SELECT account_id, date FROM usage_daily GROUP BY ALL HAVING count(*) > 1)"
        ).fetchall()[0][0]
    finally:
        con.close()
    assert live[0] == 1 and live[1] < 0 and dup == 0
    # the events are folded: archived, the log checkpointed past them, and in the run's data hash
    from cfxlib.store.eventarchive import FoldedEvents

    assert EventLog(published / "events").read_checkpointed()[0] == []
    folded = FoldedEvents(published / "events").read()
    assert any(e.get("response_id") == "live-next-run-1" for e in folded)
    run = json.loads((published / "published" / "run.json").read_text())
    files = sorted(p for p in (published / "demo-data").glob("*.csv"))
    assert run["data_hash"] != warehouse.data_hash(files)


def test_schemathesis_finds_no_server_errors(server, published):
    """Property-based testing against the OpenAPI document with every schemathesis check: no 5xx,
    every status code and body documented by its real model, schema-valid requests accepted
    (see schemathesis.toml for the one documented exception), invalid ones refused."""
    analyst = token(published, "analyst")
    result = subprocess.run(
        [
            str(CFX.with_name("st")),
            "run",
            server.url + "/openapi.json",
            "--checks",
            "all",
            "--header",
            f"Authorization: Bearer {analyst}",
            "--max-examples",
            "30",
            "--phases",
            "examples,coverage,fuzzing",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-4000:]


def test_docs_page_works_offline_in_chromium(server, tmp_path):
    """/docs loads Swagger UI from the service itself (no CDN) and lists the operations."""
    from playwright.sync_api import sync_playwright

    html = httpx.get(server.url + "/docs").text
    assert "/docs/assets/swagger-ui-bundle.js" in html and "cdn" not in html.lower()
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=os.environ.get("CFX_CHROMIUM", "/usr/bin/chromium"), args=["--no-sandbox"]
        )
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        outside = []
        page.on("request", lambda r: None if r.url.startswith(server.url) else outside.append(r.url))
        page.goto(server.url + "/docs")
        page.wait_for_selector('.opblock-summary-path[data-path="/api/finance/summary"]', timeout=15_000)
        assert page.is_visible('.opblock-summary-path[data-path="/api/events"]')
        page.screenshot(path=str(tmp_path / "docs.png"))
        browser.close()
    assert not outside, outside


def test_event_dated_today_changes_health_and_survives_restart(published, tmp_path):
    """The publication is as of an earlier month end; an NPS 0 answer dated today must still
    lower the account's health live, agree across the update, /api/customers and a new snapshot,
    and read the same after SIGKILL and restart."""
    import datetime as dt

    home = tmp_path / "home"
    shutil.copytree(published, home, symlinks=True, ignore=shutil.ignore_patterns("events"))
    srv = Server(home).start()
    analyst, ingest = token(home, "analyst"), token(home, "ingest")
    auth = {"Authorization": f"Bearer {analyst}"}
    health_rows = httpx.get(srv.url + "/api/customers/health?page_size=1000", headers=auth).json()["accounts"]
    # an account whose NPS component exists and is good: a 0 today must pull it down
    target = next(r for r in health_rows if (r.get("nps") or 0) >= 60)
    account = target["account_id"]
    today = dt.date.today().isoformat()

    async def scenario():
        url = f"ws://127.0.0.1:{srv.port}/ws/customer-health?token={analyst}"
        async with websockets.connect(url, max_size=2**24) as ws:
            await ws.recv()  # snapshot
            event = {
                "table": "nps_responses",
                "response_id": "today-1",
                "account_id": account,
                "date": today,
                "score": 0,
            }
            async with httpx.AsyncClient() as client:
                r = await client.post(
                    srv.url + "/api/events", json={"events": [event]}, headers={"Authorization": f"Bearer {ingest}"}
                )
            assert r.status_code == 202, r.text
            while True:
                msg = json.loads(await asyncio.wait_for(ws.recv(), timeout=5))
                if msg["type"] == "update" and msg["account_id"] == account:
                    return msg

    async def snapshot_score(port):
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/customer-health?token={analyst}", max_size=2**24
        ) as ws:
            snap = json.loads(await ws.recv())
        return next(a for a in snap["accounts"] if a["account_id"] == account)

    try:
        update = asyncio.run(scenario())
        assert update["nps"] < target["nps"] and update["health_score"] < target["health_score"]
        assert update["as_of"] == today
        detail = httpx.get(srv.url + f"/api/customers/{account}", headers=auth).json()["health"]
        assert detail["health_score"] == update["health_score"] and detail["nps"] == update["nps"]
        assert asyncio.run(snapshot_score(srv.port))["health_score"] == update["health_score"]
    finally:
        srv.stop(signal.SIGKILL)
    again = Server(home).start()
    try:
        detail = httpx.get(again.url + f"/api/customers/{account}", headers=auth).json()["health"]
        assert detail["health_score"] == update["health_score"] and detail["as_of"] == today
        assert asyncio.run(snapshot_score(again.port))["health_score"] == update["health_score"]
        # an account without events still shows its published score
        other = next(r for r in health_rows if r["account_id"] != account)
        assert (
            httpx.get(again.url + f"/api/customers/{other['account_id']}", headers=auth).json()["health"][
                "health_score"
            ]
            == other["health_score"]
        )
    finally:
        again.stop()


def test_a_stored_event_that_cannot_be_replayed_is_logged(published, tmp_path):
    """After a restart every stored event is replayed into live health; one that fails (here a
    usage row with a non-numeric count written by an older version) is logged, not dropped silently."""
    home = tmp_path / "home"
    shutil.copytree(published, home, symlinks=True, ignore=shutil.ignore_patterns("events"))
    log = EventLog(home / "events")
    log.open()
    account = json.loads((home / "published" / "customer_success.json").read_text())["at_risk"][0]["account_id"]
    log.append([{"table": "usage_daily", "account_id": account, "date": "2025-12-31", "active_users": "many"}])
    log.close()
    srv = Server(home).start()
    srv.stop()
    output = srv.output()
    assert "stored event 1 (usage_daily) could not be replayed into live health" in output, output[-3000:]


def test_serve_prints_its_url_and_a_token_free_access_log(server, published):
    analyst = token(published, "analyst")
    httpx.get(server.url + "/api/finance/summary", headers={"Authorization": f"Bearer {analyst}"})
    httpx.get(server.url + f"/api/finance/mrr?from=2025-01&token={analyst}")  # a token in a query string

    async def feed():
        url = f"ws://127.0.0.1:{server.port}/ws/customer-health?token={analyst}&tier=Starter"
        async with websockets.connect(url, max_size=2**24) as ws:
            await ws.recv()

    asyncio.run(feed())
    deadline = time.time() + 5
    while time.time() < deadline and "/ws/customer-health" not in server.output():
        time.sleep(0.1)
    out = server.output()
    assert f"listening on http://127.0.0.1:{server.port}" in out
    assert re.search(r"127\.0\.0\.1 GET /api/finance/summary 200 [\d.]+ms", out), out[-2000:]
    assert "GET /api/finance/mrr?from=2025-01&token=*** 401" in out
    assert "WS /ws/customer-health?token=***&tier=Starter 101 open" in out
    assert analyst not in out


def test_pilots_are_validated_with_field_errors_and_stored_durably(server, published):
    analyst, investor = token(published, "analyst"), token(published, "investor")
    auth = {"Authorization": f"Bearer {analyst}"}
    good = {
        "company": "Northwind Mills",
        "contact_email": "ops@northwind.example",
        "tier": "Enterprise",
        "seats": 40,
        "start_date": "2026-12-01",
        "success_criteria": "Work orders closed 15% faster",
    }
    bad = {**good, "contact_email": "nope", "seats": 0, "tier": "Gold"}
    r = httpx.post(server.url + "/api/pilots", json=bad, headers=auth)
    assert r.status_code == 422
    assert {e["loc"][-1] for e in r.json()["detail"]} == {"contact_email", "seats", "tier"}
    r = httpx.post(server.url + "/api/pilots", json=good, headers=auth)
    assert r.status_code == 201 and r.json()["pilot_id"].startswith("PILOT-") and r.json()["status"] == "proposed"
    listed = httpx.get(server.url + "/api/pilots", headers=auth).json()["pilots"]
    assert listed[-1]["pilot_id"] == r.json()["pilot_id"]
    assert (published / "pilots" / "pilots.jsonl").read_text().count(r.json()["pilot_id"]) == 1
    assert httpx.get(server.url + "/api/pilots", headers={"Authorization": f"Bearer {investor}"}).status_code == 403


def test_churn_distribution_and_names_of_at_risk_accounts(server, published):
    analyst, investor = token(published, "analyst"), token(published, "investor")
    auth = {"Authorization": f"Bearer {analyst}"}
    bins = httpx.get(server.url + "/api/customers/churn-distribution", headers=auth).json()["bins"]
    active = httpx.get(server.url + "/api/customers/health?page_size=1", headers=auth).json()["total"]
    assert sum(b["accounts"] for b in bins) == active and {b["tier"] for b in bins} == {
        "Starter",
        "Professional",
        "Enterprise",
    }
    assert all(0 <= b["low"] < b["high"] <= 1 for b in bins)
    rows = httpx.get(server.url + "/api/customers/at-risk", headers=auth).json()["rows"]
    assert rows and all(r["account_name"] for r in rows)
    r = httpx.get(server.url + "/api/customers/churn-distribution", headers={"Authorization": f"Bearer {investor}"})
    assert r.status_code == 403


def test_health_history_per_account_and_for_the_book(server, published):
    analyst = token(published, "analyst")
    auth = {"Authorization": f"Bearer {analyst}"}
    trend = httpx.get(server.url + "/api/customers/health-trend", headers=auth).json()["points"]
    assert len(trend) == 13 and trend[-1]["as_of"] == "2025-12-31"
    assert [p["as_of"] for p in trend] == sorted(p["as_of"] for p in trend)
    current = httpx.get(server.url + "/api/customers/health?page_size=1000", headers=auth).json()["accounts"]
    published_rows = {r["account_id"]: r for r in current}
    account = current[0]["account_id"]
    hist = httpx.get(server.url + f"/api/customers/{account}/history", headers=auth).json()
    assert hist["account_id"] == account and len(hist["points"]) >= 2
    assert hist["points"][-1]["health_score"] == published_rows[account]["health_score"]
    assert httpx.get(server.url + "/api/customers/nope/history", headers=auth).status_code == 404
