"""Request and response models of the service (the OpenAPI schema at ``/docs`` follows from them).

Amounts are US dollars; rates are fractions (0.05 = 5%); months are ``YYYY-MM``. Definitions of
every metric are in ``docs/metrics.md``. Row models allow extra fields, so a new column in a
publication appears in the API before the model names it; a missing declared field fails when
the publication is loaded, not on a request.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from cfxlib.api.events import example_events


class Tier(StrEnum):
    Starter = "Starter"
    Professional = "Professional"
    Enterprise = "Enterprise"


class Band(StrEnum):
    red = "red"
    yellow = "yellow"
    green = "green"


class _Row(BaseModel):
    model_config = ConfigDict(extra="allow")


Month = Field(description="Calendar month, YYYY-MM.")


class HealthCheck(BaseModel):
    name: str = Field(description="Component checked, e.g. warehouse, last run, scheduler.")
    ok: bool
    detail: str = Field(description="What was found; when not ok, what to do next.")


class Healthz(BaseModel):
    status: str = Field(
        description="'ok' when the service can serve and every local check passed; 'degraded' when it can "
        "serve but a check failed; 'nothing published' when it cannot serve yet."
    )
    version: str
    pid: int | None = Field(None, description="Process id of the answering server (to tell it from another).")
    run_id: str | None = None
    as_of: str | None = None
    healthy: bool | None = Field(None, description="Every local check passed (see `cfx health` for all checks).")
    checks: list[HealthCheck] = Field(default_factory=list, description="Local health checks (cached 5 s).")
    broker: dict | None = Field(
        None,
        description="With CFX_BROKER__URL: this worker's link to the feed's broker (status 'ok' or 'degraded' "
        "with the reason; while degraded, POSTs still succeed and other workers' changes arrive by polling the log).",
    )


class Published(BaseModel):
    as_of: str = Field(description="Month the figures describe, YYYY-MM.")
    run_id: str = Field(description="The pipeline run the figures come from.")
    source: Literal["demo", "data"] = Field(
        "data", description="'demo' when the publication is the fictional demo company (shown as 'Demo data')."
    )


class ForecastEnd(_Row):
    month: str = Month
    arr: float = Field(description="Forecast ARR in that month, USD.")
    lo_80: float
    hi_80: float
    lo_95: float
    hi_95: float
    model: str


class TierSummary(_Row):
    tier: str
    customers: int
    mrr: float
    arr: float
    arpa: float | None
    logo_churn_rate: float | None


class FinanceSummary(Published, _Row):
    mrr: float = Field(description="Monthly recurring revenue at the end of the month, USD.")
    arr: float = Field(description="Annual recurring revenue (12 x MRR), USD.")
    arr_growth_mom: float | None = Field(description="ARR growth over the previous month (fraction).")
    customers: int = Field(description="Accounts paying at the end of the month.")
    arpa: float | None = Field(description="Average MRR per account, USD.")
    logo_churn_rate: float | None
    gross_mrr_churn_rate: float | None
    net_mrr_churn_rate: float | None
    quick_ratio: float | None
    nrr_12m: float | None = Field(description="Net revenue retention over 12 months (fraction).")
    grr_12m: float | None = Field(description="Gross revenue retention over 12 months (fraction).")
    cac: float | None
    ltv: float | None
    ltv_to_cac: float | None
    cac_payback_months: float | None
    gross_margin: float | None
    arr_forecast_12m: ForecastEnd | None
    by_tier: list[TierSummary]


class MrrPoint(_Row):
    month: str = Month
    tier: str | None = None
    mrr: float
    arr: float
    customers: int
    arpa: float | None
    arr_growth_mom: float | None = None


class MrrSeries(Published):
    rows: list[MrrPoint]


class Movement(_Row):
    month: str = Month
    tier: str | None = None
    mrr_start: float
    new: float
    expansion: float
    reactivation: float
    contraction: float = Field(description="MRR lost to downgrades (>= 0), USD.")
    churn: float = Field(description="MRR lost to cancellations (>= 0), USD.")
    mrr_end: float
    logo_churn_rate: float | None = None
    quick_ratio: float | None = None


class Movements(Published):
    rows: list[Movement]


class ForecastPoint(_Row):
    unique_id: str = Field(description="Tier name or 'Total'.")
    month: str = Month
    yhat: float = Field(description="Forecast ARR, USD.")
    yhat_lo_80: float
    yhat_hi_80: float
    yhat_lo_95: float
    yhat_hi_95: float
    model: str


class Backtest(_Row):
    series: str
    origins: int
    points: int
    mape: float | None = Field(description="Mean absolute percentage error over the backtest, percent.")
    coverage_80: float | None = Field(description="Share of actuals inside the 80% interval.")
    coverage_95: float | None = Field(description="Share of actuals inside the 95% interval.")


class Forecast(Published, _Row):
    models: dict[str, str] = Field(description="Model chosen per series.")
    points: list[ForecastPoint]
    backtest: Backtest | None = None


class UnitEconomicsRow(_Row):
    month: str = Month
    cac: float | None = Field(description="Customer acquisition cost, USD per new customer.")
    gross_margin: float | None
    ltv: float | None = Field(description="Lifetime value, USD.")
    ltv_lo: float | None
    ltv_hi: float | None
    ltv_to_cac: float | None
    cac_payback_months: float | None


class UnitEconomics(Published):
    rows: list[UnitEconomicsRow]


class NrrRow(_Row):
    month: str = Month
    tier: str | None = None
    cohort_customers: int
    nrr: float | None
    grr: float | None


class CohortRow(_Row):
    cohort: str = Field(description="Month of the first subscription, YYYY-MM.")
    age: int = Field(description="Months since the cohort month.")
    customers: int
    active: int
    logo_retention: float | None
    net_mrr_retention: float | None


class Retention(Published):
    nrr_grr: list[NrrRow]
    nrr_grr_by_tier: list[NrrRow]
    cohorts: list[CohortRow]


class HealthRow(_Row):
    account_id: str
    tier: str | None
    as_of: str = Field(description="Day the score describes, YYYY-MM-DD.")
    health_score: float | None = Field(description="Overall health, 0-100.")
    band: str = Field(description="red, yellow or green.")
    usage_rate: float | None
    ticket_resolution: float | None
    downtime_reduction: float | None
    nps: float | None
    engagement_trend: float | None


class HealthPage(Published):
    page: int
    page_size: int
    total: int
    accounts: list[HealthRow]


class AtRiskRow(_Row):
    account_id: str
    account_name: str | None = Field(None, description="The customer's name (accounts.account_name).")
    tier: str | None
    arr: float | None
    health_score: float | None
    band: str | None
    p_churn_3m: float | None = Field(description="Probability of churning within 3 months.")
    arr_at_risk: float | None = Field(description="ARR x churn probability, USD.")
    reasons: list[str]
    playbook: str | None
    action: str | None
    owner: str | None
    due_days: int | None


class AtRisk(Published):
    rows: list[AtRiskRow]


class HealthPoint(BaseModel):
    as_of: str = Field(description="Day of the score, YYYY-MM-DD.")
    health_score: float | None
    band: str | None


class HealthHistory(Published):
    """An account's weekly health over the 90 days to the publication, then its live score."""

    account_id: str
    points: list[HealthPoint]


