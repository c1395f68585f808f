"""Churn scores and their honest evaluation, from the warehouse at an as-of month (its last day).

- :func:`churn_scores` trains :class:`~cfxlib.customers.churn.ChurnModel` only on snapshots whose
  3-month outcome is known at the end of the as-of month and scores every account active then.
- :func:`model_card` evaluates the same procedure out of time: train on earlier cutoffs, test on
  the last labelled ones (with the generator's truth when the data is the demo company).
- :func:`health_validation`: does the health score predict churn on the same rows?
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.base import clone

from cfxlib.contract.rules import account_month_sql
from cfxlib.customers import churn, health
from cfxlib.customers.drivers import UsageError
from cfxlib.store.sqltext import date_literal

TRAIN_CUTOFFS = 24
"""At most this many monthly cutoffs (the latest labelled ones) train a model."""
TEST_CUTOFFS = 6
FIRST_CUTOFF = 3
"""Cutoffs start this many months after the first month with MRR (some history first)."""
CARD_MIN_LABELLED = TEST_CUTOFFS + churn.HORIZON_MONTHS + 3
"""The model card needs this many labelled cutoffs: its test cutoffs, the outcome horizon
between training and test, and a few to train on."""


# --------------------------------------------------------------------------- churn scores


def _cutoffs(months: list[str], as_of_month: str) -> tuple[list[str], list[str]]:
    """(all ``months`` up to as-of, labelled cutoffs whose outcome is known at the as-of month end);
    ``months``: the data's months (:func:`churn.data_months`)."""
    if as_of_month not in months:
        raise UsageError(f"as-of month {as_of_month} is not in the data (months {months[0]} to {months[-1]})")
    upto = months[: months.index(as_of_month) + 1]
    labelled = upto[FIRST_CUTOFF : len(upto) - churn.HORIZON_MONTHS]
    return upto, labelled


PREFETCH_ROWS = 2_000_000
""":meth:`SnapshotCache.prefetch` computes at most this many snapshot rows ahead of their use
(about 1 GB): every month a run scores in full at 100,000 accounts, two at 1,000,000."""
RELEASED_COLUMNS = ("account_id", "cutoff", "mrr")
"""What :meth:`SnapshotCache.release` keeps of a month's snapshot."""

TRAIN_MAX_ROWS = 50_000
"""Every churn model trains on at most this many snapshot rows: a uniform sample with fixed keys
when there are more (about 2,000 accounts x 24 cutoffs). The default demo has about 16,000 rows
and is never sampled; a uniform sample keeps the churn rate, so probabilities stay calibrated.
docs/benchmarks.md ("Churn training sample") measures what the cap costs in accuracy."""
SAMPLE_HASH_KEY = "cfx-churn-sample"
"""The fixed key of the sample's hash (16 characters, see :func:`pandas.util.hash_array`)."""


def sample_check() -> dict | None:
    """What the training cap cost in accuracy when last measured (``config/churn_sample_check.yaml``,
    written by ``bench/churn.py --parts sample``): ROC and PR AUC out of time on a demo company,
    trained on every row and on the sample; None when never measured."""
    import yaml

    path = Path(__file__).parents[1] / "config" / "churn_sample_check.yaml"
    return yaml.safe_load(path.read_text(encoding="utf-8")) if path.exists() else None


def _sample_keys(account_ids, month: str) -> np.ndarray:
    """One fixed pseudo-random number (``uint64``) per snapshot row: a keyed hash of the account
    and ``month`` (``YYYY-MM``), so a row's key does not depend on which rows are beside it and
    the sample can be chosen before any feature is computed."""
    ids = pd.Series(np.asarray(account_ids, dtype=object)).astype(str) + "|" + month
    return pd.util.hash_array(ids.to_numpy(dtype=object), hash_key=SAMPLE_HASH_KEY)


def _smallest(keys: np.ndarray, limit: int) -> np.ndarray:
    """Positions of the ``limit`` smallest keys, in their original order."""
    return np.sort(np.argpartition(keys, limit)[:limit]) if len(keys) > limit else np.arange(len(keys))


@dataclass
class FittedModel:
    """A churn model with what it was trained on."""

    model: churn.ChurnModel
    features: list[str]
    cutoffs: list[str]
    """The training cutoffs (YYYY-MM), oldest first; the last one's outcome is known 3 months later."""
    train: pd.DataFrame
    available_rows: int

    @property
    def outcomes_known_at(self) -> str:
        """The month at whose end every training outcome was known (last cutoff + the horizon)."""
        return str(pd.Period(self.cutoffs[-1], freq="M") + churn.HORIZON_MONTHS)


