"""The input data contract, declared once.

Every table of a data directory is a pandera ``DataFrameModel`` below. Each column declares

- its pandas dtype (after parsing the raw file),
- its rules (ranges, allowed values, nullability),
- a description with its unit, and
- ``metadata["kind"]``: how the raw text is parsed (``id``, ``text``, ``category``, ``int``,
  ``float``, ``date`` ``YYYY-MM-DD``, ``month`` ``YYYY-MM``, ``timestamp`` ISO 8601).

Validation (:mod:`cfxlib.contract.validate`), the warehouse column types (:mod:`cfxlib.store.warehouse`) and the
data dictionary (``docs/data-dictionary.md``, :mod:`cfxlib.contract.datadict`) all follow from these
declarations. Keys and rules that span rows or tables are listed in :data:`TABLES` and checked
set-based in the warehouse.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

TIERS = ("Starter", "Professional", "Enterprise")
"""Subscription tiers, lowest first (ties in tier attribution go to the higher one)."""

PRIORITIES = ("low", "medium", "high", "urgent")
"""Ticket priorities, lowest first."""

TEXT = pd.StringDtype("pyarrow")
"""The dtype of every text column: Arrow-backed strings, so trimming and pattern checks run
vectorised in Arrow's kernels (RE2 patterns) rather than one Python call per cell."""
Text = Annotated[pd.StringDtype, "pyarrow", pd.NA]
"""The same dtype as a pandera annotation."""

MAX_ID_LENGTH = 200
MAX_TEXT_LENGTH = 10_000


def _col(description: str, kind: str, unit: str | None = None, **rules) -> object:
    """A column declaration: ``kind`` drives parsing, ``unit`` goes to the data dictionary."""
    metadata = {"kind": kind}
    if unit:
        metadata["unit"] = unit
    if kind == "id":
        rules.setdefault("str_length", {"min_value": 1, "max_value": MAX_ID_LENGTH})
    elif kind in ("text", "category"):
        rules.setdefault("str_length", {"max_value": MAX_TEXT_LENGTH})
    return pa.Field(description=description, metadata=metadata, **rules)


class _Table(pa.DataFrameModel):
    class Config:
        strict = False  # extra columns are allowed and kept
        coerce = False  # parsing is done (and reported) by cfxlib.contract.validate


class Accounts(_Table):
    """Customer accounts: one row per customer organisation."""

    account_id: Series[Text] = _col("Customer account identifier.", "id", unique=True)
    account_name: Series[Text] = _col("Customer organisation name.", "text")
    industry: Series[Text] = _col("Customer industry (free text).", "text")
    region: Series[Text] = _col("Sales region (free text).", "text")
    created_date: Series[pd.Timestamp] = _col("Day the account was created.", "date")


class Subscriptions(_Table):
    """Subscriptions: a tier, a number of seats and a price over a service period."""

    subscription_id: Series[Text] = _col("Subscription identifier.", "id", unique=True)
    account_id: Series[Text] = _col("Owning account (accounts.account_id).", "id")
    tier: Series[Text] = _col("Product tier: Starter, Professional or Enterprise.", "category", isin=list(TIERS))
    seats: Series[pd.Int64Dtype] = _col("Licensed seats (named users).", "int", "seats", ge=1)
    billing_period_months: Series[pd.Int64Dtype] = _col(
        "Billing period: 1 (monthly) or 12 (annual).", "int", "months", isin=[1, 12]
    )
    amount_usd: Series[float] = _col(
        "Price per billing period. Monthly recurring revenue = amount_usd / billing_period_months.",
        "money",
        "USD",
        ge=0,
    )
    start_date: Series[pd.Timestamp] = _col("First day of service.", "date")
    end_date: Series[pd.Timestamp] = _col(
        "First day without service; missing = still active. Must be after start_date.",
        "date",
        nullable=True,
    )

    @pa.dataframe_check(error="end_date must be after start_date")
    def end_after_start(cls, df: pd.DataFrame) -> Series[bool]:
        return df["end_date"].isna() | (df["end_date"] > df["start_date"])


class UsageDaily(_Table):
    """Daily product usage per account."""

    account_id: Series[Text] = _col("Account (accounts.account_id).", "id")
    date: Series[pd.Timestamp] = _col("Day of activity.", "date")
    active_users: Series[pd.Int64Dtype] = _col("Distinct users active that day.", "int", "users", ge=0)
    work_orders_created: Series[pd.Int64Dtype] = _col("Work orders created that day.", "int", "work orders", ge=0)
    work_orders_completed: Series[pd.Int64Dtype] = _col("Work orders completed that day.", "int", "work orders", ge=0)
    assets_monitored: Series[pd.Int64Dtype] = _col(
        "Assets (equipment) under management that day.", "int", "assets", ge=0
    )
    ai_requests: Series[pd.Int64Dtype] = _col("Requests to the AI assistant that day.", "int", "requests", ge=0)


