"""The durable CTA store: one SQLite database under ``$CFX_HOME/interventions/``.

Every change is committed (WAL, ``synchronous=FULL``) before the caller answers, so a CTA or a
note acknowledged to a user survives a SIGKILL of the process. A partial unique index keeps at
most one active CTA per account and rule, across processes too. The CTA itself is stored as
JSON (the API's shape); a few columns are copied out for filtering.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATUSES = ("open", "in_progress", "snoozed", "done", "closed_recovered", "closed_churned")
ACTIVE = ("open", "in_progress", "snoozed", "done")
"""Statuses that hold the account's one CTA for a rule (``done``: the owner finished the action;
the CTA closes when the rule no longer holds after its due date, or the account churns)."""
CLOSED = ("closed_recovered", "closed_churned")

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS cta (
    id TEXT PRIMARY KEY,
    account_id TEXT NOT NULL,
    rule TEXT NOT NULL,
    status TEXT NOT NULL,
    owner TEXT,
    holdout INTEGER NOT NULL,
    opened_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    due_date TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_active_per_account_rule
    ON cta (account_id, rule) WHERE status IN ({", ".join(repr(s) for s in ACTIVE)});
CREATE INDEX IF NOT EXISTS cta_status ON cta (status);
"""


class CtaStore:
    """CTAs of one home. Thread-safe; other processes may share the file."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._con: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._con is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            con = sqlite3.connect(self.path, timeout=30, check_same_thread=False, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(SCHEMA)
            self._con = con
        return self._con

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic, durable change (``BEGIN IMMEDIATE``: writers queue, readers go on)."""
        with self._lock:
            con = self._connect()
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
            except BaseException:
                con.execute("ROLLBACK")
                raise
            con.execute("COMMIT")

    def close(self) -> None:
        with self._lock:
            if self._con is not None:
                self._con.close()
                self._con = None

    @staticmethod
    def write(con: sqlite3.Connection, cta: dict) -> None:
        con.execute(
            "INSERT OR REPLACE INTO cta (id, account_id, rule, status, owner, holdout, opened_at, updated_at, "
            "due_date, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                cta["id"],
                cta["account_id"],
                cta["rule"],
                cta["status"],
                cta.get("owner_email") or cta.get("owner"),
                int(bool(cta["holdout"])),
                cta["opened_at"],
                cta["updated_at"],
                cta["due_date"],
                json.dumps(cta, sort_keys=True),
            ),
        )

    @staticmethod
    def active_in(con: sqlite3.Connection, account_ids: list[str] | None = None) -> dict[tuple[str, str], dict]:
        """Active CTAs by (account, rule), for ``account_ids`` (None: all)."""
        marks = ", ".join("?" for _ in ACTIVE)
        sql = f"SELECT body FROM cta WHERE status IN ({marks})"
        args: list = list(ACTIVE)
        out: dict[tuple[str, str], dict] = {}
        if account_ids is not None:
            for i in range(0, len(account_ids), 500):
                part = account_ids[i : i + 500]
                rows = con.execute(sql + f" AND account_id IN ({', '.join('?' for _ in part)})", args + part)
                for (body,) in rows:
                    cta = json.loads(body)
                    out[(cta["account_id"], cta["rule"])] = cta
            return out
        for (body,) in con.execute(sql, args):
            cta = json.loads(body)
            out[(cta["account_id"], cta["rule"])] = cta
        return out

    def get(self, cta_id: str) -> dict | None:
        with self._lock:
            row = self._connect().execute("SELECT body FROM cta WHERE id = ?", (cta_id,)).fetchone()
        return json.loads(row[0]) if row else None

    def list(
        self,
        status: str | None = None,
        account: str | None = None,
        owner: str | None = None,
        rule: str | None = None,
    ) -> list[dict]:
        """CTAs matching every filter given, soonest due first, then by priority."""
        where, args = [], []
        for column, value in (("status", status), ("account_id", account), ("rule", rule)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        if owner:
            where.append("(owner = ? OR json_extract(body, '$.owner') = ?)")
            args += [owner, owner]
        sql = "SELECT body FROM cta" + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY due_date, id"
        with self._lock:
            rows = self._connect().execute(sql, args).fetchall()
        from cfxlib.interventions.rules import PRIORITY_ORDER

        out = [json.loads(r[0]) for r in rows]
        return sorted(out, key=lambda c: (c["due_date"], PRIORITY_ORDER.get(c["priority"], 9), c["id"]))
