"""The server-side commands: ``serve``, ``db upgrade`` and ``keys``.

They call ``xray.api`` in-process (it needs the ``[api]`` extra) with the resolved
``api:`` config, so they act on the same database the server uses.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
from typing import Any, TextIO

from xray.cli._errors import EXIT_NOT_FOUND, EXIT_USAGE, CLIError
from xray.cli._format import Column, render_table, timestamp
from xray.shared import APIConfig, ConfigError, load_api_config

__all__ = ["cmd_db_upgrade", "cmd_keys", "cmd_serve", "resolve_api_config"]


def _api_module() -> Any:
    try:
        import xray.api
    except ImportError as exc:
        raise CLIError(
            f"the X-Ray server is not installed ({exc}); install the [api] extra (pip install '.[api]' in the X-Ray checkout)"
        ) from exc
    return xray.api


def resolve_api_config(args: argparse.Namespace) -> APIConfig:
    """The ``api:`` config: flags > environment > ``xray.config.yaml`` > defaults."""
    overrides = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "database_url": getattr(args, "database_url", None),
    }
    try:
        return load_api_config(getattr(args, "config", None), **overrides)
    except ConfigError as exc:
        # Exit 2 like every other bad-config path (and `python -m xray.api`).
        raise CLIError(f"invalid configuration: {exc}", exit_code=EXIT_USAGE) from exc


def cmd_serve(args: argparse.Namespace, out: TextIO) -> int:
    config = resolve_api_config(args)
    api = _api_module()
    out.write(
        f"X-Ray API on http://{config.host}:{config.port} (database {_safe_url(config.database_url)})\n"
    )
    out.flush()
    with contextlib.suppress(KeyboardInterrupt):
        api.serve(config)
    return 0


def cmd_db_upgrade(args: argparse.Namespace, out: TextIO) -> int:
    config = resolve_api_config(args)
    api = _api_module()
    # A direct URL, when the server's own goes through a pooler.
    url = config.migrations_database_url or config.database_url
    try:
        api.upgrade_database(url)
    except Exception as exc:  # a driver or migration error: one line, not a traceback
        raise CLIError(f"database upgrade failed for {_safe_url(url)}: {_first_line(exc)}") from exc
    out.write(f"database {_safe_url(url)} is at the latest schema\n")
    return 0


def cmd_keys(args: argparse.Namespace, out: TextIO) -> int:
    config = resolve_api_config(args)
    api = _api_module()
    url = config.database_url
    try:
        if args.keys_command == "create":
            key_id, key = api.create_api_key(url, name=args.name)
            if args.json:
                out.write(json.dumps({"id": key_id, "name": args.name, "key": key}) + "\n")
            else:
                out.write(f"created key {key_id} ({args.name})\n")
                out.write(f"key: {key}\n")
                out.write("store it now: it is shown once and kept only as a hash\n")
            return 0
        if args.keys_command == "revoke":
            if not api.revoke_api_key(url, args.key_id):
                raise CLIError(f"no active key with id {args.key_id!r}", exit_code=EXIT_NOT_FOUND)
            out.write(f"revoked key {args.key_id}\n")
            return 0
        keys = [_as_dict(k) for k in api.list_api_keys(url)]
    except CLIError:
        raise
    except Exception as exc:
        raise CLIError(
            f"keys {args.keys_command} failed on {_safe_url(url)}: {_first_line(exc)}"
        ) from exc
    if args.json:
        out.write(json.dumps(keys, indent=2, default=str) + "\n")
        return 0
    if not keys:
        out.write("no API keys stored\n")
        return 0
    columns = [Column("ID"), Column("NAME"), Column("PREFIX"), Column("CREATED"), Column("REVOKED")]
    rows = [
        [
            str(k.get("id")),
            str(k.get("name") or ""),
            f"{k['prefix']}…" if k.get("prefix") else "",
            timestamp(k.get("created_at")),
            timestamp(k.get("revoked_at")) if k.get("revoked_at") else "",
        ]
        for k in keys
    ]
    out.write(render_table(columns, rows, stream=out) + "\n")
    return 0


def _as_dict(key: Any) -> dict[str, Any]:
    if dataclasses.is_dataclass(key) and not isinstance(key, type):
        return _as_dict(dataclasses.asdict(key))
    if isinstance(key, dict):
        return {k: v for k, v in key.items() if k not in ("hash", "key_hash")}
    if hasattr(key, "model_dump"):
        return _as_dict(key.model_dump())
    if hasattr(key, "_asdict"):
        return _as_dict(key._asdict())
    if hasattr(key, "__dict__"):
        return _as_dict(dict(vars(key)))
    return {"id": str(key)}


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def _safe_url(url: str) -> str:
    """The database URL without its password, for messages."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest:
        return url
    credentials, _, host = rest.rpartition("@")
    user = credentials.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in credentials else f"{scheme}://{user}@{host}"