class Tickets(_Table):
    """Support tickets."""

    ticket_id: Series[Text] = _col("Ticket identifier.", "id", unique=True)
    account_id: Series[Text] = _col("Account (accounts.account_id).", "id")
    opened_at: Series[pd.Timestamp] = _col("When the ticket was opened (UTC).", "timestamp")
    resolved_at: Series[pd.Timestamp] = _col(
        "When the ticket was resolved (UTC); missing = still open. Not before opened_at.",
        "timestamp",
        nullable=True,
    )
    priority: Series[Text] = _col("Priority: low, medium, high or urgent.", "category", isin=list(PRIORITIES))
    csat: Series[pd.Int64Dtype] = _col(
        "Customer satisfaction rating 1-5; missing = not rated.",
        "int",
        "rating 1-5",
        ge=1,
        le=5,
        nullable=True,
    )

    @pa.dataframe_check(error="resolved_at must not be before opened_at")
    def resolved_after_opened(cls, df: pd.DataFrame) -> Series[bool]:
        return df["resolved_at"].isna() | (df["resolved_at"] >= df["opened_at"])


class DowntimeMonthly(_Table):
    """Monthly equipment downtime of each customer, against its pre-adoption baseline."""

    account_id: Series[Text] = _col("Account (accounts.account_id).", "id")
    month: Series[pd.Timestamp] = _col("Calendar month (YYYY-MM).", "month")
    downtime_hours: Series[float] = _col("Unplanned equipment downtime in the month.", "float", "hours", ge=0)
    baseline_downtime_hours: Series[float] = _col(
        "The customer's monthly downtime before adopting the product.", "float", "hours", gt=0
    )


class NpsResponses(_Table):
    """Net Promoter Score survey responses."""

    response_id: Series[Text] = _col("Response identifier.", "id", unique=True)
    account_id: Series[Text] = _col("Account (accounts.account_id).", "id")
    date: Series[pd.Timestamp] = _col("Day of the response.", "date")
    score: Series[pd.Int64Dtype] = _col(
        "Likelihood to recommend, 0-10 (9-10 promoter, 0-6 detractor).",
        "int",
        "points",
        ge=0,
        le=10,
    )


class SpendMonthly(_Table):
    """Company spend per month (for CAC and gross margin)."""

    month: Series[pd.Timestamp] = _col("Calendar month (YYYY-MM).", "month", unique=True)
    sales_usd: Series[float] = _col("Sales spend in the month.", "money", "USD", ge=0)
    marketing_usd: Series[float] = _col("Marketing spend in the month.", "money", "USD", ge=0)
    cost_of_revenue_usd: Series[float] = _col(
        "Cost of revenue (hosting, support, onboarding) in the month.", "money", "USD", ge=0
    )


class Leads(_Table):
    """Sales leads and their conversion into accounts."""

    lead_id: Series[Text] = _col("Lead identifier.", "id", unique=True)
    created_date: Series[pd.Timestamp] = _col("Day the lead was created.", "date")
    source: Series[Text] = _col("Lead source (free text).", "text")
    converted_date: Series[pd.Timestamp] = _col(
        "Day the lead became a customer; missing = not converted.", "date", nullable=True
    )
    account_id: Series[Text] = _col("Account the lead became; missing unless converted.", "id", nullable=True)

    @pa.dataframe_check(error="a converted lead must name its account_id, and only converted ones")
    def converted_names_account(cls, df: pd.DataFrame) -> Series[bool]:
        return df["converted_date"].isna() == df["account_id"].isna()

    @pa.dataframe_check(error="converted_date must not be before created_date")
    def converted_after_created(cls, df: pd.DataFrame) -> Series[bool]:
        return df["converted_date"].isna() | (df["converted_date"] >= df["created_date"])


class OpsDaily(_Table):
    """Daily service operations metrics per service."""

    date: Series[pd.Timestamp] = _col("Day.", "date")
    service: Series[Text] = _col("Service name (free text).", "text")
    uptime_pct: Series[float] = _col("Share of the day the service was up.", "float", "%", ge=0, le=100)
    p95_latency_ms: Series[float] = _col("95th percentile request latency.", "float", "ms", ge=0)
    requests: Series[pd.Int64Dtype] = _col("Requests served.", "int", "requests", ge=0)
    errors: Series[pd.Int64Dtype] = _col("Requests that failed.", "int", "requests", ge=0)
    ai_calls: Series[pd.Int64Dtype] = _col("Calls to AI models.", "int", "calls", ge=0)


INTERVENTION_STATUSES = ("open", "in_progress", "snoozed", "done", "closed_recovered", "closed_churned")


