"""Idempotent ingest of runs, steps and their decisions.

- Runs are upserted on ``id``; a stale ``running`` update arriving after a finished one
  only fills in what is missing, so a finished run never regresses to running.
  ``metadata`` and ``sdk`` are merged key by key (the later message wins per key).
- Steps are upserted on ``id`` (latest wins); a re-sent step's decisions replace the old
  set (delete + one bulk insert for the whole request, not one round trip per decision).
- A step whose run is unknown creates a placeholder run (from the step's ``pipeline`` and
  ``run_started_at``) that the run's own upsert completes later.
- Everything happens in the caller's transaction: a request is written whole or not at all.

On PostgreSQL the writes go through the session's asyncpg connection: runs and steps by
``COPY`` when none of them is stored yet (the usual case), otherwise as one ``INSERT ...
SELECT FROM unnest(...) ON CONFLICT`` each (column arrays, one round trip); decisions by
``COPY``. Rows are built once per step (the step's values shared by its decisions) and
JSON values serialised once with orjson. SQLite goes through SQLAlchemy
(``executemany``), serialised by the app's write lock.

Runs and steps arrive as the wire models (``RunIn``, ``StepIn``) or as their msgspec
mirrors (``xray.api._fast_wire``), read alike. A step's decisions come one by one
(``decisions``) and as blocks of columns (``decision_columns``); blocks are read column
by column, into the same rows, without an object per decision.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain, repeat
from typing import Any, cast

import asyncpg
import orjson
from sqlalchemy import Table, and_, case, delete, func, insert, select, text
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api._fast_wire import DecisionColumnsFast, RunFast, StepFast
from xray.api.db.models import DECISION_CODES, DecisionRow, PipelineRow, RunRow, StepRow
from xray.api.services._rates import rejected_rate
from xray.api.services._run_metadata import index_run_metadata
from xray.api.services.errors import InvalidInputError, NotFoundError
from xray.shared import BatchResult, DecisionColumnsIn, RunIn, RunStatus, StepIn

__all__ = ["elimination_rate", "ingest", "recount_pipelines"]

_RUNS = cast(Table, RunRow.__table__)
_STEPS = cast(Table, StepRow.__table__)
_DECISIONS = cast(Table, DecisionRow.__table__)
_PIPELINES = cast(Table, PipelineRow.__table__)
# Stay far below both drivers' bind-parameter limits (SQLite 32766, asyncpg 32767).
_CHUNK = 500

AnyRun = RunIn | RunFast
AnyStep = StepIn | StepFast


def elimination_rate(input_count: int | None, output_count: int | None) -> float | None:
    """The share of its input a step dropped: ``1 - output/input``, from 0 to 1.

    ``None`` when it is not defined: no input count (or zero input), no output count, or
    a step that grew its input (``output > input``, e.g. a generator): a rate is never
    negative, so filters such as ``min_elimination_rate`` do not match such steps.

    Computed as ``(input - output) / input``: one rounding instead of two, so 10 → 7 is
    stored as 0.3, not 0.30000000000000004.

    Example:
        >>> elimination_rate(5000, 30)
        0.994
        >>> elimination_rate(10, 7)
        0.3
        >>> elimination_rate(10, 40) is None
        True
    """
    if not input_count or output_count is None or output_count > input_count:
        return None
    return (input_count - output_count) / input_count


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _utc(value: datetime) -> datetime:
    # asyncpg converts aware datetimes of any offset; naive ones are taken as UTC.
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


def _rounds(runs: Sequence[AnyRun]) -> list[list[AnyRun]]:
    """The n-th message about a run in the n-th round, each round in id order.

    One statement cannot update a row twice, so a start and an end in one batch apply in
    the order they were sent; id order means concurrent requests lock rows in the same
    order (no deadlock).
    """
    rounds: list[list[AnyRun]] = []
    seen: dict[uuid.UUID, int] = {}
    for run in runs:
        index = seen.get(run.id, 0)
        seen[run.id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(run)
    for messages in rounds:
        messages.sort(key=lambda run: run.id)
    return rounds


def _latest(steps: Sequence[tuple[int, uuid.UUID, AnyStep]]) -> list[tuple[uuid.UUID, AnyStep]]:
    """A step is complete when sent: the last copy in a request wins; in id order."""
    latest: dict[uuid.UUID, tuple[uuid.UUID, AnyStep]] = {}
    for _, run_id, step in steps:
        latest[step.id] = (run_id, step)
    return [latest[step_id] for step_id in sorted(latest)]


def _placeholders(
    steps: Sequence[tuple[int, uuid.UUID, AnyStep]], known: dict[uuid.UUID, tuple[str, datetime]]
) -> list[tuple[uuid.UUID, str, datetime]]:
    """Runs to create for steps whose run is not stored: ``(id, pipeline, started_at)``."""
    missing: dict[uuid.UUID, list[tuple[int, AnyStep]]] = {}
    for index, run_id, step in steps:
        if run_id not in known:
            missing.setdefault(run_id, []).append((index, step))
    created = []
    for run_id, mine in missing.items():
        pipeline = next((s.pipeline for _, s in mine if s.pipeline), None)
        if pipeline is None:
            index = mine[0][0]
            raise NotFoundError(
                f"run {run_id} not found, and steps[{index}] has no 'pipeline' to create it",
                field=f"steps[{index}].pipeline",
            )
        started_at = next(
            (s.run_started_at for _, s in mine if s.run_started_at),
            min(s.started_at for _, s in mine),
        )
        known[run_id] = (pipeline, _utc(started_at))
        created.append((run_id, pipeline, _utc(started_at)))
    created.sort()
    return created


# --- PostgreSQL: asyncpg, column arrays and COPY -------------------------------------

_STALE = "(old.status <> 'running' AND excluded.status = 'running')"


def _latest_sql(column: str) -> str:
    return f"CASE WHEN {_STALE} THEN old.{column} ELSE excluded.{column} END"


def _filled_sql(column: str) -> str:
    return (
        f"CASE WHEN {_STALE} THEN coalesce(old.{column}, excluded.{column}) "
        f"ELSE coalesce(excluded.{column}, old.{column}) END"
    )


def _merged_sql(column: str) -> str:
    return (
        f"CASE WHEN {_STALE} THEN excluded.{column} || old.{column} "
        f"ELSE old.{column} || excluded.{column} END"
    )


def _unnest_insert(table: str, columns: Sequence[tuple[str, str]]) -> str:
    """``INSERT INTO table SELECT FROM unnest($1::type[], ...)``; JSON arrives as text."""
    names = ", ".join(name for name, _ in columns)
    arrays = ", ".join(
        f"${i}::{'text' if kind == 'jsonb' else kind}[]" for i, (_, kind) in enumerate(columns, 1)
    )
    values = ", ".join(
        f"t.{name}::jsonb" if kind == "jsonb" else f"t.{name}" for name, kind in columns
    )
    # Built once at import from the constant column lists below, never from input.
    return (
        f"INSERT INTO {table} AS old ({names}) SELECT {values} "  # noqa: S608
        f"FROM unnest({arrays}) AS t({names})"
    )


_RUN_COLUMNS = (
    ("id", "uuid"),
    ("pipeline", "text"),
    ("status", "text"),
    ("started_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("duration_ms", "float8"),
    ("input", "jsonb"),
    ("output", "jsonb"),
    ("metadata", "jsonb"),
    ("error", "jsonb"),
    ("sdk", "jsonb"),
    ("received_at", "timestamptz"),
)
_UPSERT_RUNS = (
    _unnest_insert("runs", _RUN_COLUMNS)
    + " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(
        [f"{c} = {_latest_sql(c)}" for c in ("pipeline", "started_at", "status")]
        + [
            f"{c} = {_filled_sql(c)}"
            for c in ("ended_at", "duration_ms", "input", "output", "error")
        ]
        + [f"{c} = {_merged_sql(c)}" for c in ("metadata", "sdk")]
        + ["received_at = excluded.received_at"]
    )
    + " RETURNING id, pipeline, started_at, (xmax = 0)"
)
_PLACEHOLDER_RUNS = (
    "INSERT INTO runs (id, pipeline, status, started_at, metadata, sdk, received_at) "
    "SELECT t.id, t.pipeline, 'running', t.started_at, '{}', '{}', $4 "
    "FROM unnest($1::uuid[], $2::text[], $3::timestamptz[]) AS t(id, pipeline, started_at) "
    "ON CONFLICT (id) DO NOTHING RETURNING pipeline, started_at"
)
_COUNT_PIPELINES = (
    "INSERT INTO pipelines AS old (pipeline, run_count, last_started_at) "
    "SELECT * FROM unnest($1::text[], $2::int8[], $3::timestamptz[]) "
    "ON CONFLICT (pipeline) DO UPDATE SET run_count = old.run_count + excluded.run_count, "
    "last_started_at = greatest(old.last_started_at, excluded.last_started_at)"
)
_RUN_NAMES = tuple(name for name, _ in _RUN_COLUMNS)
_KNOWN_RUNS = "SELECT id, pipeline, started_at FROM runs WHERE id = ANY($1::uuid[])"
_STEP_COLUMNS = (
    ("id", "uuid"),
    ("run_id", "uuid"),
    ("parent_id", "uuid"),
    ("seq", "int8"),
    ("pipeline", "text"),
    ("run_started_at", "timestamptz"),
    ("name", "text"),
    ("type", "text"),
    ("status", "text"),
    ("started_at", "timestamptz"),
    ("ended_at", "timestamptz"),
    ("duration_ms", "float8"),
    ("input_count", "int8"),
    ("output_count", "int8"),
    ("elimination_rate", "float8"),
    ("rejected_rate", "float8"),
    ("params", "jsonb"),
    ("reasoning", "text"),
    ("reason_counts", "jsonb"),
    ("input", "jsonb"),
    ("output", "jsonb"),
    ("metadata", "jsonb"),
    ("error", "jsonb"),
    ("detail", "text"),
    ("candidates_total", "int8"),
    ("candidates_recorded", "int8"),
)
# xmax = 0 on the returned row means "inserted": this is race-free, because a concurrent
# copy of the same step waits for our row lock and then sees it.
_UPSERT_STEPS = (
    _unnest_insert("steps", _STEP_COLUMNS)
    + " ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c, _ in _STEP_COLUMNS if c != "id")
    + " RETURNING id, (xmax = 0)"
)
_STEP_NAMES = tuple(name for name, _ in _STEP_COLUMNS)
_DELETE_DECISIONS = "DELETE FROM decisions WHERE step_id = ANY($1::uuid[])"
# The step's values first: they are one tuple per step, prepended to each decision's.
_DECISION_COLUMNS = (
    "step_id",
    "run_started_at",
    "seq",
    "candidate_key",
    "decision",
    "reason",
    "score",
    "rank",
    "attributes",
)
_EMPTY_OBJECT = "{}"


def _json(value: Any) -> str | None:
    """JSON text for a stored value; ``None`` (SQL NULL) stays ``None``."""
    return None if value is None else orjson.dumps(value).decode()


def _object(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode() if value else _EMPTY_OBJECT


def _columns(rows: Sequence[tuple[Any, ...]], width: int) -> list[Sequence[Any]]:
    return list(zip(*rows, strict=True)) if rows else [() for _ in range(width)]


_Columns = tuple[
    Iterable[str],
    Iterable[int],
    Iterable[str | None],
    Iterable[float | None],
    Iterable[int | None],
    Iterable[Any],
]


def _column(value: Any, length: int) -> Iterable[Any]:
    # A block's field is one value for every decision, or a list aligned with the keys.
    return value if type(value) is list else repeat(value, length)


def _block_attributes(
    block: DecisionColumnsIn | DecisionColumnsFast, encode: Callable[[dict[str, Any]], Any]
) -> Iterable[Any]:
    """Each decision's attributes, encoded: ``shared_attributes`` under its own values."""
    length = len(block.candidate_key)
    shared = block.shared_attributes
    if not block.attributes:
        # One encoding for the whole block.
        return repeat(encode(shared), length)
    # Column by column: one dict per decision, each aligned value set where not null.
    merged = [dict(shared) for _ in range(length)] if shared else [{} for _ in range(length)]
    for name, values in block.attributes.items():
        for mine, value in zip(merged, values, strict=True):
            if value is not None:
                mine[name] = value
    return [encode(mine) for mine in merged]


