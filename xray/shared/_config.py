"""The ``xray.config.yaml`` models and how a configuration is found and resolved.

Precedence, highest first (as pydantic-settings documents it):

1. keyword arguments given in code (``XRayClient(base_url=...)``),
2. environment variables (``DATABASE_URL``, ``XRAY_BASE_URL``, ``XRAY_API_KEY``, ...),
3. the config file (``XRAY_CONFIG`` names it; otherwise the first ``xray.config.yaml``
   found from the current directory up to the filesystem root),
4. the defaults below.

String values in the file may use ``${VAR}`` and ``${VAR:-default}``; a variable that is
unset and has no default is an error naming the variable, the dotted key and the file.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from xray.shared._database_url import normalise_database_url
from xray.shared._enums import DetailLevel

__all__ = [
    "CONFIG_ENV_VAR",
    "CONFIG_FILENAME",
    "DEFAULT_DATABASE_URL",
    "DEFAULT_REDACT_KEYS",
    "ENV_OVERRIDES",
    "APIConfig",
    "ConfigError",
    "ConfigNotFoundError",
    "SDKConfig",
    "XRayConfig",
    "find_config_file",
    "load_api_config",
    "load_config",
    "load_sdk_config",
]

CONFIG_FILENAME = "xray.config.yaml"
CONFIG_ENV_VAR = "XRAY_CONFIG"
DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///./xray.db"
DEFAULT_REDACT_KEYS: tuple[str, ...] = (
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "cookie",
    "access_key",
    "private_key",
    "client_secret",
    "credentials",
)

Section = Literal["sdk", "api"]

# Environment variable -> (section, key, kind). Compose and Kubernetes set DATABASE_URL;
# the rest follow the XRAY_ prefix, except PORT, which Heroku, Render, Railway and Cloud
# Run set to the port their router sends traffic to. When two name the same key, the later
# one wins: XRAY_PORT over PORT.
ENV_OVERRIDES: dict[str, tuple[Section, str, str]] = {
    "DATABASE_URL": ("api", "database_url", "str"),
    "XRAY_MIGRATIONS_DATABASE_URL": ("api", "migrations_database_url", "str"),
    "XRAY_DATABASE_POOLER": ("api", "database_pooler", "str"),
    "XRAY_DATABASE_POOL_SIZE": ("api", "database_pool_size", "str"),
    "XRAY_API_KEYS": ("api", "api_keys", "csv"),
    "XRAY_HOST": ("api", "host", "str"),
    "PORT": ("api", "port", "str"),
    "XRAY_PORT": ("api", "port", "str"),
    "XRAY_RUN_MIGRATIONS": ("api", "run_migrations", "str"),
    "XRAY_DEBUG": ("api", "debug", "str"),
    "XRAY_TRACE_URL_TEMPLATE": ("api", "trace_url_template", "str"),
    "XRAY_DATABASE_CONNECT_TIMEOUT": ("api", "database_connect_timeout", "str"),
    "XRAY_DATABASE_STATEMENT_TIMEOUT": ("api", "database_statement_timeout", "str"),
    "XRAY_BASE_URL": ("sdk", "base_url", "str"),
    "XRAY_API_KEY": ("sdk", "api_key", "str"),
    "XRAY_ENABLED": ("sdk", "enabled", "str"),
    "XRAY_SAMPLE_RATE": ("sdk", "sample_rate", "str"),
    "XRAY_SPOOL_DIR": ("sdk", "spool_dir", "str"),
}

_INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(ValueError):
    """The configuration is invalid; the message names the file and the dotted key.

    Example:
        >>> str(ConfigError("must be > 0", file="x.yaml", key="sdk.buffer_size"))
        'x.yaml: sdk.buffer_size: must be > 0'
    """

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None):
        self.file = file
        self.key = key
        self.reason = message
        prefix = "".join(f"{part}: " for part in (file, key) if part)
        super().__init__(f"{prefix}{message}")


class ConfigNotFoundError(ConfigError):
    """No config file was found and nothing else configures the SDK (it stays disabled)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True, frozen=False)


