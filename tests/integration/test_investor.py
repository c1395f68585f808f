"""Investor automation end to end with real servers on 127.0.0.1: the weekly update (parts,
inline chart, PDF, one per recipient per week), alerts that fire once and resolve once, signed
webhooks, a mail server that is down, STARTTLS with login, and a killed run re-run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from tests.conftest import CFX, REPO, run_cfx
from tests.servers import SmtpServer, WebhookReceiver, free_port, self_signed

pytestmark = pytest.mark.xdist_group("pipeline")

INVESTORS = ["ada@investor.example", "bo@fund.example"]


@pytest.fixture
def home(published_copy):
    return published_copy


def only_rules(home, *keep: str) -> None:
    """Switch off every default alert rule but ``keep`` (a home's alerts.yaml changes defaults)."""
    ids = ["arr-growth", "uptime", "nrr", "grr", "logo-churn", "runway", "at-risk-arr"]
    lines = ["schema_version: 1", "rules:"] + [f"  - {{id: {i}, enabled: false}}" for i in ids if i not in keep]
    (home / "alerts.yaml").write_text("\n".join(lines) + "\n")


def mail_env(smtp: SmtpServer, **extra) -> dict:
    env = {
        "CFX_SMTP__HOST": "127.0.0.1",
        "CFX_SMTP__PORT": str(smtp.port),
        "CFX_SMTP__TIMEOUT_S": "5",
        "CFX_INVESTOR__RECIPIENTS": json.dumps(INVESTORS),
    }
    env.update(extra)
    return env


def outbox(home, cfx_env) -> list[dict]:
    result = run_cfx("notify", "list", "--json", home=home, env=cfx_env)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines()]


def test_weekly_update_goes_once_to_each_investor_with_chart_and_pdf(home):
    smtp = SmtpServer().start()
    try:
        env = mail_env(smtp)
        first = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W48", home=home, env=env)
        assert first.returncode == 0, first.stderr
        updates = [m for _, m in smtp.messages if m["X-Cfx-Notification"] == "investor.update"]
        assert sorted(m["To"] for m in updates) == sorted(INVESTORS)
        snap = json.loads((home / "published" / "metrics_snapshot.json").read_text())
        pdf = (home / "published" / "reports" / "investor_metrics.pdf").read_bytes()
        for msg in updates:
            assert "2026-W48" in msg["Subject"] and "ARR" in msg["Subject"]
            text = msg.get_body(("plain",)).get_content()
            html = msg.get_body(("html",)).get_content()
            assert "vs last week" in text and "vs prev month" in text and "forecast" in text.lower()
            cid = next(p["Content-ID"].strip("<>") for p in msg.walk() if p.get_content_type() == "image/png")
            assert f'src="cid:{cid}"' in html
            attached = [p for p in msg.iter_attachments() if p.get_content_type() == "application/pdf"]
            assert len(attached) == 1 and attached[0].get_content() == pdf
        # The week's snapshot: the published snapshot plus week, append-only and byte-stable.
        week_file = home / "investor" / "snapshots" / "2026-W48.json"
        stored = json.loads(week_file.read_text())
        assert stored["week"] == "2026-W48" and stored["run_id"] == snap["run_id"]
        assert {k: v for k, v in stored.items() if k != "week"} == snap
        before = week_file.read_bytes()
        archive = (home / "investor" / "updates" / "2026-W48.html").read_text()
        assert "data:image/png;base64," in archive and "cid:" not in archive
        count = len(smtp.messages)
        again = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W48", home=home, env=env)
        assert again.returncode == 0 and "unchanged" in again.stdout
        assert len(smtp.messages) == count, "a re-run sent mail again"
        assert week_file.read_bytes() == before
        # The next week compares with this one; history shows both weeks.
        nxt = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W49", home=home, env=env)
        assert nxt.returncode == 0, nxt.stderr
        w49 = [m for _, m in smtp.messages if "2026-W49" in m["Subject"]]
        assert len(w49) == 2 and "vs last week (2026-W48)" in w49[0].get_body(("html",)).get_content()
        hist = run_cfx("investor", "history", "--json", home=home)
        rows = json.loads(hist.stdout)
        assert [r["week"] for r in rows] == ["2026-W48", "2026-W49"] and rows[1]["arr_wow"] == 0
    finally:
        smtp.stop()