def _decision_columns(step: AnyStep, encode: Callable[[dict[str, Any]], Any]) -> _Columns:
    """A step's decisions as columns (key, decision, reason, score, rank, attributes):
    those sent one by one, then each block of ``decision_columns``, in order."""
    parts: list[_Columns] = []
    decisions = step.decisions
    if decisions:
        parts.append(
            (
                [d.candidate_key for d in decisions],
                [DECISION_CODES[d.decision.value] for d in decisions],
                [d.reason for d in decisions],
                [d.score for d in decisions],
                [d.rank for d in decisions],
                [encode(d.attributes) for d in decisions],
            )
        )
    for block in step.decision_columns:
        length = len(block.candidate_key)
        kind = block.decision
        parts.append(
            (
                block.candidate_key,
                [DECISION_CODES[k.value] for k in kind]
                if isinstance(kind, list)
                else repeat(DECISION_CODES[kind.value], length),
                _column(block.reason, length),
                _column(block.score, length),
                _column(block.rank, length),
                _block_attributes(block, encode),
            )
        )
    if len(parts) == 1:
        return parts[0]
    columns = [chain.from_iterable(column) for column in zip(*parts, strict=True)]
    if not columns:
        return ((), (), (), (), (), ())
    keys, kinds, reasons, scores, ranks, attributes = columns
    return keys, kinds, reasons, scores, ranks, attributes


