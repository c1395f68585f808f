"""Health checks that read local state only (cheap: used by ``cfx health`` and the service's
``/healthz``): warehouse, last run, publication, scheduler heartbeat, outbox, data room, disk.

Each check gives ``Check(name, ok, detail)``; the detail says what was found and, when not ok,
what to do next. A component that is not set up (no data room recipients) passes as
"not configured" rather than failing the whole system.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from cfxlib.core.home import Home
from cfxlib.core.processes import pid_alive
from cfxlib.core.settings import Settings
from cfxlib.core.urls import without_password
from cfxlib.notify.outbox import Outbox

HEARTBEAT_STALE_S = 90
"""The scheduler writes its heartbeat every 15 s; older than this, it is not running."""
CONTRACT_FILES = (
    "metrics_snapshot.json",
    "finance.json",
    "customer_success.json",
    "site/index.html",
    "reports/enterprise_launch_report.pdf",
    "reports/investor_metrics.pdf",
)
"""What a publication must hold (../shared/CONTRACT.md, "Published outputs")."""


@dataclass
class Check:
    name: str
    ok: bool
    detail: str

    def as_dict(self) -> dict:
        return asdict(self)


def _age(when: datetime, now: datetime) -> str:
    seconds = max(0, (now - when).total_seconds())
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h ago"
    return f"{seconds / 86400:.1f} days ago"


def warehouse(home: Home) -> Check:
    """The newest ingested tables (:func:`cfxlib.store.lake.newest`): the warehouse, or Spark's."""
    from cfxlib.store import lake
    from cfxlib.store import warehouse as wh

    source = lake.newest(home)
    if source is None:
        return Check("warehouse", False, f"no warehouse at {home.warehouse}: run `cfx run`")
    marker = lake.root(home) / lake.POINTER if source == "lake" else home.warehouse
    try:
        if source == "lake":
            meta = lake.current(home)
        else:
            con = wh.connect(home.warehouse)
            try:
                meta = wh.ingest_metadata(con)
            finally:
                con.close()
    except Exception as exc:  # a corrupt file or a lock held by a writer: report, never raise
        return Check("warehouse", False, f"cannot read {marker}: {type(exc).__name__}: {str(exc)[:160]}")
    stamp = datetime.fromtimestamp(marker.stat().st_mtime, UTC)
    where = f"Spark tables at {meta['location']}; " if source == "lake" else ""
    return Check(
        "warehouse",
        True,
        f"{where}readable; last ingest {_age(stamp, datetime.now(UTC))} (data {str(meta.get('data_hash', ''))[:12]}"
        + (f", as of {meta['as_of']})" if meta.get("as_of") else ")"),
    )


def last_run(home: Home, max_age_h: float) -> Check:
    runs = sorted(home.runs.glob("*/run.json")) if home.runs.exists() else []
    if not runs:
        return Check("last run", False, "no `cfx run` yet")
    run = json.loads(runs[-1].read_text(encoding="utf-8"))
    when = datetime.fromisoformat(run.get("finished_at") or run["started_at"])
    age_h = (datetime.now(UTC) - when).total_seconds() / 3600
    status = run.get("status")
    if status != "published":
        failed = next((n for n, s in (run.get("steps") or {}).items() if s.get("status") == "failed"), None)
        where = f" at step {failed}" if failed else ""
        return Check(
            "last run",
            False,
            f"run {run['run_id']} {status}{where} ({_age(when, datetime.now(UTC))}); see {runs[-1].parent}",
        )
    ok = age_h <= max_age_h
    detail = f"run {run['run_id']} published {_age(when, datetime.now(UTC))}"
    return Check(
        "last run", ok, detail if ok else f"{detail}: older than {max_age_h:g} h (is the daily refresh running?)"
    )