class Interventions(_Table):
    """Calls to action as exported from a CRM (optional table): the history the effect report
    measures. One row per call to action; holdout rows were recorded but not acted on."""

    account_id: Series[Text] = _col("Account (accounts.account_id).", "id")
    opened_date: Series[pd.Timestamp] = _col("Day the call to action was opened.", "date")
    rule: Series[Text] = _col("Rule or reason that opened it (free text, e.g. churn-risk).", "text")
    playbook: Series[Text] = _col("Playbook followed (free text, e.g. adoption workshop).", "text")
    status: Series[Text] = _col(
        "open, in_progress, snoozed, done, closed_recovered or closed_churned.",
        "category",
        isin=list(INTERVENTION_STATUSES),
    )
    closed_date: Series[pd.Timestamp] = _col("Day it closed; missing = still active.", "date", nullable=True)
    holdout: Series[Text] = _col(
        "true when held out (recorded, not acted on: the comparison group), else false.",
        "category",
        isin=["true", "false"],
    )

    @pa.dataframe_check(error="closed_date must not be before opened_date")
    def closed_after_opened(cls, df: pd.DataFrame) -> Series[bool]:
        return df["closed_date"].isna() | (df["closed_date"] >= df["opened_date"])


ROW_RULES: dict[str, dict[str, str]] = {
    "interventions": {
        "closed_date must not be before opened_date": "closed_date IS NULL OR closed_date >= opened_date"
    },
    "subscriptions": {"end_date must be after start_date": "end_date IS NULL OR end_date > start_date"},
    "tickets": {"resolved_at must not be before opened_at": "resolved_at IS NULL OR resolved_at >= opened_at"},
    "leads": {
        "a converted lead must name its account_id, and only converted ones": (
            "(converted_date IS NULL) = (account_id IS NULL)"
        ),
        "converted_date must not be before created_date": "converted_date IS NULL OR converted_date >= created_date",
    },
}
"""The rules across columns of one row (the ``dataframe_check`` s above) as SQL conditions a good
row meets, by table and message, for validation on an engine (:mod:`cfxlib.store.sql_checks`).
A condition that is unknown (a missing value compared) counts as broken, as a comparison with a
missing value is false in pandas. A test checks both forms find the same rows."""


@dataclass(frozen=True)
class TableSpec:
    """A table of the contract: its model and the rules that span rows."""

    name: str
    model: type[_Table]
    key: tuple[str, ...] = ()
    """Columns that identify a row (unique together)."""
    account_ref: bool = True
    """Whether ``account_id`` must exist in ``accounts``."""
    notes: tuple[str, ...] = field(default=())
    dated_by: str | None = None
    """The column that dates a row: in a point-in-time view as of ``D`` (``--as-of D``), rows
    dated after ``D`` (for a month column, after ``D``'s month) are left out."""
    known_later: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Columns recording what happened after a row's date: when ``column`` is after ``D`` it was
    not known at ``D``, so it and the columns listed with it become missing in that view (a
    subscription ending after ``D`` is still active at ``D``)."""

    @property
    def description(self) -> str:
        return (self.model.__doc__ or "").strip()

    @property
    def schema(self) -> pa.DataFrameSchema:
        return self.model.to_schema()

    @property
    def columns(self) -> dict[str, pa.Column]:
        return dict(self.schema.columns)

    def kind(self, column: str) -> str:
        return self.columns[column].metadata["kind"]


TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        TableSpec("accounts", Accounts, key=("account_id",), account_ref=False, dated_by="created_date"),
        TableSpec(
            "subscriptions",
            Subscriptions,
            key=("subscription_id",),
            notes=("Subscriptions of one account and one tier must not overlap in time.",),
            dated_by="start_date",
            known_later={"end_date": ()},
        ),
        TableSpec("usage_daily", UsageDaily, key=("account_id", "date"), dated_by="date"),
        TableSpec("tickets", Tickets, key=("ticket_id",), dated_by="opened_at", known_later={"resolved_at": ("csat",)}),
        TableSpec("downtime_monthly", DowntimeMonthly, key=("account_id", "month"), dated_by="month"),
        TableSpec("nps_responses", NpsResponses, key=("response_id",), dated_by="date"),
        TableSpec("spend_monthly", SpendMonthly, key=("month",), account_ref=False, dated_by="month"),
        TableSpec(
            "leads",
            Leads,
            key=("lead_id",),
            notes=("account_id, when present, must exist in accounts.",),
            dated_by="created_date",
            known_later={"converted_date": ("account_id",)},
        ),
        TableSpec("ops_daily", OpsDaily, key=("date", "service"), account_ref=False, dated_by="date"),
    )
}
"""Every table of a data directory, in load order (accounts first)."""

OPTIONAL_TABLES: dict[str, TableSpec] = {
    "interventions": TableSpec(
        "interventions",
        Interventions,
        notes=("Optional: read when the file is there (by the embedded engine; Spark leaves it out).",),
        dated_by="opened_date",
        known_later={"closed_date": ()},
    ),
}
"""Tables a data directory may have: validated and loaded like the others when present."""
ALL_TABLES: dict[str, TableSpec] = {**TABLES, **OPTIONAL_TABLES}
