"""SQLite's ``run_metadata`` rows, kept equal to each run's stored metadata.

A run's metadata is merged in SQL at every upsert, so its rows are rebuilt from what was
stored (``json_each``, the same reading the migration backfilled with), never from the
request. PostgreSQL has no such table: its GIN index on ``runs.metadata`` answers the
filter.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import cast

from sqlalchemy import Table, delete, func, insert, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api.db.models import RunMetadataRow, RunRow

__all__ = ["index_run_metadata"]

_ROWS = cast(Table, RunMetadataRow.__table__)
# Far below SQLite's bound-parameter limit.
_CHUNK = 500


async def index_run_metadata(session: AsyncSession, ids: Iterable[uuid.UUID]) -> None:
    """Rebuild the ``run_metadata`` rows of the runs ``ids`` (SQLite; the caller's
    transaction)."""
    run_ids = list(dict.fromkeys(ids))
    if not run_ids or session.get_bind().dialect.name != "sqlite":
        return
    entries = func.json_each(RunRow.meta).table_valued("key", "type", "atom")
    for start in range(0, len(run_ids), _CHUNK):
        chunk = run_ids[start : start + _CHUNK]
        await session.execute(delete(_ROWS).where(_ROWS.c.run_id.in_(chunk)))
        scalars = (
            select(RunRow.id, entries.c.key, entries.c.type, entries.c.atom)
            .select_from(RunRow)
            .join(entries, true())
            .where(RunRow.id.in_(chunk), entries.c.type.not_in(("object", "array")))
        )
        await session.execute(insert(_ROWS).from_select(["run_id", "key", "type", "atom"], scalars))