class SDKConfig(_Section):
    """The ``sdk:`` section: how an instrumented process records and sends.

    Example:
        >>> SDKConfig(base_url="http://127.0.0.1:8000").buffer_size
        1000
    """

    enabled: bool = True
    base_url: str = "http://localhost:8000"
    api_key: str | None = None
    # Recorded items held as objects before they are encoded; past it the recording
    # thread encodes the oldest itself (no drop, no wait): bounds the GC's work.
    buffer_size: int = Field(1000, ge=1, le=1_000_000)
    batch_size: int = Field(100, ge=1, le=10_000)
    flush_interval: float = Field(5.0, gt=0, le=3600)
    shutdown_timeout: float = Field(2.0, ge=0, le=600)
    request_timeout: float = Field(5.0, gt=0, le=600)
    # Retries are bounded by time; a count, when set, bounds them as well.
    max_retries: int | None = Field(None, ge=0)
    max_retry_seconds: float = Field(900.0, ge=0)
    max_buffer_bytes: int = Field(64 * 1024 * 1024, ge=64 * 1024)
    max_in_flight: int = Field(4, ge=1, le=64)
    # "auto": the per-user cache folder (the temporary folder where only it is
    # writable); a path; or null for no spool.
    spool_dir: str | None = "auto"
    max_spool_bytes: int = Field(1024 * 1024 * 1024, ge=0)
    default_detail: DetailLevel = DetailLevel.SUMMARY
    max_decisions_per_step: int = Field(10_000, ge=0)
    rejected_samples_per_reason: int = Field(10, ge=0)
    max_preview_bytes: int = Field(4096, ge=64)
    sample_rate: float = Field(1.0, ge=0.0, le=1.0)
    redact_keys: list[str] = Field(default_factory=lambda: list(DEFAULT_REDACT_KEYS))
    compress: bool = True

    @field_validator("base_url")
    @classmethod
    def _base_url_is_http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("spool_dir")
    @classmethod
    def _spool_off(cls, value: str | None) -> str | None:
        # From the environment, "off" is how to say null.
        if value is None or value.strip().lower() in ("", "none", "null", "off", "false"):
            return None
        return value


class APIConfig(_Section):
    """The ``api:`` section: how the server stores and serves.

    Example:
        >>> APIConfig().database_url
        'sqlite+aiosqlite:///./xray.db'
    """

    database_url: str = DEFAULT_DATABASE_URL
    # A direct URL for migrations when database_url goes through a pooler (Supabase and
    # Neon recommend it); null migrates through database_url.
    migrations_database_url: str | None = None
    # "transaction": a transaction-mode pooler (PgBouncer, Supavisor, Neon's pooled
    # endpoint) sits in front of PostgreSQL, so no session state may be relied on.
    database_pooler: Literal["none", "transaction"] = "none"
    # Connections each server process keeps open (and as many more under load);
    # 0 opens one per request (short-lived workers behind a pooler).
    database_pool_size: int = Field(10, ge=0, le=1000)
    debug: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    api_keys: list[str] = Field(default_factory=list)
    max_body_bytes: int = Field(5 * 1024 * 1024, ge=1024)
    run_migrations: bool = True
    retention_days: float | None = Field(None, gt=0)
    # A link from a run to the user's tracing UI, e.g. "https://grafana/explore?trace={trace_id}".
    trace_url_template: str | None = None
    # Seconds. Every database operation is bounded, so a database that stops answering
    # costs a request at most these before it answers 503: connecting (and waiting for a
    # pooled connection), and each statement (SQLite: waiting for the write lock).
    database_connect_timeout: float = Field(2.0, gt=0, le=600)
    database_statement_timeout: float = Field(3.0, gt=0, le=3600)

    @field_validator("api_keys")
    @classmethod
    def _drop_empty_keys(cls, value: list[str]) -> list[str]:
        # `${XRAY_API_KEYS:-}` interpolates to "": an unset variable means "no key".
        return [key for key in value if key]

    @field_validator("database_url", "migrations_database_url")
    @classmethod
    def _database_url_is_async(cls, value: str | None) -> str | None:
        # The seed and most platforms hand out plain libpq URLs; the server is async.
        return None if value is None else normalise_database_url(value)


