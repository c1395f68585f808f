"""Calls to action with real servers: `cfx serve`, the websockets client, aiosmtpd and a webhook
receiver. A detractor answer dated today opens a CTA before its health update leaves; a repeat
opens none; a note and a status survive a SIGKILL; the owner gets exactly one email and one
signed webhook; a held-out account is recorded but not notified."""

from __future__ import annotations

import asyncio
import datetime
import json
import signal
import time

import httpx
import pytest
import websockets
from standardwebhooks.webhooks import Webhook

from cfxlib.interventions.rules import in_holdout
from tests.conftest import run_cfx
from tests.integration.test_api import Server, token
from tests.servers import SmtpServer, WebhookReceiver

pytestmark = pytest.mark.xdist_group("pipeline")
OWNER = "csm.team@example.com"
HOSTILE = "<img src=x onerror=alert(1)> \"quoted\" & 'single' </td>"


def nps(account: str, score: int, tag: str) -> dict:
    return {
        "table": "nps_responses",
        "response_id": f"{tag}-{time.time_ns()}",
        "account_id": account,
        "date": datetime.date.today().isoformat(),
        "score": score,
    }


async def post_and_listen(url: str, analyst: str, ingest: str, events: list[dict], account: str) -> list[dict]:
    """POST ``events`` while a feed client listens; the messages for ``account`` until its update."""
    got: list[dict] = []
    async with websockets.connect(f"{url.replace('http', 'ws')}/ws/customer-health?token={analyst}") as ws:
        snapshot = json.loads(await asyncio.wait_for(ws.recv(), 30))
        assert snapshot["type"] == "snapshot"
        async with httpx.AsyncClient() as client:
            answer = await client.post(
                url + "/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"}
            )
        assert answer.status_code == 202, answer.text
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                message = json.loads(await asyncio.wait_for(ws.recv(), 2))
            except TimeoutError:
                break
            if message.get("account_id") == account:
                got.append(message)
                if message["type"] == "update":
                    break
    return got


