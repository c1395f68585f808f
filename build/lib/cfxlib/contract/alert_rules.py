"""Investor alert rules: one validated YAML file, one definition of every alerting metric.

The repository's default rules live in ``cfxlib/config/alerts.yaml``; a home may add or override
rules (matched by ``id``) in ``$CFX_HOME/alerts.yaml``, or switch one off with
``enabled: false``. A rule compares one metric of the investor snapshot with a threshold, given
as a number or as the name of a setting under ``thresholds`` (so
``CFX_THRESHOLDS__ARR_GROWTH_MOM_MIN_PCT`` still moves the ARR growth alert).

This module is stateless: :func:`breaches` says which rules a snapshot breaks. When an alert is
sent, repeated and resolved is decided by :mod:`cfxlib.investor.alerts`.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from cfxlib.contract.issues import InputError, Issue, IssueLog
from cfxlib.contract.yamlfile import line_of, load_model

FILE_NAME = "alerts.yaml"


def _pct(field: str) -> Callable[[dict], float | None]:
    def value(snap: dict) -> float | None:
        v = snap.get(field)
        return None if v is None else 100 * float(v)

    return value


def _plain(field: str) -> Callable[[dict], float | None]:
    def value(snap: dict) -> float | None:
        v = snap.get(field)
        return None if v is None else float(v)

    return value


def _at_risk_share(snap: dict) -> float | None:
    risk, arr = snap.get("arr_at_risk"), snap.get("arr")
    return None if risk is None or not arr else 100 * float(risk) / float(arr)


METRICS: dict[str, tuple[Callable[[dict], float | None], str, str]] = {
    "arr_growth_mom_pct": (_pct("arr_growth_mom"), "%", "ARR growth against the previous month end, %."),
    "uptime_worst_service_pct": (
        _plain("worst_service_uptime_pct"),
        "%",
        "Mean daily uptime of the service with the lowest uptime in the month, % (any service).",
    ),
    "uptime_average_pct": (_plain("uptime_pct"), "%", "Mean daily uptime over all services in the month, %."),
    "nrr_12m_pct": (_pct("nrr_12m"), "%", "Net revenue retention over 12 months, %."),
    "grr_12m_pct": (_pct("grr_12m"), "%", "Gross revenue retention over 12 months, %."),
    "logo_churn_pct": (_pct("logo_churn_rate"), "%", "Customers lost in the month / customers at its start, %."),
    "runway_months": (
        _plain("runway_months"),
        " months",
        "Months of cash left at the trailing quarter's net burn (only when cash is known).",
    ),
    "arr_at_risk_share_pct": (
        _at_risk_share,
        "%",
        "Churn-probability-weighted ARR at risk within 3 months / ARR, %.",
    ),
}
"""Alerting metrics: name -> (value from a snapshot dict, unit, definition)."""

_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str) -> timedelta:
    """``30m``, ``12h``, ``7d`` or ``2w`` as a timedelta."""
    match = _DURATION.match(str(text).strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration like 30m, 12h, 7d or 2w")
    return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


class Rule(BaseModel):
    """One alert rule. ``value < threshold`` (``below``) or ``value > threshold`` (``above``) fails."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Stable identifier (kebab-case).")
    title: str = Field(min_length=1, description="Name used in subjects, e.g. 'ARR growth'.")
    metric: str = Field(description="One of the alerting metrics (see METRICS).")
    condition: Literal["below", "above"] = Field(description="Fail when the value is below / above the threshold.")
    threshold: float | None = Field(None, description="Threshold in the metric's unit.")
    threshold_setting: str | None = Field(
        None, description="Or: the name of a setting under [thresholds] that holds the threshold."
    )
    severity: Literal["info", "warning", "critical"] = "warning"
    for_snapshots: int = Field(1, ge=1, description="Consecutive failing snapshots before the alert fires.")
    repeat_every: str = Field("7d", description="Repeat interval while it keeps firing (30m, 12h, 7d, 2w).")
    enabled: bool = True
    description: str = Field("", description="Why the rule matters (shown in the notice).")

    @field_validator("metric")
    @classmethod
    def _known_metric(cls, value: str) -> str:
        if value not in METRICS:
            raise ValueError(f"unknown metric {value!r}; known: {', '.join(METRICS)}")
        return value

    @field_validator("repeat_every")
    @classmethod
    def _duration(cls, value: str) -> str:
        parse_duration(value)
        return value

    @model_validator(mode="after")
    def _one_threshold(self):
        if (self.threshold is None) == (self.threshold_setting is None):
            raise ValueError("give exactly one of threshold (a number) or threshold_setting (a setting's name)")
        return self

    @property
    def repeat_interval(self) -> timedelta:
        return parse_duration(self.repeat_every)

    @property
    def unit(self) -> str:
        return METRICS[self.metric][1]

    def threshold_value(self, thresholds) -> float:
        """The threshold, read from ``thresholds`` (the settings section) when the rule names one."""
        if self.threshold is not None:
            return self.threshold
        try:
            return float(getattr(thresholds, self.threshold_setting))
        except AttributeError:
            raise ValueError(f"rule {self.id}: no setting thresholds.{self.threshold_setting}") from None

    def value(self, snapshot: dict) -> float | None:
        return METRICS[self.metric][0](snapshot)

    def fails(self, value: float, threshold: float) -> bool:
        return value < threshold if self.condition == "below" else value > threshold


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1]
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self):
        seen: set[str] = set()
        for rule in self.rules:
            if rule.id in seen:
                raise ValueError(f"rule id {rule.id!r} appears twice")
            seen.add(rule.id)
        return self