class BookPoint(BaseModel):
    as_of: str
    mean_health: float
    red: int
    yellow: int
    green: int


class BandLimits(BaseModel):
    red: float = Field(description="Highest health score that is red.")
    yellow: float = Field(description="Highest health score that is yellow.")


class BookHistory(Published):
    """Weekly mean health and accounts per band over the 90 days to the publication."""

    points: list[BookPoint]
    bands: BandLimits = Field(description="The band limits the live scores are banded by.")


class EngagementPoint(BaseModel):
    month: str
    series: str = Field(description="'Total' or a tier.")
    nps: float | None = Field(description="% promoters (9-10) - % detractors (0-6) of the month's answers.")
    answers: int = Field(ge=0, description="NPS answers in the month.")
    dau: float | None = Field(description="Mean daily active users in the month.")
    mau_lower_bound: float | None = Field(description="Sum over accounts of their peak daily active users.")


class Engagement(Published):
    """NPS and active users by month, for the total and each tier."""

    rows: list[EngagementPoint]


class ChurnBin(BaseModel):
    tier: str
    low: float = Field(description="Lower edge of the probability bin (inclusive).")
    high: float = Field(description="Upper edge (exclusive; 1.0 inclusive).")
    accounts: int
    arr: float = Field(description="ARR of the accounts in the bin, USD.")


