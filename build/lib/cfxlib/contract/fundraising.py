"""The fundraising and positioning file (``fundraising.yaml`` in a data directory).

What the data cannot tell — the round being raised, what is committed, who leads, the timeline,
the use of funds, market size with sources, competitors — is written by the founders in one
versioned, validated YAML file beside the tables. ``cfx ingest`` validates it (errors name the
file, line and field) and keeps it with the warehouse; reports combine it with what the data
gives (burn, runway, efficiency: see :mod:`cfxlib.metrics.efficiency`).

Judgement fields are optional: one left out (or ``null``) is shown as *not provided* in the
reports, never filled in. Amounts are US dollars; shares are fractions (0.25 = 25%).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

from cfxlib.contract.yamlfile import load_model

FILE_NAME = "fundraising.yaml"
SCHEMA_VERSION = 1


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True)


class Source(_Strict):
    """Where a market figure comes from."""

    title: str = Field(min_length=1, description="Publication or report title.")
    url: HttpUrl | None = Field(None, description="Link to the source.")
    year: int | None = Field(None, ge=1990, le=2100, description="Year of publication.")


class MarketFigure(_Strict):
    value_usd: float = Field(gt=0, description="Annual spend, USD.")
    definition: str = Field(min_length=1, description="What is counted.")
    source: Source


class Market(_Strict):
    tam: MarketFigure | None = Field(None, description="Total addressable market.")
    sam: MarketFigure | None = Field(None, description="Serviceable addressable market.")
    som: MarketFigure | None = Field(None, description="Serviceable obtainable market.")


class Competitor(_Strict):
    name: str = Field(min_length=1)
    positioning: str = Field(min_length=1, description="How the competitor sells itself.")
    difference: str = Field(min_length=1, description="How ChatterFix differs.")


class Milestone(_Strict):
    milestone: str = Field(min_length=1)
    date: date
    status: Literal["done", "in progress", "planned"]


class UseOfFunds(_Strict):
    category: str = Field(min_length=1)
    share: float = Field(gt=0, le=1, description="Share of the round (fraction).")
    purpose: str = Field(min_length=1, description="What the money buys.")


class Round(_Strict):
    name: str = Field(min_length=1, description="e.g. Series A.")
    target_usd: float = Field(gt=0, description="Amount being raised, USD.")
    committed_usd: float | None = Field(None, ge=0, description="Amount committed so far (signed or verbal), USD.")
    lead: str | None = Field(None, min_length=1, description="Lead investor, once there is one.")
    instrument: str | None = Field(None, min_length=1, description="e.g. preferred equity.")
    pre_money_valuation_usd: float | None = Field(None, gt=0)
    timeline: list[Milestone] = Field(default_factory=list)


class Finances(_Strict):
    """What the tables lack for burn and runway."""

    cash_usd: float | None = Field(None, ge=0, description="Cash in the bank at ``cash_as_of``, USD.")
    cash_as_of: date | None = None
    other_operating_expenses_usd_per_month: float | None = Field(
        None,
        ge=0,
        description="Monthly operating expenses not in spend_monthly (R&D, G&A), USD per month.",
    )

    @model_validator(mode="after")
    def _cash_needs_date(self):
        if (self.cash_usd is None) != (self.cash_as_of is None):
            raise ValueError("cash_usd and cash_as_of go together: give both or neither")
        return self


class Fundraising(_Strict):
    """The founders' file. Only ``schema_version``, ``company`` and ``updated`` are required."""

    schema_version: Literal[1] = Field(description="Version of this file's layout.")
    company: str = Field(min_length=1)
    updated: date = Field(description="Day the founders last edited the file.")
    round: Round | None = None
    use_of_funds: list[UseOfFunds] = Field(default_factory=list)
    finances: Finances = Field(default_factory=Finances)
    market: Market = Field(default_factory=Market)
    competitors: list[Competitor] = Field(default_factory=list)

    @model_validator(mode="after")
    def _shares_add_up(self):
        if self.use_of_funds:
            total = sum(u.share for u in self.use_of_funds)
            if abs(total - 1) > 0.001:
                raise ValueError(f"use_of_funds shares add up to {total:.3f}, not 1")
        return self


def load(path: Path) -> Fundraising:
    """Read and validate ``path``; raises :class:`InputError` naming line and field of each problem."""
    return load_model(path, Fundraising, "schema_version, company, updated, round, ...")
