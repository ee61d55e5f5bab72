"""``apply_retention()``: one retention pass from code or the CLI (the server also runs
one at start and hourly when ``api.retention_days`` is set)."""

from __future__ import annotations

import asyncio

from xray.api.db.session import create_oneshot_engine, session_factory
from xray.api.services.retention import Deleted, delete_older_than, retention_cutoff
from xray.shared import APIConfig

__all__ = ["apply_retention"]


def apply_retention(database_url: str, *, retention_days: float) -> Deleted:
    """Delete runs (with their steps and decisions) started more than ``retention_days``
    ago; return how many rows went.

    Example:
        >>> apply_retention("sqlite+aiosqlite:///./xray.db", retention_days=30)  # doctest: +SKIP
        Deleted(runs=12, steps=96, decisions=4410)
    """
    if retention_days <= 0:
        raise ValueError("retention_days must be > 0")
    url = APIConfig(database_url=database_url).database_url

    async def main() -> Deleted:
        engine = create_oneshot_engine(url)
        try:
            async with session_factory(engine)() as session, session.begin():
                return await delete_older_than(session, cutoff=retention_cutoff(retention_days))
        finally:
            await engine.dispose()

    return asyncio.run(main())
