"""The tables: ``runs``, ``steps``, ``decisions``, ``pipelines``, ``api_keys`` (and
``run_metadata`` on SQLite).

Only ``runs`` is ever updated (start, then end). ``steps`` and ``decisions`` are written
once per step (a re-sent step replaces its own rows). ``steps`` carries copies of
``pipeline`` and the run's start time, so no step list needs a join; ``decisions``, the
largest table, keeps only its own values and ``run_started_at``, and reads its step's
identity by primary key. Both can be partitioned by ``run_started_at`` (retention =
dropping a partition). There are deliberately no foreign keys: steps may arrive before their run,
and partitioned or columnar stores do not keep them anyway.

The indexes live in the migration (``migrations/versions``), the one source of truth for
the schema; these models only describe the columns for queries.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Dialect,
    Float,
    Integer,
    SmallInteger,
    String,
    Text,
    TypeDecorator,
    Uuid,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

__all__ = [
    "DECISION_CODES",
    "DECISION_NAMES",
    "APIKeyRow",
    "Base",
    "DecisionRow",
    "PipelineRow",
    "RunMetadataRow",
    "RunRow",
    "StepRow",
    "UTCDateTime",
    "json_type",
]


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back timezone-aware.

    PostgreSQL keeps ``timestamptz``; SQLite has no time zones, so values are stored as
    naive UTC text in one fixed format, which keeps text comparison equal to time order.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def json_type() -> JSON:
    """JSON on SQLite, JSONB on PostgreSQL; Python ``None`` is stored as SQL NULL."""
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


# BIGINT autoincrement is spelled INTEGER PRIMARY KEY on SQLite.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of every X-Ray table."""


class RunRow(Base):
    """One execution of a pipeline (upserted at its start and again at its end)."""

    __tablename__ = "runs"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    pipeline: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    input: Mapped[Any] = mapped_column(json_type(), nullable=True)
    output: Mapped[Any] = mapped_column(json_type(), nullable=True)
    # `metadata` is reserved on declarative classes; the column keeps the domain name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", json_type())
    error: Mapped[dict[str, Any] | None] = mapped_column(json_type(), nullable=True)
    sdk: Mapped[dict[str, Any]] = mapped_column(json_type())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class StepRow(Base):
    """One decision point in a run; written once with its decisions."""

    __tablename__ = "steps"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    run_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    parent_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    pipeline: Mapped[str] = mapped_column(String(200))
    run_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    name: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    duration_ms: Mapped[float | None] = mapped_column(Float, nullable=True)
    input_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    output_count: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    elimination_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    rejected_rate: Mapped[float | None] = mapped_column(Float, nullable=True)
    params: Mapped[dict[str, Any]] = mapped_column(json_type())
    reasoning: Mapped[str | None] = mapped_column(Text, nullable=True)
    reason_counts: Mapped[dict[str, int]] = mapped_column(json_type())
    input: Mapped[Any] = mapped_column(json_type(), nullable=True)
    output: Mapped[Any] = mapped_column(json_type(), nullable=True)
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", json_type())
    error: Mapped[dict[str, Any] | None] = mapped_column(json_type(), nullable=True)
    detail: Mapped[str] = mapped_column(String(16))
    candidates_total: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    candidates_recorded: Mapped[int] = mapped_column(BigInteger)


# The stored code of each decision (a small integer, not its name).
DECISION_CODES: dict[str, int] = {"accepted": 1, "rejected": 2, "selected": 3, "scored": 4}
DECISION_NAMES: dict[int, str] = {code: name for name, code in DECISION_CODES.items()}


class DecisionRow(Base):
    """One candidate's fate in one step; never updated (a re-sent step replaces its set).

    Only the decision's own values and ``run_started_at`` (for retention and the candidate
    order) are stored; the step's identity is read from ``steps`` by ``step_id``. On
    PostgreSQL the table's primary key is ``(step_id, seq)`` and ``id`` is numbered by a
    sequence; ``id`` is the ORM's key here because it identifies a row on both databases.
    """

    __tablename__ = "decisions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    run_started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    rank: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    step_id: Mapped[uuid.UUID] = mapped_column(Uuid)
    seq: Mapped[int] = mapped_column(Integer)
    decision: Mapped[int] = mapped_column(SmallInteger)
    candidate_key: Mapped[str] = mapped_column(String(512))
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # JSON text on both databases: stored and answered as sent, never searched.
    attributes: Mapped[dict[str, Any]] = mapped_column(JSON(none_as_null=True))


class _Atom(TypeDecorator[Any]):
    """A column with no declared type: values are bound and read as they are."""

    impl = String
    cache_ok = True


class RunMetadataRow(Base):
    """SQLite only: one row per run and scalar metadata value, for the metadata filter.

    ``atom`` keeps the value's SQLite type (as ``json_each`` reports it), so text and
    numbers stay apart; PostgreSQL answers the filter from its GIN index instead.
    """

    __tablename__ = "run_metadata"

    run_id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    type: Mapped[str] = mapped_column(String(8))
    atom: Mapped[Any] = mapped_column(_Atom(), nullable=True)


class PipelineRow(Base):
    """A pipeline's run count and latest run start, kept by ingest (``GET /pipelines``)."""

    __tablename__ = "pipelines"

    pipeline: Mapped[str] = mapped_column(String(200), primary_key=True)
    run_count: Mapped[int] = mapped_column(BigInteger)
    last_started_at: Mapped[datetime] = mapped_column(UTCDateTime)


class APIKeyRow(Base):
    """An API key created with ``xray keys create``: only its SHA-256 is stored."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
