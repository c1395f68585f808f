"""The job definitions (``scheduler/jobs.yml``), validated with line and field in errors.

A job is a command (``cfx ...``; the first word ``cfx`` means this installation's ``cfx``), a
cron expression and an IANA time zone. Cron has the five standard fields (minute hour day month
weekday); a sixth leading field gives seconds (used by tests, not by the repository's jobs).
"""

from __future__ import annotations

import hashlib
import shlex
import sys
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cfxlib.contract.yamlfile import load_model
from cfxlib.core.repo import REPO

REPO_JOBS = REPO / "scheduler" / "jobs.yml"
"""The repository's jobs (``scheduler/jobs.yml``), for a source checkout."""


class Job(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*$", description="Stable name (kebab-case).")
    command: str = Field(min_length=1, description="Command line; no shell, so no pipes or $VARIABLES.")
    cron: str = Field(description="minute hour day month weekday (or: second minute hour day month weekday).")
    timezone: str = Field("UTC", description="IANA time zone the cron expression is read in.")
    description: str = ""
    enabled: bool = True
    timeout_s: int | None = Field(None, ge=1, description="Stop the command after this many seconds.")
    misfire_grace_s: int | None = Field(None, ge=1, description="Catch-up window after downtime (default: setting).")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as Europe/Berlin or UTC)") from None
        return value

    @field_validator("command")
    @classmethod
    def _splits(cls, value: str) -> str:
        try:
            shlex.split(value)
        except ValueError as exc:
            raise ValueError(f"cannot split the command: {exc}") from None
        return value

    @model_validator(mode="after")
    def _cron(self):
        self.trigger()
        return self

    def trigger(self) -> CronTrigger:
        fields = self.cron.split()
        zone = ZoneInfo(self.timezone)
        try:
            if len(fields) == 5:
                return CronTrigger.from_crontab(self.cron, timezone=zone)
            if len(fields) == 6:
                second, minute, hour, day, month, dow = fields
                return CronTrigger(
                    second=second, minute=minute, hour=hour, day=day, month=month, day_of_week=dow, timezone=zone
                )
        except ValueError as exc:
            raise ValueError(f"invalid cron expression {self.cron!r}: {exc}") from None
        raise ValueError(f"cron {self.cron!r} needs 5 fields (minute hour day month weekday) or 6 (seconds first)")

    def argv(self) -> list[str]:
        words = shlex.split(self.command)
        if words[0] == "cfx":
            words[0] = str(Path(sys.executable).with_name("cfx"))
        return words

    def fingerprint(self, default_grace_s: int) -> str:
        """What the job store must know: when it runs (the command is read at run time)."""
        text = f"{self.cron}|{self.timezone}|{self.misfire_grace_s or default_grace_s}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]


class JobFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    schema_version: int = Field(1, ge=1, le=1)
    jobs: list[Job]

    @model_validator(mode="after")
    def _unique(self):
        names = [j.name for j in self.jobs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"job names appear twice: {', '.join(dupes)}")
        return self


def jobs_path(settings) -> Path:
    return Path(settings.scheduler.jobs_file) if settings.scheduler.jobs_file else REPO_JOBS


def load(settings) -> list[Job]:
    """The enabled jobs of the configured jobs file."""
    return [j for j in load_model(jobs_path(settings), JobFile, "schema_version, jobs").jobs if j.enabled]


def load_all(settings) -> list[Job]:
    return load_model(jobs_path(settings), JobFile, "schema_version, jobs").jobs
