"""Customer health scores: components, weights, bands, incremental updates and validation.

An account's health at a date ``D`` (end of day) has five components, each 0-100:

- ``usage_rate``: seat utilisation = mean daily active users over the 30 days to ``D`` / licensed
  seats (subscriptions active at ``D``); 100 x min(utilisation / 0.5, 1): half the seats active
  on an average day earns full marks.
- ``ticket_resolution``: 70 x the share of tickets opened in the 90 days to ``D`` that were
  resolved within their priority's target (urgent 4 h, high 24 h, medium 72 h, low 168 h),
  counting tickets resolved by ``D`` or already overdue (1 when there are none), plus
  30 x max(0, 1 - overdue open tickets at ``D`` / 3).
- ``downtime_reduction``: 1 - downtime / baseline over the last three complete months to ``D``;
  100 x clip(reduction / 0.5, 0, 1): halving downtime earns full marks.
- ``nps``: 10 x the mean NPS answer (0-10) over the 365 days to ``D``.
- ``engagement_trend``: recent usage against the account's own earlier level: ratio = mean daily
  active users over the 30 days to ``D`` / over days 31-120 before ``D``;
  100 x clip((ratio - 0.5) / 0.6, 0, 1): stable usage scores 83, +10% or more 100, halved 0.

A component without data (no NPS answers, no downtime reports, less than 31 days of history) is
missing, and the overall score is the weighted mean of the available components (weights from
``config/health.yaml``, renormalised). Each component's *contribution* is its weight share times
its score, in points; contributions add up to the overall score. Bands: red up to 50, yellow up
to 75, green above (configurable).

The same :func:`component_scores` turns per-account aggregates into scores for the batch
computation (SQL aggregates over the warehouse, :func:`health_scores`) and for the incremental
:class:`HealthScorer`, which keeps per-account state and re-scores one account per event.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cfxlib.contract.rules import account_state_at_sql
from cfxlib.contract.schemas import PRIORITIES
from cfxlib.core.errors import UserError
from cfxlib.store.sqltext import date_literal

COMPONENTS = ("usage_rate", "ticket_resolution", "downtime_reduction", "nps", "engagement_trend")
TARGET_HOURS = {"low": 168.0, "medium": 72.0, "high": 24.0, "urgent": 4.0}
FULL_UTILISATION = 0.5
FULL_REDUCTION = 0.5
OVERDUE_FULL_PENALTY = 3
USAGE_DAYS, PREVIOUS_DAYS, TICKET_DAYS, NPS_DAYS, DOWNTIME_MONTHS = 30, 90, 90, 365, 3
AGGREGATES = (
    "seats",
    "users_30d",
    "users_prev",
    "tickets_scored",
    "tickets_on_time",
    "open_overdue",
    "downtime_hours",
    "baseline_hours",
    "nps_mean",
)


# --------------------------------------------------------------------------- configuration


class Bands(BaseModel):
    model_config = ConfigDict(extra="forbid")
    red: float = Field(50, ge=0, le=100, description="Highest score that is red.")
    yellow: float = Field(75, ge=0, le=100, description="Highest score that is yellow.")

    @model_validator(mode="after")
    def _ordered(self) -> Bands:
        if self.red >= self.yellow:
            raise ValueError("bands.red must be below bands.yellow")
        return self


class HealthConfig(BaseModel):
    """Weights (non-negative, sum 100, known components) and band limits."""

    model_config = ConfigDict(extra="forbid")
    weights: dict[str, float]
    bands: Bands = Bands()

    @field_validator("weights")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = set(value) - set(COMPONENTS)
        if unknown:
            raise ValueError(f"unknown component(s) {sorted(unknown)}; known: {', '.join(COMPONENTS)}")
        negative = [k for k, v in value.items() if v < 0]
        if negative:
            raise ValueError(f"weights must be non-negative: {negative}")
        if abs(sum(value.values()) - 100) > 1e-9:
            raise ValueError(f"weights must sum to 100, not {sum(value.values()):g}")
        return {c: float(value.get(c, 0.0)) for c in COMPONENTS}

    def band(self, score):
        """Band name(s) for score(s)."""
        s = np.asarray(score, dtype=float)
        out = np.where(s <= self.bands.red, "red", np.where(s <= self.bands.yellow, "yellow", "green"))
        return out if out.ndim else str(out)


def load_config(path: Path | None = None) -> HealthConfig:
    """The health configuration from ``path`` (default: the packaged ``config/health.yaml``)."""
    if path is None:
        text = resources.files("cfxlib").joinpath("config/health.yaml").read_text(encoding="utf-8")
        where = "cfxlib/config/health.yaml"
    else:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise UserError(f"cannot read health configuration {path}: {exc.strerror}") from None
        where = str(path)
    try:
        return HealthConfig.model_validate(yaml.safe_load(text) or {})
    except (ValidationError, yaml.YAMLError) as exc:
        raise UserError(f"invalid health configuration {where}: {exc}") from None


# --------------------------------------------------------------------------- formulas


def component_arrays(agg) -> dict[str, np.ndarray]:
    """The five component scores (0-100, NaN = no data) from aggregates (a mapping of arrays or
    scalars with the keys of :data:`AGGREGATES`). Pure numpy, so one account costs microseconds."""
    a = {k: np.asarray(agg[k], dtype=float) for k in AGGREGATES}
    with np.errstate(divide="ignore", invalid="ignore"):
        util = a["users_30d"] / np.where(a["seats"] > 0, a["seats"], np.nan)
        usage = 100 * np.clip(util / FULL_UTILISATION, 0, 1)
        on_time = np.where(a["tickets_scored"] > 0, a["tickets_on_time"] / a["tickets_scored"], 1.0)
        backlog = np.maximum(0.0, 1 - np.nan_to_num(a["open_overdue"]) / OVERDUE_FULL_PENALTY)
        tickets = 70 * on_time + 30 * backlog
        reduction = 1 - a["downtime_hours"] / np.where(a["baseline_hours"] > 0, a["baseline_hours"], np.nan)
        downtime = 100 * np.clip(reduction / FULL_REDUCTION, 0, 1)
        nps = 10 * a["nps_mean"]
        trend = 100 * np.clip((a["users_30d"] / a["users_prev"] - 0.5) / 0.6, 0, 1)
        trend = np.where((a["users_prev"] == 0) & (a["users_30d"] > 0), 100.0, trend)
        trend = np.where(np.isnan(a["users_prev"]), np.nan, trend)
    return {
        "usage_rate": usage,
        "ticket_resolution": tickets,
        "downtime_reduction": downtime,
        "nps": nps,
        "engagement_trend": trend,
    }


def combine_arrays(comps: dict[str, np.ndarray], config: HealthConfig) -> dict[str, np.ndarray]:
    """Overall score (rounded to 0.1), band and contributions (points) from component arrays."""
    values = np.stack([np.asarray(comps[c], dtype=float) for c in COMPONENTS], axis=-1)
    weights = np.array([config.weights[c] for c in COMPONENTS])
    available = ~np.isnan(values)
    weight_sum = (available * weights).sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        contrib = np.where(available, values * weights, 0.0) / np.expand_dims(
            np.where(weight_sum > 0, weight_sum, np.nan), -1
        )
    score = np.round(np.where(weight_sum > 0, contrib.sum(axis=-1), np.nan), 1)
    out = {"health_score": score, "band": config.band(np.nan_to_num(score))}
    for i, c in enumerate(COMPONENTS):
        out[f"contrib_{c}"] = np.round(np.where(available[..., i], contrib[..., i], np.nan), 2)
    return out


def component_scores(agg: pd.DataFrame) -> pd.DataFrame:
    """:func:`component_arrays` for a frame of aggregates (one row per account)."""
    return pd.DataFrame(component_arrays(agg), index=agg.index).astype(float)


def combine(components: pd.DataFrame, config: HealthConfig) -> pd.DataFrame:
    """:func:`combine_arrays` for a frame of component scores."""
    return pd.DataFrame(
        combine_arrays({c: components[c].to_numpy() for c in COMPONENTS}, config), index=components.index
    )


# --------------------------------------------------------------------------- batch (SQL)


def _ts(d: date) -> str:
    return f"TIMESTAMP '{d.isoformat()} 23:59:59.999999'"


def usage_aggregates_sql(d: str, extra_usage: Mapping[str, str] | None = None) -> str:
    """SQL select list: the usage aggregates of :func:`aggregates_sql` over ``usage_daily`` rows
    of the ``USAGE_DAYS + PREVIOUS_DAYS`` days up to the SQL date expression ``d`` (a literal, or
    a column when many dates are aggregated at once, see :func:`usage_window_sql`)."""
    extra = "".join(f",\n               {sql} AS {name}" for name, sql in (extra_usage or {}).items())
    return f"""avg(active_users) FILTER (WHERE date > {d} - INTERVAL {USAGE_DAYS} DAY) AS users_30d,
               avg(active_users) FILTER (WHERE date <= {d} - INTERVAL {USAGE_DAYS} DAY) AS users_prev{extra}"""


def usage_window_sql(d: str) -> str:
    """SQL condition: a ``usage_daily`` row is in the window of :func:`usage_aggregates_sql` up to ``d``."""
    return f"date <= {d} AND date > {d} - INTERVAL {USAGE_DAYS + PREVIOUS_DAYS} DAY"


def aggregates_sql(
    as_of: date, extra_usage: Mapping[str, str] | None = None, accounts: str | None = None, usage: str | None = None
) -> str:
    """SQL: one row per account active (MRR-bearing subscription) at ``as_of``, with AGGREGATES.

    ``extra_usage`` adds columns aggregated over the same scan of ``usage_daily`` (name -> SQL
    aggregate over its rows of the last ``USAGE_DAYS + PREVIOUS_DAYS`` days up to ``as_of``;
    narrow the window with ``FILTER``): the churn model's usage features, without reading the
    table a second time. ``accounts``, a table or query with an ``account_id`` column, keeps
    only those accounts (each one's row is the same as without it), read early in every scan.
    ``usage``, a table with ``account_id``, ``cutoff`` (DATE) and the usage aggregates already
    computed (:func:`usage_aggregates_sql` with the same ``extra_usage``), is read instead of
    ``usage_daily`` at ``cutoff = as_of``."""
    d = date_literal(as_of)
    extra = extra_usage or {}
    only = f" AND account_id IN (SELECT account_id FROM {accounts})" if accounts else ""
    extra_columns = "".join(f", u.{name}" for name in extra)
    end = _ts(as_of)
    target = "CASE priority " + " ".join(f"WHEN '{p}' THEN {h}" for p, h in TARGET_HOURS.items()) + " END"
    next_month = f"date_trunc('month', {d} + INTERVAL 1 DAY)"
    usage_sql = (
        f"SELECT * EXCLUDE (cutoff) FROM {usage} WHERE cutoff = {d}{only}"
        if usage
        else f"""SELECT account_id,
               {usage_aggregates_sql(d, extra)}
        FROM usage_daily
        WHERE {usage_window_sql(d)}{only}
        GROUP BY account_id"""
    )
    return f"""
    WITH active AS (
        SELECT account_id, seats, tier FROM ({account_state_at_sql(d)}) WHERE TRUE{only}
    ),
    usage AS (
        {usage_sql}
    ),
    tk AS (
        SELECT account_id, opened_at,
               CASE WHEN resolved_at <= {end} THEN resolved_at END AS resolved,
               {target} AS target_hours
        FROM tickets WHERE opened_at <= {end}{only}
    ),
    tickets AS (
        SELECT account_id,
               count(*) FILTER (WHERE opened_at > {end} - INTERVAL {TICKET_DAYS} DAY AND (
                   resolved IS NOT NULL OR epoch({end}) - epoch(opened_at) > target_hours * 3600)) AS tickets_scored,
               count(*) FILTER (WHERE opened_at > {end} - INTERVAL {TICKET_DAYS} DAY AND resolved IS NOT NULL
                   AND epoch(resolved) - epoch(opened_at) <= target_hours * 3600) AS tickets_on_time,
               count(*) FILTER (WHERE resolved IS NULL AND epoch({end}) - epoch(opened_at) > target_hours * 3600) AS open_overdue
        FROM tk GROUP BY account_id
    ),
    downtime AS (
        SELECT account_id, sum(downtime_hours) AS downtime_hours, sum(baseline_downtime_hours) AS baseline_hours
        FROM downtime_monthly
        WHERE month < {next_month} AND month >= {next_month} - INTERVAL {DOWNTIME_MONTHS} MONTH{only}
        GROUP BY account_id
    ),
    nps AS (
        SELECT account_id, avg(score) AS nps_mean FROM nps_responses
        WHERE date <= {d} AND date > {d} - INTERVAL {NPS_DAYS} DAY{only} GROUP BY account_id
    )
    SELECT a.account_id, a.tier, a.seats::DOUBLE AS seats,
           u.users_30d, u.users_prev,
           coalesce(t.tickets_scored, 0)::DOUBLE AS tickets_scored,
           coalesce(t.tickets_on_time, 0)::DOUBLE AS tickets_on_time,
           coalesce(t.open_overdue, 0)::DOUBLE AS open_overdue,
           dt.downtime_hours, dt.baseline_hours, n.nps_mean{extra_columns}
    FROM active a
    LEFT JOIN usage u USING (account_id)
    LEFT JOIN tickets t USING (account_id)
    LEFT JOIN downtime dt USING (account_id)
    LEFT JOIN nps n USING (account_id)
    ORDER BY a.account_id
    """


def _score_frame(agg: pd.DataFrame, config: HealthConfig) -> pd.DataFrame:
    comps = component_scores(agg)
    return pd.concat([agg[["account_id", "tier"]], comps.round(2), combine(comps, config)], axis=1)


def health_scores(con, as_of: date, config: HealthConfig | None = None, changes: bool = True) -> pd.DataFrame:
    """Health of every account active at ``as_of`` (end of day), from the warehouse.

    Columns: ``account_id, tier``, the five component scores, ``health_score`` (0-100), ``band``,
    ``contrib_<component>`` (points), and with ``changes`` ``change_30d`` and ``change_90d``: the
    score minus the account's score 30 and 90 days earlier (missing when it was not active then).
    """
    config = config or load_config()
    agg = con.execute(aggregates_sql(as_of)).df()
    out = _score_frame(agg, config)
    out.insert(2, "as_of", pd.Timestamp(as_of))
    if changes:
        for days in (30, 90):
            past = _score_frame(con.execute(aggregates_sql(as_of - timedelta(days=days))).df(), config)
            out[f"change_{days}d"] = out["health_score"] - out["account_id"].map(
                past.set_index("account_id")["health_score"]
            )
    return out


def health_history(
    con, as_of: date, days: int = 90, step_days: int = 7, config: HealthConfig | None = None
) -> pd.DataFrame:
    """Health of every account active at each of the dates ``as_of``, ``as_of - step_days``, ...
    back ``days`` days (oldest first): ``account_id, tier, as_of, health_score, band``. Each point
    is the batch score at that date, from data up to that date only."""
    points = [as_of - timedelta(days=k) for k in range(0, days + 1, step_days)][::-1]
    frames = [health_scores(con, d, config, changes=False) for d in points]
    cols = ["account_id", "tier", "as_of", "health_score", "band"]
    return pd.concat([f[cols] for f in frames], ignore_index=True) if frames else pd.DataFrame(columns=cols)


# --------------------------------------------------------------------------- incremental


@dataclass
class _AccountState:
    tier: str | None = None
    seats: float = float("nan")
    usage: dict = field(default_factory=dict)  # date -> active users
    tickets: dict = field(default_factory=dict)  # ticket_id -> (opened_at, resolved_at | None, priority)
    downtime: dict = field(default_factory=dict)  # month start (date) -> (downtime, baseline)
    nps: dict = field(default_factory=dict)  # response_id -> (date, score)
    versions: dict = field(default_factory=dict)  # table -> number of events applied
    parts: dict = field(default_factory=dict)  # table -> ((window end, version), aggregates of that table)
    latest: dict = field(default_factory=dict)  # table -> the latest date (tickets: time) of its data

    def seen(self, table: str, when) -> None:
        if when is not None and (table not in self.latest or when > self.latest[table]):
            self.latest[table] = when


def _as_date(value) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value.strip())  # the common live-event form, 50x faster than pandas
        except ValueError:
            pass
    return pd.Timestamp(value).date()


def _as_naive_utc(value) -> datetime | None:
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NaT:
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


class HealthScorer:
    """Per-account health state, updated one event at a time.

    ``update(table, row)`` applies one row of ``usage_daily``, ``tickets``, ``nps_responses`` or
    ``downtime_monthly`` (contract columns) and returns the account's new health (same columns
    as :func:`health_scores` without changes) — computed with the same formulas as the batch, so
    both agree exactly for the same data and date. Accounts and seats come from
    :meth:`from_warehouse` (or :meth:`set_account`).
    """

    def __init__(self, config: HealthConfig | None = None):
        self.config = config or load_config()
        self.accounts: dict[str, _AccountState] = defaultdict(_AccountState)
        self.as_of: date | None = None

    # -- loading
    @classmethod
    def from_warehouse(cls, con, as_of: date, config: HealthConfig | None = None) -> HealthScorer:
        """State from the warehouse for every account active at ``as_of``, with data up to it."""
        scorer = cls(config)
        scorer.as_of = as_of
        active = con.execute(
            f"SELECT account_id, seats::DOUBLE, tier FROM ({account_state_at_sql(date_literal(as_of))})"
        ).fetchall()
        for account_id, seats, tier in active:
            scorer.set_account(account_id, seats=seats, tier=tier)
        keep = set(scorer.accounts)
        start = as_of - timedelta(days=NPS_DAYS + 31)
        end = pd.Timestamp(as_of) + pd.Timedelta(days=1)
        for table, sql in (
            ("usage_daily", "SELECT account_id, date, active_users FROM usage_daily WHERE date > ? AND date <= ?"),
            (
                "nps_responses",
                "SELECT response_id, account_id, date, score FROM nps_responses WHERE date > ? AND date <= ?",
            ),
        ):
            lo = as_of - timedelta(days=USAGE_DAYS + PREVIOUS_DAYS) if table == "usage_daily" else start
            for row in con.execute(sql, [lo, as_of]).df().to_dict("records"):
                if row["account_id"] in keep:
                    scorer.apply(table, row)
        tickets = con.execute(
            "SELECT ticket_id, account_id, opened_at, resolved_at, priority FROM tickets WHERE opened_at < ? "
            "AND (opened_at > ? OR resolved_at IS NULL OR resolved_at >= ?)",
            [end, end - pd.Timedelta(days=TICKET_DAYS + 1), end],
        ).df()
        for row in tickets.to_dict("records"):
            if row["account_id"] in keep:
                if (
                    row["resolved_at"] is not None
                    and not pd.isna(row["resolved_at"])
                    and pd.Timestamp(row["resolved_at"]) >= end
                ):
                    row["resolved_at"] = None  # not yet resolved as of the date
                scorer.apply("tickets", row)
        downtime = con.execute(
            "SELECT account_id, month, downtime_hours, baseline_downtime_hours FROM downtime_monthly WHERE month <= ? AND month > ?",
            [as_of, as_of - timedelta(days=130)],
        ).df()
        for row in downtime.to_dict("records"):
            if row["account_id"] in keep:
                scorer.apply("downtime_monthly", row)
        return scorer

    def set_account(self, account_id: str, seats: float, tier: str | None = None) -> None:
        state = self.accounts[account_id]
        state.seats, state.tier = float(seats), tier

    # -- events
    def apply(self, table: str, row: dict) -> str:
        """Apply one event without scoring it (see :meth:`score_many`); returns its account."""
        account_id = str(row["account_id"])
        state = self.accounts[account_id]
        if table == "usage_daily":
            day = _as_date(row["date"])
            state.usage[day] = float(row["active_users"])
            state.seen(table, day)
        elif table == "tickets":
            priority = str(row["priority"])
            if priority not in PRIORITIES:
                raise ValueError(f"unknown priority {priority!r}")
            opened, resolved = _as_naive_utc(row["opened_at"]), _as_naive_utc(row.get("resolved_at"))
            state.tickets[str(row["ticket_id"])] = (opened, resolved, priority)
            state.seen(table, max(filter(None, (opened, resolved)), default=None))
        elif table == "nps_responses":
            day = _as_date(row["date"])
            state.nps[str(row["response_id"])] = (day, float(row["score"]))
            state.seen(table, day)
        elif table == "downtime_monthly":
            month = pd.Period(str(row["month"])[:7], freq="M")
            state.downtime[month.start_time.date()] = (
                float(row["downtime_hours"]),
                float(row["baseline_downtime_hours"]),
            )
            state.seen(table, month.end_time.date())
        else:
            raise ValueError(f"events of table {table!r} do not change health")
        state.versions[table] = state.versions.get(table, 0) + 1
        return account_id

    def update(self, table: str, row: dict, as_of: date | None = None) -> dict:
        """Apply one event and return the account's health at ``as_of`` (default: the scorer's
        date, moved forward to the event's date when the event is newer)."""
        account_id = self.apply(table, row)
        event_day = self._event_date(table, row)
        if as_of is None:
            as_of = max(filter(None, (self.as_of, event_day)))
        self.as_of = max(filter(None, (self.as_of, as_of)))
        return self.score(account_id, as_of)

    @staticmethod
    def _event_date(table: str, row: dict) -> date | None:
        if table == "usage_daily" or table == "nps_responses":
            return _as_date(row["date"])
        if table == "tickets":
            latest = _as_naive_utc(row.get("resolved_at")) or _as_naive_utc(row["opened_at"])
            return latest.date() if latest else None
        return None

    # -- scoring
    def aggregates(self, account_id: str, as_of: date) -> dict:
        """The AGGREGATES of one account at ``as_of`` (end of day), from its state.

        Each source's window ends at ``as_of`` or, when the account has newer data of that
        source (live events dated after the publication, up to today), at that newest data:
        a usage day today moves the usage window to today, an NPS answer today the NPS window,
        a ticket opened at 09:12 today the ticket window to 09:12 — and no source is judged on
        days for which its data has not arrived yet. With data up to ``as_of`` only (the batch),
        every window ends at ``as_of``.

        Each table's part is kept until that table changes or its window end moves, so an event
        recomputes only its own table's aggregates (an NPS answer does not rescan usage)."""
        s = self.accounts[account_id]
        out = {"seats": s.seats}
        for table, part in self._PARTS.items():
            end = self.window_end(s, table, as_of)
            key = (end, s.versions.get(table, 0))
            cached = s.parts.get(table)
            if cached is None or cached[0] != key:
                cached = s.parts[table] = (key, part(s, end))
            out.update(cached[1])
        return out

    @staticmethod
    def window_end(s: _AccountState, table: str, as_of: date):
        """Where ``table``'s window ends for an account: ``as_of`` (end of day) or its newest data."""
        latest = s.latest.get(table)
        if table == "tickets":
            end = datetime.combine(as_of, datetime.max.time())
            return latest if latest is not None and latest > end else end
        return latest if latest is not None and latest > as_of else as_of

    def data_through(self, account_id: str, as_of: date) -> date:
        """The newest day any of the account's health windows reaches (``as_of`` at least)."""
        s = self.accounts[account_id]
        ends = [self.window_end(s, t, as_of) for t in self._PARTS]
        return max(e.date() if isinstance(e, datetime) else e for e in ends)

    @staticmethod
    def _usage_part(s: _AccountState, as_of: date) -> dict:
        recent_from, earlier_from = (
            as_of - timedelta(days=USAGE_DAYS),
            as_of - timedelta(days=USAGE_DAYS + PREVIOUS_DAYS),
        )
        recent = [v for d, v in s.usage.items() if recent_from < d <= as_of]
        earlier = [v for d, v in s.usage.items() if earlier_from < d <= recent_from]
        return {
            "users_30d": float(np.mean(recent)) if recent else np.nan,
            "users_prev": float(np.mean(earlier)) if earlier else np.nan,
        }

    @staticmethod
    def _tickets_part(s: _AccountState, end: datetime) -> dict:
        window_start = end - timedelta(days=TICKET_DAYS)
        scored = on_time = overdue = 0
        for opened, resolved, priority in s.tickets.values():
            if opened is None or opened > end:
                continue
            resolved = resolved if resolved is not None and resolved <= end else None
            limit = timedelta(hours=TARGET_HOURS[priority])
            late_now = (end - opened) > limit
            if opened > window_start:
                if resolved is not None or late_now:
                    scored += 1
                if resolved is not None and resolved - opened <= limit:
                    on_time += 1
            if resolved is None and late_now:
                overdue += 1
        return {"tickets_scored": float(scored), "tickets_on_time": float(on_time), "open_overdue": float(overdue)}

    @staticmethod
    def _downtime_part(s: _AccountState, as_of: date) -> dict:
        nxt = pd.Period(as_of + timedelta(days=1), freq="M").start_time.date()
        first = (pd.Period(nxt, freq="M") - DOWNTIME_MONTHS).start_time.date()
        months = [v for m, v in s.downtime.items() if first <= m < nxt]
        return {
            "downtime_hours": float(sum(m[0] for m in months)) if months else np.nan,
            "baseline_hours": float(sum(m[1] for m in months)) if months else np.nan,
        }

    @staticmethod
    def _nps_part(s: _AccountState, as_of: date) -> dict:
        since = as_of - timedelta(days=NPS_DAYS)
        answers = [v for d, v in s.nps.values() if since < d <= as_of]
        return {"nps_mean": float(np.mean(answers)) if answers else np.nan}

    _PARTS = {
        "usage_daily": _usage_part,
        "tickets": _tickets_part,
        "downtime_monthly": _downtime_part,
        "nps_responses": _nps_part,
    }

    def score(self, account_id: str, as_of: date | None = None) -> dict:
        """One account's health at ``as_of``: the columns of :func:`health_scores` (no changes)."""
        return self.score_many([account_id], as_of)[0]

    def score_many(self, account_ids: list[str], as_of: date | None = None) -> list[dict]:
        """:meth:`score` for several accounts in one vectorised pass (numpy costs the same for
        one account as for a hundred, so a batch of events is scored at once)."""
        as_of = as_of or self.as_of
        aggs = [self.aggregates(a, as_of) for a in account_ids]
        comps = component_arrays({k: np.array([agg[k] for agg in aggs], dtype=float) for k in AGGREGATES})
        total = combine_arrays(comps, self.config)
        columns = {c: np.round(v, 2).tolist() for c, v in comps.items()}
        columns.update({k: (v.astype(str) if k == "band" else v.astype(float)).tolist() for k, v in total.items()})
        rows = []
        for i, account_id in enumerate(account_ids):
            day = self.data_through(account_id, as_of).isoformat()
            row = {"account_id": account_id, "tier": self.accounts[account_id].tier, "as_of": day}
            for name, values in columns.items():
                v = values[i]
                row[name] = None if isinstance(v, float) and math.isnan(v) else v
            rows.append(row)
        return rows

    def scores(self, as_of: date | None = None) -> pd.DataFrame:
        """Every account's health at ``as_of`` (accounts with known seats)."""
        as_of = as_of or self.as_of
        rows = self.score_many([a for a, s in sorted(self.accounts.items()) if not np.isnan(s.seats)], as_of)
        return pd.DataFrame(rows)