def test_bad_week_is_a_clear_error(home):
    result = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W54", home=home)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "2026-W54" in result.stderr and "week" in result.stderr


def test_alert_fires_once_then_resolves_once_by_email_and_signed_webhook(home):
    smtp, hooks = SmtpServer().start(), WebhookReceiver().start()
    secret = run_cfx("notify", "webhook-secret", home=home).stdout.strip()
    assert secret.startswith("whsec_")
    try:
        env = mail_env(
            smtp,
            CFX_ALERTS__RECIPIENTS='["ops@chatterfix.example"]',
            CFX_WEBHOOKS__URLS=json.dumps([hooks.url]),
            CFX_WEBHOOKS__SECRET=secret,
            CFX_THRESHOLDS__UPTIME_MIN_PCT="99.99",  # the demo's worst service is below this
        )
        for _ in range(3):  # re-runs on the same data never send again
            result = run_cfx("investor", "alerts", "--allow-demo", home=home, env=env)
            assert result.returncode == 0, result.stderr
        alerts = [m for m in smtp.to("ops@chatterfix.example") if "Uptime" in m["Subject"]]
        assert len(alerts) == 1 and "resolved" not in alerts[0]["Subject"]
        assert not smtp.to(INVESTORS[0]), "alerts go to the alert recipients only"
        env["CFX_THRESHOLDS__UPTIME_MIN_PCT"] = "90"
        for _ in range(2):
            result = run_cfx("investor", "alerts", "--allow-demo", home=home, env=env)
            assert result.returncode == 0, result.stderr
        alerts = [m for m in smtp.to("ops@chatterfix.example") if "Uptime" in m["Subject"]]
        assert len(alerts) == 2 and "resolved" in alerts[1]["Subject"]
        assert alerts[0]["Message-ID"] != alerts[1]["Message-ID"]
        # Webhooks: one firing and one resolved, each verified with the library and the secret.
        verifier = Webhook(secret)
        bodies = [verifier.verify(r["body"], r["headers"]) for r in hooks.accepted()]
        bodies = [b for b in bodies if b["data"]["rule"] == "uptime"]
        assert [b["type"] for b in bodies] == ["alert.firing", "alert.resolved"]
        assert bodies[0]["data"]["value"] < 99.99
        first = hooks.accepted()[0]
        with pytest.raises(WebhookVerificationError):
            verifier.verify(first["body"].replace('"type"', '"typE"'), first["headers"])
    finally:
        smtp.stop()
        hooks.stop()


def test_mail_server_down_delays_delivery_then_each_message_goes_exactly_once(home):
    smtp = SmtpServer()  # not started: the port refuses connections
    env = mail_env(smtp, CFX_THRESHOLDS__UPTIME_MIN_PCT="99.99")
    result = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W40", home=home, env=env)
    assert result.returncode == 0, result.stderr
    assert "wait in the outbox" in result.stderr and "cannot be reached" in result.stderr
    assert "Traceback" not in result.stderr
    pending = [m for m in outbox(home, env) if m["state"] == "pending"]
    kinds = sorted({m["type"] for m in pending})
    assert kinds == ["alert.firing", "investor.update"]  # the update and at least the uptime alert
    assert len(pending) == 2 * len({m["key"].split("/email/")[0] for m in pending})
    again = run_cfx("notify", "flush", "--allow-demo", "--strict", home=home, env=env)
    assert again.returncode == 3
    smtp.start()
    try:
        flushed = run_cfx("notify", "flush", "--allow-demo", home=home, env=env)
        assert flushed.returncode == 0 and f"delivered: {len(pending)}" in flushed.stdout
        assert run_cfx("notify", "flush", "--allow-demo", home=home, env=env).returncode == 0
        run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W40", home=home, env=env)
        assert len(smtp.messages) == len(pending)
        for address in INVESTORS:
            ids = [m["Message-ID"] for m in smtp.to(address)]
            assert len(ids) == len(set(ids)) == len(pending) // 2
            assert [m["X-Cfx-Notification"] for m in smtp.to(address)].count("investor.update") == 1
        assert {m["state"] for m in outbox(home, env)} == {"sent"}
    finally:
        smtp.stop()


