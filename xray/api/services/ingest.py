"""Idempotent ingest of runs, steps and their decisions.

- Runs are upserted on ``id``; a stale ``running`` update arriving after a finished one
  only fills in what is missing, so a finished run never regresses to running.
  ``metadata`` and ``sdk`` are merged key by key (the later message wins per key).
- Steps are upserted on ``id`` (latest wins); a re-sent step's decisions replace the old
  set (delete + one bulk insert for the whole request, not one round trip per decision).
- A step whose run is unknown creates a placeholder run (from the step's ``pipeline`` and
  ``run_started_at``) that the run's own upsert completes later.
- Everything happens in the caller's transaction: a request is written whole or not at all.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import ColumnElement, Table, and_, case, delete, func, literal_column, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api.db.models import DecisionRow, RunRow, StepRow
from xray.api.errors import APIError, FieldError, validation_error
from xray.api.services._rates import rejected_rate
from xray.shared import BatchResult, RunIn, RunStatus, StepIn

__all__ = ["elimination_rate", "ingest"]

_RUNS = cast(Table, RunRow.__table__)
_STEPS = cast(Table, StepRow.__table__)
_DECISIONS = cast(Table, DecisionRow.__table__)
# Stay far below both drivers' bind-parameter limits (SQLite 32766, asyncpg 32767).
_CHUNK = 500


def elimination_rate(input_count: int | None, output_count: int | None) -> float | None:
    """``1 - output/input`` when the step had input, else ``None``.

    Computed as ``(input - output) / input``: one rounding instead of two, so 10 → 7 is
    stored as 0.3, not 0.30000000000000004.

    Example:
        >>> elimination_rate(5000, 30)
        0.994
        >>> elimination_rate(10, 7)
        0.3
    """
    if not input_count or output_count is None:
        return None
    return (input_count - output_count) / input_count


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert(dialect: str, table: Any) -> Any:
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise APIError(500, f"unsupported database dialect {dialect!r}", code="internal_error")


def _merge_json(dialect: str, base: Any, patch: Any) -> ColumnElement[Any]:
    """``base`` updated key by key with ``patch`` (top-level keys; ``patch`` wins)."""
    if dialect == "postgresql":
        result: ColumnElement[Any] = base.op("||")(patch)
        return result
    return func.json_patch(base, patch)


def _run_row(run: RunIn, now: datetime) -> dict[str, Any]:
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


async def _upsert_runs(session: AsyncSession, dialect: str, runs: Sequence[RunIn]) -> int:
    if not runs:
        return 0
    now = datetime.now(UTC)
    stmt = _insert(dialect, _RUNS)
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
            (stale, _merge_json(dialect, new[column], old[column])),
            else_=_merge_json(dialect, old[column], new[column]),
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
    # One statement cannot update a row twice: the n-th message about a run goes in the
    # n-th round, so a start and an end in one batch apply in the order they were sent.
    rounds: list[list[dict[str, Any]]] = []
    seen: dict[uuid.UUID, int] = {}
    for run in runs:
        index = seen.get(run.id, 0)
        seen[run.id] = index + 1
        if index == len(rounds):
            rounds.append([])
        rounds[index].append(_run_row(run, now))
    for rows in rounds:
        # Rows in id order: concurrent requests lock rows in the same order (no deadlock).
        rows.sort(key=lambda row: row["id"])
        for chunk in _chunks(rows, _CHUNK // 2):
            await session.execute(stmt, list(chunk))
    return len(seen)


async def _known_runs(
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


async def _ensure_runs(
    session: AsyncSession, dialect: str, steps: Sequence[tuple[int, uuid.UUID, StepIn]]
) -> dict[uuid.UUID, tuple[str, datetime]]:
    run_ids = list(dict.fromkeys(run_id for _, run_id, _ in steps))
    known = await _known_runs(session, run_ids)
    placeholders: list[dict[str, Any]] = []
    now = datetime.now(UTC)
    for run_id in run_ids:
        if run_id in known:
            continue
        mine = [(i, s) for i, r, s in steps if r == run_id]
        pipeline = next((s.pipeline for _, s in mine if s.pipeline), None)
        if pipeline is None:
            index = mine[0][0]
            raise APIError(
                404,
                f"run {run_id} not found, and steps[{index}] has no 'pipeline' to create it",
            )
        started_at = next(
            (s.run_started_at for _, s in mine if s.run_started_at),
            min(s.started_at for _, s in mine),
        )
        known[run_id] = (pipeline, started_at)
        placeholders.append(
            {
                "id": run_id,
                "pipeline": pipeline,
                "status": RunStatus.RUNNING.value,
                "started_at": started_at,
                "metadata": {},
                "sdk": {},
                "received_at": now,
            }
        )
    if placeholders:
        placeholders.sort(key=lambda row: row["id"])
        stmt = _insert(dialect, _RUNS).on_conflict_do_nothing(index_elements=[_RUNS.c.id])
        for chunk in _chunks(placeholders, _CHUNK // 2):
            await session.execute(stmt, list(chunk))
    return known


def _step_row(
    step: StepIn, run_id: uuid.UUID, pipeline: str, run_started_at: datetime
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


_DECISION_COLUMNS = (
    "step_id",
    "seq",
    "run_id",
    "pipeline",
    "step_name",
    "step_type",
    "step_seq",
    "started_at",
    "run_started_at",
    "candidate_key",
    "decision",
    "reason",
    "score",
    "rank",
    "attributes",
)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


async def _insert_decisions(
    session: AsyncSession, dialect: str, rows: list[dict[str, Any]]
) -> None:
    """All the request's decisions in one bulk operation (never one round trip each)."""
    if dialect != "postgresql":
        # executemany: one prepared statement, the driver loops over the rows.
        await session.execute(_DECISIONS.insert(), rows)
        return
    # PostgreSQL: COPY in the same transaction, ~9x faster than executemany here.
    for row in rows:
        row["started_at"] = _utc(row["started_at"])
        row["run_started_at"] = _utc(row["run_started_at"])
        row["attributes"] = json.dumps(row["attributes"], separators=(",", ":"))
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    await raw.driver_connection.copy_records_to_table(  # type: ignore[union-attr]
        "decisions",
        records=[tuple(row[c] for c in _DECISION_COLUMNS) for row in rows],
        columns=list(_DECISION_COLUMNS),
    )


