"""Alerts that fire once, repeat at their interval and resolve once (Alertmanager semantics).

Each rule of :mod:`cfxlib.contract.alert_rules` has a state kept in
``$CFX_HOME/investor/alerts/state.json``:

* ``inactive`` — passing (or never evaluated);
* ``pending`` — failing, but on fewer consecutive snapshots than the rule's ``for_snapshots``;
* ``firing`` — a notice went out when it started; a reminder goes out at most once per
  ``repeat_every`` while it keeps failing; one ``resolved`` notice goes out when it passes again.

A *snapshot* is identified by its month and data hash, so evaluating the same data twice (a
re-run, a daily refresh on unchanged data) never counts twice and never flaps. Notices are put
into the outbox (keyed by rule, episode and notice) *before* the state is written: a crash in
between repeats the same keys on the next evaluation, which the outbox ignores.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from cfxlib.contract import alert_rules
from cfxlib.core.home import Home
from cfxlib.core.outputs import write_atomic
from cfxlib.core.settings import Settings
from cfxlib.investor import content
from cfxlib.notify.deliver import alert_recipients, notify, outbox_for
from cfxlib.notify.outbox import utcnow
from cfxlib.store.summary import month_is_complete

RuleState = Literal["inactive", "pending", "firing"]


class RuleStatus(BaseModel):
    state: RuleState = "inactive"
    failing_snapshots: int = Field(0, description="Consecutive failing snapshots so far.")
    last_snapshot: str | None = Field(None, description="Id of the last snapshot evaluated.")
    episode: str | None = Field(None, description="Snapshot at which the current firing started.")
    since: str | None = Field(None, description="Month of that snapshot, YYYY-MM.")
    fired_at: datetime | None = None
    reminders: int = Field(0, description="Reminders sent in this episode.")
    value: float | None = None
    threshold: float | None = None
    as_of: str | None = None
    message: str | None = None


class AlertState(BaseModel):
    rules: dict[str, RuleStatus] = Field(default_factory=dict)


def state_path(home: Home) -> Path:
    return home.root / "investor" / "alerts" / "state.json"


def read_state(home: Home) -> AlertState:
    path = state_path(home)
    if not path.exists():
        return AlertState()
    return AlertState.model_validate_json(path.read_bytes())


def snapshot_id(snapshot: dict) -> str:
    return f"{snapshot['as_of']}/{snapshot['data_hash'][:16]}"


@dataclass(frozen=True)
class Notice:
    """One alert notice: ``kind`` is firing, reminder or resolved."""

    rule: alert_rules.Rule
    kind: Literal["firing", "reminder", "resolved"]
    key: str
    status: RuleStatus

    @property
    def type(self) -> str:
        return "alert.resolved" if self.kind == "resolved" else "alert.firing"


def step(
    rule: alert_rules.Rule, status: RuleStatus, snapshot: dict, thresholds, now: datetime
) -> tuple[RuleStatus, Notice | None]:
    """The rule's next state after seeing ``snapshot`` at ``now``, and the notice to send, if any."""
    value = rule.value(snapshot)
    if value is None:
        return status, None  # nothing to judge (e.g. no cash figure for runway)
    threshold = rule.threshold_value(thresholds)
    snap = snapshot_id(snapshot)
    new = status.model_copy()
    fresh = new.last_snapshot != snap
    new.last_snapshot = snap
    new.value, new.threshold, new.as_of = value, threshold, snapshot["as_of"]
    if rule.fails(value, threshold):
        if fresh:
            new.failing_snapshots += 1
        new.message = next((b.message for b in alert_rules.breaches(snapshot, [rule], thresholds)), new.message)
        if new.state != "firing":
            if new.failing_snapshots >= rule.for_snapshots:
                new.state, new.episode, new.fired_at, new.reminders = "firing", snap, now, 0
                new.since = snapshot["as_of"]
                return new, Notice(rule, "firing", f"alert/{rule.id}/{snap}/firing", new)
            new.state = "pending"
            return new, None
        due = int((now - new.fired_at) / rule.repeat_interval) if new.fired_at else 0
        if due > new.reminders:
            new.reminders = due
            return new, Notice(rule, "reminder", f"alert/{rule.id}/{new.episode}/reminder-{due}", new)
        return new, None
    new.failing_snapshots = 0
    if new.state == "firing":
        notice = Notice(rule, "resolved", f"alert/{rule.id}/{new.episode}/resolved", new)
        new.state, new.message = "inactive", None
        return new, notice
    new.state, new.message = "inactive", None
    return new, None


@dataclass
class Evaluation:
    notices: list[Notice]
    queued: int
    """Outbox messages added (a notice already queued by an earlier run adds none)."""
    skipped: str | None = None
    """Why nothing was evaluated (the snapshot's month is not over yet)."""


def evaluate(home: Home, settings: Settings, snapshot: dict, now: datetime | None = None) -> Evaluation:
    """Evaluate every rule against ``snapshot``; enqueue notices, then save the state.

    A month that has not ended yet (a publication made ``--as-of`` a day inside the current month)
    is never evaluated: its figures are partial, and an alert on them would be false."""
    now = now or utcnow()
    if not month_is_complete(snapshot["as_of"], now.date()):
        return Evaluation(
            [], 0, f"the publication's month {snapshot['as_of']} is not over yet: alerts evaluate complete months only"
        )
    rules = alert_rules.load(home.root, settings.thresholds)
    state = read_state(home)
    notices: list[Notice] = []
    for rule in rules:
        status, notice = step(rule, state.rules.get(rule.id, RuleStatus()), snapshot, settings.thresholds, now)
        state.rules[rule.id] = status
        if notice:
            notices.append(notice)
    outbox = outbox_for(home)
    queued = 0
    for notice in notices:
        email = content.alert_email(notice.rule, notice.kind, notice.status, snapshot)
        data = {
            "rule": notice.rule.id,
            "title": notice.rule.title,
            "severity": notice.rule.severity,
            "state": "resolved" if notice.kind == "resolved" else "firing",
            "notice": notice.kind,
            "metric": notice.rule.metric,
            "value": notice.status.value,
            "threshold": notice.status.threshold,
            "condition": notice.rule.condition,
            "as_of": snapshot["as_of"],
            "since": notice.status.since,
            "message": email.subject,
            "run_id": snapshot.get("run_id"),
        }
        queued += notify(
            outbox, notice.key, notice.type, data, email, alert_recipients(settings), settings.webhooks.urls, now
        )
    path = state_path(home)
    write_atomic(path, state.model_dump_json(indent=1).encode("utf-8"))
    return Evaluation(notices, queued)


def firing(home: Home, settings: Settings) -> list[dict]:
    """Alerts currently firing: rule, title, severity, since (snapshot id), value and message."""
    rules = {rule.id: rule for rule in alert_rules.load(home.root, settings.thresholds)}
    out = []
    for rule_id, status in read_state(home).rules.items():
        if status.state != "firing":
            continue
        rule = rules.get(rule_id)
        out.append(
            {
                "rule": rule_id,
                "title": rule.title if rule else rule_id,
                "severity": rule.severity if rule else "warning",
                "since": status.since,
                "value": status.value,
                "message": status.message or "",
            }
        )
    return out


def state_table(home: Home) -> list[dict]:
    """Every rule's state as plain dicts (for ``cfx investor alerts --json``)."""
    return [{"rule": k, **json.loads(v.model_dump_json())} for k, v in read_state(home).rules.items()]