def test_a_detractor_today_opens_one_cta_notified_once_and_durable(published_copy):
    home = published_copy
    # only the detractor rule, so the figures of the test do not depend on the demo's health bands
    lines = ["schema_version: 1", "rules:"] + [
        f"  - {{id: {r}, enabled: false}}" for r in ("red-band", "health-drop", "churn-risk", "renewal-risk")
    ]
    (home / "interventions.yaml").write_text("\n".join(lines) + "\n")
    smtp, hooks = SmtpServer().start(), WebhookReceiver().start()
    secret = run_cfx("notify", "webhook-secret", home=home).stdout.strip()
    env = {
        "CFX_SMTP__HOST": "127.0.0.1",
        "CFX_SMTP__PORT": str(smtp.port),
        "CFX_SMTP__TIMEOUT_S": "5",
        "CFX_INTERVENTIONS__OWNERS": json.dumps({"Customer Success Manager": [OWNER]}),
        "CFX_INTERVENTIONS__HOLDOUT_PCT": "50",
        "CFX_WEBHOOKS__URLS": json.dumps([hooks.url]),
        "CFX_WEBHOOKS__SECRET": secret,
    }
    server = Server(home, env).start()
    try:
        analyst, executive, ingest = (token(home, r) for r in ("analyst", "executive", "ingest"))
        auth = {"Authorization": f"Bearer {analyst}"}
        ids = [
            r["account_id"]
            for r in httpx.get(server.url + "/api/customers/health?page_size=200", headers=auth).json()["accounts"]
        ]
        # the published home is shared by the tests of its group: earlier ones may have opened CTAs
        fresh = [
            a
            for a in ids
            if not httpx.get(server.url + f"/api/interventions?account={a}", headers=auth).json()["total"]
        ]
        treated = next(a for a in fresh if not in_holdout(a, "detractor", 50))
        held = next(a for a in fresh if in_holdout(a, "detractor", 50))

        messages = asyncio.run(post_and_listen(server.url, analyst, ingest, [nps(treated, 0, "d1")], treated))
        kinds = [m["type"] for m in messages]
        assert "intervention" in kinds and "update" in kinds and kinds.index("intervention") < kinds.index("update")
        opened = next(m for m in messages if m["type"] == "intervention")
        assert opened["rule"] == "detractor" and opened["change"] == "opened" and opened["owner_email"] == OWNER
        assert "NPS answer of 0" in opened["reason"] and opened["holdout"] is False

        # a repeat adds to the same CTA's history, never a second CTA
        again = asyncio.run(post_and_listen(server.url, analyst, ingest, [nps(treated, 2, "d2")], treated))
        assert all(m.get("change") != "opened" for m in again if m["type"] == "intervention")
        listed = httpx.get(server.url + f"/api/interventions?account={treated}&rule=detractor", headers=auth).json()
        assert listed["total"] == 1 and listed["interventions"][0]["id"] == opened["id"]

        # people work on it: analysts change it, executives only read; bad input is a 422 naming the field
        url = server.url + f"/api/interventions/{opened['id']}"
        patched = httpx.patch(url, json={"status": "in_progress", "note": HOSTILE}, headers=auth)
        assert patched.status_code == 200 and patched.json()["notes"][0]["text"] == HOSTILE
        assert httpx.get(url, headers={"Authorization": f"Bearer {executive}"}).status_code == 200
        assert (
            httpx.patch(url, json={"status": "done"}, headers={"Authorization": f"Bearer {executive}"}).status_code
            == 403
        )
        bad = httpx.patch(url, json={"status": "closed_recovered"}, headers=auth)
        assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "status"]
        snooze = httpx.patch(url, json={"status": "snoozed"}, headers=auth)
        assert snooze.status_code == 422 and snooze.json()["detail"][0]["loc"] == ["body", "snooze_until"]
        assert httpx.get(server.url + "/api/interventions/cta_nope", headers=auth).status_code == 404

        # a held-out account: recorded, not notified
        asyncio.run(post_and_listen(server.url, analyst, ingest, [nps(held, 0, "h1")], held))
        held_cta = httpx.get(server.url + f"/api/interventions?account={held}", headers=auth).json()["interventions"]
        assert len(held_cta) == 1 and held_cta[0]["holdout"] is True

        # SIGKILL, restart: status and note intact
        server.stop(signal.SIGKILL)
        server.start()
        after = httpx.get(url, headers=auth).json()
        assert after["status"] == "in_progress" and after["notes"][0]["text"] == HOSTILE
        assert after["notes"][0]["author"] == "analyst"

        # exactly one email to the owner and one signed webhook, none for the held-out account
        flushed = run_cfx("notify", "flush", "--allow-demo", home=home, env=env)
        assert flushed.returncode == 0, flushed.stderr
        smtp.wait_for(1)
        time.sleep(1)
        mails = smtp.to(OWNER)
        assert len(mails) == 1, [m["Subject"] for m in mails]
        assert opened["account_name"] in mails[0]["Subject"] and "Detractor" in mails[0]["Subject"]
        assert opened["reason"] in mails[0].get_body(("plain",)).get_content()
        events = [Webhook(secret).verify(r["body"], r["headers"]) for r in hooks.accepted()]
        opened_hooks = [e for e in events if e["type"] == "intervention.opened"]
        assert [e["data"]["id"] for e in opened_hooks] == [opened["id"]]
        assert not any(e["data"]["account_id"] == held for e in events)
        # the CLI sees the same CTAs
        shown = json.loads(run_cfx("interventions", "show", opened["id"], home=home).stdout)
        assert shown["status"] == "in_progress"
        cli = run_cfx(
            "interventions", "update", opened["id"], "--status", "done", "--note", "closed the loop", home=home
        )
        assert cli.returncode == 0, cli.stderr
        listed = json.loads(
            run_cfx("interventions", "list", "--json", "--status", "done", "--account", treated, home=home).stdout
        )
        assert [c["id"] for c in listed] == [opened["id"]]
        # the next evaluation after the due date finds the trigger gone (a 9 out of 10): closed as
        # recovered, and the webhook receiver gets one signed intervention.closed
        server.stop()
        from cfxlib.core.home import Home
        from cfxlib.core.settings import load_settings
        from cfxlib.interventions import engine, notices

        store = notices.store_for(Home(home))
        try:
            due = datetime.date.fromisoformat(opened["due_date"])
            signal_ = engine.Signal(treated, health_score=70.0, band="yellow", nps_scores=[9])
            (closed,) = engine.evaluate(
                store,
                [signal_],
                notices.load_rules(Home(home)),
                notices.config(load_settings()),
                due + datetime.timedelta(days=1),
            )
        finally:
            store.close()
        assert closed["id"] == opened["id"] and closed["status"] == "closed_recovered"
        notices.notify_changes(Home(home), load_settings(webhooks={"urls": [hooks.url], "secret": secret}), [closed])
        assert run_cfx("notify", "flush", "--allow-demo", home=home, env=env).returncode == 0
        events = [Webhook(secret).verify(r["body"], r["headers"]) for r in hooks.accepted()]
        assert [e["data"]["id"] for e in events if e["type"] == "intervention.closed"] == [opened["id"]]
        shown = json.loads(run_cfx("interventions", "show", opened["id"], home=home).stdout)
        assert shown["status"] == "closed_recovered" and shown["outcome"]["result"] == "recovered"
    finally:
        server.stop()
        smtp.stop()
        hooks.stop()
