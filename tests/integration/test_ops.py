"""Operations with the real processes: `cfx up --detach` under supervisord, `cfx status`,
`cfx health`, a killed process restarted, a second `cfx up` refused, `cfx down` leaving nothing;
`/metrics`; and `cfx release` on a clone of the repository."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import httpx
import pytest

from cfxlib.core.processes import pid_alive
from tests.conftest import CFX, REPO, run_cfx
from tests.servers import free_port

pytestmark = pytest.mark.xdist_group("pipeline")


@pytest.fixture
def home(published_copy):
    return published_copy


def status(home, env) -> list[dict]:
    result = run_cfx("status", "--json", home=home, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_up_status_health_restart_and_down(home, tmp_path):
    env = {
        "CFX_SERVICE__PORT": str(free_port()),
        "CFX_DASHBOARDS__PORT": str(free_port()),
        "CFX_SMTP__PASSWORD": "pw-Zq81-never-on-disk",
    }
    up = run_cfx("up", "--detach", home=home, env=env, timeout=300)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        procs = {p["name"]: p for p in status(home, env)}
        assert set(procs) == {"cfx-serve", "cfx-dashboards", "cfx-scheduler"}
        assert all(p["state"] == "RUNNING" and p["pid"] for p in procs.values())
        assert any("serve" in name for name in procs)
        again = run_cfx("up", "--detach", home=home, env=env)
        assert again.returncode == 2 and "already up" in again.stderr
        health = run_cfx("health", "--json", home=home, env=env)
        report = json.loads(health.stdout)
        names = {c["name"]: c for c in report["checks"]}
        assert {
            "warehouse",
            "last run",
            "publication",
            "scheduler",
            "outbox",
            "data room",
            "disk",
            "service",
            "service API",
            "dashboards",
        } <= set(names)
        assert health.returncode == 0 and report["healthy"] is True, health.stdout
        for name in ("cfx-serve", "cfx-dashboards", "cfx-scheduler"):  # the supervised processes themselves
            assert names[name]["ok"] and f"pid {procs[name]['pid']} RUNNING" in names[name]["detail"]
        # /healthz carries the local checks; /metrics counts requests (with a token).
        port = env["CFX_SERVICE__PORT"]
        healthz = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert healthz["healthy"] is True and {c["name"] for c in healthz["checks"]} >= {"warehouse", "scheduler"}
        assert healthz["status"] == "ok" and healthz["pid"] == procs["cfx-serve"]["pid"]
        token = (home / "keys" / "health-token").read_text().strip()
        assert httpx.get(f"http://127.0.0.1:{port}/metrics").status_code == 401
        metrics = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"}).text
        assert 'cfx_http_requests_total{method="GET",route="/api/finance/summary",status="200"}' in metrics
        assert "cfx_outbox_pending 0.0" in metrics and "cfx_last_run_age_seconds" in metrics
        # A crashed service is restarted by the supervisor.
        old = procs["cfx-serve"]["pid"]
        os.kill(old, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            serve = next(p for p in status(home, env) if p["name"] == "cfx-serve")
            if serve["state"] == "RUNNING" and serve["pid"] != old:
                break
            time.sleep(0.5)
        assert serve["state"] == "RUNNING" and serve["pid"] != old
        pids = [p["pid"] for p in status(home, env)]
        supervisord = int((home / "supervisor" / "supervisord.pid").read_text())
        logs = {p.name for p in (home / "logs").iterdir()}
        assert {"serve.log", "dashboards.log", "scheduler.log", "supervisord.log"} <= logs
        assert "pw-Zq81" not in (home / "supervisor" / "supervisord.conf").read_text()
    finally:
        down = run_cfx("down", home=home, env=env, timeout=120)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not pid_alive(supervisord) and not any(pid_alive(pid) for pid in pids), "cfx down left a process behind"
    assert status(home, env) == []
    after = run_cfx("health", "--json", home=home, env=env)
    report = json.loads(after.stdout)
    assert after.returncode == 1 and report["healthy"] is False
    failing = {c["name"] for c in report["checks"] if not c["ok"]}
    assert {"service", "dashboards", "scheduler"} <= failing


def test_up_refuses_ports_and_the_event_log_another_process_holds(home):
    """A `cfx serve` started by hand on the same home and port: `cfx up` says so and starts nothing
    (it used to report "cfx is up" while its own service sat in BACKOFF)."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("CFX_")}, "CFX_HOME": str(home)}
    manual = subprocess.Popen(
        [str(CFX), "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.3)
        body = httpx.get(f"http://127.0.0.1:{port}/healthz").json()
        assert body["pid"] == manual.pid and body["status"] == ("ok" if body["healthy"] else "degraded")
        up = run_cfx(
            "up", "--detach", home=home, env={"CFX_SERVICE__PORT": str(port), "CFX_DASHBOARDS__PORT": str(free_port())}
        )
        assert up.returncode == 2 and "cfx up refused" in up.stderr, up.stdout + up.stderr
        assert f"port {port}" in up.stderr and "writing live events" in up.stderr
        assert not (home / "supervisor" / "supervisord.pid").exists() or status(home, {}) == []
    finally:
        manual.terminate()
        manual.wait(timeout=30)


def test_release_refuses_a_dirty_tree_or_a_failing_check_then_tags(tmp_path, home):
    clone = tmp_path / "repo"
    subprocess.run(["git", "clone", "-q", str(REPO), str(clone)], check=True)
    for key, value in (("user.email", "release@chatterfix.example"), ("user.name", "Release Test")):
        subprocess.run(["git", "config", key, value], cwd=clone, check=True)
    (clone / "notes.txt").write_text("uncommitted\n")
    dirty = run_cfx("release", "9.9.9", "--repo", str(clone), home=home)
    assert dirty.returncode == 2 and "not clean" in dirty.stderr and "notes.txt" in dirty.stderr
    (clone / "notes.txt").unlink()
    failing = run_cfx(
        "release", "9.9.9", "--repo", str(clone), "--check", "python3 -c 'import sys; sys.exit(4)'", home=home
    )
    assert failing.returncode == 2 and "check failed" in failing.stderr
    bad = run_cfx("release", "9.9", "--repo", str(clone), home=home)
    assert bad.returncode == 2 and "semantic version" in bad.stderr
    ok = run_cfx("release", "9.9.9", "--repo", str(clone), "--check", "git diff --quiet", home=home, timeout=900)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    summary = (clone / "docs" / "maintenance" / "RELEASE_v9.9.9.md").read_text()
    for heading in (
        "## What it contains",
        "## How it was verified",
        "## Health checks",
        "## Latest benchmark figures",
        "## Known limitations",
    ):
        assert heading in summary
    assert "tests in the whole suite" in summary and "Data room sync (200 MB)" in summary
    assert "## [9.9.9] - " in (clone / "CHANGELOG.md").read_text()
    tag = subprocess.run(["git", "tag", "-n20", "v9.9.9"], cwd=clone, capture_output=True, text=True).stdout
    assert "cfx v9.9.9" in tag and "Summary: docs/maintenance/RELEASE_v9.9.9.md" in tag
    assert subprocess.run(["git", "status", "--porcelain"], cwd=clone, capture_output=True, text=True).stdout == ""
    again = run_cfx("release", "9.9.9", "--repo", str(clone), "--check", "git diff --quiet", home=home)
    assert again.returncode == 2 and "already exists" in again.stderr
    lower = run_cfx("release", "9.9.8", "--repo", str(clone), "--check", "git diff --quiet", home=home)
    assert lower.returncode == 2 and "not above the latest release v9.9.9" in lower.stderr
    # An operator's shell exports cfx's own settings: the checks run in a clean environment (and the
    # tests isolate themselves), so the settings test that expects the default port still passes.
    operator = {
        "CFX_SERVICE__PORT": "9123",
        "CFX_DASHBOARDS__PORT": "9124",
        "CFX_INVESTOR__RECIPIENTS": '["ops@example.com"]',
    }
    changelog = clone / "CHANGELOG.md"
    changelog.write_text(
        changelog.read_text().replace("## [Unreleased]\n", "## [Unreleased]\n\n### Added\n- Analytics milestone.\n", 1)
    )
    subprocess.run(["git", "commit", "-qam", "Changelog for the analytics milestone"], cwd=clone, check=True)
    check = f"{sys.executable} -m pytest tests/unit/test_settings.py -q -p no:cacheprovider"
    milestone = run_cfx(
        "release", "9.9.10", "--repo", str(clone), "--milestone", "analytics", "--check", check,
        home=home, env=operator, timeout=900,
    )  # fmt: skip
    assert milestone.returncode == 0, milestone.stdout + milestone.stderr
    text = (clone / "docs" / "maintenance" / "RELEASE_v9.9.10-analytics.md").read_text()
    assert text.startswith("# cfx v9.9.10-analytics") and "## Services restarted" in text
    assert "test_settings.py" in text and "passed" in text
    tag = subprocess.run(["git", "tag", "-n30", "v9.9.10-analytics"], cwd=clone, capture_output=True, text=True).stdout
    assert "Health checks:" in tag and "RELEASE_v9.9.10-analytics.md" in tag
