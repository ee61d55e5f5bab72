"""The read side: every list filter of the HTTP API, keyset-paginated, in a stable order.

Hot queries read one table each: steps carry copies of ``pipeline`` and the run's start, so
filtering and ordering need no join; a decision's step identity is read from ``steps`` by
primary key. Every value from the request is a bound parameter; nothing is formatted into
SQL. Rows are fetched as plain columns (stored JSON as text) and answered as JSON bodies
with the fields of the ``*Out`` models (``_json_out``), with no ORM object or model per
row.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import Response
from sqlalchemy import ARRAY, ColumnElement, Select, Text, Uuid, any_, cast, func, literal, select
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api._cursor import SortKey, after, decode_cursor, encode_cursor
from xray.api.db.models import (
    DECISION_CODES,
    DECISION_NAMES,
    DecisionRow,
    PipelineRow,
    RunRow,
    StepRow,
)
from xray.api.services._filters import (
    RunFilters,
    StepFilters,
    metadata_candidates,
    metadata_filter,
    metadata_probe,
)
from xray.api.services._json_out import error_info, json_response, parsed, stored, stored_object
from xray.api.services._rates import readmitted
from xray.shared import Decision

__all__ = [
    "candidate_decisions",
    "get_run",
    "get_step",
    "list_pipelines",
    "list_runs",
    "list_step_decisions",
    "list_steps",
    "metadata_candidates",
]

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
    SortKey(StepRow.run_id, True, "uuid"),
    SortKey(StepRow.seq, False, "int"),
    # Steps with equal seq (OTLP spans carry none) read in the order they started.
    SortKey(StepRow.started_at, False, "datetime"),
    SortKey(DecisionRow.id, False, "int"),
)


def _text(column: Any) -> Any:
    """A JSON column read as its text: the database's, with no decoding in the driver."""
    return cast(column, Text).label(column.key)


_RUN_COLUMNS = (
    RunRow.id,
    RunRow.pipeline,
    RunRow.status,
    RunRow.started_at,
    RunRow.ended_at,
    RunRow.duration_ms,
    _text(RunRow.input),
    _text(RunRow.output),
    _text(RunRow.meta),
    _text(RunRow.error),
    _text(RunRow.sdk),
)
# StepOut's stored fields, in its order; the JSON ones are read as text.
_STEP_FIELDS = (
    "id",
    "run_id",
    "parent_id",
    "seq",
    "pipeline",
    "name",
    "type",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "input_count",
    "output_count",
    "elimination_rate",
    "rejected_rate",
    "params",
    "reasoning",
    "reason_counts",
    "input",
    "output",
    "metadata",
    "error",
    "detail",
    "candidates_total",
    "candidates_recorded",
)
_JSON_FIELDS = frozenset(("params", "reason_counts", "input", "output", "metadata", "error"))


def _step_columns(columns: Any) -> tuple[Any, ...]:
    """``_STEP_FIELDS`` from ``columns`` (the table's, or a CTE's of the same shape)."""
    return tuple(
        _text(columns[name]) if name in _JSON_FIELDS else columns[name] for name in _STEP_FIELDS
    )


_STEP_COLUMNS = _step_columns(StepRow.__table__.c)
# A decision's step identity, in DecisionOut's order around the decision's own columns.
_STEP_IDENTITY = (
    StepRow.run_id,
    StepRow.pipeline,
    StepRow.name,
    StepRow.type,
    StepRow.seq,
    StepRow.started_at,
)
_DECISION_COLUMNS = (
    DecisionRow.id,
    DecisionRow.step_id,
    DecisionRow.candidate_key,
    DecisionRow.decision,
    DecisionRow.reason,
    DecisionRow.score,
    DecisionRow.rank,
    _text(DecisionRow.attributes),
)


async def _rows(session: AsyncSession, query: Select[*tuple[Any, ...]]) -> Sequence[Any]:
    """The rows of one read, outside any transaction: each read is one statement (or two
    that need no common snapshot), so it costs one round trip instead of three (BEGIN,
    the query, ROLLBACK)."""
    if session.in_transaction():  # a second read of the same request
        connection = await session.connection()
    else:
        connection = await session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})
    return (await connection.execute(query)).all()


