"""Playbooks: from an account's churn drivers to a specific action, owner and due date.

The catalogue is validated YAML (``config/playbooks.yaml``); :func:`at_risk` joins churn
probability, health and drivers, and recommends each account's action.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cfxlib.customers import drivers, health
from cfxlib.customers.drivers import UsageError

if TYPE_CHECKING:  # the scoring module loads scikit-learn; the catalogue and its notices do not need it
    from cfxlib.customers.scoring import ChurnResult

AT_RISK_MIN_PROBABILITY = 0.15


class _When(BaseModel):
    model_config = ConfigDict(extra="forbid")
    driver: str | None = None
    min_churn_probability: float | None = Field(None, ge=0, le=1)
    max_component: dict[str, float] | None = None


class Playbook(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    when: _When = _When()
    action: str
    detail: str | None = Field(
        None, description="Sentence with {facts} of the account (see FACTS) appended to the action when all are known."
    )
    owner: str
    due_days: int = Field(ge=0)

    def matches(self, row: dict) -> bool:
        w = self.when
        if w.driver is not None and w.driver not in row.get("drivers", []):
            return False
        if w.min_churn_probability is not None and row.get("p_churn_3m", 0) < w.min_churn_probability:
            return False
        for comp, limit in (w.max_component or {}).items():
            value = row.get(comp)
            if value is None or pd.isna(value) or value > limit:
                return False
        return True


def load_playbooks(path: Path | None = None) -> list[Playbook]:
    text = (
        Path(path).read_text(encoding="utf-8")
        if path
        else resources.files("cfxlib").joinpath("config/playbooks.yaml").read_text(encoding="utf-8")
    )
    try:
        data = yaml.safe_load(text) or {}
        books = [Playbook.model_validate(p) for p in data.get("playbooks", [])]
    except (ValidationError, yaml.YAMLError) as exc:
        raise UsageError(f"invalid playbook catalogue {path or 'cfxlib/config/playbooks.yaml'}: {exc}") from None
    unknown = {b.when.driver for b in books if b.when.driver} - set(drivers.DRIVER_FEATURES)
    if unknown:
        raise UsageError(
            f"playbook catalogue names unknown driver(s) {sorted(unknown)}; known: {', '.join(drivers.DRIVER_FEATURES)}"
        )
    unknown = {c for b in books for c in (b.when.max_component or {})} - set(health.COMPONENTS)
    if unknown:
        raise UsageError(
            f"playbook catalogue names unknown health component(s) {sorted(unknown)} in max_component; "
            f"known: {', '.join(health.COMPONENTS)}"
        )
    return books


FACTS = {
    "seats": "seats on the subscription",
    "active_seats": "seats active on an average day",
    "idle_seats": "seats not active on an average day",
    "target_active_seats": "active seats that would reach 60% utilisation",
    "open_overdue": "open support tickets past their target time",
    "renewal_in": "when the annual renewal falls ('in 2 months', 'this month')",
    "downtime_reduction_pct": "downtime reduction against the pre-ChatterFix baseline, % (negative when higher)",
    "downtime_vs_baseline": "downtime against the baseline in words ('12% below', '5% above', 'no lower than')",
    "nps": "mean NPS answer (0-10)",
    "usage_change_pct": "change of usage against its earlier level, %",
}
"""Facts a playbook's ``detail`` may quote, computed from the account's churn features."""


FACT_FEATURES = (
    "seats",
    "utilisation",
    "open_overdue",
    "months_to_renewal",
    "downtime_reduction",
    "nps_mean",
    "usage_trend",
)
"""The churn features (:func:`cfxlib.customers.churn.snapshot`) that :func:`facts` reads."""


def facts(row: dict) -> dict:
    """The :data:`FACTS` known for an account, from its churn features :data:`FACT_FEATURES`
    (missing features leave their facts out). ``downtime_reduction`` is the feature (a fraction
    of the baseline), not the health component of that name (a 0-100 score)."""

    def known(name):
        v = row.get(name)
        return None if v is None or (isinstance(v, float) and pd.isna(v)) else v

    out = {}
    seats, util = known("seats"), known("utilisation")
    if seats is not None and util is not None:
        active = round(seats * util)
        out.update(
            seats=f"{seats:.0f}",
            active_seats=f"{active:.0f}",
            idle_seats=f"{seats - active:.0f}",
            target_active_seats=f"{max(active + 1, round(0.6 * seats)):.0f}",
        )
    if known("open_overdue") is not None:
        out["open_overdue"] = f"{row['open_overdue']:.0f}"
    if known("months_to_renewal") is not None:
        out["renewal_in"] = (
            "this month"
            if round(row["months_to_renewal"]) == 0
            else "in " + drivers.plural(row["months_to_renewal"], "month")
        )
    if known("downtime_reduction") is not None:
        pct = 100 * row["downtime_reduction"]
        out["downtime_reduction_pct"] = f"{pct:.0f}"
        out["downtime_vs_baseline"] = (
            f"{pct:.0f}% below" if pct >= 0.5 else f"{-pct:.0f}% above" if pct <= -0.5 else "no lower than"
        )
    if known("nps_mean") is not None:
        out["nps"] = f"{row['nps_mean']:.1f}"
    if known("usage_trend") is not None:
        out["usage_change_pct"] = f"{100 * (row['usage_trend'] - 1):+.0f}"
    return out


def recommend(row: dict, books: list[Playbook], features: dict | None = None) -> dict:
    """The playbook for the account's most important driver that has one (catalogue order breaks
    ties); without such a match, the first general entry (no driver condition) that matches.

    The action is made specific to the account: the playbook's ``detail`` filled with the
    account's :func:`facts`, and, when another of its drivers calls for a different playbook,
    that playbook as the next step.

    ``row``: the account's ``drivers``, ``p_churn_3m`` and health component scores, which the
    playbooks' conditions read; ``features``: its churn features, which the details quote
    (default: ``row``)."""
    known = facts(row if features is None else features)

    def detail(book: Playbook) -> str | None:
        try:
            return book.detail.format_map(known) if book.detail else None
        except (KeyError, ValueError):
            return None

    def pick(book: Playbook, then: Playbook | None = None) -> dict:
        specific = detail(book)
        step = f"Next: {then.name} ({then.owner}, within {then.due_days} days)." if then else None
        action = " ".join(x for x in (book.action, specific, step) if x)
        return {
            "playbook": book.name,
            "action": action,
            "detail": specific,
            "next_step": step,
            "owner": book.owner,
            "due_days": book.due_days,
        }

    matched = []
    for driver in row.get("drivers", []):
        for book in books:
            if book.when.driver == driver and book.matches(row):
                if book not in matched:
                    matched.append(book)
                break
    if matched:
        return pick(matched[0], matched[1] if len(matched) > 1 else None)
    for book in books:
        if book.when.driver is None and book.matches(row):
            return pick(book)
    return dict(NO_RECOMMENDATION)


NO_RECOMMENDATION = {
    "playbook": None,
    "action": None,
    "detail": None,
    "next_step": None,
    "owner": None,
    "due_days": None,
}
"""What :func:`recommend` gives an account no playbook matches (and the keys of every result)."""


RECOMMEND_CHUNK_ROWS = 50_000
""":func:`at_risk` recommends playbooks for at most this many accounts at once (bounded memory)."""


def _recommendations(conditions: pd.DataFrame, quoted: pd.DataFrame, books: list[Playbook]) -> pd.DataFrame:
    """:func:`recommend` for each row of ``conditions``, quoting the same rows (by position) of
    ``quoted``; indexed like ``conditions``."""
    rows = conditions.to_dict("records")
    features = quoted.iloc[conditions.index].to_dict("records") if len(conditions) else []
    recs = [recommend(r, books, f) for r, f in zip(rows, features, strict=True)]
    return pd.DataFrame(recs, index=conditions.index, columns=list(NO_RECOMMENDATION))


def at_risk(
    result: ChurnResult,
    health_frame: pd.DataFrame,
    books: list[Playbook] | None = None,
    min_probability: float = AT_RISK_MIN_PROBABILITY,
) -> pd.DataFrame:
    """Every account with its risk, sorted by ARR at risk; ``at_risk`` flags p >= min or a red band.

    Columns: account_id, tier, arr, health_score, band, p_churn_3m, arr_at_risk (= p x ARR),
    drivers, reasons, playbook, action, owner, due_days, and the component scores.
    """
    books = books if books is not None else load_playbooks()
    s = result.scores
    frame = s[["account_id", "tier", "mrr"]].assign(arr=lambda d: 12 * d["mrr"], p_churn_3m=s["p_churn_3m"])
    frame = frame.drop(columns="mrr").merge(
        health_frame[["account_id", "health_score", "band", *health.COMPONENTS]], on="account_id", how="left"
    )
    explained = result.drivers.explain(s)
    frame["drivers"] = explained["drivers"].to_numpy()
    frame["reasons"] = explained["reasons"].to_numpy()
    frame["arr_at_risk"] = frame["p_churn_3m"] * frame["arr"]
    # frame keeps the scores' row order (a left merge on a unique key), so row i is s's row i
    conditions = frame[["drivers", "p_churn_3m", *health.COMPONENTS]]
    quoted = s[[c for c in FACT_FEATURES if c in s.columns]]
    # a dictionary per account is about 1 KB: made a chunk at a time, not for the whole book at once
    recs = pd.concat(
        [
            _recommendations(conditions.iloc[start : start + RECOMMEND_CHUNK_ROWS], quoted, books)
            for start in range(0, len(frame), RECOMMEND_CHUNK_ROWS)
        ]
        or [_recommendations(conditions, quoted, books)]
    )
    frame = pd.concat([frame, recs], axis=1)
    frame["at_risk"] = (frame["p_churn_3m"] >= min_probability) | (frame["band"] == "red")
    cols = [
        "account_id",
        "tier",
        "arr",
        "health_score",
        "band",
        "p_churn_3m",
        "arr_at_risk",
        "drivers",
        "reasons",
        "playbook",
        "action",
        "detail",
        "next_step",
        "owner",
        "due_days",
        "at_risk",
        *health.COMPONENTS,
    ]
    return frame[cols].sort_values("arr_at_risk", ascending=False).reset_index(drop=True)