async def _upsert_steps(
    session: AsyncSession,
    dialect: str,
    steps: Sequence[tuple[int, uuid.UUID, StepIn]],
) -> tuple[int, int]:
    if not steps:
        return 0, 0
    runs = await _ensure_runs(session, dialect, steps)
    # A step is complete when sent: the last copy in a request wins.
    latest: dict[uuid.UUID, tuple[uuid.UUID, StepIn]] = {}
    for _, run_id, step in steps:
        latest.pop(step.id, None)
        latest[step.id] = (run_id, step)

    step_rows: list[dict[str, Any]] = []
    decision_rows: list[dict[str, Any]] = []
    for run_id, step in latest.values():
        pipeline, run_started_at = runs[run_id]
        step_rows.append(_step_row(step, run_id, pipeline, run_started_at))
        for seq, decision in enumerate(step.decisions):
            decision_rows.append(
                {
                    "step_id": step.id,
                    "seq": seq,
                    "run_id": run_id,
                    "pipeline": pipeline,
                    "step_name": step.name,
                    "step_type": step.type.value,
                    "step_seq": step.seq,
                    "started_at": step.started_at,
                    "run_started_at": run_started_at,
                    "candidate_key": decision.candidate_key,
                    "decision": decision.decision.value,
                    "reason": decision.reason,
                    "score": decision.score,
                    "rank": decision.rank,
                    "attributes": decision.attributes,
                }
            )

    stmt = _insert(dialect, _STEPS)
    stmt = stmt.on_conflict_do_update(
        index_elements=[_STEPS.c.id],
        set_={c.name: stmt.excluded[c.name] for c in _STEPS.c if c.name != "id"},
    )
    # A re-sent step replaces its decisions as a set. Steps are normally sent once, so
    # only the decisions of steps that already existed are deleted.
    resent: list[uuid.UUID] = []
    step_rows.sort(key=lambda row: row["id"])
    if dialect == "postgresql":
        # xmax = 0 on the returned row means "inserted": this is race-free, because a
        # concurrent copy of the same step waits for our row lock and then sees it.
        returning = stmt.returning(_STEPS.c.id, literal_column("(xmax = 0)"))
        for chunk in _chunks(step_rows, 200):
            rows = await session.execute(returning, list(chunk))
            resent += [step_id for step_id, inserted in rows if not inserted]
    else:
        # SQLite: ingest is serialised by the app's write lock, so a lookup is race-free.
        for chunk in _chunks(sorted(latest)):
            resent += await session.scalars(select(StepRow.id).where(StepRow.id.in_(chunk)))
        for chunk in _chunks(step_rows, 200):
            await session.execute(stmt, list(chunk))
    for chunk in _chunks(sorted(resent)):
        await session.execute(delete(DecisionRow).where(DecisionRow.step_id.in_(chunk)))
    if decision_rows:
        await _insert_decisions(session, dialect, decision_rows)
    return len(step_rows), len(decision_rows)


async def ingest(
    session: AsyncSession,
    *,
    runs: Sequence[RunIn] = (),
    steps: Sequence[StepIn] = (),
    run_id: uuid.UUID | None = None,
) -> BatchResult:
    """Write runs, then steps with their decisions, in the session's transaction.

    ``run_id`` (from ``POST /runs/{run_id}/steps``) applies to every step; otherwise each
    step must carry its own ``run_id``. The caller commits.

    Example:
        >>> await ingest(session, runs=[run], steps=[step])  # doctest: +SKIP
        BatchResult(runs=1, steps=1, decisions=0)
    """
    dialect = session.get_bind().dialect.name
    placed: list[tuple[int, uuid.UUID, StepIn]] = []
    for index, step in enumerate(steps):
        target = run_id or step.run_id
        if target is None:
            raise validation_error(
                [FieldError(field=f"steps[{index}].run_id", message="Field required")]
            )
        placed.append((index, target, step))
    run_count = await _upsert_runs(session, dialect, runs)
    step_count, decision_count = await _upsert_steps(session, dialect, placed)
    return BatchResult(runs=run_count, steps=step_count, decisions=decision_count)