def test_killed_weekly_run_rerun_sends_nothing_twice(home):
    recipients = [f"lp{i}@fund.example" for i in range(4)]
    smtp = SmtpServer().start()
    smtp.rcpt_delay_s = 3.0  # after the first message, each recipient is accepted slowly
    env = {k: v for k, v in os.environ.items() if not k.startswith("CFX_")}
    env.update(mail_env(smtp, CFX_INVESTOR__RECIPIENTS=json.dumps(recipients)), CFX_HOME=str(home))
    try:
        proc = subprocess.Popen(
            [str(CFX), "investor", "weekly", "--allow-demo", "--week", "2026-W41"],
            cwd=REPO,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        smtp.wait_for(1)
        time.sleep(1.0)  # the first message's bookkeeping is done; the second waits at RCPT
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(smtp.messages) == 1
        smtp.rcpt_delay_s = 0
        rerun = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W41", home=home, env=env)
        assert rerun.returncode == 0, rerun.stderr
        for address in recipients:
            ids = [m["Message-ID"] for m in smtp.to(address)]
            assert len(ids) == len(set(ids)), f"{address} got a message twice"
            kinds = [m["X-Cfx-Notification"] for m in smtp.to(address)]
            assert kinds.count("investor.update") == 1
    finally:
        smtp.stop()


def test_starttls_and_login_with_the_password_from_the_environment(home, tmp_path):
    cert, key = self_signed(tmp_path)
    smtp = SmtpServer(tls=(cert, key), login=("cfx-mailer", "s3cret-pass!")).start()
    try:
        env = mail_env(
            smtp,
            CFX_SMTP__STARTTLS="true",
            CFX_SMTP__CA_FILE=str(cert),
            CFX_SMTP__USERNAME="cfx-mailer",
            CFX_SMTP__PASSWORD="wrong-password",
        )
        refused = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W42", home=home, env=env)
        assert refused.returncode == 0 and "refused the login of cfx-mailer" in refused.stderr
        assert "wrong-password" not in refused.stdout + refused.stderr and not smtp.messages
        env["CFX_SMTP__PASSWORD"] = "s3cret-pass!"
        waiting = len(outbox(home, env))
        assert waiting >= 2  # the update to two investors (and any alert the demo fires)
        sent = run_cfx("notify", "flush", "--allow-demo", home=home, env=env)
        assert sent.returncode == 0 and f"delivered: {waiting}" in sent.stdout
        assert smtp.logins == ["cfx-mailer"] and len(smtp.messages) == waiting
        for path in (home / "outbox").rglob("*.json"):
            assert "s3cret-pass!" not in path.read_text()
    finally:
        smtp.stop()


def test_webhook_retries_with_backoff_and_a_refusal_is_set_aside(home):
    hooks = WebhookReceiver().start()
    hooks.statuses = [503, 503]  # two failures, then accepted within the same flush
    only_rules(home)  # no alert: the update is the only notification
    secret = run_cfx("notify", "webhook-secret", home=home).stdout.strip()
    env = {"CFX_WEBHOOKS__URLS": json.dumps([hooks.url]), "CFX_WEBHOOKS__SECRET": secret}
    try:
        result = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W43", home=home, env=env)
        assert result.returncode == 0, result.stderr
        assert [r["status"] for r in hooks.requests] == [503, 503, 200]
        assert len({r["headers"]["webhook-id"] for r in hooks.requests}) == 1  # one message, three attempts
        body = Webhook(secret).verify(hooks.accepted()[0]["body"], hooks.accepted()[0]["headers"])
        assert body["type"] == "investor.update" and body["data"]["week"] == "2026-W43"
        hooks.statuses = [410]
        gone = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W44", home=home, env=env)
        assert gone.returncode == 0 and "failed for good" in gone.stderr and "410" in gone.stderr
        assert [m["state"] for m in outbox(home, env) if "2026-W44" in m["key"]] == ["failed"]
        bad = run_cfx("notify", "flush", "--allow-demo", home=home, env={**env, "CFX_WEBHOOKS__SECRET": "whsec_short"})
        assert bad.returncode == 2 and "webhook secret" in bad.stderr and "Traceback" not in bad.stderr
    finally:
        hooks.stop()


def test_a_port_nobody_listens_on_is_reported_not_raised(home):
    env = {"CFX_WEBHOOKS__URLS": json.dumps([f"http://127.0.0.1:{free_port()}/x"])}
    result = run_cfx("investor", "weekly", "--allow-demo", "--week", "2026-W45", home=home, env=env)
    assert result.returncode == 0 and "signing secret" in result.stderr
