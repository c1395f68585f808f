"""The published run, loaded read-only and precomputed for serving.

``$CFX_HOME/published`` is a symbolic link that ``cfx run`` switches atomically. The service
keeps one :class:`Publication` in memory; :class:`PublicationWatcher` checks the link from a
background thread (every :data:`POLL_S` seconds) and loads a new publication completely before
swapping it in, so a request never waits for a load, never sees half of two runs and never fails
during a switch. The service only reads the published folder, so a running pipeline (which
writes a new run folder and switches the link last) is never blocked or disturbed.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from cfxlib.core.records import records
from cfxlib.customers import health

POLL_S = 0.5
"""Seconds between checks of the ``published`` link."""


@dataclass
class Publication:
    target: str
    run: dict
    snapshot: dict
    finance: dict
    customers: dict
    health: list[dict]
    health_by_id: dict[str, dict]
    at_risk: list[dict]
    risk_by_id: dict[str, dict]
    accounts: set[str] = field(default_factory=set)
    ops: dict = field(default_factory=dict)
    history: dict[str, list[dict]] = field(default_factory=dict)
    """Per account, its weekly health over the 90 days to the publication's month end."""
    book_history: list[dict] = field(default_factory=list)
    """Per week: mean health and accounts per band over all active accounts."""
    """Service operations: ``monthly`` (all services) and ``by_service`` rows, from the run's tables."""
    responses: dict[str, bytes] = field(default_factory=dict)
    """Encoded API answers fixed by this publication (filled on first use)."""

    @property
    def run_id(self) -> str:
        return self.run["run_id"]

    @property
    def source(self) -> str:
        """``demo`` for the fictional demo company, ``data`` otherwise (see :mod:`cfxlib.core.provenance`)."""
        return self.snapshot.get("source", "data")

    @property
    def as_of(self) -> str:
        """Month of the figures, YYYY-MM."""
        return self.snapshot["as_of"]

    @functools.cached_property
    def as_of_date(self) -> date:
        """Last day of the publication's month."""
        return pd.Period(self.snapshot["as_of"], freq="M").end_time.date()

    @classmethod
    def load(cls, link: Path) -> Publication:
        target = os.readlink(link)
        root = (link.parent / target).resolve()
        read = lambda name: json.loads((root / name).read_text(encoding="utf-8"))  # noqa: E731
        art = root / "artifacts"
        hframe = pd.read_parquet(art / "health.parquet")
        hframe["as_of"] = hframe["as_of"].astype(str).str[:10]
        hrows = records(hframe)
        risk = pd.read_parquet(art / "at_risk.parquet")
        for col in ("drivers", "reasons"):
            risk[col] = risk[col].map(lambda v: [x for x in str(v).split("; ") if x])
        rrows = records(risk.drop(columns=[c for c in health.COMPONENTS if c in risk.columns]))
        ops = {
            name: records(pd.read_parquet(art / f"{file}.parquet"))
            for name, file in (("monthly", "ops_monthly"), ("by_service", "ops_by_service"))
            if (art / f"{file}.parquet").exists()
        }
        history: dict[str, list[dict]] = {}
        book: list[dict] = []
        if (art / "health_history.parquet").exists():
            hist = pd.read_parquet(art / "health_history.parquet")
            hist["as_of"] = hist["as_of"].astype(str).str[:10]
            for account_id, part in hist.groupby("account_id", sort=False):
                history[account_id] = records(part[["as_of", "health_score", "band"]])
            for day, part in hist.groupby("as_of"):
                bands = part["band"].value_counts()
                book.append(
                    {
                        "as_of": day,
                        "mean_health": round(float(part["health_score"].mean()), 2),
                        **{b: int(bands.get(b, 0)) for b in ("red", "yellow", "green")},
                    }
                )
        return cls(
            target=target,
            run=read("run.json"),
            snapshot=read("metrics_snapshot.json"),
            finance=read("finance.json"),
            customers=read("customer_success.json"),
            health=hrows,
            health_by_id={r["account_id"]: r for r in hrows},
            at_risk=[r for r in rrows if r.get("at_risk")],
            risk_by_id={r["account_id"]: r for r in rrows},
            accounts={r["account_id"] for r in hrows},
            ops=ops,
            history=history,
            book_history=book,
        )


class PublicationWatcher:
    """Holds the current publication; reloads when the ``published`` link points elsewhere.

    :meth:`refresh` checks now (at start-up and in tests); :meth:`start` checks every ``poll_s``
    seconds in a daemon thread. While it polls, :meth:`current` costs nothing but an attribute
    read. ``listeners`` are called with each newly loaded publication (in the loading thread)."""

    def __init__(self, link: Path, poll_s: float = POLL_S):
        self.link = link
        self.poll_s = poll_s
        self._lock = threading.Lock()
        self._current: Publication | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.listeners: list = []

    def current(self) -> Publication | None:
        return self._current if self._thread is not None else self.refresh()

    def refresh(self) -> Publication | None:
        try:
            target = os.readlink(self.link)
        except OSError:
            return self._current
        pub = self._current
        if pub is not None and pub.target == target:
            return pub
        with self._lock:
            if self._current is not None and self._current.target == target:
                return self._current
            try:
                fresh = Publication.load(self.link)
            except (OSError, ValueError, KeyError):
                return self._current  # mid-switch or incomplete: keep serving the previous one
            self._current = fresh
        for listener in self.listeners:
            listener(fresh)
        return fresh

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._poll, name="cfx-publication-watcher", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.refresh()
            except Exception:  # noqa: BLE001 - keep serving the current publication, try again
                logging.getLogger("cfx.api").exception("could not load the new publication; retrying")
