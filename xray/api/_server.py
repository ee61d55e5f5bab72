"""``serve()``: run the API with uvicorn, as ``python -m xray.api`` and ``xray serve`` do.

``XRAY_WORKERS`` (or ``--workers``) > 1 serves from that many processes sharing the port
(PostgreSQL only: SQLite has one writer, so the server refuses more than one worker there).
"""

from __future__ import annotations

import os
from typing import Any

from xray.shared import APIConfig

__all__ = ["serve", "worker_count"]

# How the parent hands the resolved config to worker processes (they import the app).
_CONFIG_ENV = "XRAY_API_CONFIG_JSON"


def worker_count(config: APIConfig, requested: int | None = None) -> int:
    """The number of server processes: ``requested``, else ``XRAY_WORKERS``, else 1.

    Raises ``ValueError`` naming the setting when it is not a positive integer, or when
    more than one is asked for on SQLite.
    """
    from xray.api.db.session import is_sqlite

    raw = requested if requested is not None else os.environ.get("XRAY_WORKERS", "1")
    try:
        workers = int(raw)
    except ValueError:
        raise ValueError(f"XRAY_WORKERS: expected a positive integer, got {raw!r}") from None
    if workers < 1:
        raise ValueError(f"XRAY_WORKERS: expected a positive integer, got {raw!r}")
    if workers > 1 and is_sqlite(config.database_url):
        raise ValueError(
            "XRAY_WORKERS: SQLite has one writer, so it is served by one process; "
            "use PostgreSQL for more workers"
        )
    return workers


def _worker_app() -> object:
    from xray.api._app import create_app

    return create_app(APIConfig.model_validate_json(os.environ[_CONFIG_ENV]))


def serve(config: APIConfig, workers: int | None = None) -> None:
    """Serve until interrupted (blocking); SIGTERM/Ctrl-C shut down gracefully.

    ``workers`` defaults to ``XRAY_WORKERS`` (see ``worker_count``).

    Example:
        >>> serve(APIConfig(port=8000))  # doctest: +SKIP
    """
    import uvicorn

    from xray.api._app import create_app

    workers = worker_count(config, workers)
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "log_level": "debug" if config.debug else "info",
        # Keep-alive a little longer than typical SDK flush intervals.
        "timeout_keep_alive": 10,
    }
    if workers > 1:
        os.environ[_CONFIG_ENV] = config.model_dump_json()
        uvicorn.run("xray.api._server:_worker_app", factory=True, workers=workers, **options)
        return
    uvicorn.run(create_app(config), **options)
