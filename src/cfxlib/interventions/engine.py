"""Evaluate intervention rules against accounts and keep each CTA's lifecycle.

A :class:`Signal` is what cfx knows of one account at an evaluation: its health score and band,
the score to compare a drop against, new NPS answers, churn probability, days to an annual
renewal, whether it churned, and the playbook its drivers recommend. :func:`evaluate` then, in one
durable transaction per call:

- opens a CTA for every enabled rule that fires for an account without an active one (``open``,
  ``in_progress``, ``snoozed`` or ``done``); a rule that fires again while its CTA is active adds
  to that CTA's history instead;
- closes an account's active CTAs as ``closed_churned`` when it churned, and as
  ``closed_recovered`` when it is back in the green band, or when the rule no longer holds at an
  evaluation after the due date; a snooze that ran out puts the CTA back to ``open``;
- returns what changed, so the caller notifies (:func:`notify_changes`) and pushes the changes to
  the live feed.

Held-out CTAs (``interventions.holdout_pct``, by a stable hash of account and rule) are recorded
with ``holdout: true`` and never notified: they are the comparison group of the effect report.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from cfxlib.interventions import rules as rule_file
from cfxlib.interventions.rules import FROM_DRIVERS, Rule
from cfxlib.interventions.store import ACTIVE, CtaStore

HISTORY_LIMIT = 50
DEFAULT_ACTION = "Review the account with its owner and agree the next step with the customer."


@dataclass
class Signal:
    """What one evaluation knows of an account (None: not known at this evaluation)."""

    account_id: str
    account_name: str | None = None
    tier: str | None = None
    health_score: float | None = None
    band: str | None = None
    reference_score: float | None = None
    """health_drop compares the score with this one (the highest score within the rule's days)."""
    nps_scores: list[int] = field(default_factory=list)
    """NPS answers seen at this evaluation (live: the batch's; batch: the latest answer)."""
    p_churn_3m: float | None = None
    renewal_in_days: int | None = None
    churned: bool = False
    playbook: str | None = None
    action: str | None = None
    owner_email: str | None = None


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def fires(rule: Rule, s: Signal) -> str | None:
    """The reason (a sentence with the account's own figures) when ``rule`` fires for ``s``."""
    name = s.account_name or s.account_id
    if rule.kind == "red_band" and s.band == "red" and s.health_score is not None:
        return f"{name}'s health score is {s.health_score:.1f}, in the red band."
    if rule.kind == "health_drop" and None not in (s.health_score, s.reference_score):
        fall = s.reference_score - s.health_score
        if fall >= rule.points:
            return (
                f"{name}'s health score fell {fall:.1f} points, from {s.reference_score:.1f} to "
                f"{s.health_score:.1f}, within {rule.days} days."
            )
    if rule.kind == "detractor":
        low = [n for n in s.nps_scores if n <= rule.max_score]
        if low:
            return f"{name} gave an NPS answer of {min(low)} out of 10 (detractor: {rule.max_score} or less)."
    if rule.kind == "churn_risk" and s.p_churn_3m is not None and s.p_churn_3m >= rule.min_probability:
        return f"{name} has a {100 * s.p_churn_3m:.0f}% probability of churning within 3 months."
    if (
        rule.kind == "renewal_risk"
        and s.renewal_in_days is not None
        and 0 <= s.renewal_in_days <= rule.within_days
        and s.band not in (None, "green")
    ):
        return f"{name}'s annual renewal is in {s.renewal_in_days} days and its health band is {s.band}."
    return None


def _knows(rule: Rule, s: Signal) -> bool:
    """Whether this evaluation can say the rule no longer holds (not merely not seen)."""
    return {
        "red_band": s.band is not None,
        "health_drop": s.health_score is not None and s.reference_score is not None,
        "detractor": bool(s.nps_scores),
        "churn_risk": s.p_churn_3m is not None,
        "renewal_risk": s.renewal_in_days is not None and s.band is not None,
    }[rule.kind]


@dataclass
class Settings:
    """What evaluation needs from cfx's settings (kept small so tests build it directly)."""

    holdout_pct: float = 0.0
    owners: dict[str, list[str]] = field(default_factory=dict)
    playbook_actions: dict[str, str] = field(default_factory=dict)


def _open(rule: Rule, s: Signal, reason: str, cfg: Settings, today: date, stamp: str) -> dict:
    playbook = s.playbook if rule.playbook == FROM_DRIVERS else rule.playbook
    playbook = playbook or "account review"
    action = (s.action if rule.playbook == FROM_DRIVERS else None) or cfg.playbook_actions.get(playbook)
    owners = [s.owner_email] if s.owner_email else list(cfg.owners.get(rule.owner, []))
    return {
        "id": "cta_" + secrets.token_hex(6),
        "account_id": s.account_id,
        "account_name": s.account_name,
        "tier": s.tier,
        "band": s.band,
        "rule": rule.id,
        "rule_title": rule.title,
        "reason": reason,
        "playbook": playbook,
        "action": action or DEFAULT_ACTION,
        "owner": rule.owner,
        "owner_email": owners[0] if owners else None,
        "owner_emails": owners,
        "priority": rule.priority,
        "due_date": (today + timedelta(days=rule.due_days)).isoformat(),
        "status": "open",
        "opened_at": stamp,
        "updated_at": stamp,
        "first_action_at": None,
        "snooze_until": None,
        "holdout": rule_file.in_holdout(s.account_id, rule.id, cfg.holdout_pct),
        "health_at_open": s.health_score,
        "band_at_open": s.band,
        "notes": [],
        "history": [{"at": stamp, "event": "opened", "text": reason}],
        "outcome": None,
    }


def _close(cta: dict, status: str, why: str, s: Signal, stamp: str) -> None:
    cta["status"] = status
    cta["updated_at"] = stamp
    cta["closed_at"] = stamp
    cta["outcome"] = {
        "result": "recovered" if status == "closed_recovered" else "churned",
        "at": stamp,
        "health_score": s.health_score,
        "reason": why,
    }
    cta["history"] = (cta.get("history") or [])[-HISTORY_LIMIT + 1 :] + [{"at": stamp, "event": status, "text": why}]


def evaluate(
    store: CtaStore, signals: list[Signal], rules: list[Rule], cfg: Settings, today: date | None = None
) -> list[dict]:
    """Open, extend and close CTAs for ``signals``; returns the changed CTAs, each with
    ``change`` set to ``opened``, ``changed`` or ``closed``. Durable when it returns."""
    today = today or datetime.now(UTC).date()
    stamp = now_iso()
    changes: list[dict] = []
    if not signals:
        return changes
    with store.transaction() as con:
        active = CtaStore.active_in(con, sorted({s.account_id for s in signals}))
        for s in signals:
            for rule in rules:
                cta = active.get((s.account_id, rule.id))
                reason = fires(rule, s)
                if cta is None:
                    if reason and not s.churned:
                        cta = _open(rule, s, reason, cfg, today, stamp)
                        CtaStore.write(con, cta)
                        active[(s.account_id, rule.id)] = cta
                        changes.append({**cta, "change": "opened"})
                    continue
                if s.churned:
                    _close(cta, "closed_churned", f"{s.account_name or s.account_id} churned.", s, stamp)
                elif s.band == "green" and s.health_score is not None and cta.get("band_at_open") != "green":
                    _close(cta, "closed_recovered", f"Back in the green band (score {s.health_score:.1f}).", s, stamp)
                elif reason is None and _knows(rule, s) and today > date.fromisoformat(cta["due_date"]):
                    _close(cta, "closed_recovered", "The trigger no longer holds after the due date.", s, stamp)
                elif reason is not None and cta["history"][-1].get("text") != reason:
                    cta["history"] = cta["history"][-HISTORY_LIMIT + 1 :] + [
                        {"at": stamp, "event": "fired again", "text": reason}
                    ]
                    cta["reason"], cta["updated_at"] = reason, stamp
                elif cta["status"] == "snoozed" and (cta.get("snooze_until") or "9999") <= today.isoformat():
                    cta["status"], cta["updated_at"] = "open", stamp
                    cta["history"].append({"at": stamp, "event": "snooze ended", "text": ""})
                else:
                    continue
                if s.health_score is not None:
                    cta["band"] = s.band
                CtaStore.write(con, cta)
                if cta["status"] not in ACTIVE:
                    del active[(s.account_id, rule.id)]
                changes.append({**cta, "change": "closed" if cta["status"] not in ACTIVE else "changed"})
    return changes


class TransitionError(ValueError):
    """A change a CTA's lifecycle does not allow; ``field`` names the input at fault."""

    def __init__(self, field: str, message: str):
        super().__init__(message)
        self.field = field


ALLOWED = {
    "open": {"in_progress", "snoozed", "done"},
    "in_progress": {"in_progress", "snoozed", "done"},
    "snoozed": {"in_progress", "snoozed", "done"},
    "done": {"in_progress"},
}
"""Status changes a person may make (closing is the rules' job)."""


def update(
    store: CtaStore,
    cta_id: str,
    author: str,
    status: str | None = None,
    note: str | None = None,
    snooze_until: date | None = None,
    today: date | None = None,
) -> dict | None:
    """A person's change: status, a note, a snooze. Durable when it returns; None for an unknown id."""
    today = today or datetime.now(UTC).date()
    stamp = now_iso()
    with store.transaction() as con:
        row = con.execute("SELECT body FROM cta WHERE id = ?", (cta_id,)).fetchone()
        if row is None:
            return None
        import json

        cta = json.loads(row[0])
        if status is not None:
            if status not in ALLOWED.get(cta["status"], set()):
                raise TransitionError(
                    "status",
                    f"a CTA that is {cta['status']} cannot become {status}"
                    + ("" if cta["status"] in ALLOWED else " (closed CTAs are final)"),
                )
            if status == "snoozed" and snooze_until is None:
                raise TransitionError("snooze_until", "snoozing needs snooze_until (a date after today)")
        if snooze_until is not None:
            if status not in (None, "snoozed") or (status is None and cta["status"] != "snoozed"):
                raise TransitionError("snooze_until", "snooze_until goes with status snoozed")
            if snooze_until <= today:
                raise TransitionError("snooze_until", f"snooze_until must be after today ({today.isoformat()})")
            cta["snooze_until"] = snooze_until.isoformat()
        if status is not None and status != cta["status"]:
            cta["history"].append({"at": stamp, "event": f"status {status}", "text": f"by {author}"})
            cta["status"] = status
            if status != "snoozed":
                cta["snooze_until"] = None
        if note is not None:
            cta["notes"].append({"at": stamp, "author": author, "text": note})
        if cta.get("first_action_at") is None and (status or note):
            cta["first_action_at"] = stamp
        cta["updated_at"] = stamp
        CtaStore.write(con, cta)
    return cta
