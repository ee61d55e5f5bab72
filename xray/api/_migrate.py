"""Alembic driven from code: the script location is found inside the installed package."""

from __future__ import annotations

import asyncio
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from xray.api.db.session import create_oneshot_engine, is_sqlite
from xray.shared import APIConfig

__all__ = [
    "alembic_config",
    "upgrade_connection",
    "upgrade_database",
    "upgrade_engine",
    "upgrade_for_server",
]

_MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """An Alembic ``Config`` for X-Ray's migrations, with no ``alembic.ini`` on disk."""
    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    # Passed as an attribute, not an ini option: URLs may contain `%`.
    config.attributes["database_url"] = database_url
    return config


def upgrade_connection(connection: Connection) -> None:
    """Upgrade to the newest schema on an open (sync-facing) connection."""
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


async def upgrade_engine(engine: AsyncEngine) -> None:
    """Upgrade to the newest schema using one of the engine's connections.

    The whole upgrade is one transaction, and the advisory lock that serialises
    concurrent runners is a transaction-level one, so it holds through a
    transaction-mode pooler too.
    """
    async with engine.begin() as connection:
        await connection.run_sync(upgrade_connection)


async def _upgrade_url(database_url: str) -> None:
    engine = create_oneshot_engine(database_url)
    try:
        await upgrade_engine(engine)
    finally:
        await engine.dispose()


async def upgrade_for_server(config: APIConfig, engine: AsyncEngine) -> None:
    """The server's start-up migration: through ``api.migrations_database_url`` when it
    is set (a direct URL beside a pooled one), else through ``api.database_url``."""
    if config.migrations_database_url:
        await _upgrade_url(config.migrations_database_url)
    elif is_sqlite(config.database_url):
        # The server's engine: an in-memory database exists only on its one connection.
        await upgrade_engine(engine)
    else:
        # A one-shot engine without the server's statement timeout: a migration may take
        # longer than any request should.
        await _upgrade_url(config.database_url)


def upgrade_database(database_url: str) -> None:
    """Create or upgrade X-Ray's tables in ``database_url`` (what ``xray db upgrade`` runs).

    Safe to run again and from several replicas at once (PostgreSQL takes an advisory lock).
    Accepts the URLs providers hand out (``postgres://…?sslmode=require``), direct or
    through a transaction-mode pooler.

    Example:
        >>> upgrade_database("sqlite+aiosqlite:///./xray.db")  # doctest: +SKIP
    """
    # Normalises postgres:// and sqlite:// URLs to their async drivers.
    url = APIConfig(database_url=database_url).database_url
    asyncio.run(_upgrade_url(url))