def _plain_object(value: dict[str, Any]) -> dict[str, Any]:
    return value


class _PipelineCounts:
    """New runs and the latest start per pipeline in one request (``pipelines`` table)."""

    def __init__(self) -> None:
        self.counts: dict[str, list[Any]] = {}

    def add(self, pipeline: str, started_at: datetime, inserted: bool) -> None:
        entry = self.counts.setdefault(pipeline, [0, started_at])
        entry[0] += inserted
        entry[1] = max(entry[1], started_at)

    def rows(self) -> list[tuple[str, int, datetime]]:
        # Pipeline order: concurrent requests lock the rows in the same order.
        return [(p, n, last) for p, (n, last) in sorted(self.counts.items())]


async def _copied(conn: Any, table: str, rows: list[tuple[Any, ...]], names: Sequence[str]) -> bool:
    """Whether ``rows`` went in by ``COPY`` as new rows; ``False`` (nothing written) when
    one of them is stored already.

    Runs and steps are mostly new when they arrive, and ``COPY`` is the cheapest way in;
    the savepoint undoes a COPY that met a stored row, which is then upserted instead.
    """
    try:
        async with conn.transaction():
            await conn.copy_records_to_table(table, records=rows, columns=names)
    except asyncpg.UniqueViolationError:
        return False
    return True


