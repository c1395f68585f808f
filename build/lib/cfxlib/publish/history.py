"""Weekly investor snapshots kept under ``$CFX_HOME/investor/snapshots/YYYY-Www.json``.

Written by ``cfx investor weekly`` (:mod:`cfxlib.investor.weekly`); read here by the site's
overview (its week-over-week column) and by ``cfx investor history``. Weeks are ISO 8601 weeks
(``2026-W49``: Monday to Sunday, week 1 holds the year's first Thursday).
"""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

WEEK = re.compile(r"^(\d{4})-W(\d{2})$")


def iso_week(day: date) -> str:
    year, week, _ = day.isocalendar()
    return f"{year}-W{week:02d}"


def parse_week(text: str) -> str:
    """``text`` if it is a valid ISO week ``YYYY-Www``; raises ValueError otherwise."""
    match = WEEK.match(text or "")
    if not match:
        raise ValueError(f"{text!r} is not an ISO week like 2026-W49")
    try:
        date.fromisocalendar(int(match.group(1)), int(match.group(2)), 1)
    except ValueError:
        raise ValueError(f"{text} does not exist (year {match.group(1)} has no week {match.group(2)})") from None
    return text


def week_monday(week: str) -> date:
    year, number = parse_week(week).split("-W")
    return date.fromisocalendar(int(year), int(number), 1)


def snapshots_dir(home_root: Path) -> Path:
    return Path(home_root) / "investor" / "snapshots"


def read_weeks(folder: Path) -> list[dict]:
    """Every weekly snapshot in ``folder``, oldest week first (unreadable files are skipped)."""
    out = []
    for path in sorted(Path(folder).glob("*-W*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(data, dict) and data.get("week") == path.stem:
            out.append(data)
    return out


def previous_week(folder: Path, before: str) -> dict | None:
    """The latest weekly snapshot of a week before ``before`` (``YYYY-Www``), if any."""
    earlier = [w for w in read_weeks(folder) if w["week"] < before]
    return earlier[-1] if earlier else None


CHANGES: tuple[tuple[str, str, str], ...] = (
    ("arr", "ARR", "relative"),
    ("mrr", "MRR", "relative"),
    ("customers", "Customers", "relative"),
    ("nrr_12m", "Net revenue retention", "points"),
    ("grr_12m", "Gross revenue retention", "points"),
    ("logo_churn_rate", "Logo churn", "points"),
    ("worst_service_uptime_pct", "Uptime (worst service)", "uptime"),
    ("arr_at_risk", "ARR at risk", "relative"),
)
"""KPIs compared between snapshots: (field, label, how the change is expressed)."""


def change(current: dict, previous: dict | None, field: str, how: str) -> float | None:
    """The change of ``field``: relative (0.02 = +2%), in points of a ratio (0.01 = 1 pp), or in
    uptime percentage points; None when either side is missing."""
    if previous is None:
        return None
    a, b = current.get(field), previous.get(field)
    if a is None or b is None:
        return None
    if how == "relative":
        return None if b == 0 else a / b - 1
    return a - b
