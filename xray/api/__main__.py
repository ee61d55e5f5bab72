"""``python -m xray.api``: serve with the resolved ``api:`` config.

Precedence: command-line flags > environment (``DATABASE_URL``, ``XRAY_HOST``, ``XRAY_PORT``
then the platform's ``PORT``, ...) > config file (``--config``, ``XRAY_CONFIG``, or
``xray.config.yaml`` found upward) > defaults.
An invalid configuration exits with status 2 and one line naming the file and the key.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

__all__ = ["main", "unsupported_database"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m xray.api",
        description="Run the X-Ray API server (ingest, queries, dashboard).",
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument(
        "--port", type=int, help="port to listen on (default: XRAY_PORT, PORT, api.port, 8000)"
    )
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default sqlite+aiosqlite:///./xray.db; env DATABASE_URL)",
    )
    parser.add_argument("--config", help="path of xray.config.yaml (default: found upward)")
    parser.add_argument(
        "--workers", type=int, help="server processes, PostgreSQL only (env XRAY_WORKERS; 1)"
    )
    return parser


def unsupported_database(database_url: str) -> str | None:
    """Why the server cannot use ``database_url``, or ``None`` when it can."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(database_url)
    except ArgumentError:
        return f"not a database URL: {database_url!r}"
    supported = {("sqlite", "aiosqlite"), ("postgresql", "asyncpg")}
    if (url.get_backend_name(), url.get_driver_name()) not in supported:
        return (
            f"unsupported database {url.drivername!r}; use sqlite+aiosqlite:///path.db "
            "or postgresql+asyncpg://user:password@host/db"
        )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, resolve the config, serve until interrupted; return the exit status."""
    args = _parser().parse_args(argv)
    from xray.shared import ConfigError, load_api_config

    try:
        flags = {"host": args.host, "port": args.port, "database_url": args.database_url}
        # Only flags actually given count as overrides (and get blamed for bad values).
        config = load_api_config(args.config, **{k: v for k, v in flags.items() if v is not None})
    except ConfigError as exc:
        print(f"xray api: invalid configuration: {exc}", file=sys.stderr)
        return 2
    problem = unsupported_database(config.database_url)
    if problem:
        print(f"xray api: invalid configuration: api.database_url: {problem}", file=sys.stderr)
        return 2
    from xray.api._server import serve, worker_count

    try:
        workers = worker_count(config, args.workers)
    except ValueError as exc:
        print(f"xray api: invalid configuration: {exc}", file=sys.stderr)
        return 2
    with contextlib.suppress(KeyboardInterrupt):
        serve(config, workers)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