class Breach(BaseModel):
    """A rule a snapshot breaks: the figures behind an alert."""

    rule: str
    title: str
    severity: str
    metric: str
    value: float
    threshold: float
    message: str


def default_file() -> Path:
    return Path(str(resources.files("cfxlib") / "config" / FILE_NAME))


class OverrideFile(BaseModel):
    """A home's ``alerts.yaml``: rules are full definitions, or changes to a default rule."""

    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1]
    rules: list[dict] = Field(default_factory=list)


def _merged(path: Path, defaults: dict[str, Rule]) -> list[Rule]:
    """The home file's rules, each merged onto the default rule with the same id (if any)."""
    override = load_model(path, OverrideFile, "schema_version, rules")
    text = path.read_text(encoding="utf-8")
    log, out = IssueLog(), []
    for i, item in enumerate(override.rules):
        base = defaults.get(str(item.get("id")))
        data = item
        if base:
            data = base.model_dump()
            if "threshold" in item or "threshold_setting" in item:  # one replaces the other
                data.pop("threshold"), data.pop("threshold_setting")
            data.update(item)
        try:
            out.append(Rule.model_validate(data))
        except ValidationError as exc:
            root = yaml.compose(text)
            for err in exc.errors():
                loc = ("rules", i, *err["loc"])
                log.add(Issue(path.name, line_of(root, loc), ".".join(map(str, loc)), err["msg"]))
    if log.total:
        raise InputError(log, f"{path} is invalid")
    return out


def load(home: Path | None = None, thresholds=None) -> list[Rule]:
    """The repository's rules, overridden and extended by ``$CFX_HOME/alerts.yaml`` when present.

    A rule in the home file with a default rule's ``id`` changes only the keys it gives (e.g.
    ``{id: nrr, threshold: 100}`` or ``{id: runway, enabled: false}``); other ids add rules.
    With ``thresholds`` given, every rule's threshold is checked to resolve.
    """
    rules = {r.id: r for r in load_model(default_file(), RuleFile, "schema_version, rules").rules}
    override = Path(home) / FILE_NAME if home else None
    if override and override.exists():
        for rule in _merged(override, dict(rules)):
            rules[rule.id] = rule
    active = [r for r in rules.values() if r.enabled]
    if thresholds is not None:
        for rule in active:
            rule.threshold_value(thresholds)
    return active


def _fmt(value: float, unit: str) -> str:
    return f"{value:,.2f}{unit}" if abs(value) < 1000 else f"{value:,.0f}{unit}"


def breaches(snapshot: dict, rules: list[Rule], thresholds) -> list[Breach]:
    """Rules that ``snapshot`` (a metrics snapshot as a dict) breaks. Missing values never breach."""
    out = []
    for rule in rules:
        value = rule.value(snapshot)
        if value is None:
            continue
        threshold = rule.threshold_value(thresholds)
        if rule.fails(value, threshold):
            word = "under" if rule.condition == "below" else "over"
            out.append(
                Breach(
                    rule=rule.id,
                    title=rule.title,
                    severity=rule.severity,
                    metric=rule.metric,
                    value=value,
                    threshold=threshold,
                    message=f"{rule.title} was {_fmt(value, rule.unit)} in {snapshot.get('as_of')}, "
                    f"{word} the {_fmt(threshold, rule.unit)} threshold",
                )
            )
    return out
