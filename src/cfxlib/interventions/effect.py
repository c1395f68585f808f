"""Did the playbooks work? 3-month churn of treated against held-out calls to action.

For every call to action opened on day ``D`` whose outcome is known at the as-of date (the month
end 3 months after ``D``'s month is on or before it), the account **churned** when it had no
active subscription at one of the 3 month ends after ``D`` (the contract's "active at E"; a
win-back inside the window still counts as a churn). The unit is the account: per playbook, each
account's first call to action with a known outcome; overall, each account's first.

Per playbook and overall: the churn rate of treated accounts and of held-out accounts, their
difference (treated minus held out: negative means fewer churn with the playbook) and its 90%
interval by Newcombe's hybrid score method (Wilson intervals of each rate combined; it keeps close
to its nominal coverage with a few dozen accounts and rates near 0, where the normal approximation
does not). The holdout is assigned at random (a stable hash in cfx, chance in the CRM's own
experiment), so the difference estimates the playbook's effect on the accounts it was used on.
"Not measurable" says why: no holdout, or too few known outcomes in one group.
"""

from __future__ import annotations

import math
from datetime import date

import pandas as pd

LEVEL = 0.90
Z = 1.6448536269514722  # two-sided 90%
MIN_PER_GROUP = 10
"""Known outcomes needed in each group (treated and held out) for a figure."""
WINDOW = "3 calendar months after opening (churned: no active subscription at one of the 3 month ends)"


