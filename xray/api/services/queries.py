"""The read side: every list filter of the HTTP API, keyset-paginated, in a stable order.

Hot queries read one table each: steps and decisions carry copies of ``pipeline``,
``run_id`` and start times, so filtering and ordering need no join. Every value from the
request is a bound parameter; nothing is formatted into SQL.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api._cursor import SortKey, after, decode_cursor, encode_cursor
from xray.api.db.models import DecisionRow, PipelineRow, RunRow, StepRow
from xray.api.services._filters import (
    metadata_candidates,
    metadata_filter,
    run_conditions,
    step_conditions,
)
from xray.api.services._rates import readmitted
from xray.shared import (
    Decision,
    DecisionOut,
    Page,
    PipelineOut,
    RunDetailOut,
    RunOut,
    RunStatus,
    StepOut,
    StepType,
)

__all__ = [
    "candidate_decisions",
    "get_run",
    "get_step",
    "list_pipelines",
    "list_runs",
    "list_step_decisions",
    "list_steps",
    "metadata_candidates",
    "run_out",
    "step_out",
]

T = TypeVar("T")

_RUN_KEYS = (
    SortKey(RunRow.started_at, True, "datetime"),
    SortKey(RunRow.id, True, "uuid"),
)
_STEP_KEYS = (
    SortKey(StepRow.started_at, True, "datetime"),
    SortKey(StepRow.id, True, "uuid"),
)
_STEP_DECISION_KEYS = (SortKey(DecisionRow.seq, False, "int"),)
_CANDIDATE_KEYS = (
    SortKey(DecisionRow.run_started_at, True, "datetime"),
    SortKey(DecisionRow.run_id, True, "uuid"),
    SortKey(DecisionRow.step_seq, False, "int"),
    # Steps with equal seq (OTLP spans carry none) read in the order they started.
    SortKey(DecisionRow.started_at, False, "datetime"),
    SortKey(DecisionRow.id, False, "int"),
)


def _page(
    rows: Sequence[Any],
    limit: int,
    tag: str,
    key_of: Any,
    convert: Any,
) -> tuple[list[Any], str | None]:
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = encode_cursor(tag, key_of(rows[-1])) if more and rows else None
    return [convert(row) for row in rows], cursor


def _paginate(
    query: Select[*tuple[Any, ...]],
    keys: Sequence[SortKey],
    tag: str,
    cursor: str | None,
    limit: int,
) -> Select[*tuple[Any, ...]]:
    if cursor:
        query = query.where(after(keys, decode_cursor(tag, cursor, keys)))
    return query.order_by(*(k.order() for k in keys)).limit(limit + 1)


def run_out(row: RunRow, step_count: int = 0) -> RunOut:
    """A stored run as the API answers it."""
    return RunOut.model_validate(_run_fields(row) | {"step_count": step_count})


def _run_fields(row: RunRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "pipeline": row.pipeline,
        "status": row.status,
        "started_at": row.started_at,
        "ended_at": row.ended_at,
        "duration_ms": row.duration_ms,
        "input": row.input,
        "output": row.output,
        "metadata": row.meta or {},
        "error": row.error,
        "sdk": row.sdk or {},
    }


def step_out(row: StepRow) -> StepOut:
    """A stored step as the API answers it."""
    return StepOut.model_validate(
        {
            "id": row.id,
            "run_id": row.run_id,
            "parent_id": row.parent_id,
            "seq": row.seq,
            "pipeline": row.pipeline,
            "name": row.name,
            "type": row.type,
            "status": row.status,
            "started_at": row.started_at,
            "ended_at": row.ended_at,
            "duration_ms": row.duration_ms,
            "input_count": row.input_count,
            "output_count": row.output_count,
            "elimination_rate": row.elimination_rate,
            "rejected_rate": row.rejected_rate,
            "readmitted": readmitted(row.input_count, row.output_count, row.reason_counts),
            "params": row.params or {},
            "reasoning": row.reasoning,
            "reason_counts": row.reason_counts or {},
            "input": row.input,
            "output": row.output,
            "metadata": row.meta or {},
            "error": row.error,
            "detail": row.detail,
            "candidates_total": row.candidates_total,
            "candidates_recorded": row.candidates_recorded,
        }
    )


def _decision_out(row: DecisionRow) -> DecisionOut:
    return DecisionOut.model_validate(
        {
            "id": row.id,
            "step_id": row.step_id,
            "run_id": row.run_id,
            "pipeline": row.pipeline,
            "step_name": row.step_name,
            "step_type": row.step_type,
            "step_seq": row.step_seq,
            "started_at": row.started_at,
            "candidate_key": row.candidate_key,
            "decision": row.decision,
            "reason": row.reason,
            "score": row.score,
            "rank": row.rank,
            "attributes": row.attributes or {},
        }
    )


def _step_count() -> Any:
    return (
        select(func.count())
        .select_from(StepRow)
        .where(StepRow.run_id == RunRow.id)
        .correlate(RunRow)
        .scalar_subquery()
    )


async def list_runs(
    session: AsyncSession,
    *,
    pipeline: str | None = None,
    status: RunStatus | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    step_type: StepType | None = None,
    step_name: str | None = None,
    min_elimination_rate: float | None = None,
    max_elimination_rate: float | None = None,
    reason: str | None = None,
    min_reason_rate: float | None = None,
    min_rejected_rate: float | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Page[RunOut]:
    """Runs, newest first, filtered; ``step_*`` filters keep runs having such a step.

    Example:
        >>> await list_runs(session, step_type=StepType.FILTER, min_elimination_rate=0.9)  # doctest: +SKIP
    """
    dialect = session.get_bind().dialect.name
    query = select(RunRow, _step_count().label("step_count")).where(
        *run_conditions(
            dialect,
            pipeline=pipeline,
            status=status,
            since=since,
            until=until,
            metadata=metadata,
            step_type=step_type,
            step_name=step_name,
            min_elimination_rate=min_elimination_rate,
            max_elimination_rate=max_elimination_rate,
            reason=reason,
            min_reason_rate=min_reason_rate,
            min_rejected_rate=min_rejected_rate,
        )
    )
    query = _paginate(query, _RUN_KEYS, "runs", cursor, limit)
    rows = (await session.execute(query)).all()
    items, next_cursor = _page(
        rows,
        limit,
        "runs",
        lambda r: (r[0].started_at, r[0].id),
        lambda r: run_out(r[0], r[1]),
    )
    return Page[RunOut](items=items, next_cursor=next_cursor)


async def get_run(session: AsyncSession, *, run_id: uuid.UUID) -> RunDetailOut | None:
    """One run with all its steps ordered by ``seq`` (then start time), or ``None``."""
    run = await session.get(RunRow, run_id)
    if run is None:
        return None
    steps = (
        await session.scalars(
            select(StepRow)
            .where(StepRow.run_id == run_id)
            .order_by(StepRow.seq, StepRow.started_at, StepRow.id)
        )
    ).all()
    return RunDetailOut.model_validate(
        _run_fields(run) | {"step_count": len(steps), "steps": [step_out(s) for s in steps]}
    )


async def list_steps(
    session: AsyncSession,
    *,
    type: StepType | None = None,
    name: str | None = None,
    pipeline: str | None = None,
    run_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    min_elimination_rate: float | None = None,
    max_elimination_rate: float | None = None,
    min_input_count: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    reason: str | None = None,
    min_reason_rate: float | None = None,
    min_rejected_rate: float | None = None,
    max_rejected_rate: float | None = None,
    metadata: Sequence[tuple[str, str]] = (),
    limit: int = 50,
    cursor: str | None = None,
) -> Page[StepOut]:
    """Steps across every pipeline, newest first.

    Example:
        >>> await list_steps(session, type=StepType.FILTER, min_elimination_rate=0.9)  # doctest: +SKIP
    """
    query = select(StepRow)
    conditions: list[ColumnElement[bool]] = []
    if type is not None:
        conditions.append(StepRow.type == type.value)
    if name is not None:
        conditions.append(StepRow.name == name)
    if pipeline is not None:
        conditions.append(StepRow.pipeline == pipeline)
    if run_id is not None:
        conditions.append(StepRow.run_id == run_id)
    if status is not None:
        conditions.append(StepRow.status == status.value)
    if min_elimination_rate is not None:
        conditions.append(StepRow.elimination_rate >= min_elimination_rate)
    if max_elimination_rate is not None:
        conditions.append(StepRow.elimination_rate <= max_elimination_rate)
    if min_input_count is not None:
        conditions.append(StepRow.input_count >= min_input_count)
    if since is not None:
        conditions.append(StepRow.started_at >= since)
    if until is not None:
        conditions.append(StepRow.started_at <= until)
    dialect = session.get_bind().dialect.name
    conditions += step_conditions(
        dialect,
        reason=reason,
        min_reason_rate=min_reason_rate,
        min_rejected_rate=min_rejected_rate,
        max_rejected_rate=max_rejected_rate,
    )
    if metadata:
        runs = select(RunRow.id).where(*(metadata_filter(dialect, k, v) for k, v in metadata))
        conditions.append(StepRow.run_id.in_(runs))
    query = _paginate(query.where(*conditions), _STEP_KEYS, "steps", cursor, limit)
    rows = (await session.scalars(query)).all()
    items, next_cursor = _page(rows, limit, "steps", lambda r: (r.started_at, r.id), step_out)
    return Page[StepOut](items=items, next_cursor=next_cursor)


async def get_step(session: AsyncSession, *, step_id: uuid.UUID) -> StepOut | None:
    """One step, or ``None``."""
    row = await session.get(StepRow, step_id)
    return step_out(row) if row is not None else None


async def list_step_decisions(
    session: AsyncSession,
    *,
    step_id: uuid.UUID,
    decision: Decision | None = None,
    reason: str | None = None,
    candidate_key: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[DecisionOut] | None:
    """A step's decisions in the order the SDK recorded them; ``None`` if no such step."""
    if await session.get(StepRow, step_id) is None:
        return None
    query = select(DecisionRow).where(DecisionRow.step_id == step_id)
    if decision is not None:
        query = query.where(DecisionRow.decision == decision.value)
    if reason is not None:
        query = query.where(DecisionRow.reason == reason)
    if candidate_key is not None:
        query = query.where(DecisionRow.candidate_key == candidate_key)
    tag = f"decisions:{step_id}"
    query = _paginate(query, _STEP_DECISION_KEYS, tag, cursor, limit)
    rows = (await session.scalars(query)).all()
    items, next_cursor = _page(rows, limit, tag, lambda r: (r.seq,), _decision_out)
    return Page[DecisionOut](items=items, next_cursor=next_cursor)


