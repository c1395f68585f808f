"""One typed settings object for every command.

Sources, lowest precedence first:

1. the defaults below,
2. ``cfx.toml`` in the current directory (the repository),
3. ``cfx.toml`` in ``$CFX_HOME``,
4. ``CFX_*`` environment variables (nested with ``__``, e.g. ``CFX_SERVICE__PORT=8002``),
5. explicit arguments (command-line options).

Unknown keys in a ``cfx.toml`` or unknown ``CFX_*`` variables are an error, so a typo never
silently falls back to a default.
"""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from cfxlib.core.errors import UserError

DEFAULT_HOME = Path("~/.cfx")
"""Where state lives when ``CFX_HOME`` is unset (expanded per user)."""

ENV_PREFIX = "CFX_"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DemoSettings(_Section):
    """The demo company used when no data directory is configured."""

    accounts: int = Field(2000, ge=1, description="Accounts to generate.")
    months: int = Field(36, ge=1, le=240, description="Months of history.")
    seed: int = Field(42, description="Random seed (same seed, same files).")
    end_month: str | None = Field(
        None, pattern=r"^\d{4}-\d{2}$", description="Last month of data; default: last full month."
    )


class Thresholds(_Section):
    """Investor alert thresholds."""

    arr_growth_mom_min_pct: float = Field(5.0, description="Alert when ARR grows less, % MoM.")
    uptime_min_pct: float = Field(99.5, ge=0, le=100, description="Alert when uptime is lower, %.")


class CostAssumptions(_Section):
    """Money assumptions used by value metrics."""

    downtime_cost_per_hour_usd: float = Field(
        500.0, ge=0, description="What one hour of equipment downtime costs a customer, USD."
    )


class ServiceSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8001, ge=1, le=65535)
    feed_buffer_bytes: int = Field(
        4_000_000,
        ge=10_000,
        description="Unsent bytes a WebSocket feed client may fall behind before it is told and disconnected.",
    )
    access_log: bool = Field(True, description="One line per request on standard output (tokens redacted).")


class DashboardSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8002, ge=1, le=65535)
    api: str | None = Field(None, description="Base URL of `cfx serve`; default http://SERVICE_HOST:SERVICE_PORT.")
    max_kernels: int = Field(20, ge=1, description="Dashboard kernels (open page views) at most; more get 503.")
    cull_idle_s: int = Field(300, ge=30, description="Seconds before an idle dashboard kernel is stopped.")


class PipelineSettings(_Section):
    notebook_timeout_s: int = Field(900, ge=10, description="Time limit per notebook cell, seconds.")
    notebook_dir: Path | None = Field(None, description="Notebooks to execute; default: the repository's notebooks/.")


class Settings(BaseSettings):
    """All cfx settings. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    home: Path = Field(DEFAULT_HOME, description="State directory ($CFX_HOME).")
    data_dir: Path | None = Field(None, description="Data directory to ingest; none = demo company.")
    as_of: date | None = Field(None, description="Reporting date; default: the data's last day.")
    demo: DemoSettings = DemoSettings()
    thresholds: Thresholds = Thresholds()
    costs: CostAssumptions = CostAssumptions()
    service: ServiceSettings = ServiceSettings()
    dashboards: DashboardSettings = DashboardSettings()
    pipeline: PipelineSettings = PipelineSettings()

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        home = Path(os.environ.get(f"{ENV_PREFIX}HOME") or DEFAULT_HOME).expanduser()
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=home / "cfx.toml"),
            TomlConfigSettingsSource(settings_cls, toml_file=Path("cfx.toml")),
        )


class SettingsError(UserError):
    """Settings that cannot be used; the message says which key and why."""


def _check_environment() -> None:
    known = {f"{ENV_PREFIX}{name.upper()}" for name in Settings.model_fields}
    for var in os.environ:
        if not var.startswith(ENV_PREFIX):
            continue
        top = var.split("__", 1)[0]
        if top not in known:
            raise SettingsError(f"unknown setting in environment variable {var}; known: " + ", ".join(sorted(known)))


def load_settings(**overrides) -> Settings:
    """Settings from every source; ``overrides`` (non-None values) win."""
    _check_environment()
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors())
        raise SettingsError(
            f"invalid settings ({problems}). Check cfx.toml in the repository and in $CFX_HOME, "
            "and CFX_* environment variables."
        ) from None
