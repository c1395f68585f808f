"""Intervention rules and the CTA lifecycle, on the real SQLite store in a temporary home."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from cfxlib.contract.issues import InputError
from cfxlib.customers.playbooks import load_playbooks
from cfxlib.interventions import engine, rules
from cfxlib.interventions.engine import Signal
from cfxlib.interventions.store import CtaStore

TODAY = date(2026, 12, 4)


@pytest.fixture
def store(tmp_path):
    s = CtaStore(tmp_path / "interventions" / "cta.sqlite")
    yield s
    s.close()


def cfg(**kw) -> engine.Settings:
    actions = {p.name: p.action for p in load_playbooks()}
    return engine.Settings(owners={"Customer Success Manager": ["csm@example.com"]}, playbook_actions=actions, **kw)


def red(account="ACC-1", score=22.5, **kw) -> Signal:
    return Signal(account, account_name='<b>"Acme" & Co</b>', tier="Starter", health_score=score, band="red", **kw)


def test_the_packaged_rules_load_and_a_home_changes_one_by_id(tmp_path):
    ids = {r.id for r in rules.load()}
    assert {"red-band", "health-drop", "detractor", "churn-risk", "renewal-risk"} <= ids
    (tmp_path / "interventions.yaml").write_text(
        "schema_version: 1\nrules:\n  - {id: detractor, max_score: 4}\n  - {id: churn-risk, enabled: false}\n"
    )
    changed = {r.id: r for r in rules.load(tmp_path)}
    assert changed["detractor"].max_score == 4 and changed["detractor"].due_days == 7
    assert "churn-risk" not in changed
    (tmp_path / "interventions.yaml").write_text(
        "schema_version: 1\nrules:\n  - id: detractor\n    max_score: 14\n  - id: new-one\n    kind: churn_risk\n    title: x\n"
    )
    with pytest.raises(InputError) as err:
        rules.load(tmp_path)
    text = str(err.value.log)
    assert (
        "interventions.yaml" in text and "rules.0.max_score" in text and "rules.1" in text and "min_probability" in text
    )


def test_one_active_cta_per_account_and_rule_and_a_repeat_adds_history(store):
    all_rules = rules.load()
    opened = engine.evaluate(store, [red()], all_rules, cfg(), TODAY)
    assert [(c["rule"], c["change"]) for c in opened] == [("red-band", "opened")]
    cta = opened[0]
    assert cta["owner_email"] == "csm@example.com" and cta["due_date"] == (TODAY + timedelta(days=7)).isoformat()
    assert cta["reason"] == '<b>"Acme" & Co</b>\'s health score is 22.5, in the red band.'
    assert engine.evaluate(store, [red()], all_rules, cfg(), TODAY) == []  # same figures: nothing new
    again = engine.evaluate(store, [red(score=18.0)], all_rules, cfg(), TODAY)
    assert [c["change"] for c in again] == ["changed"] and again[0]["id"] == cta["id"]
    assert [h["event"] for h in again[0]["history"]] == ["opened", "fired again"]
    assert len(store.list(account="ACC-1")) == 1


def test_detractor_opens_and_recovery_or_churn_closes(store):
    all_rules = rules.load()
    nps = Signal("ACC-2", account_name="B", tier="Enterprise", health_score=64.0, band="yellow", nps_scores=[0])
    (cta,) = engine.evaluate(store, [nps], all_rules, cfg(), TODAY)
    assert (
        cta["rule"] == "detractor" and "NPS answer of 0" in cta["reason"] and cta["playbook"] == "detractor follow-up"
    )
    assert cta["action"].startswith("Call the detractors")
    # still yellow, no new answer: before the due date nothing closes, after it the trigger no longer holds
    quiet = Signal("ACC-2", health_score=66.0, band="yellow")
    assert engine.evaluate(store, [quiet], all_rules, cfg(), TODAY) == []
    green = Signal("ACC-2", health_score=81.0, band="green")
    (closed,) = engine.evaluate(store, [green], all_rules, cfg(), TODAY)
    assert closed["status"] == "closed_recovered" and closed["outcome"]["result"] == "recovered"
    # a new detractor answer after the close opens a new CTA; churn closes it as churned
    (second,) = engine.evaluate(store, [nps], all_rules, cfg(), TODAY)
    assert second["id"] != cta["id"]
    (gone,) = engine.evaluate(store, [Signal("ACC-2", churned=True)], all_rules, cfg(), TODAY)
    assert gone["status"] == "closed_churned" and gone["outcome"]["result"] == "churned"


def test_people_move_a_cta_through_its_lifecycle_and_it_survives_a_new_process(store, tmp_path):
    (cta,) = engine.evaluate(store, [red("ACC-3")], rules.load(), cfg(), TODAY)
    note = "<script>alert('x')</script> called \"the plant\""
    moved = engine.update(store, cta["id"], "ana", "in_progress", note, today=TODAY)
    assert moved["status"] == "in_progress" and moved["notes"][0]["text"] == note and moved["first_action_at"]
    with pytest.raises(engine.TransitionError) as err:
        engine.update(store, cta["id"], "ana", "snoozed", today=TODAY)
    assert err.value.field == "snooze_until"
    with pytest.raises(engine.TransitionError) as err:
        engine.update(store, cta["id"], "ana", "snoozed", snooze_until=TODAY, today=TODAY)
    assert err.value.field == "snooze_until" and "after today" in str(err.value)
    engine.update(store, cta["id"], "ana", "snoozed", snooze_until=TODAY + timedelta(days=3), today=TODAY)
    assert engine.update(store, "cta_nope", "ana", "done") is None
    reopened = CtaStore(tmp_path / "interventions" / "cta.sqlite")  # another process's view
    try:
        got = reopened.get(cta["id"])
        assert got["status"] == "snoozed" and got["notes"][0]["text"] == note
    finally:
        reopened.close()
    (green,) = engine.evaluate(store, [Signal("ACC-3", health_score=90.0, band="green")], rules.load(), cfg(), TODAY)
    with pytest.raises(engine.TransitionError, match="closed CTAs are final"):
        engine.update(store, green["id"], "ana", "in_progress", today=TODAY)


def test_holdout_is_a_stable_share_and_held_out_ctas_are_recorded(store):
    picks = [rules.in_holdout(f"ACC-{i}", "red-band", 30) for i in range(4000)]
    assert 0.27 < sum(picks) / len(picks) < 0.33
    assert picks == [rules.in_holdout(f"ACC-{i}", "red-band", 30) for i in range(4000)]
    assert not any(rules.in_holdout(f"ACC-{i}", "red-band", 0) for i in range(100))
    held = next(f"ACC-{i}" for i, p in enumerate(picks) if p)
    (cta,) = engine.evaluate(store, [red(held)], rules.load(), cfg(holdout_pct=30), TODAY)
    assert cta["holdout"] is True and store.get(cta["id"])["holdout"] is True
