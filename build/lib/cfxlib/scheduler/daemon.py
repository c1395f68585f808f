"""``cfx schedule daemon``: APScheduler 3 with a SQLite job store under ``$CFX_HOME/scheduler/``.

* ``max_instances=1``: a job whose previous run is still going is skipped (and recorded).
* ``coalesce=True`` with a misfire grace time: after downtime, a job that missed one or more runs
  runs **once** on start-up, if the last missed time is within the grace time.
* The scheduler starts *paused*; jobs missing from the store are added, jobs whose timing changed
  are rescheduled, jobs removed from ``jobs.yml`` are removed; then it resumes. (Re-adding every
  job with ``replace_existing=True`` would silently drop the missed runs that make the catch-up.)
* One daemon per home (a lock file); a heartbeat file says it is alive and when each job runs next.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import threading
from datetime import UTC, datetime
from pathlib import Path

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler

from cfxlib.core.errors import UserError
from cfxlib.core.home import Home
from cfxlib.core.outputs import write_atomic
from cfxlib.core.settings import Settings
from cfxlib.scheduler import jobs as job_defs
from cfxlib.scheduler import runner

HEARTBEAT_S = 15.0


def heartbeat_path(home: Home) -> Path:
    return runner.folder(home) / "heartbeat.json"


def _store_url(home: Home) -> str:
    return f"sqlite:///{runner.folder(home) / 'jobs.sqlite'}"


def sync_jobs(scheduler: BackgroundScheduler, jobs: list[job_defs.Job], grace_s: int) -> dict[str, str]:
    """Make the (paused) scheduler's store match ``jobs`` without losing missed runs."""
    changes = {}
    stored = {job.id: job for job in scheduler.get_jobs()}
    for job in jobs:
        fingerprint = job.fingerprint(grace_s)
        current = stored.pop(job.name, None)
        if current is None:
            scheduler.add_job(
                runner.run_job,
                job.trigger(),
                args=[job.name],
                kwargs={"trigger": "schedule"},
                id=job.name,
                name=fingerprint,
                misfire_grace_time=job.misfire_grace_s or grace_s,
                coalesce=True,
                max_instances=1,
            )
            changes[job.name] = "added"
        elif current.name != fingerprint:
            scheduler.modify_job(job.name, name=fingerprint, misfire_grace_time=job.misfire_grace_s or grace_s)
            scheduler.reschedule_job(job.name, trigger=job.trigger())
            changes[job.name] = "rescheduled (its cron, time zone or grace changed)"
    for job_id in stored:
        scheduler.remove_job(job_id)
        changes[job_id] = "removed (no longer in jobs.yml)"
    return changes


def write_heartbeat(home: Home, scheduler: BackgroundScheduler) -> None:
    data = {
        "pid": os.getpid(),
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "jobs": {
            job.id: job.next_run_time.astimezone(UTC).isoformat(timespec="seconds") if job.next_run_time else None
            for job in scheduler.get_jobs()
        },
    }
    write_atomic(heartbeat_path(home), (json.dumps(data, indent=1) + "\n").encode("utf-8"))


def run(home: Home, settings: Settings, log=print, stop: threading.Event | None = None) -> None:
    """Run until SIGTERM/SIGINT (or ``stop`` is set)."""
    jobs = job_defs.load(settings)
    folder = runner.folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    lock = open(folder / "daemon.lock", "w")  # noqa: SIM115 (held for the daemon's life)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise UserError(f"a scheduler daemon already runs for {home.root} (lock {folder / 'daemon.lock'})") from None
    stop = stop or threading.Event()
    grace = settings.scheduler.misfire_grace_s
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(url=_store_url(home))},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": grace},
        timezone=UTC,
    )

    def on_event(event: JobEvent) -> None:
        status = "skipped" if event.code == EVENT_JOB_MAX_INSTANCES else "missed"
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        detail = (
            "the previous run is still going (max_instances=1)"
            if status == "skipped"
            else f"missed its time {event.scheduled_run_time} by more than the grace time"
        )
        runner.record(
            home,
            {
                "job": event.job_id,
                "trigger": "schedule",
                "started_at": now,
                "ended_at": now,
                "status": status,
                "exit_code": None,
                "detail": detail,
            },
        )
        log(f"{event.job_id}: {status}: {detail}")

    scheduler.add_listener(on_event, EVENT_JOB_MAX_INSTANCES | EVENT_JOB_MISSED)
    scheduler.start(paused=True)
    try:
        for name, change in sync_jobs(scheduler, jobs, grace).items():
            log(f"{name}: {change}")
        scheduler.resume()
        for job in scheduler.get_jobs():
            log(f"{job.id}: next run {job.next_run_time}")
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: stop.set())
        log(f"scheduler running (pid {os.getpid()}, {len(jobs)} jobs); stop with SIGTERM or Ctrl-C")
        while not stop.is_set():
            write_heartbeat(home, scheduler)
            stop.wait(HEARTBEAT_S)
    finally:
        scheduler.shutdown(wait=True)
        heartbeat_path(home).unlink(missing_ok=True)
        lock.close()
        log("scheduler stopped")


def next_runs(jobs: list[job_defs.Job], now: datetime | None = None) -> dict[str, datetime | None]:
    now = now or datetime.now(UTC)
    return {job.name: job.trigger().get_next_fire_time(None, now) for job in jobs}
