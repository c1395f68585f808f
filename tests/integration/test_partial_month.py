"""Live events dated today never turn a publication into a partial month: the next `cfx run`
still reports the last complete month (same MRR, ARR and growth as before the events), and the
alerts never evaluate a month that has not ended."""

from __future__ import annotations

import calendar
import datetime
import json

import httpx
import pytest

from tests.conftest import run_cfx
from tests.integration.test_api import Server, token

pytestmark = pytest.mark.xdist_group("partial-month")


def last_full_month(today: datetime.date) -> str:
    first = today.replace(day=1) - datetime.timedelta(days=1)
    return first.strftime("%Y-%m")


def test_events_dated_today_keep_the_last_complete_month(tmp_path):
    home, data = tmp_path / "home", tmp_path / "data"
    made = run_cfx("demo-data", str(data), "--accounts", "120", "--months", "14", home=home)
    assert made.returncode == 0, made.stderr
    first = run_cfx("run", "--data", str(data), home=home, timeout=1200)
    assert first.returncode == 0, first.stderr[-3000:]
    before = json.loads((home / "published" / "metrics_snapshot.json").read_text())
    today = datetime.date.today()
    expected = (
        last_full_month(today)
        if today.day != calendar.monthrange(today.year, today.month)[1]
        else today.strftime("%Y-%m")
    )
    assert before["as_of"] == expected
    server = Server(home).start()
    try:
        ingest = token(home, "ingest")
        analyst = token(home, "analyst")
        accounts = [
            a["account_id"]
            for a in httpx.get(
                server.url + "/api/customers/health?page_size=20", headers={"Authorization": f"Bearer {analyst}"}
            ).json()["accounts"]
        ]
        events = [
            {
                "table": "usage_daily",
                "account_id": a,
                "date": today.isoformat(),
                "active_users": 3,
                "work_orders_created": 2,
                "work_orders_completed": 1,
                "assets_monitored": 5,
                "ai_requests": 1,
            }
            for a in accounts
        ]
        r = httpx.post(
            server.url + "/api/events", json={"events": events}, headers={"Authorization": f"Bearer {ingest}"}
        )
        assert r.status_code == 202, r.text
    finally:
        server.stop()
    again = run_cfx("run", "--data", str(data), home=home, timeout=1200)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"as of {expected}" in again.stdout
    after = json.loads((home / "published" / "metrics_snapshot.json").read_text())
    assert after["as_of"] == before["as_of"]
    for key in ("mrr", "arr", "arr_growth_mom", "customers", "logo_churn_rate", "uptime_pct"):
        assert after[key] == before[key], key
    assert after["data_hash"] != before["data_hash"]  # the events are in the data
    alerts = run_cfx("investor", "alerts", "--json", "--allow-demo", home=home)
    assert alerts.returncode == 0, alerts.stderr
    assert all(row["as_of"] in (None, expected) for row in json.loads(alerts.stdout))
