"""The weekly investor snapshot and update (``cfx investor weekly``).

* The week's snapshot is the latest publication's ``metrics_snapshot.json`` plus ``week``,
  written once to ``$CFX_HOME/investor/snapshots/YYYY-Www.json``. The folder is append-only:
  re-running a week keeps the file as it is (same data, same bytes); a week never changes once
  written, even when later runs publish different data (the history shows what was reported).
* Alerts are evaluated against it (:mod:`cfxlib.investor.alerts`).
* The update (KPIs with week-over-week and month-over-month change, the forecast line, active
  alerts, the ARR chart inline, the investor PDF attached) is rendered to
  ``$CFX_HOME/investor/updates/YYYY-Www.html`` and put into the outbox once per recipient per
  week (key ``investor-update/YYYY-Www``), so a re-run sends nothing twice.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cfxlib.core.home import Home
from cfxlib.core.outputs import fsync_dir, write_atomic, write_text_if_changed
from cfxlib.core.settings import Settings
from cfxlib.investor import alerts, content
from cfxlib.notify.deliver import notify, outbox_for
from cfxlib.notify.outbox import Attachment, utcnow
from cfxlib.publish import history, snapshot

PDF = Path("reports") / "investor_metrics.pdf"
CHART = Path("reports") / "figures" / "arr_forecast_email.png"
"""The email's chart: the total ARR alone, legible at a phone's width (older publications: the
full chart below)."""
FULL_CHART = Path("reports") / "figures" / "arr_forecast.png"


def publication_of(home: Home, run_id: str) -> Path:
    """The publication folder of ``run_id`` (its run folder), or the latest publication."""
    folder = home.runs / run_id / "publish"
    return folder if folder.exists() else home.published


@dataclass
class WeekResult:
    week: str
    path: Path
    status: str
    """written, unchanged (same data) or kept (the week already held other data)."""
    snapshot: dict
    notices: list[alerts.Notice]
    update_path: Path
    queued: int


def record_week(home: Home, week: str) -> tuple[Path, str, dict]:
    """Write the week's snapshot unless the week has one; returns (path, status, the week's snapshot)."""
    latest = snapshot.published(home)
    folder = history.snapshots_dir(home.root)
    path = folder / f"{week}.json"
    if path.exists():
        stored = json.loads(path.read_text(encoding="utf-8"))
        same = stored.get("data_hash") == latest["data_hash"] and stored.get("as_of") == latest["as_of"]
        return path, "unchanged" if same else "kept", stored
    data = {**latest, "week": week}
    folder.mkdir(parents=True, exist_ok=True)
    draft = folder / f".{week}.{os.getpid()}.json"
    write_atomic(draft, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    try:
        os.link(draft, path)  # create-only: a week written meanwhile by another run is kept
    except FileExistsError:
        return record_week(home, week)
    finally:
        draft.unlink(missing_ok=True)
    fsync_dir(folder)
    return path, "written", data


def weekly(home: Home, settings: Settings, week: str | None = None, now: datetime | None = None) -> WeekResult:
    now = now or utcnow()
    week = history.parse_week(week) if week else history.iso_week(now.date())
    path, status, snap = record_week(home, week)
    evaluation = alerts.evaluate(home, settings, snap, now)
    pub = publication_of(home, snap["run_id"])
    finance_path = pub / "finance.json"
    finance = json.loads(finance_path.read_text(encoding="utf-8")) if finance_path.exists() else None
    last_week = history.previous_week(history.snapshots_dir(home.root), week)
    firing = alerts.firing(home, settings)
    chart = pub / CHART if (pub / CHART).exists() else pub / FULL_CHART
    pdf = pub / PDF
    chart_png = chart.read_bytes() if chart.exists() else None
    update_dir = home.root / "investor" / "updates"
    update_path = update_dir / f"{week}.html"
    cid = f"arr-forecast-{week.lower()}@cfx.chatterfix" if chart_png else None
    update = content.weekly_update(
        week, snap, last_week, finance, firing, cid, chart_png, pdf.exists(), update_path.name
    )
    update_dir.mkdir(parents=True, exist_ok=True)
    write_text_if_changed(update_path, update.html_archive)
    outbox = outbox_for(home)
    attachments = []
    if chart_png:
        attachments.append(
            Attachment(filename="arr_forecast.png", mime="image/png", blob=outbox.put_blob(chart_png), cid=cid)
        )
    if pdf.exists():
        attachments.append(
            Attachment(
                filename=f"ChatterFix investor metrics {snap['as_of']}.pdf",
                mime="application/pdf",
                blob=outbox.put_blob(pdf.read_bytes()),
            )
        )
    data = {
        "week": week,
        "as_of": snap["as_of"],
        "run_id": snap["run_id"],
        "data_hash": snap["data_hash"],
        "kpis": {
            r.label: {"value": r.value, "vs_last_week": r.wow, "vs_previous_month": r.mom}
            for r in content.kpi_rows(snap, last_week, finance)
        },
        "alerts": firing,
        "snapshot": {k: snap.get(k) for k in ("mrr", "arr", "arr_growth_mom", "customers", "nrr_12m", "grr_12m")},
    }
    queued = evaluation.queued + notify(
        outbox,
        f"investor-update/{week}",
        "investor.update",
        data,
        content.email_content(update, attachments),
        list(settings.investor.recipients),
        settings.webhooks.urls,
        now,
    )
    return WeekResult(week, path, status, snap, evaluation.notices, update_path, queued)


def history_rows(home: Home) -> list[dict]:
    """Every week's snapshot with its week-over-week changes."""
    weeks = history.read_weeks(history.snapshots_dir(home.root))
    out = []
    for i, snap in enumerate(weeks):
        prev = weeks[i - 1] if i else None
        row = {"week": snap["week"], "as_of": snap["as_of"], "run_id": snap.get("run_id")}
        for field, _label, how in history.CHANGES:
            row[field] = snap.get(field)
            row[f"{field}_wow"] = history.change(snap, prev, field, how)
        row["alerts"] = len(snap.get("alerts") or [])
        out.append(row)
    return out
