"""``python -m xray.api``: serve with the resolved ``api:`` config.

Precedence: command-line flags > environment (``DATABASE_URL``, ``XRAY_HOST``, ...) >
config file (``--config``, ``XRAY_CONFIG``, or ``xray.config.yaml`` found upward) > defaults.
An invalid configuration exits with status 2 and one line naming the file and the key.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m xray.api",
        description="Run the X-Ray API server (ingest, queries, dashboard).",
    )
    parser.add_argument("--host", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port to listen on (default 8000)")
    parser.add_argument(
        "--database-url",
        help="SQLAlchemy URL (default sqlite+aiosqlite:///./xray.db; env DATABASE_URL)",
    )
    parser.add_argument("--config", help="path of xray.config.yaml (default: found upward)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse flags, resolve the config, serve until interrupted; return the exit status."""
    args = _parser().parse_args(argv)
    from xray.shared import ConfigError, load_api_config

    try:
        config = load_api_config(
            args.config, host=args.host, port=args.port, database_url=args.database_url
        )
    except ConfigError as exc:
        print(f"xray api: invalid configuration: {exc}", file=sys.stderr)
        return 2
    from xray.api._server import serve

    with contextlib.suppress(KeyboardInterrupt):
        serve(config)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
