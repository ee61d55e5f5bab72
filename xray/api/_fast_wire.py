"""The ingest wire models mirrored as msgspec structs: the fast path for a valid body.

The pydantic models of ``xray.shared._wire`` are the contract; these structs decode the
common valid body several times faster, straight from the bytes. They accept a subset
of what the contract accepts, with the same values: every field, bound and default is
the contract's, the JSON depth and size rule and the UTC range are checked with the
contract's own functions, and where msgspec is stricter (a datetime in an unusual form, a
number sent as a string) it refuses. A refusal is never an answer: the caller then
validates with pydantic, which accepts the body or names the offending field. The ingest
service reads both kinds of objects alike (same attribute names and types).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar
from uuid import UUID

import msgspec
from msgspec import Meta, Struct, field

from xray.shared._enums import Decision, DetailLevel, RunStatus, StepType
from xray.shared._wire import (
    MAX_KEY_LENGTH,
    MAX_NAME_LENGTH,
    MAX_REASON_LENGTH,
    MAX_TEXT_LENGTH,
    bounded_json,
    utc_in_range,
)

__all__ = [
    "BatchFast",
    "DecisionColumnsFast",
    "DecisionFast",
    "ErrorFast",
    "RunFast",
    "StepFast",
    "decode_batch",
    "decode_run",
    "decode_runs",
    "decode_step",
    "decode_steps",
]

T = TypeVar("T")

Text = Annotated[str, Meta(max_length=MAX_TEXT_LENGTH)]
Name = Annotated[str, Meta(min_length=1, max_length=MAX_NAME_LENGTH)]
Key = Annotated[str, Meta(min_length=1, max_length=MAX_KEY_LENGTH)]
Reason = Annotated[str, Meta(max_length=MAX_REASON_LENGTH)]
Count = Annotated[int, Meta(ge=0)]
Millis = Annotated[float, Meta(ge=0)]
# Keys are bounded here even where the contract does not bound them: stricter only means
# the contract decides.
JSONObject = dict[Text, Any]


# msgspec ignores unknown fields, as the contract does (a newer SDK, an older server).


class ErrorFast(Struct, kw_only=True):
    """``ErrorInfo``."""

    type: Annotated[str, Meta(max_length=MAX_NAME_LENGTH)]
    message: Text = ""
    traceback: Text | None = None

    def model_dump(self) -> dict[str, Any]:
        """The same dict as ``ErrorInfo.model_dump()``."""
        return {"type": self.type, "message": self.message, "traceback": self.traceback}


class RunFast(Struct, kw_only=True):
    """``RunIn``."""

    id: UUID
    pipeline: Name
    status: RunStatus = RunStatus.RUNNING
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: Millis | None = None
    input: Any = None
    output: Any = None
    metadata: JSONObject = field(default_factory=dict)
    error: ErrorFast | None = None
    sdk: JSONObject = field(default_factory=dict)


class DecisionFast(Struct, kw_only=True):
    """``DecisionIn``."""

    candidate_key: Key
    decision: Decision
    reason: Reason | None = None
    score: float | None = None
    rank: int | None = None
    attributes: JSONObject = field(default_factory=dict)


class DecisionColumnsFast(Struct, kw_only=True):
    """``DecisionColumnsIn``."""

    candidate_key: list[Key]
    decision: Decision | list[Decision]
    reason: Reason | list[Reason | None] | None = None
    score: float | list[float | None] | None = None
    rank: int | list[int | None] | None = None
    attributes: dict[Text, list[Any]] = field(default_factory=dict)
    shared_attributes: JSONObject = field(default_factory=dict)


class StepFast(Struct, kw_only=True):
    """``StepIn``."""

    id: UUID
    run_id: UUID | None = None
    parent_id: UUID | None = None
    seq: Count = 0
    pipeline: Name | None = None
    run_started_at: datetime | None = None
    name: Name
    type: StepType
    status: RunStatus = RunStatus.SUCCESS
    started_at: datetime
    ended_at: datetime | None = None
    duration_ms: Millis | None = None
    input_count: Count | None = None
    output_count: Count | None = None
    params: JSONObject = field(default_factory=dict)
    reasoning: Text | None = None
    reason_counts: dict[Text, int] = field(default_factory=dict)
    input: Any = None
    output: Any = None
    metadata: JSONObject = field(default_factory=dict)
    error: ErrorFast | None = None
    detail: DetailLevel = DetailLevel.SUMMARY
    candidates_total: Count | None = None
    candidates_recorded: Count = 0
    decisions: list[DecisionFast] = field(default_factory=list)
    decision_columns: list[DecisionColumnsFast] = field(default_factory=list)


class BatchFast(Struct, kw_only=True):
    """``BatchIn``."""

    runs: list[RunFast] = field(default_factory=list)
    steps: list[StepFast] = field(default_factory=list)


# What msgspec would decode differently from the contract, so the body goes to pydantic:
# NUL (the contract stores U+FFFD), integers that may not fit 64 bits (refused), and
# seconds with more than six decimals (truncated to microseconds by pydantic, rounded by
# msgspec). NaN, Infinity, floats out of range and lone surrogates msgspec refuses itself.
_NUL = b"\\u0000"
_DIGITS = bytes.maketrans(b"123456789", b"000000000")
_LONG_INTEGER = b"0" * 19
_LONG_FRACTION = b":00.0000000"


class _Refused(Exception):
    """The contract must decide (or name what is wrong)."""


def _json(value: Any) -> None:
    # The contract's rule for every stored JSON value; its error is pydantic's to name.
    try:
        bounded_json(value)
    except Exception:
        raise _Refused from None


def _datetime(value: datetime | None) -> None:
    if value is not None:
        try:
            utc_in_range(value)
        except Exception:
            raise _Refused from None


def _check_run(run: RunFast) -> None:
    _datetime(run.started_at)
    _datetime(run.ended_at)
    _json(run.input)
    _json(run.output)
    _json(run.metadata)
    _json(run.sdk)


def _aligned(column: Any, length: int) -> None:
    if type(column) is list and len(column) != length:
        raise _Refused


def _check_columns(block: DecisionColumnsFast) -> None:
    length = len(block.candidate_key)
    for column in (block.decision, block.reason, block.score, block.rank):
        _aligned(column, length)
    for values in block.attributes.values():
        if len(values) != length:
            raise _Refused
        for value in values:
            _json(value)
    _json(block.shared_attributes)


def _check_step(step: StepFast) -> None:
    _datetime(step.run_started_at)
    _datetime(step.started_at)
    _datetime(step.ended_at)
    _json(step.params)
    _json(step.reason_counts)
    _json(step.input)
    _json(step.output)
    _json(step.metadata)
    for decision in step.decisions:
        attributes = decision.attributes
        if attributes:
            _json(attributes)
    for block in step.decision_columns:
        _check_columns(block)


_BATCH = msgspec.json.Decoder(BatchFast)
_RUN = msgspec.json.Decoder(RunFast)
_RUNS = msgspec.json.Decoder(list[RunFast])
_STEP = msgspec.json.Decoder(StepFast)
_STEPS = msgspec.json.Decoder(list[StepFast])


def _decode(decoder: msgspec.json.Decoder[T], body: bytes, check: Callable[[T], None]) -> T | None:
    if _NUL in body:
        return None
    digits = body.translate(_DIGITS)
    if _LONG_INTEGER in digits or _LONG_FRACTION in digits:
        return None
    try:
        decoded = decoder.decode(body)
        check(decoded)
    except (msgspec.DecodeError, _Refused):
        return None
    return decoded


def _check_batch(batch: BatchFast) -> None:
    for run in batch.runs:
        _check_run(run)
    for step in batch.steps:
        _check_step(step)


def _check_runs(runs: list[RunFast]) -> None:
    for run in runs:
        _check_run(run)


def _check_steps(steps: list[StepFast]) -> None:
    for step in steps:
        _check_step(step)


def decode_batch(body: bytes) -> BatchFast | None:
    """``body`` as a ``POST /batch`` body, or ``None`` when the contract must decide.

    Example:
        >>> decode_batch(b'{"runs": []}')
        BatchFast(runs=[], steps=[])
        >>> decode_batch(b'{"runs": 1}') is None
        True
    """
    return _decode(_BATCH, body, _check_batch)


def decode_run(body: bytes) -> RunFast | None:
    """``body`` as one run, or ``None`` when the contract must decide."""
    return _decode(_RUN, body, _check_run)


def decode_runs(body: bytes) -> list[RunFast] | None:
    """``body`` as a list of runs, or ``None`` when the contract must decide."""
    return _decode(_RUNS, body, _check_runs)


def decode_step(body: bytes) -> StepFast | None:
    """``body`` as one step, or ``None`` when the contract must decide."""
    return _decode(_STEP, body, _check_step)


def decode_steps(body: bytes) -> list[StepFast] | None:
    """``body`` as a list of steps, or ``None`` when the contract must decide."""
    return _decode(_STEPS, body, _check_steps)
