"""Generate the demo company: a complete, realistic, deterministic data directory.

The company sells a CMMS in three tiers priced per seat per month (annual plans at a 15%
discount). Sales and marketing spend in one month drives the next month's new customers, with
growth and seasonality. Accounts then live month by month (see :mod:`cfxlib.demo.behaviour`):
engagement drifts; seats expand and contract; accounts upgrade, downgrade, churn (annual plans
only at renewal) and sometimes come back. Usage, work orders, tickets, downtime and NPS follow
from engagement with noise. Operations data (uptime, latency, requests, AI calls) follows the
company's total load, with random incidents.

Accounts are simulated in fixed batches of :data:`BATCH` with a random stream per batch, and
every table is streamed to its file batch by batch, so memory stays bounded whatever the size
and the same options always give byte-identical files.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from cfxlib.contract.fundraising import FILE_NAME as FUNDRAISING_FILE
from cfxlib.contract.schemas import ALL_TABLES, PRIORITIES, TIERS
from cfxlib.core import provenance
from cfxlib.core.errors import UserError
from cfxlib.demo import behaviour as bh
from cfxlib.demo.sinks import TableSink

BATCH = 2000
"""Accounts per simulation batch (fixed: part of what makes the output deterministic)."""

LIST_PRICE = np.array([35.0, 69.0, 119.0])
"""List price per seat per month, USD, for Starter, Professional, Enterprise."""
ANNUAL_DISCOUNT = 0.15
TIER_MIX = np.array([0.55, 0.33, 0.12])
MONTHLY_PLAN_SHARE = np.array([0.75, 0.5, 0.2])
SEATS_MEDIAN = np.array([5.0, 20.0, 80.0])
SEATS_CAP = np.array([30, 200, 2000])
BLENDED_CAC = 11_000.0
"""Target sales and marketing spend per new customer, USD."""
LEAD_CONVERSION = 0.2
TARGET_HOURS = np.array([168.0, 72.0, 24.0, 4.0])
"""Resolution targets by priority (low, medium, high, urgent), hours."""
PRIORITY_MIX = np.array([0.35, 0.4, 0.2, 0.05])
WEEKDAY_FACTOR = np.array([1.0, 1.0, 1.0, 1.0, 0.95, 0.3, 0.15])
SERVICES = ("api", "web", "mobile-sync", "ai-assistant")

INDUSTRIES = (
    "Manufacturing",
    "Food & Beverage",
    "Utilities",
    "Oil & Gas",
    "Pharmaceuticals",
    "Logistics",
    "Facilities Management",
    "Mining",
    "Automotive",
    "Healthcare Facilities",
)
REGIONS = ("North America", "EMEA", "APAC", "LATAM")
REGION_MIX = np.array([0.5, 0.28, 0.14, 0.08])
_NAME_A = (
    "Apex",
    "Northwind",
    "Summit",
    "Ironclad",
    "Bluewater",
    "Granite",
    "Redwood",
    "Silverline",
    "Keystone",
    "Harbor",
    "Pioneer",
    "Evergreen",
    "Falcon",
    "Cedar",
    "Atlas",
    "Beacon",
    "Crescent",
    "Delta",
    "Frontier",
    "Lakeside",
    "Meridian",
    "Orion",
    "Prairie",
    "Ridgeway",
    "Sterling",
)
_NAME_B = (
    "Plastics",
    "Foods",
    "Power",
    "Energy",
    "Metals",
    "Packaging",
    "Bottling",
    "Logistics",
    "Pharma",
    "Mills",
    "Fabrication",
    "Water",
    "Components",
    "Castings",
    "Brewing",
    "Textiles",
)
_NAME_C = ("Inc.", "LLC", "Ltd", "GmbH", "Co.", "Group", "Industries", "S.A.")
LEAD_SOURCES = ("website", "paid_search", "webinar", "trade_show", "partner", "outbound")
LEAD_SOURCE_MIX = np.array(
    [
        [0.40, 0.30, 0.12, 0.05, 0.05, 0.08],  # Starter
        [0.25, 0.20, 0.18, 0.12, 0.12, 0.13],  # Professional
        [0.08, 0.05, 0.12, 0.25, 0.20, 0.30],  # Enterprise
    ]
)

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DemoOptions:
    accounts: int = 2000
    months: int = 36
    seed: int = 42
    end_month: str | None = None
    """Last month of data, ``YYYY-MM``; default: the last complete month before today."""
    fmt: str = "csv"


class DemoOptionsError(UserError, ValueError):
    pass


def _end_month(value: str | None, today: date) -> pd.Period:
    current = pd.Period(today, freq="M")
    if value is None:
        return current - 1
    try:
        end = pd.Period(value, freq="M")
    except ValueError:
        raise DemoOptionsError(f"--end-month must be YYYY-MM, not {value!r}") from None
    if end >= current:
        raise DemoOptionsError(
            f"--end-month {value} is not a complete month before today ({today.isoformat()}); "
            "the data would contain future dates"
        )
    return end


@dataclass
class Calendar:
    """The months of the data: starts, lengths and day offsets."""

    starts: np.ndarray  # datetime64[D] month starts
    days: np.ndarray  # days in each month
    first_day: np.ndarray  # day offset of each month start from the first month start

    @classmethod
    def ending(cls, end: pd.Period, months: int) -> Calendar:
        periods = pd.period_range(end=end, periods=months, freq="M")
        starts = periods.start_time.values.astype("datetime64[D]")
        days = periods.days_in_month.to_numpy()
        first_day = np.concatenate([[0], np.cumsum(days)[:-1]])
        return cls(starts, days, first_day)

    @property
    def months(self) -> int:
        return len(self.starts)

    @property
    def total_days(self) -> int:
        return int(self.days.sum())

    @property
    def end(self) -> np.datetime64:
        """First day after the data."""
        return self.starts[-1] + int(self.days[-1])

    def labels(self) -> np.ndarray:
        return np.array([str(m)[:7] for m in self.starts])


# --------------------------------------------------------------------------- company level


def _seasonality(cal: Calendar, offset: int = 0) -> np.ndarray:
    month_of_year = (cal.starts.astype("datetime64[M]").astype(int) + offset) % 12  # 0 = January
    # Budgets flush in Q1 and September; summer and December are slow.
    return (
        1.0 + 0.12 * np.cos(2 * np.pi * (month_of_year - 2) / 12) + 0.06 * np.cos(2 * np.pi * (month_of_year - 8) / 6)
    )


def _company(opts: DemoOptions, cal: Calendar, rng: np.random.Generator) -> dict:
    m = cal.months
    t = np.arange(-1, m)
    growth = np.exp(0.055 * t)
    season = np.concatenate([[_seasonality(cal, -1)[0]], _seasonality(cal)])
    spend_driver = growth * season * rng.lognormal(0.0, 0.08, m + 1)  # months -1 .. m-1
    weights = spend_driver[:-1] / spend_driver[:-1].sum()  # signups in t follow spend in t-1
    signup_month = np.sort(rng.choice(m, size=opts.accounts, p=weights))
    signup_day = rng.integers(1, 29, size=opts.accounts)
    tier0 = rng.choice(3, size=opts.accounts, p=TIER_MIX)
    expected_next = opts.accounts * np.append(weights[1:], weights[-1] * np.exp(0.055))
    spend = BLENDED_CAC * expected_next * spend_driver[1:] / (growth[1:] * season[1:])
    return {
        "signup_month": signup_month,
        "signup_day": signup_day,
        "tier0": tier0,
        "spend": spend,
        "signups": np.bincount(signup_month, minlength=m),
    }


def _accounts_table(ids: np.ndarray, company: dict, cal: Calendar, rng: np.random.Generator) -> pd.DataFrame:
    n = len(ids)
    names = (
        np.array(_NAME_A)[rng.integers(0, len(_NAME_A), n)].astype(object)
        + " "
        + np.array(_NAME_B)[rng.integers(0, len(_NAME_B), n)].astype(object)
        + " "
        + np.array(_NAME_C)[rng.integers(0, len(_NAME_C), n)].astype(object)
    )
    created = cal.starts[company["signup_month"]] + (company["signup_day"] - 1)
    return pd.DataFrame(
        {
            "account_id": ids,
            "account_name": names,
            "industry": np.array(INDUSTRIES)[rng.integers(0, len(INDUSTRIES), n)],
            "region": np.array(REGIONS)[rng.choice(len(REGIONS), n, p=REGION_MIX)],
            "created_date": created.astype("datetime64[ns]"),
        }
    )


def _pick(rng: np.random.Generator, mix: np.ndarray) -> np.ndarray:
    """One category per row of ``mix`` (rows are probability vectors), vectorised."""
    return (rng.random(len(mix))[:, None] > np.cumsum(mix, axis=1)).sum(axis=1).clip(max=mix.shape[1] - 1)


def _leads_table(ids: np.ndarray, company: dict, cal: Calendar, rng: np.random.Generator) -> pd.DataFrame:
    """One converted lead per account (created 1+ days before signup) plus leads that never converted."""
    signup = cal.starts[company["signup_month"]] + (company["signup_day"] - 1)
    lag = np.maximum(1, rng.lognormal(np.log(28), 0.6, len(ids)).astype(int))
    conv_source = _pick(rng, LEAD_SOURCE_MIX[company["tier0"]])
    per_month = rng.poisson(company["signups"] * (1 / LEAD_CONVERSION - 1) + 2)
    month = np.repeat(np.arange(cal.months), per_month)
    lost_created = cal.starts[month] + (rng.random(len(month)) * cal.days[month]).astype(int)
    lost_source = _pick(rng, np.repeat(LEAD_SOURCE_MIX[:1], len(month), axis=0))
    n_lost = len(month)
    leads = pd.DataFrame(
        {
            "created_date": np.concatenate([signup - lag, lost_created]).astype("datetime64[ns]"),
            "source": np.array(LEAD_SOURCES)[np.concatenate([conv_source, lost_source])],
            "converted_date": np.concatenate([signup, np.full(n_lost, np.datetime64("NaT"), "datetime64[D]")]).astype(
                "datetime64[ns]"
            ),
            "account_id": pd.array(np.concatenate([ids, np.full(n_lost, None, dtype=object)]), dtype="string"),
        }
    )
    leads = leads.sort_values(["created_date", "account_id"], kind="stable", na_position="last")
    leads.insert(0, "lead_id", [f"LEAD-{i:07d}" for i in range(1, len(leads) + 1)])
    return leads.reset_index(drop=True)


# --------------------------------------------------------------------------- account batches


CTA_PLAYBOOKS = ("adoption workshop", "ROI review", "detractor follow-up")
CTA_HAZARD_SCALE = np.array([0.5, 0.75, 1.0])
"""The true effect of each demo playbook: its monthly churn hazard multiplier for the 3 months
after a call to action (the detractor follow-up does nothing)."""
CTA_MIN_P = 0.2
"""A month end opens a call to action for an account whose true 3-month churn probability is at
least this (and that had none in the last 6 months) ..."""
CTA_RATE = 0.5
"""... with this probability (not every at-risk account is caught), ..."""
CTA_HOLDOUT = 0.3
"""... held out with this probability (recorded, not acted on)."""
CTA_TRUTH_DRAWS = 400


class _Batch:
    """Month-by-month simulation of one batch of accounts."""

    def __init__(self, numbers: np.ndarray, company: dict, sl: slice, cal: Calendar, rng: np.random.Generator):
        self.rng, self.cal = rng, cal
        n = len(numbers)
        self.n = n
        self.ids = np.array([f"ACC-{k:06d}" for k in numbers], dtype=object)
        self.numbers = numbers
        self.signup_month = company["signup_month"][sl]
        self.day = company["signup_day"][sl]  # billing anniversary day of month
        self.tier = company["tier0"][sl].copy()
        tier = self.tier
        self.mu = rng.normal(0.4, 0.7, n) + np.array([0.0, 0.1, 0.25])[tier]
        self.e = self.mu + rng.normal(0.0, 0.5, n)
        self.s = rng.normal(0.0, 0.7, n)
        self.d = 0.1 + 0.8 * rng.beta(4, 4, n)
        self.seats = np.minimum(SEATS_CAP[tier], np.maximum(1, rng.lognormal(np.log(SEATS_MEDIAN[tier]), 0.6))).astype(
            int
        )
        self.monthly = rng.random(n) < MONTHLY_PLAN_SHARE[tier]
        self.discount = np.where(tier == 0, 0.0, rng.uniform(0.0, 0.1 + 0.1 * (tier == 2), n))
        self.assets0 = np.maximum(5, self.seats * rng.uniform(3, 12, n)).astype(int)
        self.baseline = np.round(self.assets0 * rng.uniform(0.3, 1.2, n), 1)
        self.wo_rate = rng.lognormal(np.log(0.5), 0.3, n)
        self.ai_rate = rng.lognormal(np.log(1.5), 0.5, n)
        self.status = np.zeros(n, dtype=np.int8)  # 0 not yet a customer, 1 active, 2 churned
        self.start_month = np.zeros(n, dtype=int)  # month the current service period began
        self.anchor = np.zeros(n, dtype=int)  # month the current annual term began
        self.churn_month = np.full(n, -1)
        self.sub_start = np.full(n, np.datetime64("NaT"), dtype="datetime64[D]")
        self.sub_seq = np.zeros(n, dtype=int)
        self.subs: list[tuple] = []
        self.parts: dict[str, list[pd.DataFrame]] = {
            k: [] for k in ("usage_daily", "tickets", "nps_responses", "downtime_monthly")
        }
        self.truth: list[pd.DataFrame] = []
        # calls to action: their own random stream (spawned: the other tables do not change with it)
        self.rng_cta = rng.spawn(1)[0]
        self.cta_month = np.full(n, -99)
        self.cta_scale = np.ones(n)
        self.ctas: list[pd.DataFrame] = []
        self.mrr = np.zeros(cal.months)
        self.daily_users = np.zeros(cal.total_days)
        self.daily_ai = np.zeros(cal.total_days)

    # -- subscriptions
    def _amount(self, idx):
        per_month = self.seats[idx] * LIST_PRICE[self.tier[idx]] * (1 - self.discount[idx])
        annual = per_month * 12 * (1 - ANNUAL_DISCOUNT)
        return np.round(np.where(self.monthly[idx], per_month, annual), 2)

    def _close(self, idx, end):
        if len(idx) == 0:
            return
        self.subs.append(
            (
                self.numbers[idx].copy(),
                self.sub_seq[idx].copy(),
                self.tier[idx].copy(),
                self.seats[idx].copy(),
                np.where(self.monthly[idx], 1, 12),
                self._amount(idx),
                self.sub_start[idx].copy(),
                np.broadcast_to(end, len(idx)).copy() if np.ndim(end) == 0 else end.copy(),
            )
        )

    def _open(self, idx, start):
        self.sub_seq[idx] += 1
        self.sub_start[idx] = start

    # -- one month
    def month(self, t: int) -> None:
        rng, cal = self.rng, self.cal
        ms, ndays = cal.starts[t], int(cal.days[t])
        change_date = ms + (self.day - 1)
        was_active = self.status == 1
        on = np.zeros(self.n, dtype=int)
        off = np.where(was_active, ndays, 0)

        self.e = bh.step_engagement(self.e, self.mu, rng)
        tenure = t - self.start_month
        h = bh.hazard(self.e, self.s, self.d, tenure, self.tier, self.monthly)
        treated = (t > self.cta_month) & (t <= self.cta_month + 3)  # the 3 months after a call to action
        h = np.where(treated, h * self.cta_scale, h)
        renewal = self.monthly | (((t - self.anchor) % 12 == 0) & (t > self.anchor))
        p = bh.churn_probability(h, self.monthly, renewal)
        churn = was_active & (rng.random(self.n) < p)
        idx = np.flatnonzero(churn)
        self._close(idx, change_date[idx])
        self.status[idx] = 2
        self.churn_month[idx] = t
        off[idx] = self.day[idx] - 1

        # seat and tier changes at a billing anniversary
        stay = was_active & ~churn & renewal
        annual_renewal = stay & ~self.monthly
        self.anchor[annual_renewal] = t
        sig = bh.sigmoid(self.e)
        mult = np.where(self.monthly, 1.0, 6.0)
        probs = np.stack(
            [
                np.array([0.012, 0.006, 0.0])[self.tier] * sig * mult,  # upgrade
                np.array([0.0, 0.005, 0.004])[self.tier] * (1 - sig) * mult,  # downgrade
                0.05 * sig * mult,  # seat expansion
                0.035 * (1 - sig) * mult,  # seat contraction
                np.where(self.monthly, 0.008, 0.0),  # switch to an annual plan
            ]
        )
        u = rng.random(self.n)
        event = np.where(stay, (u[None, :] > np.cumsum(probs, axis=0)).sum(axis=0), 5)
        idx = np.flatnonzero(event < 5)
        if len(idx):
            self._close(idx, change_date[idx])
            ev = event[idx]
            factor = rng.uniform(0.1, 0.4, len(idx))
            up, down, grow, shrink, switch = (idx[ev == k] for k in range(5))
            self.tier[up] += 1
            self.seats[up] = np.ceil(self.seats[up] * (1 + factor[ev == 0])).astype(int)
            self.tier[down] -= 1
            self.seats[grow] += np.maximum(1, np.round(self.seats[grow] * factor[ev == 2])).astype(int)
            self.seats[shrink] = np.maximum(
                1,
                self.seats[shrink] - np.maximum(1, np.round(self.seats[shrink] * factor[ev == 3] * 0.7)).astype(int),
            )
            self.monthly[switch] = False
            self.anchor[switch] = t
            self._open(idx, change_date[idx])

        # win-backs: churned accounts that come back
        back = (
            (self.status == 2)
            & (t - self.churn_month >= 2)
            & (t - self.churn_month <= 24)
            & (rng.random(self.n) < 0.012)
        )
        idx = np.flatnonzero(back)
        if len(idx):
            self.status[idx] = 1
            self.start_month[idx] = t
            self.anchor[idx] = t
            self.e[idx] = self.mu[idx] + rng.normal(0.0, 0.4, len(idx))
            self.tier[idx] = np.maximum(0, self.tier[idx] - (rng.random(len(idx)) < 0.3))
            self.seats[idx] = np.maximum(1, np.round(self.seats[idx] * rng.uniform(0.6, 1.0, len(idx)))).astype(int)
            self.monthly[idx] = rng.random(len(idx)) < 0.8
            self._open(idx, change_date[idx])
            on[idx], off[idx] = self.day[idx] - 1, ndays

        # new customers
        idx = np.flatnonzero((self.signup_month == t) & (self.status == 0))
        if len(idx):
            self.status[idx] = 1
            self.start_month[idx] = t
            self.anchor[idx] = t
            self._open(idx, change_date[idx])
            on[idx], off[idx] = self.day[idx] - 1, ndays

        self._observe(t, on, off)
        self._month_end(t)

    def _observe(self, t: int, on: np.ndarray, off: np.ndarray) -> None:
        rng, cal = self.rng, self.cal
        ms, ndays = cal.starts[t], int(cal.days[t])
        served = np.flatnonzero(off > on)
        if len(served) == 0:
            return
        e = self.e[served]
        # daily usage
        day = np.arange(ndays)
        mask = (day[None, :] >= on[served, None]) & (day[None, :] < off[served, None])
        a, dd = np.nonzero(mask)
        acc = served[a]
        weekday = (ms.astype("datetime64[D]").astype(int) + 3 + dd) % 7  # 1970-01-01 was a Thursday
        p_use = bh.sigmoid(self.e[acc] + 0.3) * 0.92 * WEEKDAY_FACTOR[weekday]
        users = rng.binomial(self.seats[acc], p_use)
        created = rng.poisson(users * self.wo_rate[acc])
        completed = rng.binomial(created, np.clip(0.8 + 0.08 * self.e[acc], 0.4, 0.99))
        assets = (self.assets0[acc] * (1 + 0.01 * (t - self.start_month[acc]))).astype(int)
        adoption = 0.1 + 0.9 * (t + 1) / cal.months
        ai = rng.poisson(users * self.ai_rate[acc] * adoption)
        self.parts["usage_daily"].append(
            pd.DataFrame(
                {
                    "_n": self.numbers[acc],
                    "account_id": self.ids[acc],
                    "date": (ms + dd).astype("datetime64[ns]"),
                    "active_users": users,
                    "work_orders_created": created,
                    "work_orders_completed": completed,
                    "assets_monitored": assets,
                    "ai_requests": ai,
                }
            )
        )
        global_day = cal.first_day[t] + dd
        self.daily_users += np.bincount(global_day, weights=users, minlength=cal.total_days)
        self.daily_ai += np.bincount(global_day, weights=ai, minlength=cal.total_days)

        # support tickets
        frac = (off[served] - on[served]) / ndays
        counts = rng.poisson(0.22 * np.sqrt(self.seats[served]) * bh.friction(e, self.s[served]) * frac)
        if counts.sum():
            acc = np.repeat(served, counts)
            span = off[acc] - on[acc]
            opened = (ms + on[acc] + (rng.random(len(acc)) * span).astype(int)).astype("datetime64[s]") + (
                rng.random(len(acc)) * 86400
            ).astype("timedelta64[s]")
            prio = rng.choice(4, len(acc), p=PRIORITY_MIX)
            target = TARGET_HOURS[prio]
            hours = target * 0.45 * np.exp(-0.5 * self.s[acc] - 0.3 * self.e[acc]) * rng.lognormal(0.0, 0.7, len(acc))
            resolved = opened + (hours * 3600).astype("timedelta64[s]")
            open_now = resolved >= cal.end.astype("datetime64[s]")
            rated = ~open_now & (rng.random(len(acc)) < 0.55)
            csat = np.clip(
                np.round(3.8 + 0.5 * self.e[acc] - 0.6 * np.log(hours / target) + rng.normal(0, 0.8, len(acc))),
                1,
                5,
            )
            self.parts["tickets"].append(
                pd.DataFrame(
                    {
                        "_n": self.numbers[acc],
                        "account_id": self.ids[acc],
                        "opened_at": opened.astype("datetime64[ns]"),
                        "resolved_at": np.where(open_now, np.datetime64("NaT"), resolved).astype("datetime64[ns]"),
                        "priority": np.array(PRIORITIES)[prio],
                        "csat": pd.array(np.where(rated, csat, np.nan), dtype="Float64").astype("Int64"),
                    }
                )
            )

        # NPS survey answers
        answer = served[rng.random(len(served)) < 0.08]
        if len(answer):
            span = off[answer] - on[answer]
            when = ms + on[answer] + (rng.random(len(answer)) * span).astype(int)
            score = np.clip(
                np.round(7.3 + 1.6 * self.e[answer] + 0.8 * self.s[answer] + rng.normal(0, 1.6, len(answer))),
                0,
                10,
            )
            self.parts["nps_responses"].append(
                pd.DataFrame(
                    {
                        "_n": self.numbers[answer],
                        "account_id": self.ids[answer],
                        "date": when.astype("datetime64[ns]"),
                        "score": score.astype(int),
                    }
                )
            )

        # monthly downtime, for accounts in service at month end
        end_served = served[off[served] == ndays]
        if len(end_served):
            r = bh.downtime_reduction(self.e[end_served], self.d[end_served], t - self.start_month[end_served])
            r = np.clip(r + rng.normal(0, 0.06, len(end_served)), -0.2, 0.95)
            hours = np.maximum(
                0.0,
                np.round(self.baseline[end_served] * (1 - r) * rng.lognormal(0, 0.1, len(end_served)), 1),
            )
            self.parts["downtime_monthly"].append(
                pd.DataFrame(
                    {
                        "_n": self.numbers[end_served],
                        "account_id": self.ids[end_served],
                        "month": str(ms)[:7],
                        "downtime_hours": hours,
                        "baseline_downtime_hours": self.baseline[end_served],
                    }
                )
            )

    def _month_end(self, t: int) -> None:
        active = np.flatnonzero(self.status == 1)
        if len(active) == 0:
            return
        self.mrr[t] = (self._amount(active) / np.where(self.monthly[active], 1, 12)).sum()
        to_renewal = np.where(self.monthly[active], 1, 12 - (t - self.anchor[active]) % 12)
        p = bh.p_churn_within(
            self.e[active],
            self.mu[active],
            self.s[active],
            self.d[active],
            t - self.start_month[active],
            self.tier[active],
            self.monthly[active],
            to_renewal,
            self.rng,
        )
        self.truth.append(
            pd.DataFrame(
                {
                    "_n": self.numbers[active],
                    "account_id": self.ids[active],
                    "month": str(self.cal.starts[t])[:7],
                    "p_churn_3m": np.round(p, 6),
                }
            )
        )
        self._calls_to_action(t, active, p, to_renewal)

    def _calls_to_action(self, t: int, active: np.ndarray, p: np.ndarray, to_renewal: np.ndarray) -> None:
        """Open calls to action at month end ``t`` for at-risk accounts (see :data:`CTA_MIN_P`),
        with a playbook, a holdout, and the true 3-month churn probability with and without it."""
        rng = self.rng_cta
        pick = (p >= CTA_MIN_P) & (t - self.cta_month[active] >= 6) & (rng.random(len(active)) < CTA_RATE)
        if t >= self.cal.months - 1 or not pick.any():  # none on the data's last day
            return
        pos = np.flatnonzero(pick)
        idx = active[pos]
        book = rng.integers(0, len(CTA_PLAYBOOKS), len(idx))
        holdout = rng.random(len(idx)) < CTA_HOLDOUT
        scale = CTA_HAZARD_SCALE[book]
        self.cta_month[idx] = t
        self.cta_scale[idx] = np.where(holdout, 1.0, scale)
        args = (
            self.e[idx],
            self.mu[idx],
            self.s[idx],
            self.d[idx],
            t - self.start_month[idx],
            self.tier[idx],
            self.monthly[idx],
            to_renewal[pos],
        )
        seed = int(rng.integers(2**62))  # the same draws with and without: a precise difference
        p0 = bh.p_churn_within(*args, np.random.default_rng(seed), draws=CTA_TRUTH_DRAWS)
        p1 = bh.p_churn_within(*args, np.random.default_rng(seed), draws=CTA_TRUTH_DRAWS, hazard_scale=scale)
        opened = self.cal.starts[t] + np.timedelta64(int(self.cal.days[t]) - 1, "D")
        self.ctas.append(
            pd.DataFrame(
                {
                    "_n": self.numbers[idx],
                    "_month": t,
                    "account_id": self.ids[idx],
                    "opened_date": np.datetime64(opened, "ns"),
                    "rule": "churn-risk",
                    "playbook": np.array(CTA_PLAYBOOKS)[book],
                    "holdout": np.where(holdout, "true", "false"),
                    "p_churn_3m_control": np.round(p0, 6),
                    "p_churn_3m_treated": np.round(p1, 6),
                }
            )
        )

    def _cta_tables(self) -> tuple[pd.DataFrame, pd.DataFrame]:
        """The CRM export of the calls to action (closed 3 months after opening: churned or not)
        and their truth."""
        cols = ["account_id", "opened_date", "rule", "playbook", "status", "closed_date", "holdout"]
        if not self.ctas:  # a batch in which no account was called (the tables keep their columns)
            return pd.DataFrame(columns=["_n", *cols]), pd.DataFrame(
                columns=[
                    "account_id",
                    "opened_date",
                    "playbook",
                    "holdout",
                    "p_churn_3m_control",
                    "p_churn_3m_treated",
                    "_n",
                ]
            )
        frame = pd.concat(self.ctas, ignore_index=True).sort_values(["_n", "opened_date"], kind="stable")
        close_month = frame["_month"].to_numpy() + 3
        known = close_month <= self.cal.months - 1
        ends = self.cal.starts + (self.cal.days.astype(int) - 1).astype("timedelta64[D]")
        position = {n: i for i, n in enumerate(self.numbers)}
        last_churn = self.churn_month[[position[n] for n in frame["_n"]]]
        churned = (frame["_month"].to_numpy() < last_churn) & (last_churn <= close_month)
        frame["status"] = np.where(~known, "open", np.where(churned, "closed_churned", "closed_recovered"))
        closed = np.where(known, ends[np.minimum(close_month, self.cal.months - 1)], np.datetime64("NaT"))
        frame["closed_date"] = pd.to_datetime(closed)
        truth = frame[["account_id", "opened_date", "playbook", "holdout", "p_churn_3m_control", "p_churn_3m_treated"]]
        return frame[["_n", *cols]], truth.assign(_n=frame["_n"])

    def finish(self) -> dict[str, pd.DataFrame]:
        active = np.flatnonzero(self.status == 1)
        self._close(active, np.full(len(active), np.datetime64("NaT"), dtype="datetime64[D]"))
        cols = list(zip(*self.subs, strict=True)) if self.subs else [[] for _ in range(8)]
        subs = pd.DataFrame(
            {
                "_n": np.concatenate(cols[0]),
                "_seq": np.concatenate(cols[1]),
                "tier": np.array(TIERS)[np.concatenate(cols[2]).astype(int)],
                "seats": np.concatenate(cols[3]),
                "billing_period_months": np.concatenate(cols[4]),
                "amount_usd": np.concatenate(cols[5]),
                "start_date": np.concatenate(cols[6]).astype("datetime64[ns]"),
                "end_date": np.concatenate(cols[7]).astype("datetime64[ns]"),
            }
        ).sort_values(["_n", "_seq"])
        subs.insert(
            0,
            "subscription_id",
            [f"SUB-{n:06d}-{q:02d}" for n, q in zip(subs["_n"], subs["_seq"], strict=True)],
        )
        subs.insert(1, "account_id", [f"ACC-{n:06d}" for n in subs["_n"]])
        out = {"subscriptions": subs}
        order = {
            "usage_daily": "date",
            "tickets": "opened_at",
            "nps_responses": "date",
            "downtime_monthly": "month",
        }
        for name, parts in self.parts.items():
            frame = pd.concat(parts, ignore_index=True) if parts else None
            if frame is None:
                continue
            frame = frame.sort_values(["_n", order[name]], kind="stable").reset_index(drop=True)
            if name in ("tickets", "nps_responses"):
                seq = frame.groupby("_n").cumcount() + 1
                prefix, width = ("TKT", 4) if name == "tickets" else ("NPS", 3)
                ids = [f"{prefix}-{n:06d}-{k:0{width}d}" for n, k in zip(frame["_n"], seq, strict=True)]
                frame.insert(0, "ticket_id" if name == "tickets" else "response_id", ids)
            out[name] = frame
        out["interventions"], out["_truth_interventions"] = self._cta_tables()
        out["_truth"] = (
            pd.concat(self.truth, ignore_index=True)
            if self.truth
            else pd.DataFrame(columns=["_n", "account_id", "month", "p_churn_3m"])
        )
        return out


# --------------------------------------------------------------------------- operations and spend


def _ops_table(cal: Calendar, users: np.ndarray, ai: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    dates = (cal.starts[0] + np.arange(cal.total_days)).astype("datetime64[ns]")
    per_user = {"api": 160.0, "web": 420.0, "mobile-sync": 90.0, "ai-assistant": 0.0}
    base_latency = {"api": 180.0, "web": 320.0, "mobile-sync": 240.0, "ai-assistant": 1400.0}
    load = users / max(users.max(), 1.0)
    frames = []
    for service in SERVICES:
        n = cal.total_days
        incidents = rng.poisson(0.03, n)
        minutes = np.array([rng.lognormal(np.log(25), 1.0, k).sum() for k in incidents])
        minutes = np.minimum(minutes, 1440.0)
        uptime = np.round(100.0 * (1 - minutes / 1440.0), 3)
        if service == "ai-assistant":
            requests = np.round(ai * rng.lognormal(0, 0.03, n)).astype(np.int64)
            calls = requests
        else:
            requests = np.round(users * per_user[service] * rng.lognormal(0, 0.05, n)).astype(np.int64)
            calls = np.zeros(n, dtype=np.int64)
        err_rate = 0.0008 + 0.3 * minutes / 1440.0
        errors = rng.binomial(requests, np.minimum(err_rate, 1.0))
        latency = base_latency[service] * (1 + 0.35 * load) * rng.lognormal(0, 0.08, n) * (1 + 2.5 * (incidents > 0))
        frames.append(
            pd.DataFrame(
                {
                    "date": dates,
                    "service": service,
                    "uptime_pct": uptime,
                    "p95_latency_ms": np.round(latency, 1),
                    "requests": requests,
                    "errors": errors,
                    "ai_calls": calls,
                }
            )
        )
    return pd.concat(frames).sort_values(["date", "service"], kind="stable").reset_index(drop=True)


def _spend_table(cal: Calendar, company: dict, mrr: np.ndarray, rng: np.random.Generator) -> pd.DataFrame:
    spend = company["spend"]
    sales_share = rng.uniform(0.5, 0.6, cal.months)
    hosting = 15_000 * (1 + np.arange(cal.months) / cal.months)
    cost = 0.17 * mrr * rng.lognormal(0, 0.04, cal.months) + hosting
    return pd.DataFrame(
        {
            "month": cal.labels(),
            "sales_usd": np.round(spend * sales_share, 2),
            "marketing_usd": np.round(spend * (1 - sales_share), 2),
            "cost_of_revenue_usd": np.round(cost, 2),
        }
    )


# --------------------------------------------------------------------------- entry point

TRUTH_SCHEMA = pa.schema([("account_id", pa.string()), ("month", pa.string()), ("p_churn_3m", pa.float64())])
"""``_truth/churn_probability.csv``: the generator's p(churn within 3 months) of every account
active at the end of ``month`` (``YYYY-MM``), rounded to 6 decimal places."""


def generate(
    out_dir: Path, opts: DemoOptions, today: date | None = None, progress: Progress | None = None
) -> dict[str, int]:
    """Write a complete data directory for the demo company into ``out_dir``.

    Also writes ``out_dir/_truth/churn_probability.csv`` (``account_id, month, p_churn_3m``):
    the generator's probability that an account active at the end of ``month`` churns within
    the following three months. Returns the row count of every table.
    """
    if opts.accounts < 1 or opts.months < 1:
        raise DemoOptionsError("--accounts and --months must be at least 1")
    if opts.fmt not in ("csv", "parquet"):
        raise DemoOptionsError(f"--format must be csv or parquet, not {opts.fmt!r}")
    cal = Calendar.ending(_end_month(opts.end_month, today or date.today()), opts.months)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in ALL_TABLES:
        for suffix in (".csv", ".parquet"):
            (out_dir / f"{name}{suffix}").unlink(missing_ok=True)
    shutil.rmtree(out_dir / "_truth", ignore_errors=True)
    (out_dir / provenance.DEMO_MARKER).unlink(missing_ok=True)  # written last: a complete demo
    (out_dir / "_truth").mkdir()

    rng = np.random.default_rng([opts.seed, 0])
    company = _company(opts, cal, rng)
    numbers = np.arange(1, opts.accounts + 1)
    ids = np.array([f"ACC-{k:06d}" for k in numbers], dtype=object)
    sinks = {name: TableSink(out_dir, name, opts.fmt) for name in ALL_TABLES}
    cta_truth_path = out_dir / "_truth" / "intervention_effects.csv"
    cta_truth_file = cta_truth_path.open("w", encoding="utf-8", newline="")
    cta_truth_file.write("account_id,opened_date,playbook,holdout,p_churn_3m_control,p_churn_3m_treated\n")
    truth_path = out_dir / "_truth" / "churn_probability.csv"
    try:
        sinks["accounts"].write(_accounts_table(ids, company, cal, rng))
        sinks["leads"].write(_leads_table(ids, company, cal, rng))
        mrr = np.zeros(cal.months)
        users = np.zeros(cal.total_days)
        ai = np.zeros(cal.total_days)
        n_batches = (opts.accounts + BATCH - 1) // BATCH
        # Arrow writes the truth's numbers (rounded to 6 places when drawn) in C++: pandas'
        # float_format took a Python call per value, about 90 s of 1,000,000 accounts' generation
        with pacsv.CSVWriter(
            truth_path, TRUTH_SCHEMA, write_options=pacsv.WriteOptions(quoting_style="needed")
        ) as truth_file:
            for b in range(n_batches):
                sl = slice(b * BATCH, min((b + 1) * BATCH, opts.accounts))
                batch = _Batch(numbers[sl], company, sl, cal, np.random.default_rng([opts.seed, 1, b]))
                for t in range(cal.months):
                    batch.month(t)
                tables = batch.finish()
                for name, frame in tables.items():
                    if name == "_truth_interventions":
                        frame.sort_values(["_n", "opened_date"], kind="stable").drop(columns="_n").to_csv(
                            cta_truth_file, header=False, index=False, float_format="%.6f", date_format="%Y-%m-%d"
                        )
                    elif name == "_truth":
                        rows = frame.sort_values(["_n", "month"], kind="stable")[TRUTH_SCHEMA.names]
                        truth_file.write_table(pa.Table.from_pandas(rows, schema=TRUTH_SCHEMA, preserve_index=False))
                    else:
                        sinks[name].write(frame)
                mrr += batch.mrr
                users += batch.daily_users
                ai += batch.daily_ai
                if progress:
                    progress(sl.stop, opts.accounts)
        sinks["spend_monthly"].write(_spend_table(cal, company, mrr, np.random.default_rng([opts.seed, 2])))
        sinks["ops_daily"].write(_ops_table(cal, users, ai, np.random.default_rng([opts.seed, 3])))
    finally:
        cta_truth_file.close()
        for sink in sinks.values():
            sink.close()
    _fundraising_file(out_dir, cal, float(mrr[-1]), today or date.today())
    provenance.write_marker(
        out_dir, {"accounts": opts.accounts, "months": opts.months, "seed": opts.seed, "end_month": cal_end(cal)}
    )
    return {name: sink.rows for name, sink in sinks.items()}


def cal_end(cal: Calendar) -> str:
    """The last month of the generated data, ``YYYY-MM``."""
    return (pd.Timestamp(cal.end) - pd.Timedelta(days=1)).strftime("%Y-%m")


def _fundraising_file(out_dir: Path, cal: Calendar, last_mrr: float, today: date) -> Path:
    """The demo company's ``fundraising.yaml``: the packaged example, with cash and the expenses
    outside ``spend_monthly`` scaled to the generated company and dates around its last month."""
    end = pd.Timestamp(cal.end).date()  # first day after the data
    template = (Path(__file__).parent / FUNDRAISING_FILE).read_text(encoding="utf-8")
    text = template.format(
        updated=min(end + timedelta(days=9), today).isoformat(),
        data_room=(end + timedelta(days=1)).isoformat(),
        partners=(end + timedelta(days=30)).isoformat(),
        term_sheet=(end + timedelta(days=75)).isoformat(),
        close=(end + timedelta(days=120)).isoformat(),
        cash=f"{round(6 * last_mrr, -4):.0f}",
        cash_as_of=(end - timedelta(days=1)).isoformat(),
        other_opex=f"{round(0.55 * last_mrr, -3):.0f}",
    )
    path = out_dir / FUNDRAISING_FILE
    path.write_text(text, encoding="utf-8")
    return path
