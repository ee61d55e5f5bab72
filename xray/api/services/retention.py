"""Retention by age (``api.retention_days``): whole runs older than the cutoff go.

Steps and decisions carry their run's ``run_started_at``, so each table is cleaned with
one indexed range delete and a run disappears together with its steps and decisions.
(With time-partitioned tables this becomes dropping old partitions.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api.db.models import DecisionRow, RunMetadataRow, RunRow, StepRow
from xray.api.services.ingest import recount_pipelines

__all__ = ["Deleted", "delete_older_than", "retention_cutoff"]


@dataclass(frozen=True)
class Deleted:
    """How many rows a retention pass removed."""

    runs: int
    steps: int
    decisions: int


def retention_cutoff(retention_days: float, *, now: datetime | None = None) -> datetime:
    """The start time before which runs are deleted.

    Example:
        >>> retention_cutoff(1, now=datetime(2024, 1, 2, tzinfo=UTC)).day
        1
    """
    return (now or datetime.now(UTC)) - timedelta(days=retention_days)


async def delete_older_than(session: AsyncSession, *, cutoff: datetime) -> Deleted:
    """Delete runs started before ``cutoff`` with their steps and decisions (caller commits)."""
    decisions = await session.execute(
        delete(DecisionRow).where(DecisionRow.run_started_at < cutoff)
    )
    steps = await session.execute(delete(StepRow).where(StepRow.run_started_at < cutoff))
    if session.get_bind().dialect.name == "sqlite":
        # The metadata filter's side table (SQLite only) goes with its runs.
        await session.execute(
            delete(RunMetadataRow).where(
                RunMetadataRow.run_id.in_(select(RunRow.id).where(RunRow.started_at < cutoff))
            )
        )
    runs = await session.execute(delete(RunRow).where(RunRow.started_at < cutoff))
    if getattr(runs, "rowcount", 0):
        await recount_pipelines(session)
    return Deleted(
        runs=int(getattr(runs, "rowcount", 0)),
        steps=int(getattr(steps, "rowcount", 0)),
        decisions=int(getattr(decisions, "rowcount", 0)),
    )
