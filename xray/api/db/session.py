"""The async engine, built per app in its lifespan (never at import time)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import StaticPool

from xray.api.db._stored_json import load_stored_json

__all__ = ["create_engine", "is_sqlite", "session_factory"]

# Defaults of api.database_connect_timeout and api.database_statement_timeout.
CONNECT_TIMEOUT_S = 2.0
STATEMENT_TIMEOUT_S = 3.0


def is_sqlite(database_url: str) -> bool:
    """Whether the URL names an SQLite database (embedded, one writer at a time)."""
    return make_url(database_url).get_backend_name() == "sqlite"


def _sqlite_pragmas(busy_timeout_ms: int, dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run while a batch is written; busy_timeout makes a second process
    # (e.g. the CLI) wait for the lock, for at most the statement timeout, then fail (503).
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
    cursor.close()


def create_engine(
    database_url: str,
    *,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    statement_timeout: float = STATEMENT_TIMEOUT_S,
) -> AsyncEngine:
    """An async engine that re-checks pooled connections, so the server recovers by
    itself after the database comes back.

    Example:
        >>> engine = create_engine("sqlite+aiosqlite:///./xray.db")  # doctest: +SKIP
    """
    url = make_url(database_url)
    # Stored JSON is read through the one loader that copes with values written before
    # the depth rule existed (see _stored_json).
    kwargs: dict[str, Any] = {"pool_pre_ping": True, "json_deserializer": load_stored_json}
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            # One shared connection, or every session would see a different empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        engine = create_async_engine(url, **kwargs)
        pragmas = functools.partial(_sqlite_pragmas, int(statement_timeout * 1000))
        event.listen(engine.sync_engine, "connect", pragmas)
        return engine
    if url.get_backend_name() == "postgresql":
        kwargs.update(
            pool_size=10,
            max_overflow=10,
            # Waiting for a pooled connection, opening one, and every statement (the
            # pre-ping included: asyncpg's command_timeout) are bounded, so a database
            # that stops answering (a partition) costs a request seconds, not the outage.
            pool_timeout=connect_timeout,
            connect_args={
                "timeout": connect_timeout,
                "command_timeout": statement_timeout,
                # Plan every statement for its actual values: after five executions
                # PostgreSQL may switch a prepared statement to a generic plan, and for
                # `IN ($1, ..., $n)` on a large table that plan can be a sequential scan.
                "server_settings": {"plan_cache_mode": "force_custom_plan"},
            },
        )
    return create_async_engine(url, **kwargs)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit (responses are built after it)."""
    return async_sessionmaker(engine, expire_on_commit=False)