async def _dense_filters(
    session: AsyncSession, probes: Mapping[str, Select[uuid.UUID] | None], limit: int
) -> set[str]:
    """SQLite: which filters match many runs, counted from their indexes, at most up to a
    threshold each.

    Starting from a filter's matching rows costs one row per match; walking the runs in
    the list's order and checking each costs ``limit / density``. The two are equal at
    ``sqrt(limit * runs)`` matches, so no count goes past that and neither form costs more
    than about that many rows.
    """
    asked = {name: probe for name, probe in probes.items() if probe is not None}
    if not asked:
        return set()
    threshold = await _threshold(session, limit)
    dense = set()
    for name, probe in asked.items():
        counted = select(func.count()).select_from(probe.limit(threshold).subquery())
        if (await _rows(session, counted))[0][0] >= threshold:
            dense.add(name)
    return dense


def _one_of(
    dialect: str, column: ColumnElement[uuid.UUID], values: list[uuid.UUID]
) -> ColumnElement[bool]:
    """``column IN values``; on PostgreSQL one array parameter, so the statement's text
    (and the driver's prepared statement) is the same whatever the number of values."""
    if dialect == "postgresql":
        return column == any_(literal(values, ARRAY(Uuid())))
    return column.in_(values)


# The number of runs per engine, re-read at most this often: it only chooses between two
# plans with the same answer, so a slightly stale count costs nothing but that choice.
_RUNS_TTL_S = 60.0
_runs_seen: dict[int, tuple[float, int]] = {}


async def _threshold(session: AsyncSession, limit: int) -> int:
    """``sqrt((limit + 1) * runs)``: where starting from a filter's matches and walking
    the list in order cost the same (see ``_dense_filters``)."""
    engine, now = id(session.bind), time.monotonic()
    seen = _runs_seen.get(engine)
    if seen is None or now - seen[0] > _RUNS_TTL_S:
        total = select(func.coalesce(func.sum(PipelineRow.run_count), 0))
        seen = _runs_seen[engine] = (now, int((await _rows(session, total))[0][0]))
    return max(1, math.isqrt((limit + 1) * seen[1]))


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


def _page(
    items: list[dict[str, Any]], rows: Sequence[Any], limit: int, tag: str, key_of: Any
) -> Response:
    cursor = encode_cursor(tag, key_of(rows[limit - 1])) if len(rows) > limit else None
    return json_response({"items": items[:limit], "next_cursor": cursor})


def _run(row: Sequence[Any], step_count: int) -> dict[str, Any]:
    """RunOut's fields from a row of ``_RUN_COLUMNS``."""
    return {
        "id": row[0],
        "pipeline": row[1],
        "status": row[2],
        "started_at": row[3],
        "ended_at": row[4],
        "duration_ms": row[5],
        "input": stored(row[6]),
        "output": stored(row[7]),
        "metadata": stored_object(row[8]),
        "error": error_info(row[9]),
        "sdk": stored_object(row[10]),
        "step_count": step_count,
    }


def _step(row: Sequence[Any]) -> dict[str, Any]:
    """StepOut's fields from a row of ``_STEP_COLUMNS``."""
    reason_counts = row[17]
    # readmitted needs the counts' values; the object is small and is still answered as
    # stored.
    counts = parsed(reason_counts) if reason_counts not in (None, "{}") else None
    return {
        "id": row[0],
        "run_id": row[1],
        "parent_id": row[2],
        "seq": row[3],
        "pipeline": row[4],
        "name": row[5],
        "type": row[6],
        "status": row[7],
        "started_at": row[8],
        "ended_at": row[9],
        "duration_ms": row[10],
        "input_count": row[11],
        "output_count": row[12],
        "elimination_rate": row[13],
        "rejected_rate": row[14],
        "readmitted": readmitted(row[11], row[12], counts),
        "params": stored_object(row[15]),
        "reasoning": row[16],
        "reason_counts": stored_object(reason_counts),
        "input": stored(row[18]),
        "output": stored(row[19]),
        "metadata": stored_object(row[20]),
        "error": error_info(row[21]),
        "detail": row[22],
        "candidates_total": row[23],
        "candidates_recorded": row[24],
    }


