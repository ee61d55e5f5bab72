"""The async engine, built per app in its lifespan (never at import time)."""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.pool import NullPool, StaticPool

from xray.api.db._stored_json import load_stored_json
from xray.shared import DatabaseURL, parse_database_url

__all__ = ["create_engine", "create_oneshot_engine", "is_sqlite", "session_factory"]

# Defaults of api.database_connect_timeout and api.database_statement_timeout.
CONNECT_TIMEOUT_S = 2.0
STATEMENT_TIMEOUT_S = 3.0
# SQLite's memory map and page cache per connection (the map is address space, not memory).
_SQLITE_MMAP_BYTES = 1 << 30
_SQLITE_CACHE_KIB = 16 * 1024


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
    # Reads through a memory map (pages shared with the OS cache, no read() per page) and
    # a larger page cache than the default: an index walk over a large file then costs
    # no system calls once its pages are cached.
    cursor.execute(f"PRAGMA mmap_size={_SQLITE_MMAP_BYTES:d}")
    cursor.execute(f"PRAGMA cache_size=-{_SQLITE_CACHE_KIB:d}")
    cursor.close()


def _reject_closed(_dbapi_connection: Any, record: Any, _proxy: Any) -> None:
    # asyncpg marks a connection closed as soon as the server ends it (restart, failover,
    # a terminated backend): such a connection is replaced at checkout, with no round trip
    # (a pre-ping costs three on asyncpg: BEGIN, the ping, ROLLBACK).
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the server closed this connection")


def _unnamed_statement() -> str:
    # asyncpg prepares "" as PostgreSQL's unnamed statement and, with its statement cache
    # off, sends Parse again with every Bind: nothing is left on a server connection that
    # a transaction pooler may hand to another client next.
    return ""


def _postgres_connect_args(
    parsed: DatabaseURL, pooler: str, connect_timeout: float, statement_timeout: float | None
) -> dict[str, Any]:
    """asyncpg's arguments for a libpq-style URL."""
    args: dict[str, Any] = {
        **parsed.connect_args,
        # Opening a connection and every statement (the pre-ping included) are bounded, so
        # a database that stops answering (a partition) costs a request seconds, not the
        # outage. A connect_timeout in the URL wins over the setting.
        "timeout": parsed.connect_timeout or connect_timeout,
    }
    if statement_timeout is not None:
        args["command_timeout"] = statement_timeout
    settings = dict(parsed.connect_args.get("server_settings", {}))
    if pooler == "transaction":
        # A transaction pooler runs each transaction on whichever server connection is
        # free: no prepared statement may outlive its transaction, in SQLAlchemy's cache
        # or asyncpg's. Unknown startup parameters are refused by PgBouncer (and would
        # apply to only one server connection). Statements prepared afresh are planned
        # for their values every time, so plan_cache_mode is not needed here.
        args.update(
            statement_cache_size=0,
            prepared_statement_cache_size=0,
            prepared_statement_name_func=_unnamed_statement,
        )
    else:
        # Plan every statement for its actual values: after five executions PostgreSQL
        # may switch a prepared statement to a generic plan, and for `IN ($1, ..., $n)`
        # on a large table that plan can be a sequential scan.
        settings = {"plan_cache_mode": "force_custom_plan", **settings}
    if settings:
        args["server_settings"] = settings
    return args


def create_engine(
    database_url: str,
    *,
    pooler: str = "none",
    pool_size: int = 10,
    connect_timeout: float = CONNECT_TIMEOUT_S,
    statement_timeout: float | None = STATEMENT_TIMEOUT_S,
) -> AsyncEngine:
    """An async engine that replaces pooled connections the database closed, so the server
    recovers by itself after the database comes back (PostgreSQL: asyncpg's own record of
    the connection, checked at checkout; SQLite: a pre-ping).

    ``pooler="transaction"`` keeps no session state a transaction-mode pooler cannot
    carry; ``pool_size=0`` opens a connection per checkout (one-shot commands, serverless
    workers).

    Example:
        >>> engine = create_engine("sqlite+aiosqlite:///./xray.db")  # doctest: +SKIP
    """
    # Stored JSON is read through the one loader that copes with values written before
    # the depth rule existed (see _stored_json).
    kwargs: dict[str, Any] = {"json_deserializer": load_stored_json}
    if pool_size == 0:
        kwargs["poolclass"] = NullPool
    parsed = parse_database_url(database_url)
    url = make_url(parsed.url)
    if url.get_backend_name() == "sqlite":
        if url.database in (None, "", ":memory:"):
            # One shared connection, or every session would see a different empty database.
            kwargs.update(poolclass=StaticPool, connect_args={"check_same_thread": False})
        engine = create_async_engine(url, pool_pre_ping=True, **kwargs)
        lock_wait = STATEMENT_TIMEOUT_S if statement_timeout is None else statement_timeout
        pragmas = functools.partial(_sqlite_pragmas, int(lock_wait * 1000))
        event.listen(engine.sync_engine, "connect", pragmas)
        return engine
    if url.get_backend_name() == "postgresql":
        kwargs["connect_args"] = _postgres_connect_args(
            parsed, pooler, connect_timeout, statement_timeout
        )
        if pool_size:
            # Waiting for a pooled connection is bounded like opening one.
            kwargs.update(pool_size=pool_size, max_overflow=pool_size, pool_timeout=connect_timeout)
        engine = create_async_engine(url, **kwargs)
        event.listen(engine.sync_engine, "checkout", _reject_closed)
        return engine
    return create_async_engine(url, pool_pre_ping=True, **kwargs)


def create_oneshot_engine(database_url: str) -> AsyncEngine:
    """An engine for a command that connects once (migrations, ``xray keys``, retention):
    no pool, and the pooler-safe settings, which cost nothing when nothing is reused and
    let the same command run through a transaction pooler or straight to PostgreSQL."""
    # No statement timeout: a migration may rewrite a large table.
    return create_engine(database_url, pooler="transaction", pool_size=0, statement_timeout=None)


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions that keep loaded values after commit (responses are built after it)."""
    return async_sessionmaker(engine, expire_on_commit=False)
