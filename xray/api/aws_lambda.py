"""AWS Lambda entry points: ``xray.api.aws_lambda.handler`` serves the API behind API
Gateway (HTTP API or REST API) or a function URL; ``xray.api.aws_lambda.migrate`` runs the
migrations once per release. Needs the ``[lambda]`` extra (Mangum).

Configured like the server: ``DATABASE_URL``, ``XRAY_*`` variables, or an
``xray.config.yaml`` named by ``XRAY_CONFIG``.

A Lambda execution environment serves one request at a time and is frozen between
requests, so the app starts once per environment (on its first request) and stays
started: the engine, its connections and the key cache are reused by the requests that
follow. Mangum's own lifespan handling would start and stop the app around every
request. Unless ``api.database_pool_size`` is set, an environment keeps one connection
(and opens at most one more): hundreds of environments times a server-sized pool would
exhaust PostgreSQL's connections, which is why a pooler (RDS Proxy, PgBouncer) belongs
in front of it.

Example (``template.yaml``)::

    Handler: xray.api.aws_lambda.handler
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from xray.shared import APIConfig, ConfigError, load_api_config

__all__ = ["LambdaApp", "handler", "migrate"]

logger = logging.getLogger("xray.api")

LAMBDA_POOL_SIZE = 1


def _lambda_config(config: APIConfig | None) -> APIConfig:
    from xray.api.__main__ import unsupported_database

    config = config if config is not None else load_api_config()
    problem = unsupported_database(config.database_url)
    if problem:
        raise ConfigError(problem, key="api.database_url")
    if "database_pool_size" not in config.model_fields_set:
        config = config.model_copy(update={"database_pool_size": LAMBDA_POOL_SIZE})
    return config


class LambdaApp:
    """The API as a Lambda handler, started on the first invocation and kept started.

    Example:
        >>> app = LambdaApp(APIConfig(database_url="sqlite+aiosqlite:///./x.db"))
        >>> app({"version": "2.0", ...}, context)  # doctest: +SKIP
        {'statusCode': 200, ...}
    """

    def __init__(self, config: APIConfig | None = None) -> None:
        self._given = config
        self._loop: asyncio.AbstractEventLoop | None = None
        self._adapter: Callable[[Any, Any], dict[str, Any]] | None = None
        self._lifespan: contextlib.AbstractAsyncContextManager[Any] | None = None

    def _start(self) -> Callable[[Any, Any], dict[str, Any]]:
        from mangum import Mangum

        from xray.api._app import create_app

        config = _lambda_config(self._given)
        app = create_app(config)
        loop = asyncio.new_event_loop()
        # Mangum runs requests on the thread's current event loop: make it the one the
        # engine's connections belong to (a Lambda environment has one thread).
        asyncio.set_event_loop(loop)
        lifespan = app.router.lifespan_context(app)
        loop.run_until_complete(lifespan.__aenter__())
        self._loop, self._lifespan = loop, lifespan
        self._adapter = Mangum(app, lifespan="off")
        return self._adapter

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        adapter = self._adapter or self._start()
        asyncio.set_event_loop(self._loop)
        return adapter(event, context)

    def close(self) -> None:
        """Stop the app and close its connections (Lambda never calls this; tests do)."""
        if self._loop is None or self._lifespan is None:
            return
        self._loop.run_until_complete(self._lifespan.__aexit__(None, None, None))
        self._loop.close()
        asyncio.set_event_loop(None)
        self._loop = self._lifespan = self._adapter = None


handler = LambdaApp()


def migrate(event: Any = None, context: Any = None) -> dict[str, str]:
    """Upgrade the database to the newest schema (``xray db upgrade`` as a function):
    invoke it once per release, e.g. ``sam remote invoke MigrateFunction``.

    Uses ``api.migrations_database_url`` when set, else ``api.database_url``.
    """
    from xray.api._migrate import upgrade_database

    config = _lambda_config(None)
    upgrade_database(config.migrations_database_url or config.database_url)
    logger.info("database migrated")
    return {"status": "migrated"}