def _decision(row: Sequence[Any], step: Sequence[Any]) -> dict[str, Any]:
    """DecisionOut's fields from a row of ``_DECISION_COLUMNS`` and its step's identity."""
    return {
        "id": row[0],
        "step_id": row[1],
        "run_id": step[0],
        "pipeline": step[1],
        "step_name": step[2],
        "step_type": step[3],
        "step_seq": step[4],
        "started_at": step[5],
        "candidate_key": row[2],
        "decision": DECISION_NAMES[row[3]],
        "reason": row[4],
        "score": row[5],
        "rank": row[6],
        "attributes": stored_object(row[7]),
    }


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
    filters: RunFilters,
    *,
    pipeline: str | None = None,
    limit: int = 50,
    cursor: str | None = None,
) -> Response:
    """Runs, newest first, filtered; ``step_*`` filters keep runs having such a step
    (a ``Page[RunOut]`` body).

    Example:
        >>> await list_runs(session, RunFilters(step_type=StepType.FILTER, min_elimination_rate=0.9))  # doctest: +SKIP
    """
    dialect = session.get_bind().dialect.name
    dense: set[str] = set()
    if dialect == "sqlite":
        probes: dict[str, Select[uuid.UUID] | None] = {
            f"metadata.{k.removesuffix('!')}": metadata_probe(k, v) for k, v in filters.metadata
        }
        probes["steps"] = filters.step_probe(dialect, pipeline)
        dense = await _dense_filters(session, probes, limit)
    query = select(*_RUN_COLUMNS, _step_count()).where(
        *filters.conditions(dialect, pipeline, dense)
    )
    query = _paginate(query, _RUN_KEYS, "runs", cursor, limit)
    rows = await _rows(session, query)
    items = [_run(row, row[11]) for row in rows[:limit]]
    return _page(items, rows, limit, "runs", lambda r: (r[3], r[0]))


async def get_run(session: AsyncSession, *, run_id: uuid.UUID) -> Response | None:
    """One run with all its steps ordered by ``seq`` (then start time), or ``None``
    (a ``RunDetailOut`` body)."""
    runs = await _rows(session, select(*_RUN_COLUMNS).where(RunRow.id == run_id))
    if not runs:
        return None
    steps = await _rows(
        session,
        select(*_STEP_COLUMNS)
        .where(StepRow.run_id == run_id)
        .order_by(StepRow.seq, StepRow.started_at, StepRow.id),
    )
    return json_response(_run(runs[0], len(steps)) | {"steps": [_step(s) for s in steps]})


async def list_steps(
    session: AsyncSession,
    filters: StepFilters,
    *,
    metadata: Sequence[tuple[str, str]] = (),
    limit: int = 50,
    cursor: str | None = None,
) -> Response:
    """Steps across every pipeline, newest first (a ``Page[StepOut]`` body).

    Example:
        >>> await list_steps(session, StepFilters(type=StepType.FILTER, min_elimination_rate=0.9))  # doctest: +SKIP
    """
    dialect = session.get_bind().dialect.name
    conditions = filters.conditions(dialect)
    query = select(*_STEP_COLUMNS)
    keys: Sequence[SortKey] = _STEP_KEYS
    if metadata:
        # The matching runs first, up to the threshold. Few: their steps are read by
        # steps(run_id, seq) and sorted, fenced off as a materialised CTE so no estimate
        # of the value's frequency can turn it into a walk of every step. Many: each step
        # is checked while walking the steps in order.
        matching = select(RunRow.id).where(*(metadata_filter(dialect, k, v) for k, v in metadata))
        threshold = await _threshold(session, limit)
        run_ids = [row[0] for row in await _rows(session, matching.limit(threshold))]
        if len(run_ids) < threshold:
            found = (
                select(StepRow.__table__)
                .where(_one_of(dialect, StepRow.__table__.c.run_id, run_ids), *conditions)
                .cte("found")
                .prefix_with("MATERIALIZED")
            )
            # The same columns from the CTE; JSON turned into text for the page only.
            query = select(*_step_columns(found.c))
            conditions = []
            keys = (
                SortKey(found.c.started_at, True, "datetime"),
                SortKey(found.c.id, True, "uuid"),
            )
        else:
            conditions += [
                metadata_filter(dialect, k, v, run_id=StepRow.__table__.c.run_id, dense=True)
                for k, v in metadata
            ]
    query = _paginate(query.where(*conditions), keys, "steps", cursor, limit)
    rows = await _rows(session, query)
    items = [_step(row) for row in rows[:limit]]
    return _page(items, rows, limit, "steps", lambda r: (r[8], r[0]))


