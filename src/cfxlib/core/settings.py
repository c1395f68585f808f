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
import re
from datetime import date
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator
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
        16_000_000,
        ge=10_000,
        description="Hard memory bound: unsent bytes a WebSocket feed client may hold (socket buffer plus its "
        "conflated backlog) before it is disconnected.",
    )
    feed_stall_s: float = Field(
        120.0,
        gt=0,
        description="Seconds a feed client may read nothing at all, while data waits, before it is disconnected.",
    )
    access_log: bool = Field(True, description="One line per request on standard output (tokens redacted).")
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Processes of `cfx serve` sharing its port; above 1 needs a broker (CFX_BROKER__URL).",
    )


class BrokerSettings(_Section):
    """The message broker that lets several service processes share one live feed (docs/scaling.md)."""

    url: str | None = Field(
        None,
        pattern=r"^(redis|rediss|unix)://",
        description="Redis URL, e.g. redis://127.0.0.1:6379/0; none: one process, the feed in its memory.",
    )
    channel: str = Field("cfx:feed", min_length=1, description="Redis pub/sub channel of the feed's notices.")


class DashboardSettings(_Section):
    host: str = "127.0.0.1"
    port: int = Field(8002, ge=1, le=65535)
    api: str | None = Field(None, description="Base URL of `cfx serve`; default http://SERVICE_HOST:SERVICE_PORT.")
    max_kernels: int = Field(20, ge=1, description="Dashboard kernels (open page views) at most; more get 503.")
    cull_idle_s: int = Field(300, ge=30, description="Seconds before an idle dashboard kernel is stopped.")
    preheat: bool = Field(
        True,
        description="Keep one kernel per dashboard preheated (started, imports done, waiting for a viewer).",
    )


class SmtpSettings(_Section):
    """The mail server for alerts and investor updates. The password comes from
    ``CFX_SMTP__PASSWORD`` or the file ``$CFX_HOME/keys/smtp-password``, never from a cfx.toml."""

    host: str | None = Field(None, description="SMTP server; none = email is not configured.")
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = Field(False, description="Upgrade the connection with STARTTLS before login.")
    ca_file: Path | None = Field(None, description="CA certificate(s) to trust for STARTTLS (default: the system's).")
    username: str | None = Field(None, description="Login user; none = no login.")
    password: SecretStr | None = Field(None, description="Login password (environment only).")
    sender: str = Field("cfx@localhost", description="From address.")
    timeout_s: float = Field(20.0, gt=0, description="Seconds before a silent server counts as down.")


class InvestorSettings(_Section):
    recipients: list[str] = Field(default_factory=list, description="Who gets the weekly investor update.")


class AlertSettings(_Section):
    recipients: list[str] | None = Field(None, description="Who gets alerts; default: the investor recipients.")


class WebhookSettings(_Section):
    """Signed webhooks (Standard Webhooks). The secret comes from ``CFX_WEBHOOKS__SECRET`` or
    ``$CFX_HOME/keys/webhook-secret``."""

    urls: list[str] = Field(default_factory=list, description="Endpoints that receive every notification.")
    secret: SecretStr | None = Field(None, description="whsec_... signing secret (environment only).")
    timeout_s: float = Field(10.0, gt=0)


class NotifySettings(_Section):
    max_attempts: int = Field(50, ge=1, description="Attempts before a notification is set aside as failed.")
    retry_base_s: float = Field(30.0, gt=0, description="First retry delay; doubles per attempt.")
    retry_max_s: float = Field(3600.0, gt=0, description="Longest retry delay.")


class SchedulerSettings(_Section):
    jobs_file: Path | None = Field(None, description="Job definitions; default: the repository's scheduler/jobs.yml.")
    misfire_grace_s: int = Field(
        6 * 3600, ge=1, description="A run missed by less than this (e.g. machine off) is caught up once."
    )


class DataroomSettings(_Section):
    """The investor data room (``cfx dataroom ...``)."""

    target: str | None = Field(
        None, description="gs://BUCKET/PREFIX or file:///PATH; default: file://$CFX_HOME/dataroom/store."
    )
    recipients: list[str] = Field(default_factory=list, description="Investors' age public keys (age1...).")
    timeout_s: float = Field(60.0, gt=0, description="Seconds to keep retrying the storage before giving up.")
    spec: Path | None = Field(
        None, description="What the data room holds; default: the repository's dataroom/manifest.yml."
    )
    git_tag: bool | None = Field(
        None,
        description="Tag each synced version in git (v<version>-data-room.<n>); default: when the project "
        "directory is a git repository with a clean tree.",
    )
    signer: str | None = Field(
        None,
        description="The signer key id (the minisign public key, RW...) that `open` and `verify` trust; "
        "printed by `cfx dataroom sync` and in the data room email. Default: the key pinned in $CFX_HOME/keys.",
    )


