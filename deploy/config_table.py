"""Print the configuration table of docs/configuration.md from the config models themselves.

    .venv/bin/python deploy/config_table.py

Keys and defaults come from ``xray.shared.SDKConfig`` / ``APIConfig``, environment
overrides from ``xray.shared.ENV_OVERRIDES``; only the one-line meanings are written here.
tests/deploy/test_config_example.py checks that every field has exactly one meaning, so a
new setting cannot ship undocumented.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel

from xray.shared import ENV_OVERRIDES, APIConfig, SDKConfig

MEANINGS: dict[str, str] = {
    "sdk.enabled": "Record at all; `false` turns every decorator into a pass-through.",
    "sdk.base_url": "Where the X-Ray API listens.",
    "sdk.api_key": "API key sent with every request; usually read from the environment (`${XRAY_API_KEY}`).",
    "sdk.buffer_size": "Recorded steps/runs held as objects before they are encoded; past it the recording thread encodes the oldest itself (nothing dropped, nothing waits on I/O).",
    "sdk.batch_size": "Items encoded at a time; requests are sized by bytes (256 KiB of JSON).",
    "sdk.flush_interval": "Seconds between background sends.",
    "sdk.shutdown_timeout": "Seconds spent sending what is left when the process exits.",
    "sdk.request_timeout": "Seconds before one request to the API gives up.",
    "sdk.max_retries": "Optional cap on retries of a failed batch; `null`: bounded by `max_retry_seconds` only.",
    "sdk.max_retry_seconds": "How long a batch that fails (network, timeout, 429, 5xx) is retried, with backoff, before it is dropped and counted.",
    "sdk.max_buffer_bytes": "Memory for encoded, compressed batches waiting to be sent (and in flight); beyond it they go to the spool.",
    "sdk.max_in_flight": "Requests to the API at the same time (keep-alive connections).",
    "sdk.spool_dir": "Disk spool for batches when memory is full, the API is away, or at exit: `auto` (per-user cache folder, else the temporary folder), a path, or `null` (off).",
    "sdk.max_spool_bytes": "Disk budget of the spool; past it (and memory full) batches are dropped and counted.",
    "sdk.default_detail": "What a step stores unless it says otherwise: `summary`, `sampled` or `full`.",
    "sdk.max_decisions_per_step": "Hard cap on decisions recorded for one step.",
    "sdk.rejected_samples_per_reason": "At `sampled`: rejected candidates kept per reason.",
    "sdk.max_preview_bytes": "Size cap of each input/output/params preview.",
    "sdk.sample_rate": "Fraction of runs recorded, 0.0 to 1.0.",
    "sdk.redact_keys": "Keys whose values are replaced by `[REDACTED]` in anything recorded.",
    "sdk.compress": "gzip request bodies.",
    "api.database_url": "SQLAlchemy URL of the store; plain `postgres://`, `postgresql://` and `sqlite://` are switched to the async drivers, libpq parameters (`sslmode`, ...) work.",
    "api.migrations_database_url": "A direct URL for migrations when `database_url` goes through a pooler; `null` uses `database_url`.",
    "api.database_pooler": "`transaction` behind a transaction-mode pooler (PgBouncer, Supabase, Neon pooled): no session state is used.",
    "api.database_pool_size": "Connections kept per server process (as many more under load); `0` opens one per request.",
    "api.debug": "Debug logging and tracebacks in error answers; never in production.",
    "api.host": "Interface to listen on (`0.0.0.0` in a container).",
    "api.port": "TCP port; `XRAY_PORT` wins over the platform's `PORT`.",
    "api.api_keys": "Accepted keys; empty = no authentication. Keys from `xray keys create` are accepted too.",
    "api.max_body_bytes": "Largest request body, after gzip decompression (413 above).",
    "api.run_migrations": "Migrate the database at start-up; `false` where a Job runs `xray db upgrade`.",
    "api.retention_days": "Delete runs (with their steps and decisions) started more than this many days ago, checked hourly; `null` keeps everything.",
    "api.trace_url_template": "Link from a run recorded inside an OpenTelemetry span to your tracing UI: a URL with `{trace_id}` (and `{span_id}`); `null` shows no link.",
    "api.database_connect_timeout": "Seconds to open a database connection or wait for a pooled one; past it the request answers 503.",
    "api.database_statement_timeout": "Seconds one database statement may take (SQLite: waiting for the write lock); past it the request answers 503.",
}

SECTIONS: tuple[tuple[str, type[BaseModel]], ...] = (("sdk", SDKConfig), ("api", APIConfig))


def render_default(value: Any) -> str:
    """A default as it would be written in ``xray.config.yaml``."""
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, list):
        return "`[]`" if not value else ", ".join(f"`{item}`" for item in value)
    return f"`{value}`"


def env_variable(section: str, key: str) -> str:
    """The environment variable that overrides ``section.key``, or an empty string."""
    return ", ".join(
        f"`{name}`" + (" (comma-separated)" if kind == "csv" else "")
        for name, (s, k, kind) in ENV_OVERRIDES.items()
        if (s, k) == (section, key)
    )


def rows() -> list[tuple[str, str, str, str]]:
    """``(key, env, default, meaning)`` for every field of both sections, in model order."""
    table: list[tuple[str, str, str, str]] = []
    for section, model in SECTIONS:
        defaults = model()
        for key in model.model_fields:
            dotted = f"{section}.{key}"
            table.append(
                (
                    f"`{dotted}`",
                    env_variable(section, key),
                    render_default(getattr(defaults, key)),
                    MEANINGS[dotted],
                )
            )
    return table


def markdown() -> str:
    """The table as Markdown."""
    lines = ["| key | env override | default | meaning |", "|---|---|---|---|"]
    lines += [f"| {key} | {env} | {default} | {meaning} |" for key, env, default, meaning in rows()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown(), end="")