async def _postgres_runs(
    conn: Any,
    runs: Sequence[AnyRun],
    known: dict[uuid.UUID, tuple[str, datetime]],
    counts: _PipelineCounts,
) -> None:
    now = datetime.now(UTC)
    rounds = [
        [
            (
                r.id,
                r.pipeline,
                r.status.value,
                _utc(r.started_at),
                _utc_or_none(r.ended_at),
                r.duration_ms,
                _json(r.input),
                _json(r.output),
                _object(r.metadata),
                _json(r.error.model_dump()) if r.error else None,
                _object(r.sdk),
                now,
            )
            for r in messages
        ]
        for messages in _rounds(runs)
    ]
    # One message per run, none of them stored: the rows are the runs as sent.
    if len(rounds) == 1 and await _copied(conn, "runs", rounds[0], _RUN_NAMES):
        for run_id, pipeline, _, started_at, *_ in rounds[0]:
            known[run_id] = (pipeline, started_at)
            counts.add(pipeline, started_at, True)
        return
    for rows in rounds:
        for run_id, pipeline, started_at, inserted in await conn.fetch(
            _UPSERT_RUNS, *_columns(rows, len(_RUN_COLUMNS))
        ):
            known[run_id] = (pipeline, started_at)
            counts.add(pipeline, started_at, inserted)


