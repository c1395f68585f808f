"""Run one job: never two instances at once, every run recorded, failures notified.

Records go to ``$CFX_HOME/scheduler/history.jsonl`` (one JSON object per line: job, trigger,
started_at, ended_at, status ``ok``/``failed``/``skipped``/``missed``, exit code, the run folder a
``cfx run`` created, the last lines of output). A job already running (in the daemon or by hand)
holds ``scheduler/locks/JOB.lock``, so an overlapping start is recorded as ``skipped``. A failed
run notifies the alert recipients and webhooks (type ``job.failed``) through the outbox, at most
once per job and day.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from cfxlib.core.errors import UserError
from cfxlib.core.home import Home
from cfxlib.core.settings import Settings, load_settings
from cfxlib.notify.deliver import alert_recipients, flush, notify, outbox_for
from cfxlib.notify.outbox import EmailContent
from cfxlib.scheduler import jobs as job_defs

OUTPUT_TAIL = 2000


def folder(home: Home) -> Path:
    return home.scheduler


def history_path(home: Home) -> Path:
    return folder(home) / "history.jsonl"


def record(home: Home, entry: dict) -> None:
    """Append one run record durably (O_APPEND lines are not interleaved between processes)."""
    path = history_path(home)
    path.parent.mkdir(parents=True, exist_ok=True)
    line = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        os.write(fd, line)
        os.fsync(fd)
    finally:
        os.close(fd)


def history(home: Home, job: str | None = None) -> list[dict]:
    path = history_path(home)
    if not path.exists():
        return []
    rows = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except ValueError:
            continue  # a line cut by a crash
        if job is None or row.get("job") == job:
            rows.append(row)
    return rows


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _notify_failure(home: Home, settings: Settings, job: job_defs.Job, entry: dict) -> None:
    day = entry["started_at"][:10]
    subject = f"[ChatterFix] scheduled job {job.name} failed ({entry['status']}, exit {entry['exit_code']})"
    text = "\n".join(
        [
            f"The scheduled job {job.name} failed at {entry['ended_at']}.",
            f"Command: {job.command}",
            f"Exit code: {entry['exit_code']}",
            "",
            "Last output:",
            entry.get("output_tail") or "(none)",
            "",
            "Run it by hand with `cfx schedule run " + job.name + "`; history: `cfx schedule list`.",
        ]
    )
    notify(
        outbox_for(home),
        f"job-failed/{job.name}/{day}",
        "job.failed",
        {k: entry.get(k) for k in ("job", "started_at", "ended_at", "status", "exit_code", "trigger")},
        EmailContent(subject=subject, text=text + "\n"),
        alert_recipients(settings),
        settings.webhooks.urls,
    )
    flush(home, settings, due_only=True)


def run_job(name: str, trigger: str = "schedule") -> dict:
    """Run job ``name`` now (settings and jobs file read from the environment); returns its record.

    This is the function the daemon's job store refers to, so it takes only plain arguments.
    """
    settings = load_settings()
    home = Home(settings.home).ensure()
    job = next((j for j in job_defs.load_all(settings) if j.name == name), None)
    if job is None:
        raise UserError(f"no job named {name!r} in {job_defs.jobs_path(settings)}")
    locks = folder(home) / "locks"
    locks.mkdir(parents=True, exist_ok=True)
    with open(locks / f"{name}.lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            entry = {
                "job": name,
                "trigger": trigger,
                "started_at": _now(),
                "ended_at": _now(),
                "status": "skipped",
                "exit_code": None,
                "detail": "the previous run is still going",
            }
            record(home, entry)
            return entry
        runs_before = set(os.listdir(home.runs)) if home.runs.exists() else set()
        started = _now()
        try:
            proc = subprocess.run(
                job.argv(), capture_output=True, text=True, timeout=job.timeout_s, stdin=subprocess.DEVNULL
            )
            status, code, output = (
                ("ok" if proc.returncode == 0 else "failed"),
                proc.returncode,
                proc.stdout + proc.stderr,
            )
        except subprocess.TimeoutExpired as exc:
            status, code = "failed", None
            output = f"stopped after {job.timeout_s} s (timeout_s)\n" + str(exc.stdout or "")[-OUTPUT_TAIL:]
        except OSError as exc:
            status, code, output = "failed", None, f"cannot start {job.command!r}: {exc}"
        runs_after = set(os.listdir(home.runs)) if home.runs.exists() else set()
        new_runs = sorted(runs_after - runs_before)
        entry = {
            "job": name,
            "trigger": trigger,
            "started_at": started,
            "ended_at": _now(),
            "status": status,
            "exit_code": code,
            "run_folder": str(home.runs / new_runs[-1]) if new_runs else None,
            "output_tail": output[-OUTPUT_TAIL:],
        }
        record(home, entry)
    if status != "ok":
        _notify_failure(home, settings, job, entry)
    return entry