async def get_step(session: AsyncSession, *, step_id: uuid.UUID) -> Response | None:
    """One step (a ``StepOut`` body), or ``None``."""
    rows = await _rows(session, select(*_STEP_COLUMNS).where(StepRow.id == step_id))
    return json_response(_step(rows[0])) if rows else None


async def list_step_decisions(
    session: AsyncSession,
    *,
    step_id: uuid.UUID,
    decision: Decision | None = None,
    reason: str | None = None,
    candidate_key: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Response | None:
    """A step's decisions in the order the SDK recorded them (a ``Page[DecisionOut]``
    body); ``None`` if no such step."""
    steps = await _rows(session, select(*_STEP_IDENTITY).where(StepRow.id == step_id))
    if not steps:
        return None
    step = steps[0]
    query = select(*_DECISION_COLUMNS, DecisionRow.seq).where(DecisionRow.step_id == step_id)
    if decision is not None:
        query = query.where(DecisionRow.decision == DECISION_CODES[decision.value])
    if reason is not None:
        query = query.where(DecisionRow.reason == reason)
    if candidate_key is not None:
        query = query.where(DecisionRow.candidate_key == candidate_key)
    tag = f"decisions:{step_id}"
    query = _paginate(query, _STEP_DECISION_KEYS, tag, cursor, limit)
    rows = await _rows(session, query)
    items = [_decision(row, step) for row in rows[:limit]]
    return _page(items, rows, limit, tag, lambda r: (r[8],))


async def candidate_decisions(
    session: AsyncSession,
    *,
    candidate_key: str,
    run_id: uuid.UUID | None = None,
    pipeline: str | None = None,
    limit: int = 100,
    cursor: str | None = None,
) -> Response:
    """Every decision about one candidate: newest run first, then by step order
    (a ``Page[DecisionOut]`` body).

    Example:
        >>> await candidate_decisions(session, candidate_key="B07-laptop-stand")  # doctest: +SKIP
    """
    query = (
        select(*_DECISION_COLUMNS, *_STEP_IDENTITY, DecisionRow.run_started_at)
        .join(StepRow, StepRow.id == DecisionRow.step_id)
        .where(DecisionRow.candidate_key == candidate_key)
    )
    if run_id is not None:
        query = query.where(StepRow.run_id == run_id)
    if pipeline is not None:
        query = query.where(StepRow.pipeline == pipeline)
    query = _paginate(query, _CANDIDATE_KEYS, "candidate", cursor, limit)
    rows = await _rows(session, query)
    items = [_decision(row, row[8:14]) for row in rows[:limit]]
    # (run_started_at, run_id, step seq, step start, id)
    return _page(items, rows, limit, "candidate", lambda r: (r[14], r[8], r[12], r[13], r[0]))


async def list_pipelines(
    session: AsyncSession, *, limit: int = 50, cursor: str | None = None
) -> Response:
    """Pipeline names with their run count and latest start, by name (a
    ``Page[PipelineOut]`` body; counts kept at ingest in the small ``pipelines`` table,
    so this never groups the runs)."""
    keys = (SortKey(PipelineRow.pipeline, False, "str"),)
    query = select(PipelineRow.pipeline, PipelineRow.run_count, PipelineRow.last_started_at)
    query = _paginate(query.where(PipelineRow.run_count > 0), keys, "pipelines", cursor, limit)
    rows = await _rows(session, query)
    items = [
        {"pipeline": row[0], "run_count": row[1], "last_started_at": row[2]} for row in rows[:limit]
    ]
    return _page(items, rows, limit, "pipelines", lambda r: (r[0],))