def wilson(successes: int, n: int, z: float = Z) -> tuple[float, float]:
    """Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(x1: int, n1: int, x2: int, n2: int, z: float = Z) -> tuple[float, float, float]:
    """Difference p1 - p2 and its interval (Newcombe 1998, method 10)."""
    p1, p2 = x1 / n1, x2 / n2
    l1, u1 = wilson(x1, n1, z)
    l2, u2 = wilson(x2, n2, z)
    d = p1 - p2
    return d, d - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2), d + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)


def outcomes(con, as_of: date, extra: pd.DataFrame | None = None) -> pd.DataFrame:
    """Calls to action with a known outcome at ``as_of``: ``account_id, opened_date, rule,
    playbook, holdout (bool), churned (bool)``, from the warehouse's ``interventions`` table (when
    loaded) and ``extra`` (cfx's own CTAs), duplicates (same account, day and rule) once."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM information_schema.tables").fetchall()}
    parts = []
    if "interventions" in tables:
        parts.append(
            con.execute(
                "SELECT account_id, CAST(opened_date AS DATE) AS opened_date, rule, playbook, "
                "holdout = 'true' AS holdout FROM interventions"
            ).df()
        )
    if extra is not None and len(extra):
        parts.append(extra[["account_id", "opened_date", "rule", "playbook", "holdout"]])
    if not parts:
        return pd.DataFrame(columns=["account_id", "opened_date", "rule", "playbook", "holdout", "churned"])
    ctas = pd.concat(parts, ignore_index=True)
    ctas["opened_date"] = pd.to_datetime(ctas["opened_date"]).dt.date
    ctas = ctas.drop_duplicates(["account_id", "opened_date", "rule"]).reset_index(drop=True)
    ctas["cta"] = range(len(ctas))
    con.register("_ctas", ctas)
    try:
        frame = con.execute(
            f"""
            WITH c AS (
                SELECT * FROM _ctas WHERE last_day(opened_date + INTERVAL 3 MONTH) <= DATE '{as_of.isoformat()}'
            ),
            k AS (SELECT cta, account_id, last_day(opened_date + to_months(m)) AS e FROM c, range(1, 4) r(m)),
            a AS (
                SELECT k.cta, k.e,
                       coalesce(bool_or(s.start_date <= k.e AND (s.end_date IS NULL OR s.end_date > k.e)), FALSE) AS on
                FROM k LEFT JOIN subscriptions s ON s.account_id = k.account_id
                GROUP BY k.cta, k.e
            )
            SELECT c.account_id, c.opened_date, c.rule, c.playbook, c.holdout, bool_or(NOT a.on) AS churned
            FROM c JOIN a USING (cta)
            GROUP BY c.cta, c.account_id, c.opened_date, c.rule, c.playbook, c.holdout
            ORDER BY c.account_id, c.opened_date, c.cta
            """
        ).df()
    finally:
        con.unregister("_ctas")
    frame["opened_date"] = pd.to_datetime(frame["opened_date"]).dt.date
    return frame


def _figure(rows: pd.DataFrame, name: str) -> dict:
    treated, held = rows[~rows["holdout"]], rows[rows["holdout"]]
    out = {
        "playbook": name,
        "treated": int(len(treated)),
        "holdout": int(len(held)),
        "churned_treated": int(treated["churned"].sum()),
        "churned_holdout": int(held["churned"].sum()),
    }
    if len(held) == 0:
        return {**out, "measurable": False, "reason": "no held-out accounts: set CFX_INTERVENTIONS__HOLDOUT_PCT"}
    if min(len(treated), len(held)) < MIN_PER_GROUP:
        return {
            **out,
            "measurable": False,
            "reason": f"too few known outcomes: {len(treated)} treated and {len(held)} held out "
            f"(at least {MIN_PER_GROUP} each)",
        }
    diff, low, high = newcombe(out["churned_treated"], len(treated), out["churned_holdout"], len(held))
    return {
        **out,
        "measurable": True,
        "churn_treated": out["churned_treated"] / len(treated),
        "churn_holdout": out["churned_holdout"] / len(held),
        "difference": diff,
        "interval": [low, high],
    }


def report(known: pd.DataFrame) -> dict:
    """The effect report from :func:`outcomes`: per playbook and overall."""
    base = {"level": LEVEL, "window": WINDOW, "unit": "account", "method": "Newcombe hybrid score interval"}
    if known.empty:
        reason = "no call to action with a known outcome yet (outcomes are known 3 months after opening)"
        return {
            **base,
            "overall": {"playbook": "overall", "treated": 0, "holdout": 0, "measurable": False, "reason": reason},
            "playbooks": [],
            "by_playbook": {},
        }
    known = known.sort_values(["account_id", "opened_date"], kind="stable")
    per_playbook = [
        _figure(part.drop_duplicates("account_id"), str(name)) for name, part in known.groupby("playbook", sort=True)
    ]
    return {
        **base,
        "overall": _figure(known.drop_duplicates("account_id"), "overall"),
        "playbooks": per_playbook,
        "by_playbook": {f["playbook"]: f for f in per_playbook},
    }


def summary(ctas: list[dict], today: date) -> dict:
    """Work on cfx's own calls to action: opened, closed, overdue, median time to first action,
    by playbook (held-out ones apart)."""
    rows = [c for c in ctas if not c.get("holdout")]

    def block(part: list[dict]) -> dict:
        waits = sorted(
            (pd.Timestamp(c["first_action_at"]) - pd.Timestamp(c["opened_at"])).total_seconds() / 3600
            for c in part
            if c.get("first_action_at")
        )
        return {
            "opened": len(part),
            "active": sum(c["status"] in ("open", "in_progress", "snoozed", "done") for c in part),
            "closed_recovered": sum(c["status"] == "closed_recovered" for c in part),
            "closed_churned": sum(c["status"] == "closed_churned" for c in part),
            "overdue": sum(
                c["status"] in ("open", "in_progress", "snoozed") and c["due_date"] < today.isoformat() for c in part
            ),
            "median_hours_to_first_action": None if not waits else round(waits[len(waits) // 2], 1),
            "acted_on": len(waits),
        }

    books = sorted({c["playbook"] for c in rows})
    return {
        "as_of_day": today.isoformat(),
        "overall": block(rows),
        "held_out": sum(1 for c in ctas if c.get("holdout")),
        "by_playbook": [{"playbook": b, **block([c for c in rows if c["playbook"] == b])} for b in books],
    }


def check_against_truth(data_dir, as_of: date) -> list[dict]:
    """The effect report of a demo data directory next to the generator's true effects
    (``_truth/intervention_effects.csv``: each call to action's 3-month churn probability with and
    without its playbook): per measurable figure, its interval, the true mean effect over the same
    accounts, and whether the interval covers it. For the coverage check (tests, bench)."""
    from pathlib import Path

    import duckdb

    folder = Path(data_dir)
    con = duckdb.connect()
    try:
        for name in ("subscriptions", "interventions"):
            con.execute(
                f"CREATE TABLE {name} AS SELECT * FROM read_csv('{folder / (name + '.csv')}', header=true, "
                "auto_detect=true)"
            )
        known = outcomes(con, as_of)
    finally:
        con.close()
    truth = pd.read_csv(folder / "_truth" / "intervention_effects.csv")
    truth["opened_date"] = pd.to_datetime(truth["opened_date"]).dt.date
    truth["effect"] = truth["p_churn_3m_treated"] - truth["p_churn_3m_control"]
    known = known.sort_values(["account_id", "opened_date"], kind="stable")
    rep = report(known)
    out = []
    for fig in [*rep["playbooks"], rep["overall"]]:
        if not fig["measurable"]:
            continue
        rows = known if fig["playbook"] == "overall" else known[known["playbook"] == fig["playbook"]]
        true = rows.drop_duplicates("account_id").merge(truth, on=["account_id", "opened_date"])["effect"].mean()
        low, high = fig["interval"]
        out.append({**fig, "true_effect": float(true), "covered": bool(low <= true <= high)})
    return out
