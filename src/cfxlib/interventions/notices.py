"""Tell owners about CTAs through the durable outbox (email and signed webhooks), and build
signals and settings from what cfx has (the publication, the warehouse, the service's live state).

A new CTA sends its owner one email (subject naming the account and the rule) and one webhook of
type ``intervention.opened``; a closed one a webhook ``intervention.closed``. The outbox key is
the CTA's id, so re-evaluating never sends twice, and a mail server that is down delays delivery
without losing it. Held-out CTAs send nothing.
"""

from __future__ import annotations

from cfxlib.core.home import Home
from cfxlib.core.settings import Settings
from cfxlib.customers.playbooks import load_playbooks
from cfxlib.interventions import engine, rules
from cfxlib.interventions.store import CtaStore
from cfxlib.notify.deliver import notify, outbox_for
from cfxlib.notify.outbox import EmailContent


def store_for(home: Home) -> CtaStore:
    return CtaStore(home.interventions / "cta.sqlite")


def config(settings: Settings) -> engine.Settings:
    actions = {p.name: p.action for p in load_playbooks()}
    return engine.Settings(
        holdout_pct=settings.interventions.holdout_pct,
        owners=dict(settings.interventions.owners),
        playbook_actions=actions,
    )


def load_rules(home: Home) -> list[rules.Rule]:
    return rules.load(home.root)


PUBLIC_FIELDS = (
    "id",
    "account_id",
    "account_name",
    "rule",
    "reason",
    "playbook",
    "action",
    "owner",
    "owner_email",
    "priority",
    "due_date",
    "status",
    "opened_at",
    "updated_at",
    "holdout",
    "outcome",
)


def email_text(cta: dict) -> str:
    """The owner's email (plain text: names and reasons are shown exactly as they are)."""
    return "\n".join(
        [
            f"A call to action for {cta['account_name'] or cta['account_id']} ({cta['account_id']}) is yours.",
            "",
            f"Why: {cta['reason']}",
            f"Playbook: {cta['playbook']}",
            f"Action: {cta['action']}",
            f"Priority: {cta['priority']}; due {cta['due_date']}.",
            "",
            f"Mark it in progress with a note: cfx interventions update {cta['id']} --status in_progress --note TEXT",
            "or in the customer success dashboard (Interventions).",
        ]
    )


def notify_changes(home: Home, settings: Settings, changes: list[dict], demo: bool = False) -> int:
    """Queue the notifications of ``changes`` (from :func:`engine.evaluate`); returns how many.
    They go to the company's own owners, never to investors; ``demo`` marks the subject."""
    outbox, queued = outbox_for(home), 0
    for cta in changes:
        if cta.get("holdout"):
            continue
        data = {k: cta.get(k) for k in PUBLIC_FIELDS}
        if cta["change"] == "opened":
            tag = "[ChatterFix demo data]" if demo else "[ChatterFix]"
            subject = f"{tag} {cta['account_name'] or cta['account_id']}: {cta.get('rule_title') or cta['rule']}"
            queued += notify(
                outbox,
                f"intervention/{cta['id']}/opened",
                "intervention.opened",
                data,
                EmailContent(subject=subject, text=email_text(cta) + "\n"),
                list(cta.get("owner_emails") or []),
                settings.webhooks.urls,
            )
        elif cta["change"] == "closed":
            queued += notify(
                outbox,
                f"intervention/{cta['id']}/closed",
                "intervention.closed",
                data,
                None,
                [],
                settings.webhooks.urls,
            )
    return queued


def owner_emails(con) -> dict[str, str]:
    """``accounts.owner_email`` (an optional column: the account's CSM) by account, where given."""
    columns = [d[0] for d in con.execute("SELECT * FROM accounts LIMIT 0").description]
    if "owner_email" not in columns:
        return {}
    rows = con.execute("SELECT account_id, owner_email FROM accounts WHERE owner_email IS NOT NULL").fetchall()
    return {a: str(e).strip() for a, e in rows if str(e).strip()}
