"""The async engine, built per app in its lifespan (never at import time)."""

from __future__ import annotations

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

__all__ = ["create_engine", "is_sqlite", "session_factory"]

# How long a connection attempt may take before the request answers 503.
CONNECT_TIMEOUT_S = 5.0


def is_sqlite(database_url: str) -> bool:
    """Whether the URL names an SQLite database (embedded, one writer at a time)."""
    return make_url(database_url).get_backend_name() == "sqlite"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # WAL lets readers run while a batch is written; busy_timeout makes a second process
    # (e.g. the CLI) wait for the lock instead of failing at once.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=5000")
    cursor.close()


def create_engine(database_url: str) -> AsyncEngine:
    """An async engine that re-checks pooled connections, so the server recovers by
    itself after the database comes back.

    Example:
        >>> engine = create_engine("sqlite+aiosqlite:///./xray.db")  # doctest: +SKIP
    """
    url = make_url(database_url)
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            # One shared connection, or every session would see a different empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
        return engine
    if url.get_backend_name() == "postgresql":
        kwargs.update(
            pool_size=10,
            max_overflow=10,
            pool_timeout=CONNECT_TIMEOUT_S,
            connect_args={
                "timeout": CONNECT_TIMEOUT_S,
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
