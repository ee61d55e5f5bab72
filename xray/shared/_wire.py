"""The JSON shapes that cross the wire between the SDK, the API, the CLI and the dashboard.

Ingest models (``RunIn``, ``StepIn``, ``DecisionIn``, ``BatchIn``) are what the SDK sends
and the API validates; the ``*Out`` models and ``Page`` are what the query endpoints
answer. The SDK builds plain dicts of these shapes on its hot path and never validates
them there; the API validates every item, and a test checks the SDK's payloads against
these models so the two cannot drift.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Generic, TypeVar
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from xray.shared._enums import Decision, DetailLevel, RunStatus, StepType

__all__ = [
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_REASON_LENGTH",
    "BatchIn",
    "BatchResult",
    "DecisionIn",
    "DecisionOut",
    "ErrorInfo",
    "Page",
    "PipelineOut",
    "RunDetailOut",
    "RunIn",
    "RunOut",
    "StepIn",
    "StepOut",
]

MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 512
MAX_REASON_LENGTH = 500
MAX_TEXT_LENGTH = 100_000

Item = TypeVar("Item")


class _In(BaseModel):
    # Unknown fields are ignored, not rejected: an older server must accept a newer SDK.
    model_config = ConfigDict(extra="ignore", str_max_length=MAX_TEXT_LENGTH)


class ErrorInfo(BaseModel):
    """An exception as recorded by the SDK: type name, message, formatted traceback."""

    model_config = ConfigDict(extra="ignore")

    type: str = Field(max_length=MAX_NAME_LENGTH)
    message: str = Field("", max_length=MAX_TEXT_LENGTH)
    traceback: str | None = Field(None, max_length=MAX_TEXT_LENGTH)


class RunIn(_In):
    """A run as sent at its start and again at its end (upsert on ``id``; latest wins)."""

    id: UUID
    pipeline: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    status: RunStatus = RunStatus.RUNNING
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = Field(None, ge=0)
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    sdk: dict[str, Any] = Field(default_factory=dict)


class DecisionIn(_In):
    """One candidate's fate in one step; nested in its ``StepIn``."""

    candidate_key: str = Field(min_length=1, max_length=MAX_KEY_LENGTH)
    decision: Decision
    reason: str | None = Field(None, max_length=MAX_REASON_LENGTH)
    score: float | None = None
    rank: int | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class StepIn(_In):
    """A finished step with its decisions, sent once (upsert on ``id``; latest wins).

    ``pipeline`` and ``run_started_at`` travel with the step so the server can store it
    even when it arrives before its run (a placeholder run is created and later updated).
    """

    id: UUID
    run_id: UUID | None = None
    parent_id: UUID | None = None
    seq: int = Field(0, ge=0)
    pipeline: str | None = Field(None, min_length=1, max_length=MAX_NAME_LENGTH)
    run_started_at: datetime | None = None
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    type: StepType
    status: RunStatus = RunStatus.SUCCESS
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = Field(None, ge=0)
    input_count: int | None = Field(None, ge=0)
    output_count: int | None = Field(None, ge=0)
    params: dict[str, Any] = Field(default_factory=dict)
    reasoning: str | None = None
    reason_counts: dict[str, int] = Field(default_factory=dict)
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    detail: DetailLevel = DetailLevel.SUMMARY
    candidates_total: int | None = Field(None, ge=0)
    candidates_recorded: int = Field(0, ge=0)
    decisions: list[DecisionIn] = Field(default_factory=list)


class BatchIn(_In):
    """What the SDK's transport posts to ``POST /batch``: runs first, then steps."""

    runs: list[RunIn] = Field(default_factory=list)
    steps: list[StepIn] = Field(default_factory=list)


class BatchResult(BaseModel):
    """How many rows an ingest request wrote (upserts count once each)."""

    runs: int = 0
    steps: int = 0
    decisions: int = 0


class RunOut(BaseModel):
    """A run as the query endpoints return it."""

    id: UUID
    pipeline: str
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = None
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    sdk: dict[str, Any] = Field(default_factory=dict)
    step_count: int = 0


class StepOut(BaseModel):
    """A step as the query endpoints return it; ``elimination_rate`` is server-computed."""

    id: UUID
    run_id: UUID
    parent_id: UUID | None = None
    seq: int
    pipeline: str
    name: str
    type: StepType
    status: RunStatus
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: float | None = None
    input_count: int | None = None
    output_count: int | None = None
    elimination_rate: float | None = None
    # rejected / input from reason_counts; a refilled step reads 100% here.
    rejected_rate: float | None = None
    readmitted: bool = False
    params: dict[str, Any] = Field(default_factory=dict)
    reasoning: str | None = None
    reason_counts: dict[str, int] = Field(default_factory=dict)
    input: Any = None
    output: Any = None
    metadata: dict[str, Any] = Field(default_factory=dict)
    error: ErrorInfo | None = None
    detail: DetailLevel = DetailLevel.SUMMARY
    candidates_total: int | None = None
    candidates_recorded: int = 0


class RunDetailOut(RunOut):
    """``GET /runs/{id}``: the run with all its steps ordered by ``seq``."""

    steps: list[StepOut] = Field(default_factory=list)


class DecisionOut(BaseModel):
    """A stored decision, with its step's identity copied on (no join needed to read it)."""

    id: int
    step_id: UUID
    run_id: UUID
    pipeline: str
    step_name: str
    step_type: StepType
    step_seq: int
    started_at: datetime
    candidate_key: str
    decision: Decision
    reason: str | None = None
    score: float | None = None
    rank: int | None = None
    attributes: dict[str, Any] = Field(default_factory=dict)


class PipelineOut(BaseModel):
    """One pipeline name with how many runs it has and when it last ran."""

    pipeline: str
    run_count: int
    last_started_at: datetime | None = None


class Page(BaseModel, Generic[Item]):
    """Every list endpoint answers ``{"items": [...], "next_cursor": "..." | null}``."""

    items: list[Item]
    next_cursor: str | None = None