class InterventionSettings(_Section):
    """Calls to action (``cfx interventions``; rules in ``$CFX_HOME/interventions.yaml``)."""

    holdout_pct: float = Field(
        0.0,
        ge=0,
        le=100,
        description="Share of triggered (account, rule) pairs held out, %: recorded but not notified or queued, "
        "to measure whether the playbooks work (default 0: none).",
    )
    owners: dict[str, list[str]] = Field(
        default_factory=dict,
        description="Owner role -> addresses, for accounts without an owner_email (JSON object).",
    )


class OpsSettings(_Section):
    """Health thresholds (``cfx health``, ``/healthz``)."""

    max_run_age_h: float = Field(36.0, gt=0, description="The last published run may be this old, hours.")
    max_outbox_age_s: float = Field(3600.0, gt=0, description="The oldest pending notification may wait this long.")
    min_free_disk_gb: float = Field(1.0, ge=0, description="Free space needed under $CFX_HOME, GiB.")


class SparkSettings(_Section):
    """Apache Spark, when ``engine = "spark"``."""

    master: str = Field("local[2]", description="Spark master: local[N], a cluster URL or sc://HOST for Spark Connect.")
    driver_memory: str = Field("2g", description="spark.driver.memory (local mode: the whole engine's memory).")
    tables: str | None = Field(
        None,
        description="Where `cfx ingest --engine spark` writes the validated tables (a folder or a URL such as "
        "gs://bucket/cfx); default: $CFX_HOME/lake.",
    )
    conf: dict[str, str] = Field(
        default_factory=dict,
        description="More Spark properties for every session, applied over cfx's own. The environment's "
        """(JSON: CFX_SPARK__CONF='{"spark.sql.adaptive.enabled": "false"}') win key by key over cfx.toml's. """
        "JVM options such as spark.driver.extraJavaOptions apply when a process starts its first session; "
        "see docs/scaling.md.",
    )


MEMORY_UNITS = {
    "b": 1,
    **{f"{p}b": 1000**i for i, p in enumerate("kmgt", start=1)},
    **{f"{p}ib": 1024**i for i, p in enumerate("kmgt", start=1)},
}
"""Bytes per unit of a DuckDB memory size (case-insensitive): KB is 1000 bytes, KiB 1024."""
MIN_DUCKDB_MEMORY = 64 * 1000**2
"""The smallest memory limit accepted, bytes: below it DuckDB fails its first allocations."""


class DuckDBSettings(_Section):
    """The embedded engine (DuckDB) as the job's steps and the commands that read the warehouse
    open it: each process's connection gets its own limit and spill folder."""

    memory_limit: str = Field(
        "2GB",
        pattern=r"(?i)^\s*\d+(\.\d+)?\s*(b|kb|mb|gb|tb|kib|mib|gib|tib|%)\s*$",
        description="DuckDB's memory_limit per process, e.g. 2GB or 25% (of the machine's memory); past it, "
        "joins, aggregations and the churn step's tables spill to $CFX_HOME/tmp. `cfx run` runs two steps side by "
        "side, each with this limit. Python's own frames come on top (the churn step at 1,000,000 accounts peaks at "
        "about 7 GB with 2GB here).",
    )

    @field_validator("memory_limit", mode="after")
    @classmethod
    def _workable(cls, value: str) -> str:
        number, unit = re.fullmatch(r"(?i)\s*(\d+(?:\.\d+)?)\s*([a-z%]+)\s*", value).groups()
        if unit == "%":
            if not 0 < float(number) <= 100:
                raise ValueError(f"a share of the machine's memory is above 0% and at most 100%, not {value!r}")
        elif float(number) * MEMORY_UNITS[unit.lower()] < MIN_DUCKDB_MEMORY:
            raise ValueError(f"DuckDB needs at least 64MB to run a query; {value!r} is less")
        return value.strip()


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
    engine: Literal["duckdb", "spark"] = Field(
        "duckdb", description="SQL engine of the set-based computations (CFX_ENGINE); models run in Python either way."
    )
    spark: SparkSettings = SparkSettings()
    duckdb: DuckDBSettings = DuckDBSettings()
    demo: DemoSettings = DemoSettings()
    thresholds: Thresholds = Thresholds()
    costs: CostAssumptions = CostAssumptions()
    service: ServiceSettings = ServiceSettings()
    broker: BrokerSettings = BrokerSettings()
    dashboards: DashboardSettings = DashboardSettings()
    pipeline: PipelineSettings = PipelineSettings()
    smtp: SmtpSettings = SmtpSettings()
    investor: InvestorSettings = InvestorSettings()
    alerts: AlertSettings = AlertSettings()
    webhooks: WebhookSettings = WebhookSettings()
    notify: NotifySettings = NotifySettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    dataroom: DataroomSettings = DataroomSettings()
    interventions: InterventionSettings = InterventionSettings()
    ops: OpsSettings = OpsSettings()

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


