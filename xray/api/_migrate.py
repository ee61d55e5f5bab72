"""Alembic driven from code: the script location is found inside the installed package."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

__all__ = ["alembic_config", "upgrade_connection", "upgrade_database", "upgrade_engine"]

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
    """Upgrade to the newest schema using one of the engine's connections."""
    async with engine.begin() as connection:
        await connection.run_sync(upgrade_connection)


def upgrade_database(database_url: str) -> None:
    """Create or upgrade X-Ray's tables in ``database_url`` (what ``xray db upgrade`` runs).

    Safe to run again and from several replicas at once (PostgreSQL takes an advisory lock).

    Example:
        >>> upgrade_database("sqlite+aiosqlite:///./xray.db")  # doctest: +SKIP
    """
    from xray.shared import APIConfig

    # Normalises postgres:// and sqlite:// URLs to their async drivers.
    url = APIConfig(database_url=database_url).database_url
    command.upgrade(alembic_config(url), "head")