class ChurnDistribution(Published):
    """3-month churn probability of every active account, binned by tier."""

    bins: list[ChurnBin]


class RiskTrendPoint(BaseModel):
    month: str = Field(description="Month end the accounts were scored at, YYYY-MM.")
    accounts: int = Field(description="Accounts active at that month end.")
    arr: float = Field(description="Their ARR, USD.")
    arr_at_risk: float = Field(description="Sum of p(churn within 3 months) x ARR, USD.")
    expected_churned_accounts: float = Field(description="Sum of p(churn within 3 months).")
    churned_arr: float | None = Field(description="ARR of those that did churn within 3 months, USD; null until known.")


class RiskTrend(Published):
    """ARR at risk by month, scored by one model trained without hindsight (see ``note``)."""

    trained_through: str | None = Field(description="Last cutoff whose outcome trained the model, YYYY-MM.")
    note: str
    points: list[RiskTrendPoint]
    current_arr_at_risk: float | None = Field(
        None,
        description="This month's ARR at risk from the current model (the site's, the investor PDF's and the "
        "snapshot's figure), USD; the trend's last point comes from a model trained without hindsight.",
    )


class Recommendation(BaseModel):
    playbook: str | None
    action: str | None
    owner: str | None
    due_days: int | None


class CustomerDetail(BaseModel):
    account_id: str
    run_id: str
    health: HealthRow
    churn_probability_3m: float | None
    arr: float | None
    drivers: list[str] = Field(description="Why the account is at risk, in words.")
    recommendation: Recommendation


class EventsIn(BaseModel):
    events: list[Any] = Field(
        description="Rows of usage_daily, tickets, nps_responses or downtime_monthly, each with a 'table' field.",
        examples=[example_events()],
    )


class EventsAccepted(BaseModel):
    accepted: int
    health_updates: int = Field(description="Accounts whose score changed (each sent to the WebSocket feed).")
    worker: int | None = Field(None, description="Process id of the worker that stored the batch.")


class OpsMonth(BaseModel):
    month: str
    uptime_pct: float | None = Field(description="Mean daily uptime over all services, %.")
    worst_service_uptime_pct: float | None = Field(None, description="The lowest service's mean uptime, %.")
    p95_latency_ms: float | None = None
    requests: float | None = None
    error_rate: float | None = Field(None, description="Failed requests / requests.")
    ai_calls: float | None = None


class OpsService(OpsMonth):
    service: str


class Ops(Published):
    monthly: list[OpsMonth]
    by_service: list[OpsService]


EMAIL = r"^[^@<>\"\t\n\r ]+@[^@<>\"\t\n\r ]+\.[A-Za-z]{2,}$"
"""An email address, loosely. No \\s: it means different characters to pydantic's regex engine
and to the ECMAScript regex of JSON Schema (U+0085 is whitespace to one, not the other), and the
schema must accept exactly what the service accepts."""


def _iso_text(value):
    """Dates come as ``YYYY-MM-DD`` text only (pydantic would also take a number as a Unix time,
    which the schema does not allow)."""
    if not isinstance(value, str):
        raise ValueError("must be a date as text, YYYY-MM-DD")
    return value


