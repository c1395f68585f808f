"""The customer success dashboard's Interventions view: the queue of calls to action by due date
and priority, filters by owner, rule and status, and a form to change a CTA's status and add a
note (``PATCH /api/interventions/{id}`` with the viewer's token, so the service's roles apply).
CTAs opened or changed by live events arrive on the feed and appear without a reload.

Stable CSS classes for checks: ``cfx-interventions`` (the table), ``cfx-cta-filter-status``,
``cfx-cta-filter-owner``, ``cfx-cta-filter-rule`` (the filters), ``cfx-cta-pick``,
``cfx-cta-status``, ``cfx-cta-snooze``, ``cfx-cta-note`` (the form), ``cfx-cta-save`` (the button),
``cfx-cta-message`` (what the last save did)."""

from __future__ import annotations

import ipywidgets as w

from cfxlib.dashboards.client import AccessDenied, ServiceClient
from cfxlib.dashboards.widgets import esc, table

ALL = "All"
ACTIVE = "Active (open, in progress, snoozed)"
QUEUE = ("open", "in_progress", "snoozed")
STATUSES = ("open", "in_progress", "snoozed", "done", "closed_recovered", "closed_churned")
PRIORITY = {"urgent": 0, "high": 1, "medium": 2, "low": 3}
LIMIT = 50


def _owner(cta: dict) -> str:
    return cta.get("owner_email") or cta.get("owner") or ""


def render_queue(rows: list[dict], total: int) -> str:
    """The queue as a table; every text from the data is escaped (shown literally)."""
    if not rows:
        return '<p class="cfx-muted">No calls to action match.</p>'
    body = []
    for c in rows:
        notes = c.get("notes") or []
        last = f"{esc(notes[-1]['text'])} <span class='cfx-muted'>({esc(notes[-1]['author'])})</span>" if notes else ""
        status = esc(c["status"]) + (" (held out)" if c.get("holdout") else "")
        body.append(
            [
                esc(c["due_date"]),
                esc(c["priority"]),
                status,
                f"{esc(c.get('account_name') or '')} <span class='cfx-muted'>{esc(c['account_id'])}</span>",
                esc(c["rule"]),
                esc(c["playbook"]),
                esc(_owner(c)),
                esc(c["reason"]),
                last,
            ]
        )
    more = f'<p class="cfx-muted">{len(rows)} of {total:,} shown, soonest due first</p>' if total > len(rows) else ""
    return table(["due", "priority", "status", "account", "rule", "playbook", "owner", "why", "last note"], body) + more