async def candidate_decisions(
    session: AsyncSession,
    *,
    candidate_key: str,
    run_id: uuid.UUID | None = None,
    pipeline: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Page[DecisionOut]:
    """Every decision about one candidate: newest run first, then by step order.

    Example:
        >>> await candidate_decisions(session, candidate_key="B07-laptop-stand")  # doctest: +SKIP
    """
    query = select(DecisionRow).where(DecisionRow.candidate_key == candidate_key)
    if run_id is not None:
        query = query.where(DecisionRow.run_id == run_id)
    if pipeline is not None:
        query = query.where(DecisionRow.pipeline == pipeline)
    query = _paginate(query, _CANDIDATE_KEYS, "candidate", cursor, limit)
    rows = (await session.scalars(query)).all()
    items, next_cursor = _page(
        rows,
        limit,
        "candidate",
        lambda r: (r.run_started_at, r.run_id, r.step_seq, r.started_at, r.id),
        _decision_out,
    )
    return Page[DecisionOut](items=items, next_cursor=next_cursor)


async def list_pipelines(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None
) -> Page[PipelineOut]:
    """Pipeline names with their run count and latest start, by name (counts kept at
    ingest in the small ``pipelines`` table, so this never groups the runs)."""
    keys = (SortKey(PipelineRow.pipeline, False, "str"),)
    query = select(PipelineRow.pipeline, PipelineRow.run_count, PipelineRow.last_started_at)
    query = _paginate(query.where(PipelineRow.run_count > 0), keys, "pipelines", cursor, limit)
    rows = (await session.execute(query)).all()

    def convert(row: Any) -> PipelineOut:
        return PipelineOut(pipeline=row[0], run_count=row[1], last_started_at=row[2])

    items, next_cursor = _page(rows, limit, "pipelines", lambda r: (r[0],), convert)
    return Page[PipelineOut](items=items, next_cursor=next_cursor)
