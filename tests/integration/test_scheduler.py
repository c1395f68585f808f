"""The scheduler daemon with its SQLite job store: a due job runs, an overlapping one is skipped,
a missed run is caught up exactly once after a restart; failures are recorded and notified."""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time
from datetime import datetime
from itertools import pairwise

from tests.conftest import CFX, REPO, run_cfx
from tests.servers import SmtpServer


def jobs_file(tmp_path, *jobs: str) -> dict:
    path = tmp_path / "jobs.yml"
    path.write_text("schema_version: 1\njobs:\n" + "".join(jobs))
    return {"CFX_SCHEDULER__JOBS_FILE": str(path)}


def job(name: str, cron: str, code: str) -> str:
    command = shlex.join([sys.executable, "-c", code])
    return f'  - name: {name}\n    cron: "{cron}"\n    command: {json.dumps(command)}\n'


def start_daemon(home, env):
    full = {k: v for k, v in os.environ.items() if not k.startswith("CFX_")}
    full.update(env, CFX_HOME=str(home))
    return subprocess.Popen(
        [str(CFX), "schedule", "daemon"],
        cwd=REPO,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, out
    return out


def runs(home, name: str) -> list[dict]:
    path = home / "scheduler" / "history.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
    return [r for r in rows if r["job"] == name]


def wait_until(predicate, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.1)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def test_due_jobs_run_and_an_overlapping_run_is_skipped(home, tmp_path):
    # Every 2 seconds, a job that takes 3: every other start finds the previous run still going.
    env = jobs_file(tmp_path, job("slow", "*/2 * * * * *", "import time; time.sleep(3)"))
    proc = start_daemon(home, env)
    try:
        wait_until(lambda: len([r for r in runs(home, "slow") if r["status"] == "ok"]) >= 2, 30)
    finally:
        out = stop(proc)
    rows = runs(home, "slow")
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) >= 2, out
    assert any(r["status"] == "skipped" for r in rows), rows
    spans = sorted((ts(r["started_at"]), ts(r["ended_at"])) for r in ok)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans)), "two runs overlapped"
    assert not (home / "scheduler" / "heartbeat.json").exists(), "a stopped daemon leaves no heartbeat"


def test_a_missed_run_is_caught_up_once_after_a_restart(home, tmp_path):
    env = jobs_file(tmp_path, job("tick", "*/5 * * * * *", "pass"))
    proc = start_daemon(home, env)
    try:
        wait_until(lambda: runs(home, "tick"), 15)
        heartbeat = json.loads((home / "scheduler" / "heartbeat.json").read_text())
        assert heartbeat["pid"] == proc.pid and heartbeat["jobs"]["tick"]
    finally:
        stop(proc)
    assert len(runs(home, "tick")) == 1
    # Down long enough to miss two runs; restarted 1 s after a fire time. Every run due before
    # the restarted daemon is up is coalesced into one catch-up, and the next regular run is the
    # one its heartbeat names. Counted up to that time, not a fixed 2.5 s after the start: on a
    # busy machine the daemon's start alone took longer (make test, 2026-12-05).
    time.sleep(11)
    while int(time.time()) % 5 != 1:
        time.sleep(0.05)
    restarted = time.time()
    proc = start_daemon(home, env)
    try:
        wait_until(lambda: _heartbeat(home).get("pid") == proc.pid, 60)
        next_regular = ts(_heartbeat(home)["jobs"]["tick"])
        # until the next regular run is recorded too: the schedule goes on after the catch-up
        wait_until(lambda: any(ts(r["started_at"]) >= next_regular for r in runs(home, "tick")), 30)
    finally:
        stop(proc)
    after = [r for r in runs(home, "tick") if ts(r["started_at"]) >= restarted]
    caught_up = [r for r in after if ts(r["started_at"]) < next_regular]
    assert len(caught_up) == 1 and caught_up[0]["status"] == "ok", (after, next_regular)
    assert len(after) > 1, after


def _heartbeat(home) -> dict:
    try:
        return json.loads((home / "scheduler" / "heartbeat.json").read_text())
    except (OSError, ValueError):
        return {}


def test_a_second_daemon_on_the_same_home_is_refused(home, tmp_path):
    env = jobs_file(tmp_path, job("tick", "0 0 1 1 *", "pass"))
    proc = start_daemon(home, env)
    try:
        wait_until(lambda: (home / "scheduler" / "heartbeat.json").exists(), 20)
        second = run_cfx("schedule", "daemon", home=home, env=env, timeout=60)
        assert second.returncode == 2 and "already runs" in second.stderr
    finally:
        stop(proc)


def test_a_failed_job_is_recorded_and_notified_once_a_day(home, tmp_path):
    smtp = SmtpServer().start()
    env = jobs_file(tmp_path, job("broken", "0 3 * * *", "import sys; print('disk full'); sys.exit(3)"))
    env.update(
        {"CFX_SMTP__HOST": "127.0.0.1", "CFX_SMTP__PORT": str(smtp.port), "CFX_ALERTS__RECIPIENTS": '["ops@x.example"]'}
    )
    try:
        for _ in range(2):
            result = run_cfx("schedule", "run", "broken", home=home, env=env)
            assert result.returncode == 1 and "broken: failed" in result.stdout
        [first, second] = runs(home, "broken")
        assert first["exit_code"] == 3 and "disk full" in first["output_tail"] and first["trigger"] == "manual"
        assert len(smtp.messages) == 1 and "broken failed" in smtp.messages[0][1]["Subject"]
    finally:
        smtp.stop()
    listing = run_cfx("schedule", "list", "--json", home=home, env=env)
    [row] = json.loads(listing.stdout)
    assert row["last_run"]["status"] == "failed" and row["next_run"].endswith("+00:00")


def test_the_repository_jobs_and_a_bad_jobs_file(home, tmp_path):
    listing = run_cfx("schedule", "list", "--json", home=home)
    jobs = {j["job"]: j for j in json.loads(listing.stdout)}
    assert {"daily-refresh", "investor-weekly", "notify-flush", "board-pack"} <= set(jobs)
    assert jobs["investor-weekly"]["command"] == "cfx investor weekly" and jobs["investor-weekly"]["next_run"]
    bad = jobs_file(tmp_path, '  - name: x\n    cron: "61 * * * *"\n    command: cfx run\n    timezone: Mars/Olympus\n')
    result = run_cfx("schedule", "list", home=home, env=bad)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "jobs.yml:6" in result.stderr and "jobs.0.timezone" in result.stderr and "Mars/Olympus" in result.stderr