class XRayConfig(_Section):
    """The whole ``xray.config.yaml``: an ``sdk:`` and an ``api:`` section."""

    sdk: SDKConfig = Field(default_factory=SDKConfig)
    api: APIConfig = Field(default_factory=APIConfig)


@dataclass(frozen=True)
class _RawConfig:
    data: dict[str, Any]
    file: Path | None


def find_config_file(
    start: Path | str | None = None, *, env: Mapping[str, str] | None = None
) -> Path | None:
    """Return the config file to use, or ``None`` when there is none.

    ``XRAY_CONFIG`` names a file explicitly (an error if it does not exist); otherwise the
    first ``xray.config.yaml`` from ``start`` (default: the cwd) up to the root wins.

    Example:
        >>> find_config_file("/")  # doctest: +SKIP
        None
    """
    environ = os.environ if env is None else env
    explicit = environ.get(CONFIG_ENV_VAR)
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"{CONFIG_ENV_VAR} names a file that does not exist", file=str(path))
        return path
    here = Path(start) if start is not None else Path.cwd()
    here = here.resolve()
    for directory in (here, *here.parents):
        candidate = directory / CONFIG_FILENAME
        if candidate.is_file():
            return candidate
    return None


def _interpolate(value: Any, *, key: str, file: str, environ: Mapping[str, str]) -> Any:
    if isinstance(value, str):

        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in environ:
                return environ[name]
            if default is not None:
                return default
            raise ConfigError(f"environment variable ${{{name}}} is not set", file=file, key=key)

        return _INTERPOLATION.sub(replace, value)
    if isinstance(value, dict):
        return {
            k: _interpolate(v, key=f"{key}.{k}" if key else str(k), file=file, environ=environ)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [
            _interpolate(v, key=f"{key}[{i}]", file=file, environ=environ)
            for i, v in enumerate(value)
        ]
    return value


def _read_file(path: Path, environ: Mapping[str, str]) -> dict[str, Any]:
    file = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read: {exc.strerror or exc}", file=file) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1}, column {where.column + 1})" if where else ""
        problem = getattr(exc, "problem", None) or "not valid YAML"
        raise ConfigError(f"invalid YAML{line}: {problem}", file=file) from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError("the top level must be a mapping with 'sdk:' and/or 'api:'", file=file)
    for section in ("sdk", "api"):
        if data.get(section) is None and section in data:
            data[section] = {}
        elif section in data and not isinstance(data[section], dict):
            raise ConfigError("must be a mapping", file=file, key=section)
    interpolated: dict[str, Any] = _interpolate(data, key="", file=file, environ=environ)
    return interpolated


def _load_raw(
    path: Path | str | None, start: Path | str | None, environ: Mapping[str, str]
) -> _RawConfig:
    file = Path(path) if path is not None else find_config_file(start, env=environ)
    if file is None:
        return _RawConfig({}, None)
    if not file.is_file():
        raise ConfigError("config file does not exist", file=str(file))
    return _RawConfig(_read_file(file, environ), file)


def _env_values(section: Section, environ: Mapping[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for variable, (target, key, kind) in ENV_OVERRIDES.items():
        if target != section or variable not in environ:
            continue
        raw = environ[variable]
        values[key] = (
            [part.strip() for part in raw.split(",") if part.strip()] if kind == "csv" else raw
        )
    return values


def _validate(
    raw: _RawConfig, section: Section, environ: Mapping[str, str], overrides: Mapping[str, Any]
) -> BaseModel:
    file = str(raw.file) if raw.file else None
    unknown = sorted(set(raw.data) - {"sdk", "api"})
    if unknown:
        raise ConfigError(
            f"unknown top-level key {unknown[0]!r} (expected 'sdk' and/or 'api')",
            file=file,
            key=unknown[0],
        )
    model: type[BaseModel] = SDKConfig if section == "sdk" else APIConfig
    merged: dict[str, Any] = dict(raw.data.get(section) or {})
    from_env = _env_values(section, environ)
    merged.update(from_env)
    merged.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(merged)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = ".".join(str(part) for part in error["loc"])
        top = str(error["loc"][0]) if error["loc"] else ""
        dotted = f"{section}.{location}" if location else section
        # Say where the bad value came from, so the user fixes the right place.
        origin = file
        if overrides.get(top) is not None:
            origin = "keyword argument"
        elif top in from_env:
            names = [
                v
                for v, (s, k, _) in ENV_OVERRIDES.items()
                if s == section and k == top and v in environ
            ]
            origin = f"environment variable {names[-1]}"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            allowed = ", ".join(model.model_fields)
            message = f"unknown key (allowed: {allowed})"
        elif top.endswith("database_url"):
            pass  # never echo a URL: it may hold a password
        elif "input" in error and not isinstance(error["input"], dict):
            message = f"{message} (got {error['input']!r})"
        raise ConfigError(message, file=origin, key=dotted) from exc


def load_config(
    path: Path | str | None = None,
    *,
    start: Path | str | None = None,
    env: Mapping[str, str] | None = None,
) -> XRayConfig:
    """Load and validate both sections of the config; raise ``ConfigError`` when invalid.

    Example:
        >>> cfg = load_config(env={})  # doctest: +SKIP
        >>> cfg.api.port
        8000
    """
    environ = os.environ if env is None else env
    raw = _load_raw(path, start, environ)
    sdk = _validate(raw, "sdk", environ, {})
    api = _validate(raw, "api", environ, {})
    assert isinstance(sdk, SDKConfig) and isinstance(api, APIConfig)
    return XRayConfig(sdk=sdk, api=api)


def load_sdk_config(
    path: Path | str | None = None,
    *,
    start: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> SDKConfig:
    """Resolve the ``sdk:`` section: keyword arguments > env > file > defaults.

    Raises ``ConfigNotFoundError`` when there is no config file and neither the
    environment nor the arguments name a ``base_url`` (the SDK then stays disabled), and
    ``ConfigError`` when what was found is invalid.

    Example:
        >>> load_sdk_config(env={}, base_url="http://127.0.0.1:8000").flush_interval
        5.0
    """
    environ = os.environ if env is None else env
    raw = _load_raw(path, start, environ)
    config = _validate(raw, "sdk", environ, overrides)
    assert isinstance(config, SDKConfig)
    configured = (
        raw.file is not None
        or overrides.get("base_url") is not None
        or "XRAY_BASE_URL" in environ
        or overrides.get("enabled") is True
    )
    if not configured:
        raise ConfigNotFoundError(
            f"no {CONFIG_FILENAME} found from {Path(start or Path.cwd()).resolve()} upward, "
            f"and neither {CONFIG_ENV_VAR}, XRAY_BASE_URL nor base_url= was given"
        )
    return config


def load_api_config(
    path: Path | str | None = None,
    *,
    start: Path | str | None = None,
    env: Mapping[str, str] | None = None,
    **overrides: Any,
) -> APIConfig:
    """Resolve the ``api:`` section: keyword arguments > env > file > defaults.

    A missing file is fine (the embedded SQLite default); an invalid one raises
    ``ConfigError`` naming the file and the key, which the server reports at start-up.

    Example:
        >>> load_api_config(env={}, port=9000).port
        9000
    """
    environ = os.environ if env is None else env
    raw = _load_raw(path, start, environ)
    config = _validate(raw, "api", environ, overrides)
    assert isinstance(config, APIConfig)
    return config