class SnapshotCache:
    """Account snapshots (:func:`churn.snapshot`) and 3-month outcomes by month, each queried once,
    and models fitted once per set of training cutoffs: a run's churn scores, at-risk trend and
    model card share most months, and the trend reuses the model card's model (:meth:`fitted_by`).

    Training sets come from :meth:`training`, which keeps per month only the rows that can enter
    a sample of :data:`TRAIN_MAX_ROWS`, so a large book never holds every month's snapshot in
    memory. Callers get copies, so adding columns to one never leaks into another.
    """

    ACCOUNT_MONTHS = "account_months"
    """A table of every account's MRR by month, computed once: each snapshot and outcome query
    reads its months from it instead of recomputing them (0.1 s a query at 100,000 accounts,
    about 80 queries a run). It lives in an in-memory database attached for this cache
    (:meth:`_scratch`), which the background connection shares: a temporary table would be its
    connection's own, and a copy per connection is 1 GB at 1,000,000 accounts."""

    def __init__(self, con, max_rows: int | None = None, estimator: churn.ChurnModel | None = None) -> None:
        """``max_rows``: the training cap (default :data:`TRAIN_MAX_ROWS`); ``estimator``: the
        unfitted model every fit starts from, cloned (default ``ChurnModel()``)."""
        self.con = con
        self.max_rows = TRAIN_MAX_ROWS if max_rows is None else max_rows
        self.estimator = churn.ChurnModel() if estimator is None else estimator
        self._account_months_through: str | None = None
        self._features: dict[str, pd.DataFrame] = {}
        self._outcomes: dict[str, pd.DataFrame] = {}
        self._training: dict[str, tuple[int, pd.DataFrame]] = {}
        self._samples: dict[tuple[str, ...], tuple[dict[str, np.ndarray], int] | None] = {}
        self._sampled: dict[str, pd.DataFrame] = {}
        self._released: dict[str, pd.DataFrame] = {}
        self._ids = pd.Index([], dtype=object)
        self._queue: list[str | tuple[str, str]] = []
        self._ahead = 1
        self._fits: dict[tuple[str, ...], FittedModel] = {}
        self._scores: dict[tuple[tuple[str, ...], str], np.ndarray] = {}
        self._months: list[str] | None = None
        self._pending: dict[str | tuple[str, str], Future] = {}
        self._worker: ThreadPoolExecutor | None = None
        self._worker_con = None
        self._scratch_name: str | None = None

    def data_months(self) -> list[str]:
        """:func:`churn.data_months`, queried once."""
        if self._months is None:
            self._months = churn.data_months(self.con)
        return list(self._months)

    def account_months(self, through: str) -> str | None:
        """The table of account months when it covers the month ``through`` (``YYYY-MM``); made
        on first use, through the data's last month plus the outcome horizon, on DuckDB only
        (elsewhere, and for later months, the queries compute their months themselves)."""
        import duckdb

        if not isinstance(self.con, duckdb.DuckDBPyConnection):
            return None
        if self._account_months_through is None:
            last = str(pd.Period(self.data_months()[-1], freq="M") + churn.HORIZON_MONTHS)
            first_day = date_literal(pd.Period(last, freq="M").start_time.date())
            self.con.execute(f"CREATE TABLE {self._scratch()}.{self.ACCOUNT_MONTHS} AS {account_month_sql(first_day)}")
            self._account_months_through = last
        return f"{self._scratch()}.{self.ACCOUNT_MONTHS}" if through <= self._account_months_through else None

    def _scratch(self) -> str:
        """The name of this cache's in-memory database, attached on first use (read-write even
        beside a read-only warehouse) and detached by :meth:`close`; unique per cache, because
        every connection to one warehouse file in a process sees the same attachments."""
        if self._scratch_name is None:
            name = f"cfx_churn_scratch_{uuid.uuid4().hex[:12]}"
            self.con.execute(f"ATTACH ':memory:' AS {name} (READ_WRITE)")
            self._scratch_name = name
        return self._scratch_name

    def scores(self, fitted: FittedModel, month: str) -> np.ndarray:
        """p(churn within 3 months) by ``fitted``'s model for every row of :meth:`features`
        of ``month``, in that order; computed once per model and month (the model card's test
        months and the at-risk trend's months overlap, and both use the card's model)."""
        key = (tuple(fitted.cutoffs), month)
        if key not in self._scores:
            # the model takes its features from the cached frame a chunk at a time, copying no more
            self._scores[key] = fitted.model.predict_proba(self._snapshot(month))[:, 1]
        return self._scores[key]

    def fit(self, cutoffs: list[str]) -> FittedModel:
        """The model trained on ``cutoffs``' labelled snapshots (:meth:`training`), fitted once."""
        key = tuple(cutoffs)
        if key not in self._fits:
            train, available = self.training(list(cutoffs))
            if train[churn.LABEL].nunique() < 2:
                raise UsageError("the training snapshots hold no churned (or no retained) account; cannot train")
            features = churn.feature_columns(train)
            model = clone(self.estimator).fit(train[features], train[churn.LABEL])
            self._fits[key] = FittedModel(model, features, list(cutoffs), train, available)
        return self._fits[key]

    def fitted_by(self, month: str) -> FittedModel | None:
        """Of the models fitted so far, the one with the newest training outcomes that were all
        known at the end of ``month`` (None when there is none)."""
        blind = [f for f in self._fits.values() if f.outcomes_known_at <= month]
        return max(blind, key=lambda f: f.cutoffs[-1], default=None)

    def features(self, month: str, keep: bool = True) -> pd.DataFrame:
        """Features of every account active at the end of ``month`` (data up to that day only);
        with ``keep=False`` read through the cache without filling it."""
        return self._snapshot(month, keep).copy()

    def _snapshot(self, month: str, keep: bool = True) -> pd.DataFrame:
        """:meth:`features` without the copy: the cached frame itself, not to be changed. A
        released month (:meth:`release`) is computed again and not kept."""
        frame = self._features.get(month)
        if frame is None and month in self._pending:
            frame = self._pending.pop(month).result()
            if keep and month not in self._released:
                self._features[month] = frame
            self._top_up()
        if frame is None:
            if month in self._queue:
                self._queue.remove(month)
            frame = churn.snapshot(self.con, month, with_labels=False, account_months=self.account_months(month))
            if keep and month not in self._released:
                self._features[month] = frame
        return frame

    def ids(self, month: str) -> pd.DataFrame:
        """``account_id``, ``cutoff`` and ``mrr`` of every row of ``month``'s snapshot, in
        :meth:`features` order (kept after :meth:`release`); the cached frame, not to be changed."""
        frame = self._released.get(month)
        return frame if frame is not None else self._snapshot(month)[list(RELEASED_COLUMNS)]

    def held_months(self) -> list[str]:
        """The months whose full features are in memory: cached, or computed ahead (pending)."""
        return sorted({*self._features, *(k for k in self._pending if isinstance(k, str))})

    def release(self, month: str) -> None:
        """Drops ``month``'s cached features, keeping :meth:`ids`: once a month is scored by
        every model that needs it (:meth:`score_and_release`), its trend point and the model
        card's labels need only those (a month of 1,000,000 accounts' features is about 0.5 GB)."""
        frame = self._features.pop(month, None)
        if frame is None:
            frame = self._snapshot(month, keep=False)
        ids = frame[list(RELEASED_COLUMNS)].copy()
        ids["account_id"] = self._shared_ids(ids["account_id"])
        self._released[month] = ids

    def _shared_ids(self, ids: pd.Series) -> np.ndarray:
        """``ids`` (object) as references to one string per account, shared by every released
        month: a query's result holds its own copy of each id (about 60 bytes), a reference is 8."""
        codes = self._ids.get_indexer(ids)
        if (codes < 0).any():
            self._ids = self._ids.append(pd.Index(pd.unique(ids[codes < 0])))
            codes = self._ids.get_indexer(ids)
        return self._ids.to_numpy()[codes]

    def score_and_release(self, fitted: FittedModel, months: list[str]) -> None:
        """Scores ``months`` in this order with ``fitted``'s model (:meth:`scores`), releasing
        each month's features (:meth:`release`) once scored: with :meth:`prefetch`'s bounded
        look-ahead, a run then holds a few months' features at a time, not every month's."""
        for month in months:
            self.scores(fitted, month)
            self.release(month)

    def prefetch(self, months: list[str]) -> None:
        """Starts computing ``months``' full snapshots, in this order, on a second DuckDB
        connection in a background thread; :meth:`features` then waits for them. Model fits run
        on one thread, so on two cores these queries take no time of their own. At most
        :data:`PREFETCH_ROWS` rows are computed ahead of use: each month taken starts the next.
        Elsewhere than on DuckDB this does nothing. Call :meth:`close` when done."""
        if not self._start_worker():
            return
        months = [m for m in months if m not in self._features and m not in self._pending]
        if months:
            rows = max(len(self.snapshot_accounts(months[0])), 1)
            self._ahead = max(1, PREFETCH_ROWS // rows)
        self._queue += months
        self._top_up()

    def _top_up(self) -> None:
        """Submits queued work (a month's snapshot, or ``("health", month)``) in order until
        :attr:`_ahead` results are pending: each result taken starts the next."""
        while self._queue and self._worker is not None and len(self._pending) < self._ahead:
            key = self._queue.pop(0)
            task = self._health_in_background if isinstance(key, tuple) else self._snapshot_in_background
            self._pending[key] = self._worker.submit(task, key[1] if isinstance(key, tuple) else key)

    def prefetch_health(self, months: list[str]) -> None:
        """Queues the health scores at ``months``' ends (:meth:`health_at`) after the snapshots
        of :meth:`prefetch`, computed like them; nothing elsewhere than on DuckDB."""
        if not self._start_worker():
            return
        self._queue += [("health", m) for m in months if ("health", m) not in self._pending]
        self._top_up()

    def health_at(self, month: str, config: health.HealthConfig | None = None) -> pd.DataFrame:
        """:func:`health.health_scores` at the end of ``month`` without changes, with the default
        configuration (or ``config``, then never from :meth:`prefetch_health`)."""
        key = ("health", month)
        if key in self._queue:
            self._queue.remove(key)
        future = self._pending.pop(key, None)
        if future is not None:
            self._top_up()
            if config is None:
                return future.result()
        return health.health_scores(self.con, churn.month_end(month), config, changes=False)

    def _start_worker(self) -> bool:
        """The background thread and its own DuckDB connection (one connection runs one query at
        a time), opened here on the calling thread; False elsewhere than on DuckDB."""
        if self.account_months(self.data_months()[-1]) is None:
            return False
        if self._worker is None:
            self._worker_con = self.con.cursor()
            self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cfx-snapshots")
        return True

    def _snapshot_in_background(self, month: str) -> pd.DataFrame:
        return churn.snapshot(self._worker_con, month, with_labels=False, account_months=self.account_months(month))

    def _health_in_background(self, month: str) -> pd.DataFrame:
        return health.health_scores(self._worker_con, churn.month_end(month), changes=False)

    def close(self) -> None:
        """Stops the background snapshots (:meth:`prefetch`) and closes their connection."""
        if self._worker is not None:
            for future in self._pending.values():
                future.cancel()
            self._worker.shutdown(wait=True)
            self._worker, self._pending, self._queue = None, {}, []
        if self._worker_con is not None:
            self._worker_con.close()
            self._worker_con = None
        if self._scratch_name is not None:
            self.con.execute(f"DETACH {self._scratch_name}")
            self._scratch_name, self._account_months_through = None, None

    def outcomes(self, month: str, keep: bool = True) -> pd.DataFrame:
        """``account_id`` and ``churned_3m`` of the accounts active at the end of ``month``."""
        frame = self._outcomes.get(month)
        if frame is None:
            through = str(pd.Period(month, freq="M") + churn.HORIZON_MONTHS)
            frame = self.con.execute(churn._labels_sql(month, self.account_months(through))).df()
            if keep:
                self._outcomes[month] = frame
        return frame.copy()

    def _labelled_month(self, month: str, keep: bool) -> pd.DataFrame:
        frame = self.features(month, keep).merge(self.outcomes(month, keep), on="account_id", how="left")
        frame[churn.LABEL] = frame[churn.LABEL].fillna(0).astype(int)
        return frame

    def labelled(self, cutoffs: list[str]) -> pd.DataFrame:
        """Every snapshot of ``cutoffs`` with its outcome (0 when the account has none)."""
        return pd.concat([self._labelled_month(c, keep=True) for c in cutoffs], ignore_index=True)

    def labels(self, cutoffs: list[str]) -> pd.DataFrame:
        """:meth:`labelled` without the features: ``account_id``, ``cutoff`` and the outcome of
        every snapshot row, in the same order (1,000,000 accounts x 6 months of features are
        about 2 GB that an evaluation does not need)."""
        parts = []
        for month in cutoffs:
            ids = self.ids(month)[["account_id", "cutoff"]]
            frame = ids.merge(self.outcomes(month), on="account_id", how="left")
            frame[churn.LABEL] = frame[churn.LABEL].fillna(0).astype(int)
            parts.append(frame)
        return pd.concat(parts, ignore_index=True)

    def snapshot_accounts(self, month: str) -> np.ndarray | None:
        """The accounts of ``month``'s snapshot (those with MRR at its end), in snapshot order,
        read from the account months alone (no feature computed); None off DuckDB. Not kept:
        30 months of 1,000,000 accounts' ids are about 1.5 GB (:meth:`_sample` keeps its picks)."""
        table = self.account_months(month)
        if table is None:
            return None
        first_day = date_literal(pd.Period(month, freq="M").start_time.date())
        sql = f"SELECT account_id FROM {table} WHERE month = {first_day} ORDER BY account_id"
        return self.con.execute(sql).df()["account_id"].to_numpy(dtype=object)

    def _missing(self, month: str, accounts: np.ndarray) -> np.ndarray:
        """Of ``accounts``, those whose labelled snapshot row of ``month`` is not cached."""
        if month in self._features:
            return accounts[:0]
        have = self._sampled.get(month)
        # pandas' hash-based isin: numpy's sorts these Python strings (3.6 s for a run's months)
        return accounts if have is None else accounts[~pd.Index(accounts).isin(have["account_id"])]

    def _compute_sampled(self, missing: dict[str, np.ndarray]) -> None:
        """Computes and caches the labelled snapshot rows of ``missing`` (month -> accounts): the
        usage aggregates of every month at once (:func:`churn.usage_by_cutoff_sql`, one scan of
        ``usage_daily``), then each month's other features for only its accounts."""
        missing = {month: accounts for month, accounts in missing.items() if len(accounts)}
        if not missing:
            return
        pairs = pd.concat(
            [pd.DataFrame({"account_id": a, "cutoff": churn.month_end(m)}) for m, a in missing.items()],
            ignore_index=True,
        )
        self.con.register("cfx_churn_sample_pairs", pairs)
        try:
            self.con.execute(
                "CREATE OR REPLACE TEMP TABLE cfx_churn_sample_usage AS "
                + churn.usage_by_cutoff_sql(
                    "(SELECT account_id, CAST(cutoff AS DATE) AS cutoff FROM cfx_churn_sample_pairs)"
                )
            )
            for month, accounts in missing.items():
                self.con.register("cfx_churn_sample_accounts", pd.DataFrame({"account_id": accounts}))
                new = churn.snapshot(
                    self.con,
                    month,
                    with_labels=False,
                    account_months=self.account_months(month),
                    accounts="cfx_churn_sample_accounts",
                    usage="cfx_churn_sample_usage",
                )
                new = new.merge(self.outcomes(month, keep=False), on="account_id", how="left")
                new[churn.LABEL] = new[churn.LABEL].fillna(0).astype(int)
                have = self._sampled.get(month)
                self._sampled[month] = (
                    new if have is None else pd.concat([have, new]).sort_values("account_id", ignore_index=True)
                )
        finally:
            for view in ("cfx_churn_sample_pairs", "cfx_churn_sample_accounts"):
                self.con.unregister(view)
            self.con.execute("DROP TABLE IF EXISTS cfx_churn_sample_usage")

    def _labelled_accounts(self, month: str, accounts: np.ndarray) -> pd.DataFrame:
        """The labelled snapshot rows of ``accounts`` (a subset of :meth:`snapshot_accounts`, all
        computed by :meth:`_compute_sampled` unless the month's full snapshot is cached), in
        snapshot order."""
        frame = self._labelled_month(month, keep=False) if month in self._features else self._sampled[month]
        return frame[frame["account_id"].isin(accounts)].reset_index(drop=True)

    def _sample(self, cutoffs: list[str]) -> tuple[dict[str, np.ndarray], int] | None:
        """(month -> the accounts of its sampled rows, rows available) of :meth:`training`; None
        off DuckDB or when every row is kept. Computed once per set of cutoffs, one month's
        accounts at a time: the sample's rows are among each month's ``max_rows`` smallest keys,
        so only those candidates are kept while the next month is read."""
        key = tuple(cutoffs)
        if key not in self._samples:
            self._samples[key] = self._draw_sample(cutoffs)
        return self._samples[key]

    def _draw_sample(self, cutoffs: list[str]) -> tuple[dict[str, np.ndarray], int] | None:
        candidates, available = [], 0
        for month in cutoffs:
            accounts = self.snapshot_accounts(month)
            if accounts is None:
                return None
            keys = _sample_keys(accounts, month)
            kept = _smallest(keys, self.max_rows)
            candidates.append((month, accounts[kept], keys[kept]))
            available += len(accounts)
        if available <= self.max_rows:
            return None
        keys = np.concatenate([k for _, _, k in candidates])
        chosen = np.zeros(len(keys), dtype=bool)
        chosen[_smallest(keys, self.max_rows)] = True
        picks, start = {}, 0
        for month, month_accounts, _ in candidates:
            picks[month] = month_accounts[chosen[start : start + len(month_accounts)]]
            start += len(month_accounts)
        return picks, available

    def prepare_training(self, cutoff_sets: list[list[str]]) -> None:
        """Computes the sampled rows of several models' training sets at once (one usage scan,
        one query per month for the union of the sets' accounts), before :meth:`training` asks."""
        missing: dict[str, np.ndarray] = {}
        for cutoffs in cutoff_sets:
            sample = self._sample(cutoffs)
            for month, picked in (sample[0] if sample else {}).items():
                union = picked if month not in missing else pd.unique(np.concatenate([missing[month], picked]))
                missing[month] = self._missing(month, union)
        self._compute_sampled(missing)

    def training(self, cutoffs: list[str]) -> tuple[pd.DataFrame, int]:
        """(training rows, rows available): the labelled snapshots of ``cutoffs``, or when there
        are more than ``max_rows``, the ``max_rows`` with the smallest fixed random keys
        (:func:`_sample_keys`) — a uniform sample — in their original order (by cutoff, then
        account). On DuckDB the sample is chosen from the snapshots' accounts first, and only
        its rows' features are computed."""
        sample = self._sample(cutoffs)
        if sample is None:  # off DuckDB, or no sample: every month's full snapshot
            return self._training_from_snapshots(cutoffs)
        picks, available = sample
        self._compute_sampled({month: self._missing(month, picked) for month, picked in picks.items()})
        parts = [self._labelled_accounts(month, picked) for month, picked in picks.items() if len(picked)]
        return pd.concat(parts, ignore_index=True), available

    def _training_from_snapshots(self, cutoffs: list[str]) -> tuple[pd.DataFrame, int]:
        """:meth:`training` from every month's full snapshot (engines other than DuckDB), keeping
        per month only the rows that can enter the sample."""
        parts, available = [], 0
        for month in cutoffs:
            if month not in self._training:
                frame = self._labelled_month(month, keep=False)
                month_keys = _sample_keys(frame["account_id"], month)
                kept = _smallest(month_keys, self.max_rows)
                self._training[month] = (len(frame), frame.iloc[kept].assign(_key=month_keys[kept]))
            rows, part = self._training[month]
            available += rows
            parts.append(part)
        frame = pd.concat(parts, ignore_index=True)
        frame = frame.iloc[_smallest(frame["_key"].to_numpy(), self.max_rows)]
        return frame.drop(columns="_key").reset_index(drop=True), available


@dataclass
class ChurnResult:
    as_of_month: str
    scores: pd.DataFrame  # account_id, p_churn_3m and the snapshot features
    model: churn.ChurnModel
    drivers: churn.Drivers
    training_rows: int
    training_cutoffs: list[str]
    available_rows: int
    """Labelled snapshots available; ``training_rows`` of them (a sample when more) trained the model."""


def churn_scores(con, as_of_month: str, cache: SnapshotCache | None = None) -> ChurnResult:
    """Train on outcomes known at the end of ``as_of_month``; score accounts active then."""
    cache = cache or SnapshotCache(con)
    _, labelled = _cutoffs(cache.data_months(), as_of_month)
    if not labelled:
        raise UsageError(
            f"not enough history before {as_of_month} to train a churn model (need {FIRST_CUTOFF + 4} months)"
        )
    train_cutoffs = labelled[-TRAIN_CUTOFFS:]
    fitted = cache.fit(train_cutoffs)
    train = fitted.train
    drivers = churn.Drivers().fit(train, train[churn.LABEL])
    current = cache.features(as_of_month)
    current["p_churn_3m"] = cache.scores(fitted, as_of_month)
    return ChurnResult(as_of_month, current, fitted.model, drivers, len(train), train_cutoffs, fitted.available_rows)


def card_cutoffs(labelled: list[str]) -> tuple[list[str], list[str]]:
    """(training, test) cutoffs of :func:`model_card`: test on the last :data:`TEST_CUTOFFS`
    labelled cutoffs, train on the latest whose outcomes were known before the first of them."""
    test = labelled[-TEST_CUTOFFS:]
    first_test = labelled.index(test[0])
    return labelled[: first_test - churn.HORIZON_MONTHS + 1][-TRAIN_CUTOFFS:], test


def training_cutoff_sets(months: list[str], as_of_month: str) -> list[list[str]]:
    """The training cutoffs of the models a run fits: :func:`churn_scores`' and, when there is
    history enough, :func:`model_card`'s (which :func:`at_risk_trend` reuses)."""
    _, labelled = _cutoffs(months, as_of_month)
    sets = [labelled[-TRAIN_CUTOFFS:]] if labelled else []
    if len(labelled) >= CARD_MIN_LABELLED:
        sets.append(card_cutoffs(labelled)[0])
    return sets


def card_test_months(months: list[str], as_of_month: str) -> list[str]:
    """:func:`model_card`'s test cutoffs (none when there is too little history for a card)."""
    _, labelled = _cutoffs(months, as_of_month)
    return card_cutoffs(labelled)[1] if len(labelled) >= CARD_MIN_LABELLED else []


def full_snapshot_months(months: list[str], as_of_month: str) -> list[str]:
    """The months whose every account a run scores, in the order :func:`report.compute` needs
    them: the as-of month (:func:`churn_scores`), the model card's test cutoffs
    (:func:`model_card`), then the rest of the at-risk trend's months (:func:`at_risk_trend`)."""
    upto, labelled = _cutoffs(months, as_of_month)
    wanted = [as_of_month, *labelled[-TEST_CUTOFFS:], *upto[-TREND_MONTHS:]]
    return list(dict.fromkeys(wanted))


def score_card_months(cache: SnapshotCache, as_of_month: str) -> None:
    """Scores every month of :func:`full_snapshot_months` with the model card's model, in order,
    and releases each month's features (:meth:`SnapshotCache.score_and_release`): what
    :func:`model_card` and :func:`at_risk_trend` (which reuses that model) read afterwards. Call
    it after :func:`churn_scores`, which needs the as-of month's features. Nothing happens when
    there is too little history for a model card or no churn to learn from (those functions
    then say so or fit their own model)."""
    months = cache.data_months()
    sets = training_cutoff_sets(months, as_of_month)
    if len(sets) < 2:
        return
    try:
        fitted = cache.fit(sets[1])
    except UsageError:
        return
    cache.score_and_release(fitted, full_snapshot_months(months, as_of_month))


TREND_MONTHS = 6
"""Months shown in the at-risk trend (the as-of month and the five before it)."""


def at_risk_trend(con, as_of_month: str, months: int = TREND_MONTHS, cache: SnapshotCache | None = None) -> dict:
    """How the churn model's ARR at risk moved over recent months, without hindsight.

    One model, trained only on outcomes known at the end of the first month shown, scores the
    accounts active at the end of each month shown, so the months are comparable (the same model)
    and none is scored with knowledge of its own future. When ``cache`` already holds such a model
    (the model card's, fitted on outcomes known before its test period, is one when the card was
    computed first), that model is reused rather than fitting another; otherwise the model is
    trained on the latest cutoffs labelled at the end of the first month shown.
    ``arr_at_risk`` is the sum over active accounts of p(churn within 3 months) x ARR, USD;
    ``churned_arr`` is the ARR of those accounts that did churn within 3 months, once that is
    known (null for the last three months).
    """
    cache = cache or SnapshotCache(con)
    upto, labelled = _cutoffs(cache.data_months(), as_of_month)
    shown = upto[-months:]
    fitted = cache.fitted_by(shown[0])
    if fitted is None:
        _, train_labelled = _cutoffs(cache.data_months(), shown[0])
        if not train_labelled:
            return {"trained_through": None, "points": [], "note": "not enough history before the months shown"}
        try:
            fitted = cache.fit(train_labelled[-TRAIN_CUTOFFS:])
        except UsageError:
            return {"trained_through": None, "points": [], "note": "no churn (or no retention) to learn from"}
    train_cutoffs = fitted.cutoffs
    points = []
    for month in shown:
        snap = cache.ids(month)  # read only
        arr = 12 * snap["mrr"].astype(float)
        p = cache.scores(fitted, month)
        point = {
            "month": month,
            "accounts": int(len(snap)),
            "arr": float(arr.sum()),
            "arr_at_risk": float((p * arr).sum()),
            "expected_churned_accounts": float(p.sum()),
            "churned_arr": None,
        }
        if month in labelled:
            outcome = cache.outcomes(month)
            churned = snap[["account_id"]].assign(arr=arr).merge(outcome, on="account_id", how="left")
            point["churned_arr"] = float(churned.loc[churned[churn.LABEL].fillna(0) == 1, "arr"].sum())
        points.append(point)
    return {
        "trained_through": train_cutoffs[-1],
        "points": points,
        "note": f"one model trained on outcomes known at the end of {fitted.outcomes_known_at} scores every month shown",
    }


def model_card(con, as_of_month: str, truth: pd.DataFrame | None = None, cache: SnapshotCache | None = None) -> dict:
    """Out-of-time evaluation: train on cutoffs whose outcomes were known before the test period,
    test on the last :data:`TEST_CUTOFFS` labelled cutoffs."""
    cache = cache or SnapshotCache(con)
    _, labelled = _cutoffs(cache.data_months(), as_of_month)
    if len(labelled) < CARD_MIN_LABELLED:
        raise UsageError(f"not enough labelled months before {as_of_month} for an out-of-time evaluation")
    train_cutoffs, test_cutoffs = card_cutoffs(labelled)
    fitted = cache.fit(train_cutoffs)
    train, available = fitted.train, fitted.available_rows
    test = cache.labels(test_cutoffs)  # each month's rows in features() order
    test["p"] = np.concatenate([cache.scores(fitted, c) for c in test_cutoffs])
    oracle = None
    if truth is not None:
        test = test.merge(
            truth.rename(columns={"month": "cutoff", "p_churn_3m": "truth"}), on=["account_id", "cutoff"], how="left"
        )
        oracle = test["truth"]
    card = churn.evaluate(test[churn.LABEL], test["p"], truth=oracle)
    card.update(
        {
            "as_of": as_of_month,
            "train_cutoffs": [train_cutoffs[0], train_cutoffs[-1]],
            "test_cutoffs": [test_cutoffs[0], test_cutoffs[-1]],
            "train_rows": int(len(train)),
            "train_rows_available": int(available),
            "test_rows": int(len(test)),
            "sample_check": sample_check() if available > len(train) else None,
            "features": churn.feature_columns(train),
            "model": fitted.model.description(),
        }
    )
    # Health score validation on the same test rows: does a low score precede churn?
    card["health_validation"] = health_validation(
        con, test_cutoffs, test[["account_id", "cutoff", churn.LABEL]], cache=cache
    )
    return card


# --------------------------------------------------------------------------- health validation


def health_validation(
    con,
    cutoffs: list[str],
    labels: pd.DataFrame,
    config: health.HealthConfig | None = None,
    cache: SnapshotCache | None = None,
) -> dict:
    """How well the health score and its bands separate churners (next 3 months).

    ROC AUC of (100 - score), churn rate per band, and weights suggested by a logistic
    regression of churn on the standardised components (negative coefficients = protective;
    suggested weight = share of the protective effect), beside the configured ones. ``cache``:
    the scores at the cutoffs come from :meth:`SnapshotCache.health_at` (perhaps computed already).
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    at = (
        cache.health_at
        if cache is not None
        else (lambda c, cfg: health.health_scores(con, churn.month_end(c), cfg, changes=False))
    )
    # each month's scores are cut to what is validated and joined to its labels before the next
    # month is read, then lose their ids: six full health frames of 1,000,000 accounts,
    # concatenated, are about 3 GB, and their ids alone about 0.4 GB
    kept = ["account_id", "health_score", "band", *health.COMPONENTS]
    parts = []
    for c in cutoffs:
        month_labels = labels.loc[labels["cutoff"] == c, ["account_id", churn.LABEL]]
        parts.append(at(c, config)[kept].merge(month_labels, on="account_id").drop(columns="account_id"))
    config = config or health.load_config()
    scores = pd.concat(parts, ignore_index=True)
    y = scores[churn.LABEL].to_numpy()
    out: dict = {"rows": int(len(scores))}
    if len(np.unique(y)) < 2:
        return out
    out["roc_auc"] = float(roc_auc_score(y, 100 - scores["health_score"].fillna(50)))
    bands = scores.groupby("band")[churn.LABEL].agg(["mean", "size"])
    out["churn_rate_by_band"] = {
        b: {"churn_rate": float(r["mean"]), "accounts": int(r["size"])} for b, r in bands.iterrows()
    }
    X = scores[list(health.COMPONENTS)]
    X = (X.fillna(X.median()) - X.mean()) / X.std().replace(0, 1)
    lr = LogisticRegression(max_iter=2000).fit(X.fillna(0), y)
    protective = np.clip(-lr.coef_[0], 0, None)
    suggested = 100 * protective / protective.sum() if protective.sum() > 0 else np.zeros(len(protective))
    out["weights"] = {
        c: {"configured": config.weights[c], "suggested": float(round(s, 1)), "coefficient": float(k)}
        for c, s, k in zip(health.COMPONENTS, suggested, lr.coef_[0], strict=True)
    }
    out["component_roc_auc"] = {
        c: float(roc_auc_score(y, -scores[c].fillna(scores[c].median())))
        for c in health.COMPONENTS
        if scores[c].notna().any()
    }
    return out


def as_of_month_of(con) -> str:
    """The month a run reports on by default: the last month complete in the data (see
    :func:`cfxlib.store.summary.last_complete_month`)."""
    from cfxlib.store.summary import data_as_of, last_complete_month

    d: date = data_as_of(con)
    return last_complete_month(d)
