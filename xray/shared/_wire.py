"""The JSON shapes that cross the wire between the SDK, the API, the CLI and the dashboard.

Ingest models (``RunIn``, ``StepIn``, ``DecisionIn``, ``BatchIn``) are what the SDK sends
and the API validates; the ``*Out`` models and ``Page`` are what the query endpoints
answer. The SDK builds plain dicts of these shapes on its hot path and never validates
them there; the API validates every item, and a test checks the SDK's payloads against
these models so the two cannot drift.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WrapValidator,
    model_validator,
)
from pydantic_core import (
    InitErrorDetails,
    PydanticCustomError,
    PydanticSerializationError,
    to_json,
)

from xray.shared._enums import Decision, DetailLevel, RunStatus, StepType

__all__ = [
    "MAX_JSON_BYTES",
    "MAX_JSON_DEPTH",
    "MAX_KEY_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_REASON_LENGTH",
    "BatchIn",
    "BatchResult",
    "DecisionColumnsIn",
    "DecisionIn",
    "DecisionOut",
    "ErrorInfo",
    "Page",
    "PipelineOut",
    "RunDetailOut",
    "RunIn",
    "RunList",
    "RunOut",
    "StepIn",
    "StepList",
    "StepOut",
    "UTCDatetime",
    "bounded_json",
    "json_too_deep",
    "utc_in_range",
]

MAX_NAME_LENGTH = 200
MAX_KEY_LENGTH = 512
MAX_REASON_LENGTH = 500
MAX_TEXT_LENGTH = 100_000
# The one rule for every stored JSON value (input, output, params, metadata, decision
# attributes, sdk, reason_counts): at most this many nested containers, and at most this
# many bytes as compact JSON. Far above what the SDK sends (its values are previews a few
# levels deep), far below what breaks a reader (serialisers stop at a few hundred levels).
MAX_JSON_DEPTH = 32
MAX_JSON_BYTES = 1_048_576

Item = TypeVar("Item")
_CONTAINERS = (dict, list)


def json_too_deep(value: Any, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``value`` nests more than ``limit`` containers deep.

    Breadth-first over containers only, so a wide value costs one step per container and a
    deep one stops at ``limit + 1`` levels, however deep it goes.

    Example:
        >>> json_too_deep({"a": [1, {"b": 2}]}, limit=2), json_too_deep([[[]]], limit=2)
        (False, True)
    """
    level = [value] if type(value) in _CONTAINERS else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        deeper: list[Any] = []
        for container in level:
            items = container.values() if type(container) is dict else container
            deeper.extend(item for item in items if type(item) in _CONTAINERS)
        level = deeper
    return False


_SCALARS = (str, int, float, bool, type(None))
# A mapping of at most this many scalars, each key and string at most _SHORT characters, is
# one level deep and (even at 6 bytes per escaped character) far below MAX_JSON_BYTES: the
# usual shape of attributes, params and metadata skips the walk and the serialisation.
_FLAT_ITEMS = 64
_SHORT = 1024


def _is_small_flat_mapping(value: Any) -> bool:
    if type(value) is not dict or len(value) > _FLAT_ITEMS:
        return False
    for key, item in value.items():
        kind = type(item)
        if kind not in _SCALARS or len(key) > _SHORT or (kind is str and len(item) > _SHORT):
            return False
    return True


def bounded_json(value: Any) -> Any:
    """``value`` when it keeps the stored-JSON rule (depth, then size); a pydantic error
    naming the rule otherwise."""
    if value is None or type(value) in (bool, int, float) or _is_small_flat_mapping(value):
        return value
    if json_too_deep(value):
        raise PydanticCustomError(
            "json_too_deep",
            "nests deeper than {max_depth} levels",
            {"max_depth": MAX_JSON_DEPTH},
        )
    try:
        size = len(to_json(value))
    except PydanticSerializationError:
        size = MAX_JSON_BYTES + 1
    if size > MAX_JSON_BYTES:
        raise PydanticCustomError(
            "json_too_large",
            "is larger than {max_bytes} bytes as JSON",
            {"max_bytes": MAX_JSON_BYTES},
        )
    return value


def utc_in_range(value: datetime) -> datetime:
    """``value`` when its UTC instant is inside the calendar; a pydantic error otherwise."""
    # A date at the edge of the calendar can leave it when its offset is applied
    # (0001-01-01T00:00:00+14:00); the databases store UTC, so refuse it here, by name.
    if value.tzinfo is not None:
        try:
            value.astimezone(UTC)
        except OverflowError:
            raise PydanticCustomError(
                "datetime_out_of_range",
                "is out of range once converted to UTC (years 1-9999)",
            ) from None
    return value


JSONValue = Annotated[Any, AfterValidator(bounded_json)]
JSONObject = Annotated[dict[str, Any], AfterValidator(bounded_json)]
UTCDatetime = Annotated[datetime, AfterValidator(utc_in_range)]


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
    started_at: UTCDatetime
    ended_at: UTCDatetime | None = None
    duration_ms: float | None = Field(None, ge=0)
    input: JSONValue = None
    output: JSONValue = None
    metadata: JSONObject = Field(default_factory=dict)
    error: ErrorInfo | None = None
    sdk: JSONObject = Field(default_factory=dict)


class DecisionIn(_In):
    """One candidate's fate in one step; nested in its ``StepIn``."""

    candidate_key: str = Field(min_length=1, max_length=MAX_KEY_LENGTH)
    decision: Decision
    reason: str | None = Field(None, max_length=MAX_REASON_LENGTH)
    score: float | None = None
    rank: int | None = None
    attributes: JSONObject = Field(default_factory=dict)