async def _write_steps(conn: Any, step_rows: list[tuple[Any, ...]]) -> list[uuid.UUID]:
    """Insert or update the steps; the ids of those that were stored already."""
    if await _copied(conn, "steps", step_rows, _STEP_NAMES):
        return []
    upserted = await conn.fetch(_UPSERT_STEPS, *_columns(step_rows, len(_STEP_COLUMNS)))
    # A re-sent step replaces its decisions as a set.
    return sorted(step_id for step_id, inserted in upserted if not inserted)


async def _postgres_steps(
    conn: Any,
    steps: Sequence[tuple[int, uuid.UUID, AnyStep]],
    known: dict[uuid.UUID, tuple[str, datetime]],
    counts: _PipelineCounts,
) -> tuple[int, int]:
    unknown = list({run_id for _, run_id, _ in steps if run_id not in known})
    if unknown:
        for run_id, pipeline, started_at in await conn.fetch(_KNOWN_RUNS, unknown):
            known[run_id] = (pipeline, started_at)
    created = _placeholders(steps, known)
    if created:
        now = datetime.now(UTC)
        for pipeline, started_at in await conn.fetch(_PLACEHOLDER_RUNS, *_columns(created, 3), now):
            counts.add(pipeline, started_at, True)

    step_rows: list[tuple[Any, ...]] = []
    decision_rows: list[tuple[Any, ...]] = []
    for run_id, step in _latest(steps):
        pipeline, run_started_at = known[run_id]
        started_at = _utc(step.started_at)
        step_rows.append(
            (
                step.id,
                run_id,
                step.parent_id,
                step.seq,
                pipeline,
                run_started_at,
                step.name,
                step.type.value,
                step.status.value,
                started_at,
                _utc_or_none(step.ended_at),
                step.duration_ms,
                step.input_count,
                step.output_count,
                elimination_rate(step.input_count, step.output_count),
                rejected_rate(step.input_count, step.reason_counts),
                _object(step.params),
                step.reasoning,
                _object(step.reason_counts),
                _json(step.input),
                _json(step.output),
                _object(step.metadata),
                _json(step.error.model_dump()) if step.error else None,
                step.detail.value,
                step.candidates_total,
                step.candidates_recorded,
            )
        )
        if step.decisions or step.decision_columns:
            head = (step.id, run_started_at)
            keys, kinds, reasons, scores, ranks, attributes = _decision_columns(step, _object)
            decision_rows += [
                (*head, seq, key, kind, reason, score, rank, attrs)
                for seq, (key, kind, reason, score, rank, attrs) in enumerate(
                    zip(keys, kinds, reasons, scores, ranks, attributes, strict=True)
                )
            ]
    resent = await _write_steps(conn, step_rows)
    if resent:
        await conn.execute(_DELETE_DECISIONS, resent)
    if decision_rows:
        await conn.copy_records_to_table(
            "decisions", records=decision_rows, columns=_DECISION_COLUMNS
        )
    return len(step_rows), len(decision_rows)