def publication(home: Home) -> Check:
    from pydantic import ValidationError

    from cfxlib.publish.snapshot import MetricsSnapshot

    pub = home.published
    if not pub.exists():
        return Check("publication", False, f"nothing published at {pub}: run `cfx run`")
    missing = [name for name in CONTRACT_FILES if not (pub / name).exists()]
    if missing:
        return Check("publication", False, f"missing from {pub.resolve()}: {', '.join(missing)}")
    try:
        snap = MetricsSnapshot.model_validate_json((pub / "metrics_snapshot.json").read_bytes())
    except ValidationError as exc:
        first = exc.errors()[0]
        return Check(
            "publication",
            False,
            f"metrics_snapshot.json breaks its schema at {'.'.join(map(str, first['loc']))}: {first['msg']}",
        )
    return Check(
        "publication", True, f"complete; snapshot {snap.as_of} valid (schema {snap.schema_version}), run {snap.run_id}"
    )


def scheduler(home: Home) -> Check:
    path = home.scheduler / "heartbeat.json"
    if not path.exists():
        return Check(
            "scheduler", False, "no heartbeat: the scheduler daemon is not running (`cfx up` or `cfx schedule daemon`)"
        )
    beat = json.loads(path.read_text(encoding="utf-8"))
    when = datetime.fromisoformat(beat["at"])
    age = (datetime.now(UTC) - when).total_seconds()
    alive = pid_alive(beat.get("pid"))
    nexts = ", ".join(f"{job} {at[:16].replace('T', ' ')}" for job, at in sorted(beat.get("jobs", {}).items()) if at)
    if age > HEARTBEAT_STALE_S or not alive:
        return Check(
            "scheduler", False, f"heartbeat {age:.0f} s old (pid {beat.get('pid')} {'alive' if alive else 'gone'})"
        )
    return Check("scheduler", True, f"heartbeat {age:.0f} s ago (pid {beat['pid']}); next: {nexts or 'no jobs'}")


def outbox(home: Home, max_oldest_s: float) -> Check:
    backlog = Outbox(home.outbox).backlog()
    oldest = backlog["oldest_age_s"]
    detail = f"{backlog['pending']} pending" + (f", oldest {oldest / 60:.0f} min" if oldest is not None else "")
    detail += f", {backlog['failed']} failed"
    if backlog["failed"]:
        return Check("outbox", False, detail + ": see `cfx notify list --state failed`, then `cfx notify retry KEY`")
    if oldest is not None and oldest > max_oldest_s:
        return Check("outbox", False, detail + ": a channel is down (`cfx notify list` shows the last error)")
    return Check("outbox", True, detail)


def dataroom(home: Home, settings: Settings) -> Check:
    path = home.dataroom / "last_sync.json"
    if not path.exists():
        if not settings.dataroom.recipients:
            return Check("data room", True, "not configured (no CFX_DATAROOM__RECIPIENTS)")
        return Check("data room", False, "never synced: run `cfx dataroom sync`")
    last = json.loads(path.read_text(encoding="utf-8"))
    when = datetime.fromisoformat(last["at"])
    return Check(
        "data room",
        bool(last.get("verified")),
        f"{last['label']} synced and read back {_age(when, datetime.now(UTC))} to {last['target']}",
    )


def disk(home: Home, min_free_gb: float) -> Check:
    root = home.root if home.root.exists() else Path(home.root).parent
    usage = shutil.disk_usage(root)
    free = usage.free / 2**30
    ok = free >= min_free_gb
    return Check(
        "disk", ok, f"{free:,.1f} GiB free under {home.root}" + ("" if ok else f" (under {min_free_gb:g} GiB)")
    )


def broker(url: str) -> Check:
    """The feed's broker answers a PING (``CFX_BROKER__URL``)."""
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
        try:
            client.ping()
        finally:
            client.close()
    except Exception as exc:  # noqa: BLE001 - reported, not raised
        return Check(
            "broker",
            False,
            f"{without_password(url)} does not answer ({type(exc).__name__}): live events are still stored; other "
            "workers' changes reach feed clients by polling the log; start Redis (`cfx up` does for a local URL)",
        )
    return Check("broker", True, f"{without_password(url)} answers")


def local_checks(home: Home, settings: Settings) -> list[Check]:
    o = settings.ops
    extra = [broker(settings.broker.url)] if settings.broker.url else []
    return [
        *extra,
        warehouse(home),
        last_run(home, o.max_run_age_h),
        publication(home),
        scheduler(home),
        outbox(home, o.max_outbox_age_s),
        dataroom(home, settings),
        disk(home, o.min_free_disk_gb),
    ]