class InterventionsQueue:
    """Build with a :class:`ServiceClient`; show :attr:`view`; feed messages go to :meth:`apply`."""

    def __init__(self, client: ServiceClient):
        self.client = client
        try:
            rows = client.get("/api/interventions")["interventions"]
            self.denied = False
        except AccessDenied:
            rows, self.denied = [], True
        self.ctas: dict[str, dict] = {c["id"]: c for c in rows}
        self.status = w.Dropdown(options=[ACTIVE, ALL, *STATUSES], value=ACTIVE, description="Status")
        self.owner = w.Dropdown(options=[ALL], value=ALL, description="Owner")
        self.rule = w.Dropdown(options=[ALL], value=ALL, description="Rule")
        self.table = w.HTML()
        self.table.add_class("cfx-interventions")
        self.pick = w.Dropdown(options=[], description="CTA", layout=w.Layout(width="480px"))
        self.new_status = w.Dropdown(options=["in_progress", "snoozed", "done"], value="in_progress", description="Set")
        self.snooze = w.Text(placeholder="YYYY-MM-DD (to snooze)", description="Until")
        self.note = w.Textarea(
            placeholder="What was done, what is next", description="Note", layout=w.Layout(width="480px")
        )
        for widget, name in (
            (self.status, "cfx-cta-filter-status"),
            (self.owner, "cfx-cta-filter-owner"),
            (self.rule, "cfx-cta-filter-rule"),
            (self.pick, "cfx-cta-pick"),
            (self.new_status, "cfx-cta-status"),
            (self.snooze, "cfx-cta-snooze"),
            (self.note, "cfx-cta-note"),
        ):
            widget.add_class(name)
        self.save = w.Button(description="Save", button_style="primary")
        self.save.add_class("cfx-cta-save")
        self.message = w.HTML()
        self.message.add_class("cfx-cta-message")
        for control in (self.status, self.owner, self.rule):
            control.observe(lambda _change: self.refresh(), names="value")
        self.save.on_click(lambda _button: self.submit())
        self.refresh()
        self.view = w.VBox(
            [
                w.HBox([self.status, self.owner, self.rule]),
                self.table,
                self.pick,
                w.HBox([self.new_status, self.snooze]),
                self.note,
                w.HBox([self.save, self.message]),
            ]
        )

    def rows(self) -> list[dict]:
        chosen = self.status.value
        rows = [
            c
            for c in self.ctas.values()
            if (
                chosen == ALL
                or (c["status"] in QUEUE and not c.get("holdout") if chosen == ACTIVE else c["status"] == chosen)
            )
            and (self.owner.value == ALL or _owner(c) == self.owner.value)
            and (self.rule.value == ALL or c["rule"] == self.rule.value)
        ]
        return sorted(rows, key=lambda c: (c["due_date"], PRIORITY.get(c["priority"], 9), c["id"]))

    def refresh(self) -> None:
        owners = sorted({_owner(c) for c in self.ctas.values() if _owner(c)})
        rules = sorted({c["rule"] for c in self.ctas.values()})
        for control, values in ((self.owner, owners), (self.rule, rules)):
            if list(control.options) != [ALL, *values]:
                keep = control.value if control.value in values else ALL
                control.options = [ALL, *values]
                control.value = keep
        rows = self.rows()
        if self.denied:
            self.table.value = '<p class="cfx-muted">Your role may not see calls to action.</p>'
        else:
            self.table.value = render_queue(rows[:LIMIT], len(rows))
        options = [
            (f"{c.get('account_name') or c['account_id']} · {c['rule']} · due {c['due_date']}", c["id"])
            for c in rows[:LIMIT]
        ]
        keep = self.pick.value
        self.pick.options = options
        if keep in {v for _, v in options}:
            self.pick.value = keep

    def apply(self, message: dict) -> None:
        """A CTA opened, changed or closed (a feed message): shown without a reload."""
        cta = {k: v for k, v in message.items() if k not in ("type", "change", "sent_at")}
        self.ctas[cta["id"]] = cta
        self.refresh()

    def submit(self) -> None:
        cta_id = self.pick.value
        if not cta_id:
            self.message.value = '<span class="cfx-muted">Choose a call to action first.</span>'
            return
        body: dict = {"status": self.new_status.value}
        if self.note.value.strip():
            body["note"] = self.note.value.strip()
        if self.new_status.value == "snoozed" or self.snooze.value.strip():
            body["snooze_until"] = self.snooze.value.strip() or None
        r = self.client.patch(f"/api/interventions/{cta_id}", body)
        if r.status_code == 200:
            self.ctas[cta_id] = r.json()
            self.note.value = ""
            self.message.value = f"saved: {esc(cta_id)} is {esc(r.json()['status'])}"
            self.refresh()
        elif r.status_code == 403:
            self.message.value = "your role may not change calls to action (analysts can)"
        elif r.status_code == 422:
            problems = "; ".join(
                f"{esc('.'.join(str(x) for x in d.get('loc', [])[1:]))}: {esc(d.get('msg', ''))}"
                for d in r.json().get("detail", [])
            )
            self.message.value = f"not saved: {problems}"
        else:
            self.message.value = f"not saved: the service answered {r.status_code}"
