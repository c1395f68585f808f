"""The intervention rules: one validated YAML file, the same style as the alert rules.

The package's defaults are ``cfxlib/config/interventions.yaml``; a home changes a rule by its
``id`` in ``$CFX_HOME/interventions.yaml`` (only the keys given change; ``enabled: false``
switches it off) or adds rules. Errors name the file, line and field.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cfxlib.contract.issues import InputError, Issue, IssueLog
from cfxlib.contract.yamlfile import line_of, load_model

FILE_NAME = "interventions.yaml"
Kind = Literal["red_band", "health_drop", "detractor", "churn_risk", "renewal_risk"]
Priority = Literal["low", "medium", "high", "urgent"]
PRIORITY_ORDER = {"urgent": 0, "high": 1, "medium": 2, "low": 3}
FROM_DRIVERS = "from_drivers"


class Rule(BaseModel):
    """One trigger: when it holds for an account, that account gets one open CTA for the rule."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$", description="Rule id, e.g. detractor.")
    kind: Kind = Field(description="What the rule watches (see the file's header).")
    title: str = Field(min_length=1, max_length=120, description="Short name, used in email subjects.")
    enabled: bool = True
    priority: Priority = "medium"
    playbook: str = Field(FROM_DRIVERS, min_length=1, description="A playbook name, or from_drivers.")
    owner: str = Field("Customer Success Manager", min_length=1, description="The owner role.")
    due_days: int = Field(7, ge=1, le=365, description="Days from opening to the due date.")
    points: float | None = Field(None, gt=0, le=100, description="health_drop: fall in score, points.")
    days: int | None = Field(None, ge=1, le=365, description="health_drop: within this many days.")
    max_score: int | None = Field(None, ge=0, le=10, description="detractor: NPS answers up to this score.")
    min_probability: float | None = Field(None, gt=0, le=1, description="churn_risk: p(churn in 3 months).")
    within_days: int | None = Field(None, ge=1, le=366, description="renewal_risk: days to the renewal.")

    @model_validator(mode="after")
    def _parameters(self):
        need = {
            "health_drop": ("points", "days"),
            "detractor": ("max_score",),
            "churn_risk": ("min_probability",),
            "renewal_risk": ("within_days",),
        }.get(self.kind, ())
        missing = [p for p in need if getattr(self, p) is None]
        if missing:
            raise ValueError(f"a {self.kind} rule needs {', '.join(missing)}")
        return self


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1]
    rules: list[Rule] = Field(default_factory=list)


class OverrideFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: Literal[1]
    rules: list[dict] = Field(default_factory=list)


def default_file() -> Path:
    return Path(str(resources.files("cfxlib") / "config" / FILE_NAME))


def load(home: Path | None = None) -> list[Rule]:
    """The package's rules, changed and extended by ``$CFX_HOME/interventions.yaml``; enabled only."""
    rules = {r.id: r for r in load_model(default_file(), RuleFile, "schema_version, rules").rules}
    path = Path(home) / FILE_NAME if home else None
    if path is not None and path.exists():
        override = load_model(path, OverrideFile, "schema_version, rules")
        text = path.read_text(encoding="utf-8")
        log = IssueLog()
        for i, item in enumerate(override.rules):
            base = rules.get(str(item.get("id")))
            data = {**base.model_dump(), **item} if base else item
            try:
                rule = Rule.model_validate(data)
            except ValidationError as exc:
                root = yaml.compose(text)
                for err in exc.errors():
                    loc = ("rules", i, *err["loc"])
                    log.add(Issue(path.name, line_of(root, loc), ".".join(map(str, loc)), err["msg"]))
                continue
            rules[rule.id] = rule
        if log.total:
            raise InputError(log, f"{path} is invalid")
    return [r for r in rules.values() if r.enabled]


def in_holdout(account_id: str, rule_id: str, pct: float) -> bool:
    """Whether a triggered (account, rule) is held out: a stable hash of both, so the same
    account and rule are always assigned the same way, whatever the order of evaluation."""
    if pct <= 0:
        return False
    digest = hashlib.sha256(f"{account_id}\x1f{rule_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % 10_000 < round(pct * 100)