Key = Annotated[str, Field(min_length=1, max_length=MAX_KEY_LENGTH)]
Reason = Annotated[str, Field(max_length=MAX_REASON_LENGTH)]


def _one_or_aligned(one: Any, item: Any) -> WrapValidator:
    """Validate one value, or a list of ``item`` (fail-fast), naming a bad list item by
    its index (``reason[17]``) rather than by the union's member."""
    single: TypeAdapter[Any] = TypeAdapter(one)
    many: TypeAdapter[Any] = TypeAdapter(Annotated[list[item], Field(fail_fast=True)])

    def validate(value: Any, _handler: Any) -> Any:
        return (many if type(value) is list else single).validate_python(value)

    return WrapValidator(validate)


def _misaligned(loc: tuple[str, ...], got: int, expected: int) -> ValidationError:
    return ValidationError.from_exception_data(
        "DecisionColumnsIn",
        [
            InitErrorDetails(
                type=PydanticCustomError(
                    "column_length",
                    "has {got} values for {expected} candidate keys",
                    {"got": got, "expected": expected},
                ),
                loc=loc,
                input=None,
            )
        ],
    )


class DecisionColumnsIn(_In):
    """Many decisions of one step as columns: what the SDK's bulk calls send.

    ``candidate_key`` sets the length; every other field is either one value for all the
    decisions or a list aligned with the keys. ``attributes`` maps a name to an aligned
    list (``null`` where a decision has no such attribute); ``shared_attributes`` are on
    every decision, and an aligned value of the same name wins over them. Stored exactly as
    the same decisions sent one by one in ``StepIn.decisions``, after those, block by block.
    """

    candidate_key: list[Key] = Field(fail_fast=True)
    decision: Annotated[Decision | list[Decision], _one_or_aligned(Decision, Decision)]
    reason: Annotated[
        Reason | list[Reason | None] | None, _one_or_aligned(Reason | None, Reason | None)
    ] = None
    score: Annotated[
        float | list[float | None] | None, _one_or_aligned(float | None, float | None)
    ] = None
    rank: Annotated[int | list[int | None] | None, _one_or_aligned(int | None, int | None)] = None
    attributes: dict[str, Annotated[list[JSONValue], Field(fail_fast=True)]] = Field(
        default_factory=dict
    )
    shared_attributes: JSONObject = Field(default_factory=dict)

    @model_validator(mode="after")
    def _check_alignment(self) -> DecisionColumnsIn:
        length = len(self.candidate_key)
        for name in ("decision", "reason", "score", "rank"):
            column = getattr(self, name)
            if type(column) is list and len(column) != length:
                raise _misaligned((name,), len(column), length)
        for name, column in self.attributes.items():
            if len(column) != length:
                raise _misaligned(("attributes", name), len(column), length)
        return self

    def rows(self) -> list[DecisionIn]:
        """The same decisions one by one (the slow, general form)."""
        length = len(self.candidate_key)

        def column(value: Any) -> list[Any]:
            return value if type(value) is list else [value] * length

        attributes = [dict(self.shared_attributes) for _ in range(length)]
        for name, values in self.attributes.items():
            for mine, value in zip(attributes, values, strict=True):
                if value is not None:
                    mine[name] = value
        return [
            DecisionIn.model_construct(
                candidate_key=key,
                decision=decision,
                reason=reason,
                score=score,
                rank=rank,
                attributes=attrs,
            )
            for key, decision, reason, score, rank, attrs in zip(
                self.candidate_key,
                column(self.decision),
                column(self.reason),
                column(self.score),
                column(self.rank),
                attributes,
                strict=True,
            )
        ]


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
    run_started_at: UTCDatetime | None = None
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    type: StepType
    status: RunStatus = RunStatus.SUCCESS
    started_at: UTCDatetime
    ended_at: UTCDatetime | None = None
    duration_ms: float | None = Field(None, ge=0)
    input_count: int | None = Field(None, ge=0)
    output_count: int | None = Field(None, ge=0)
    params: JSONObject = Field(default_factory=dict)
    reasoning: str | None = None
    reason_counts: Annotated[dict[str, int], AfterValidator(bounded_json)] = Field(
        default_factory=dict
    )
    input: JSONValue = None
    output: JSONValue = None
    metadata: JSONObject = Field(default_factory=dict)
    error: ErrorInfo | None = None
    detail: DetailLevel = DetailLevel.SUMMARY
    candidates_total: int | None = Field(None, ge=0)
    candidates_recorded: int = Field(0, ge=0)
    # fail_fast: validation stops at the first invalid item of a list, so the work (and
    # the error reply) is bounded however many invalid items a body holds.
    decisions: list[DecisionIn] = Field(default_factory=list, fail_fast=True)
    # The columnar form of many decisions, stored after ``decisions``, block by block
    # (the ingest service writes it column by column, never as one object per decision).
    decision_columns: list[DecisionColumnsIn] = Field(default_factory=list, fail_fast=True)


class BatchIn(_In):
    """What the SDK's transport posts to ``POST /batch``: runs first, then steps."""

    runs: list[RunIn] = Field(default_factory=list, fail_fast=True)
    steps: list[StepIn] = Field(default_factory=list, fail_fast=True)


# A list of runs or steps posted as one body: validated fail-fast, like BatchIn's lists.
RunList = Annotated[list[RunIn], Field(fail_fast=True)]
StepList = Annotated[list[StepIn], Field(fail_fast=True)]


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