def _whole_number(value):
    """A JSON number with no fraction (``40`` or ``40.0``, as JSON Schema's integer), not text."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number")
    if isinstance(value, float) and not value.is_integer():
        raise ValueError("must be a whole number")
    return int(value)


class PilotIn(BaseModel):
    """A pilot for a prospect, as the pilot launcher records it."""

    model_config = {"extra": "forbid"}
    company: str = Field(min_length=1, max_length=200, description="The prospect's company name.")
    contact_email: str = Field(pattern=EMAIL, max_length=254, description="Who runs the pilot on their side.")
    tier: Tier
    seats: Annotated[int, BeforeValidator(_whole_number)] = Field(ge=1, le=100_000, description="Seats in the pilot.")
    start_date: Annotated[date, BeforeValidator(_iso_text)] = Field(description="First day of the pilot, YYYY-MM-DD.")
    success_criteria: str = Field(min_length=1, max_length=2000, description="What the pilot must show, in words.")


class Pilot(PilotIn):
    pilot_id: str
    status: str = Field(description="proposed, running, won or lost.")
    created_at: str


class Pilots(BaseModel):
    pilots: list[Pilot]


class ErrorDetail(BaseModel):
    """Every error answer of the service but a rejected batch: what went wrong and what to do."""

    detail: str


class EventError(BaseModel):
    index: int = Field(description="Position of the event in the batch (0-based).")
    field: str | None = Field(description="The event's field that broke the rule (none: the event as a whole).")
    rule: str
    value: Any = None


class EventsRejected(BaseModel):
    """A rejected batch (nothing of it stored): either the body is not ``{"events": [...]}``
    (``detail`` lists FastAPI's validation errors), or events broke the ingest rules (``errors``
    names each event's index and field)."""

    detail: str | list[dict[str, Any]]
    errors: list[EventError] = []
    error_count: int = 0


class QueryRejected(BaseModel):
    """Query or path parameters that break their declared rules (FastAPI's validation errors)."""

    detail: list[dict[str, Any]]


def responses(*codes: int, rejected: type[BaseModel] = QueryRejected) -> dict[int, dict]:
    """OpenAPI ``responses`` for the error answers a route really gives."""
    text = {
        400: "The body is not JSON.",
        401: "Missing, unknown, expired or revoked token.",
        403: "The token's role may not use this endpoint.",
        404: "No such account in the latest publication, or no such intervention.",
        413: "Body too large.",
        422: "Invalid parameters or events.",
        503: "Nothing published yet, or the events could not be stored durably.",
    }
    return {c: {"model": rejected if c == 422 else ErrorDetail, "description": text[c]} for c in codes}


CtaStatus = Literal["open", "in_progress", "snoozed", "done", "closed_recovered", "closed_churned"]


class CtaNote(BaseModel):
    at: str = Field(description="When the note was added (ISO 8601, UTC).")
    author: str = Field(description="Name of the token that added it.")
    text: str


class Cta(_Row):
    """A call to action: one account, one rule, an owner, a playbook and a due date
    (docs/interventions.md)."""

    id: str
    account_id: str
    account_name: str | None
    rule: str = Field(
        description="The rule that opened it (red-band, health-drop, detractor, churn-risk, renewal-risk, ...)."
    )
    reason: str = Field(description="Why, with the account's own figures.")
    playbook: str
    action: str
    owner: str = Field(description="The owner role.")
    owner_email: str | None = Field(description="The owner's address when known.")
    priority: Literal["low", "medium", "high", "urgent"]
    due_date: date
    status: CtaStatus
    opened_at: str
    updated_at: str
    holdout: bool = Field(description="Held out to measure the effect: recorded, not notified or queued.")
    notes: list[CtaNote]
    outcome: dict | None = Field(description="How it closed (recovered or churned), once known.")


class CtaList(BaseModel):
    interventions: list[Cta]
    total: int


class CtaUpdate(BaseModel):
    """A person's change to a CTA. Closing is the rules' job (recovery or churn)."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["in_progress", "snoozed", "done"] | None = None
    note: str | None = Field(None, min_length=1, max_length=10_000)
    snooze_until: date | None = Field(None, description="With status snoozed: the date it comes back, after today.")