SECRETS = {"smtp": "password", "webhooks": "secret"}
"""Settings that are secrets: read from the environment or key files, never from a cfx.toml."""


def _check_no_secrets_in_files() -> None:
    import tomllib

    home = Path(os.environ.get(f"{ENV_PREFIX}HOME") or DEFAULT_HOME).expanduser()
    for path in (Path("cfx.toml"), home / "cfx.toml"):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError:
            continue  # missing
        except tomllib.TOMLDecodeError as exc:
            raise SettingsError(f"{path.resolve()}: not valid TOML: {exc}; fix the file (or move it away)") from None
        for section, key in SECRETS.items():
            if key in (data.get(section) or {}):
                raise SettingsError(
                    f"{path}: [{section}] {key} is a secret and is not read from cfx.toml files; set "
                    f"{ENV_PREFIX}{section.upper()}__{key.upper()} or write it to $CFX_HOME/keys/{secret_file(section)}"
                )


def secret_file(section: str) -> str:
    """Name of the key file under ``$CFX_HOME/keys/`` that may hold a section's secret."""
    return {"smtp": "smtp-password", "webhooks": "webhook-secret"}[section]


def read_secret(settings: Settings, section: str) -> str | None:
    """A secret from the environment (via settings) or ``$CFX_HOME/keys/<file>``; None when neither."""
    value = getattr(getattr(settings, section), SECRETS[section])
    if value is not None:
        return value.get_secret_value()
    path = settings.home / "keys" / secret_file(section)
    if path.exists():
        return path.read_text(encoding="utf-8").strip() or None
    return None


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The settings model that holds the key at ``loc`` (its section), if known."""
    model: type[BaseModel] = Settings
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        inner = getattr(field, "annotation", None) if field else None
        if not (isinstance(inner, type) and issubclass(inner, BaseModel)):
            return None
        model = inner
    return model


def _source_of(loc: tuple) -> str:
    """Where a setting at ``loc`` was given: an environment variable or a cfx.toml file."""
    import tomllib

    var = ENV_PREFIX + "__".join(str(p).upper() for p in loc)
    if var in os.environ:
        return f"environment variable {var}"
    home = Path(os.environ.get(f"{ENV_PREFIX}HOME") or DEFAULT_HOME).expanduser()
    for path in (home / "cfx.toml", Path("cfx.toml")):
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, tomllib.TOMLDecodeError):
            continue
        node = data
        for part in loc:
            node = node.get(str(part)) if isinstance(node, dict) else None
            if node is None:
                break
        else:
            section = f"[{'.'.join(str(p) for p in loc[:-1])}] " if len(loc) > 1 else ""
            return f"{path.resolve()} ({section}{loc[-1]})"
    return "the settings"


def _problem(err: dict) -> str:
    """One validation error: the key, the rule, where it was given and, for an unknown key, the
    closest known one."""
    import difflib

    loc = tuple(err["loc"])
    text = f"{'.'.join(str(p) for p in loc)}: {err['msg']} (in {_source_of(loc)})"
    if err.get("type") == "extra_forbidden":
        model = _model_at(loc)
        if model is not None:
            close = difflib.get_close_matches(str(loc[-1]), list(model.model_fields), n=1, cutoff=0.5)
            if close:
                text += f"; did you mean {close[0]}?"
    return text


def load_settings(**overrides) -> Settings:
    """Settings from every source; ``overrides`` (non-None values) win."""
    _check_environment()
    _check_no_secrets_in_files()
    import pydantic_settings

    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except pydantic_settings.SettingsError as exc:  # a value the environment source cannot decode
        raise SettingsError(
            f"invalid settings ({exc}): a CFX_* variable that holds a table or a list, such as "
            'CFX_SPARK__CONF, must be JSON, e.g. \'{"spark.sql.adaptive.enabled": "false"}\''
        ) from None
    except ValidationError as exc:
        problems = "; ".join(_problem(err) for err in exc.errors())
        raise SettingsError(
            f"invalid settings ({problems}). Check cfx.toml in the repository and in $CFX_HOME, "
            "and CFX_* environment variables."
        ) from None