async def _ingest_postgres(
    session: AsyncSession, runs: Sequence[AnyRun], steps: Sequence[tuple[int, uuid.UUID, AnyStep]]
) -> BatchResult:
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    conn: Any = raw.driver_connection
    known: dict[uuid.UUID, tuple[str, datetime]] = {}
    step_count = decision_count = 0
    # SQLAlchemy begins its transaction lazily, at its own first statement: this block is
    # the transaction when none is open yet, a savepoint inside the caller's otherwise.
    counts = _PipelineCounts()
    try:
        async with conn.transaction():
            if runs:
                await _postgres_runs(conn, runs, known, counts)
            if steps:
                step_count, decision_count = await _postgres_steps(conn, steps, known, counts)
            # Last: the pipelines' rows are shared by every request, so hold them briefly.
            if counts.counts:
                await conn.execute(_COUNT_PIPELINES, *_columns(counts.rows(), 3))
    except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        # The driver's own errors, wrapped as SQLAlchemy wraps them: the one HTTP seam then
        # maps both alike (connection lost → 503, a value out of range → 400).
        raise DBAPIError(None, None, exc) from exc
    return BatchResult(runs=len({r.id for r in runs}), steps=step_count, decisions=decision_count)


# --- SQLite: SQLAlchemy executemany ---------------------------------------------------


def _run_row(run: AnyRun, now: datetime) -> dict[str, Any]:
    return {
        "id": run.id,
        "pipeline": run.pipeline,
        "status": run.status.value,
        "started_at": run.started_at,
        "ended_at": run.ended_at,
        "duration_ms": run.duration_ms,
        "input": run.input,
        "output": run.output,
        "metadata": run.metadata,
        "error": run.error.model_dump() if run.error else None,
        "sdk": run.sdk,
        "received_at": now,
    }


