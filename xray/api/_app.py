"""``create_app()``: the FastAPI application, its lifespan and its OpenAPI document.

Nothing is built at import time: the engine is created in the lifespan and disposed there.
At start-up the migrations run (unless ``run_migrations`` is off); if the database is not
reachable yet, the server starts anyway, answers 503, and keeps retrying in the background
until the database is there (Compose and Kubernetes start the API and the database
together).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from pydantic.json_schema import models_json_schema
from starlette.middleware import Middleware

from xray import __version__
from xray.api._middleware import AuthMiddleware, RequestLimitsMiddleware
from xray.api._migrate import upgrade_for_server
from xray.api._state import AppState, KeyCache, key_digests
from xray.api.db.session import create_engine, is_sqlite, session_factory
from xray.api.errors import install_error_handlers, is_database_unavailable
from xray.api.routes import (
    analysis,
    candidates,
    dashboard,
    health,
    ingest,
    otlp,
    pipelines,
    runs,
    steps,
)
from xray.api.services.retention import delete_older_than, retention_cutoff
from xray.shared import APIConfig

__all__ = ["create_app"]

logger = logging.getLogger("xray.api")

DOCS_ASSETS_URL = "/static/docs"
MIGRATION_RETRY_MAX_S = 10.0
RETENTION_INTERVAL_S = 3600.0

_DESCRIPTION = """\
X-Ray stores and queries the decisions of multi-step pipelines: runs, their steps
(with candidates in/out and elimination rate) and per-candidate decisions.

Authentication: when keys are configured, send `Authorization: Bearer <key>` or
`X-API-Key: <key>`. Every error answers `{"error", "message", "fields"}`.
Lists answer `{"items": [...], "next_cursor": ...}`; pass `cursor=<next_cursor>`.
"""


async def _migrate_until_ready(state: AppState) -> None:
    delay = 0.5
    while True:
        await asyncio.sleep(delay)
        try:
            await upgrade_for_server(state.config, state.engine)
        except Exception as exc:
            if not is_database_unavailable(exc):
                logger.exception("database migration failed")
                return
            logger.warning("database still unavailable (%s); retrying", exc.__class__.__name__)
            delay = min(delay * 2, MIGRATION_RETRY_MAX_S)
            continue
        state.schema_ready = True
        logger.info("database reachable and migrated")
        return


async def _retention_loop(state: AppState, days: float) -> None:
    while True:
        if state.schema_ready:
            try:
                async with state.sessions() as session, session.begin():
                    deleted = await delete_older_than(session, cutoff=retention_cutoff(days))
                if deleted.runs or deleted.steps or deleted.decisions:
                    logger.info("retention: deleted %s", deleted)
            except Exception as exc:
                logger.warning("retention pass failed: %s", exc.__class__.__name__)
        await asyncio.sleep(RETENTION_INTERVAL_S)


def _lifespan(config: APIConfig) -> Any:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        engine = create_engine(
            config.database_url,
            pooler=config.database_pooler,
            pool_size=config.database_pool_size,
            connect_timeout=config.database_connect_timeout,
            statement_timeout=config.database_statement_timeout,
        )
        state = AppState(
            config=config,
            engine=engine,
            sessions=session_factory(engine),
            keys=KeyCache(key_digests(config.api_keys)),
            write_lock=asyncio.Lock() if is_sqlite(config.database_url) else None,
        )
        if config.run_migrations:
            try:
                await upgrade_for_server(config, engine)
                state.schema_ready = True
            except Exception as exc:
                if not is_database_unavailable(exc):
                    await engine.dispose()
                    raise
                logger.warning(
                    "database unavailable at start-up (%s: %s); answering 503 and retrying",
                    exc.__class__.__name__,
                    exc,
                )
                state.background.append(asyncio.create_task(_migrate_until_ready(state)))
        else:
            state.schema_ready = True
        if config.retention_days:
            state.background.append(
                asyncio.create_task(_retention_loop(state, config.retention_days))
            )
        app.state.xray = state
        try:
            yield
        finally:
            for task in state.background:
                task.cancel()
            for task in state.background:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
            await engine.dispose()

    return lifespan


def _openapi(app: FastAPI) -> Any:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        # Ingest bodies are parsed by hand (for field-named errors); add their models.
        _, defs = models_json_schema(
            [(model, "validation") for model in ingest.REQUEST_MODELS],
            ref_template="#/components/schemas/{model}",
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for name, definition in defs.get("$defs", {}).items():
            components.setdefault(name, definition)
        app.openapi_schema = schema
        return schema

    return openapi


def create_app(config: APIConfig | None = None) -> FastAPI:
    """The X-Ray API as an ASGI app; the database is opened when it starts.

    Example:
        >>> from xray.shared import APIConfig
        >>> app = create_app(APIConfig(database_url="sqlite+aiosqlite:///./xray.db"))
        >>> app.title
        'X-Ray'
    """
    config = config or APIConfig()
    # /docs (Swagger UI) and /redoc load their scripts and styles from the package, under
    # /static/docs/ (public, like the dashboard's files), so they work offline.
    app = FastAPIOffline(
        static_url=DOCS_ASSETS_URL,
        favicon_url="/static/logo.svg",
        title="X-Ray",
        version=__version__,
        description=_DESCRIPTION,
        debug=config.debug,
        lifespan=_lifespan(config),
        middleware=[
            # Outermost first: a request without a key is refused before its body is read.
            Middleware(AuthMiddleware),
            Middleware(RequestLimitsMiddleware, max_bytes=config.max_body_bytes),
        ],
    )
    install_error_handlers(app)
    for module in (ingest, runs, steps, candidates, pipelines, analysis, health, otlp):
        app.include_router(module.router)
    dashboard.mount_dashboard(app)
    app.openapi = _openapi(app)  # type: ignore[method-assign]
    return app