async def _sqlite_runs(
    session: AsyncSession, runs: Sequence[AnyRun], counts: _PipelineCounts
) -> dict[uuid.UUID, tuple[str, datetime]]:
    run_ids = list(dict.fromkeys(run.id for run in runs))
    # Ingest is serialised by the app's write lock: what exists now is what existed.
    existed = set(await _sqlite_known_runs(session, run_ids))
    now = datetime.now(UTC)
    stmt = sqlite.insert(_RUNS)
    new = stmt.excluded
    old = _RUNS.c
    stale = and_(old.status != RunStatus.RUNNING.value, new.status == RunStatus.RUNNING.value)

    def latest(column: str) -> Any:
        return case((stale, old[column]), else_=new[column])

    def filled(column: str) -> Any:
        return case(
            (stale, func.coalesce(old[column], new[column])),
            else_=func.coalesce(new[column], old[column]),
        )

    def merged(column: str) -> Any:
        return case(
            (stale, func.json_patch(new[column], old[column])),
            else_=func.json_patch(old[column], new[column]),
        )

    stmt = stmt.on_conflict_do_update(
        index_elements=[old.id],
        set_={
            "pipeline": latest("pipeline"),
            "started_at": latest("started_at"),
            "status": latest("status"),
            "ended_at": filled("ended_at"),
            "duration_ms": filled("duration_ms"),
            "input": filled("input"),
            "output": filled("output"),
            "error": filled("error"),
            "metadata": merged("metadata"),
            "sdk": merged("sdk"),
            "received_at": new.received_at,
        },
    )
    for messages in _rounds(runs):
        rows = [_run_row(run, now) for run in messages]
        for chunk in _chunks(rows, _CHUNK // 2):
            await session.execute(stmt, list(chunk))
    known = await _sqlite_known_runs(session, run_ids)
    for run_id, (pipeline, started_at) in known.items():
        counts.add(pipeline, started_at, run_id not in existed)
    return known


async def _sqlite_known_runs(
    session: AsyncSession, run_ids: Sequence[uuid.UUID]
) -> dict[uuid.UUID, tuple[str, datetime]]:
    known: dict[uuid.UUID, tuple[str, datetime]] = {}
    for chunk in _chunks(run_ids):
        rows = await session.execute(
            select(RunRow.id, RunRow.pipeline, RunRow.started_at).where(RunRow.id.in_(chunk))
        )
        for run_id, pipeline, started_at in rows:
            known[run_id] = (pipeline, started_at)
    return known


def _step_row(
    step: AnyStep, run_id: uuid.UUID, pipeline: str, run_started_at: datetime
) -> dict[str, Any]:
    return {
        "id": step.id,
        "run_id": run_id,
        "parent_id": step.parent_id,
        "seq": step.seq,
        "pipeline": pipeline,
        "run_started_at": run_started_at,
        "name": step.name,
        "type": step.type.value,
        "status": step.status.value,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "duration_ms": step.duration_ms,
        "input_count": step.input_count,
        "output_count": step.output_count,
        "elimination_rate": elimination_rate(step.input_count, step.output_count),
        "rejected_rate": rejected_rate(step.input_count, step.reason_counts),
        "params": step.params,
        "reasoning": step.reasoning,
        "reason_counts": step.reason_counts,
        "input": step.input,
        "output": step.output,
        "metadata": step.metadata,
        "error": step.error.model_dump() if step.error else None,
        "detail": step.detail.value,
        "candidates_total": step.candidates_total,
        "candidates_recorded": step.candidates_recorded,
    }


async def _sqlite_steps(
    session: AsyncSession,
    steps: Sequence[tuple[int, uuid.UUID, AnyStep]],
    known: dict[uuid.UUID, tuple[str, datetime]],
    counts: _PipelineCounts,
) -> tuple[int, int]:
    unknown = list(dict.fromkeys(r for _, r, _ in steps if r not in known))
    known |= await _sqlite_known_runs(session, unknown)
    created = _placeholders(steps, known)
    for _, pipeline, started_at in created:
        counts.add(pipeline, started_at, True)
    if created:
        now = datetime.now(UTC)
        rows = [
            {
                "id": run_id,
                "pipeline": pipeline,
                "status": RunStatus.RUNNING.value,
                "started_at": started_at,
                "metadata": {},
                "sdk": {},
                "received_at": now,
            }
            for run_id, pipeline, started_at in created
        ]
        stmt = sqlite.insert(_RUNS).on_conflict_do_nothing(index_elements=[_RUNS.c.id])
        for chunk in _chunks(rows, _CHUNK // 2):
            await session.execute(stmt, list(chunk))

    latest = _latest(steps)
    step_rows: list[dict[str, Any]] = []
    decision_rows: list[dict[str, Any]] = []
    for run_id, step in latest:
        pipeline, run_started_at = known[run_id]
        step_rows.append(_step_row(step, run_id, pipeline, run_started_at))
        head = {"step_id": step.id, "run_started_at": run_started_at}
        keys, kinds, reasons, scores, ranks, attributes = _decision_columns(step, _plain_object)
        decision_rows += [
            head
            | {
                "seq": seq,
                "candidate_key": key,
                "decision": kind,
                "reason": reason,
                "score": score,
                "rank": rank,
                "attributes": attrs,
            }
            for seq, (key, kind, reason, score, rank, attrs) in enumerate(
                zip(keys, kinds, reasons, scores, ranks, attributes, strict=True)
            )
        ]
    # A re-sent step replaces its decisions as a set. Ingest is serialised by the app's
    # write lock, so looking up which steps exist is race-free.
    resent: list[uuid.UUID] = []
    for chunk in _chunks([step.id for _, step in latest]):
        resent += await session.scalars(select(StepRow.id).where(StepRow.id.in_(chunk)))
    stmt = sqlite.insert(_STEPS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_STEPS.c.id],
        set_={c.name: stmt.excluded[c.name] for c in _STEPS.c if c.name != "id"},
    )
    for chunk in _chunks(step_rows, 200):
        await session.execute(stmt, list(chunk))
    for chunk in _chunks(sorted(resent)):
        await session.execute(delete(DecisionRow).where(DecisionRow.step_id.in_(chunk)))
    if decision_rows:
        # executemany: one prepared statement, the driver loops over the rows.
        await session.execute(_DECISIONS.insert(), decision_rows)
    return len(step_rows), len(decision_rows)


async def _sqlite_count_pipelines(session: AsyncSession, counts: _PipelineCounts) -> None:
    stmt = sqlite.insert(_PIPELINES)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_PIPELINES.c.pipeline],
        set_={
            "run_count": _PIPELINES.c.run_count + stmt.excluded.run_count,
            # SQLite's two-argument max(); the stored text sorts in time order.
            "last_started_at": func.max(
                _PIPELINES.c.last_started_at, stmt.excluded.last_started_at
            ),
        },
    )
    rows = [
        {"pipeline": p, "run_count": n, "last_started_at": last} for p, n, last in counts.rows()
    ]
    await session.execute(stmt, rows)


_ANALYZE_EVERY_S = 60.0
_analyzed_at = float("-inf")


async def _sqlite_statistics(session: AsyncSession) -> None:
    """A sampled ``ANALYZE`` at most once a minute: SQLite's planner picks indexes from
    statistics nothing else gathers (``PRAGMA optimize`` of the SQLite versions in use
    skips tables it has not seen queried on the connection); ``analysis_limit`` samples
    a bounded number of rows per index, so a pass stays cheap at any size."""
    global _analyzed_at
    now = time.monotonic()
    if now - _analyzed_at < _ANALYZE_EVERY_S:
        return
    _analyzed_at = now
    await session.execute(text("PRAGMA analysis_limit = 1000"))
    await session.execute(text("ANALYZE"))


async def recount_pipelines(session: AsyncSession) -> None:
    """Rebuild the ``pipelines`` counts from the runs (after runs were deleted)."""
    await session.execute(delete(PipelineRow))
    await session.execute(
        insert(PipelineRow).from_select(
            ["pipeline", "run_count", "last_started_at"],
            select(RunRow.pipeline, func.count(), func.max(RunRow.started_at)).group_by(
                RunRow.pipeline
            ),
        )
    )


async def ingest(
    session: AsyncSession,
    *,
    runs: Sequence[AnyRun] = (),
    steps: Sequence[AnyStep] = (),
    run_id: uuid.UUID | None = None,
) -> BatchResult:
    """Write runs, then steps with their decisions, in the session's transaction.

    ``run_id`` (from ``POST /runs/{run_id}/steps``) applies to every step; otherwise each
    step must carry its own ``run_id``. The caller commits.

    Example:
        >>> await ingest(session, runs=[run], steps=[step])  # doctest: +SKIP
        BatchResult(runs=1, steps=1, decisions=0)
    """
    placed: list[tuple[int, uuid.UUID, AnyStep]] = []
    for index, step in enumerate(steps):
        target = run_id or step.run_id
        if target is None:
            raise InvalidInputError("Field required", field=f"steps[{index}].run_id")
        placed.append((index, target, step))
    if session.get_bind().dialect.name == "postgresql":
        return await _ingest_postgres(session, runs, placed)
    counts = _PipelineCounts()
    known = await _sqlite_runs(session, runs, counts) if runs else {}
    await index_run_metadata(session, (run.id for run in runs))
    step_count = decision_count = 0
    if placed:
        step_count, decision_count = await _sqlite_steps(session, placed, known, counts)
    if counts.counts:
        await _sqlite_count_pipelines(session, counts)
    await _sqlite_statistics(session)
    return BatchResult(runs=len({r.id for r in runs}), steps=step_count, decisions=decision_count)
