"""Filter conditions shared by the lists and the cross-run analyses.

``metadata.<key>=<value>`` matches the value's JSON text (``7`` and ``"7"``);
``metadata.<key>!=<value>`` (the query parameter's name ends in ``!``) keeps runs whose
value differs or that lack the key. ``reason`` matches steps whose ``reason_counts`` or
decisions carry that reason; ``min_reason_rate`` asks that reason's share of the step's
input. Every value is a bound parameter.
"""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Container, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    and_,
    cast,
    exists,
    func,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from xray.api.db.models import DecisionRow, RunMetadataRow, RunRow, StepRow
from xray.shared import RunStatus, StepType

__all__ = [
    "RunFilters",
    "StepFilters",
    "metadata_candidates",
    "metadata_filter",
    "metadata_probe",
    "step_conditions",
]

_NUMBER = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?")
# A stored number (a 64-bit integer or a double) is written in fewer characters than this;
# a longer digit string can only match as text, so it is never converted.
_MAX_NUMBER_TEXT = 40


def metadata_candidates(value: str) -> list[Any]:
    """The JSON values whose text is ``value``: ``"7"`` → ``["7", 7]``.

    Example:
        >>> metadata_candidates("true")
        ['true', True]
    """
    candidates: list[Any] = [value]
    if value in ("true", "false"):
        candidates.append(value == "true")
    elif value == "null":
        candidates.append(None)
    elif len(value) <= _MAX_NUMBER_TEXT and _NUMBER.fullmatch(value):
        number: int | float = float(value) if any(c in value for c in ".eE") else int(value)
        if math.isfinite(number) and abs(number) < 2**63:
            candidates.append(number)
    return candidates


def _metadata_rows(key: str, value: str) -> ColumnElement[bool]:
    """SQLite: the ``run_metadata`` rows (kept at ingest) whose key and value match."""
    rows = RunMetadataRow
    matches = []
    for c in metadata_candidates(value):
        if isinstance(c, bool):
            matches.append(rows.type == ("true" if c else "false"))
        elif c is None:
            matches.append(rows.type == "null")
        elif isinstance(c, str):
            matches.append(and_(rows.type == "text", rows.atom == c))
        else:
            matches.append(and_(rows.type.in_(("integer", "real")), rows.atom == c))
    return and_(rows.key == key, or_(*matches))


def _metadata_equals(
    dialect: str, key: str, value: str, run_id: ColumnElement[uuid.UUID], dense: bool
) -> ColumnElement[bool]:
    if dialect == "postgresql":
        # `@>` containment is what the GIN (jsonb_path_ops) index answers.
        contains = or_(
            *(
                RunRow.meta.op("@>", is_comparison=True)(literal({key: c}, JSONB))
                for c in metadata_candidates(value)
            )
        )
        if run_id is RunRow.__table__.c.id:
            return contains
        return run_id.in_(select(RunRow.id).where(contains))
    rows = _metadata_rows(key, value)
    if dense:
        # Many runs match: walk the runs in the list's order and look each one up by the
        # (run_id, key) primary key; the first page is found after a few rows.
        return exists(select(1).where(RunMetadataRow.run_id == run_id, rows))
    # Few runs match: start from them, found by the (key, atom) index.
    return run_id.in_(select(RunMetadataRow.run_id).where(rows))


def metadata_filter(
    dialect: str,
    key: str,
    value: str,
    *,
    run_id: ColumnElement[uuid.UUID] | None = None,
    dense: bool = False,
) -> ColumnElement[bool]:
    """``metadata.<key>=<value>``, or its negation when ``key`` ends in ``!``, on the run
    ``run_id`` (``runs.id`` unless given, e.g. ``steps.run_id``).

    ``dense`` (SQLite) says the value is common (``metadata_probe``): the condition is
    then checked per run in the list's order instead of starting from the matching runs.
    """
    column: ColumnElement[uuid.UUID] = RunRow.__table__.c.id if run_id is None else run_id
    if key.endswith("!"):
        return not_(_metadata_equals(dialect, key[:-1], value, column, dense))
    return _metadata_equals(dialect, key, value, column, dense)


def metadata_probe(key: str, value: str) -> Select[uuid.UUID]:
    """SQLite: the runs holding ``metadata.<key>=<value>`` (negated or not), from the
    index, to count how common the value is."""
    return select(RunMetadataRow.run_id).where(_metadata_rows(key.removesuffix("!"), value))


def _reason_count(dialect: str, reason: str) -> ColumnElement[Any]:
    """``reason_counts[reason]`` as a number (NULL when absent)."""
    if dialect == "postgresql":
        return cast(StepRow.reason_counts.op("->>")(literal(reason)), Float)
    entries = func.json_each(StepRow.reason_counts).table_valued("key", "value")
    return select(cast(entries.c.value, Float)).where(entries.c.key == reason).scalar_subquery()


def step_conditions(
    dialect: str,
    *,
    reason: str | None = None,
    min_reason_rate: float | None = None,
    min_rejected_rate: float | None = None,
    max_rejected_rate: float | None = None,
) -> list[ColumnElement[bool]]:
    """The reason and rejection filters of one step (``StepRow`` columns)."""
    conditions: list[ColumnElement[bool]] = []
    if reason is not None:
        counted = _reason_count(dialect, reason)
        if min_reason_rate is not None:
            conditions.append(StepRow.input_count > 0)
            conditions.append(counted >= literal(min_reason_rate) * StepRow.input_count)
            # Implied (one reason's share is at most the share rejected), and what the
            # (pipeline | type, rejected_rate) indexes answer before any JSON is read.
            conditions.append(StepRow.rejected_rate >= min_reason_rate)
        else:
            # A step's own decisions: the (step_id, seq) index bounds this to one step.
            decided = exists(
                select(1).where(DecisionRow.step_id == StepRow.id, DecisionRow.reason == reason)
            )
            conditions.append(or_(counted.is_not(None), decided))
    if min_rejected_rate is not None:
        conditions.append(StepRow.rejected_rate >= min_rejected_rate)
    if max_rejected_rate is not None:
        conditions.append(StepRow.rejected_rate <= max_rejected_rate)
    return conditions


@dataclass(frozen=True)
class RunFilters:
    """The run filters of ``GET /runs``, its count and every analysis, pipeline aside."""

    status: RunStatus | None = None
    since: datetime | None = None
    until: datetime | None = None
    metadata: Sequence[tuple[str, str]] = ()
    step_type: StepType | None = None
    step_name: str | None = None
    min_elimination_rate: float | None = None
    max_elimination_rate: float | None = None
    reason: str | None = None
    min_reason_rate: float | None = None
    min_rejected_rate: float | None = None

    def conditions(
        self, dialect: str, pipeline: str | None, dense: Container[str] = ()
    ) -> list[ColumnElement[bool]]:
        """Conditions on ``RunRow``; the ``step_*``, rate and reason filters keep runs
        having one step that matches all of them.

        ``dense`` (SQLite) names the filters many runs match (``"metadata.<key>"``,
        ``"steps"``): those are checked per run in the list's order (a correlated
        ``EXISTS``), the others start from their matching rows (``IN``), which is what
        SQLite's planner does with each form.
        """
        conditions: list[ColumnElement[bool]] = []
        if pipeline is not None:
            conditions.append(RunRow.pipeline == pipeline)
        if self.status is not None:
            conditions.append(RunRow.status == self.status.value)
        if self.since is not None:
            conditions.append(RunRow.started_at >= self.since)
        if self.until is not None:
            conditions.append(RunRow.started_at <= self.until)
        for key, value in self.metadata:
            dense_key = f"metadata.{key.removesuffix('!')}" in dense
            conditions.append(metadata_filter(dialect, key, value, dense=dense_key))
        step_filters = self._step_filters(dialect, pipeline)
        if step_filters:
            if "steps" in dense:
                conditions.append(
                    exists(select(1).where(StepRow.run_id == RunRow.id, *step_filters))
                )
            else:
                conditions.append(RunRow.id.in_(select(StepRow.run_id).where(*step_filters)))
        return conditions

    def step_probe(self, dialect: str, pipeline: str | None) -> Select[uuid.UUID] | None:
        """The steps the step filters match, to count how common they are; ``None``
        without a step filter."""
        step_filters = self._step_filters(dialect, pipeline)
        return select(StepRow.run_id).where(*step_filters) if step_filters else None

    def _step_filters(self, dialect: str, pipeline: str | None) -> list[ColumnElement[bool]]:
        """The conditions on the one step a run must have (none: no step filter)."""
        step_filters: list[ColumnElement[bool]] = []
        if self.step_type is not None:
            step_filters.append(StepRow.type == self.step_type.value)
        if self.step_name is not None:
            step_filters.append(StepRow.name == self.step_name)
        if self.min_elimination_rate is not None:
            step_filters.append(StepRow.elimination_rate >= self.min_elimination_rate)
        if self.max_elimination_rate is not None:
            step_filters.append(StepRow.elimination_rate <= self.max_elimination_rate)
        step_filters += step_conditions(
            dialect,
            reason=self.reason,
            min_reason_rate=self.min_reason_rate,
            min_rejected_rate=self.min_rejected_rate,
        )
        if step_filters and pipeline is not None:
            step_filters.append(StepRow.pipeline == pipeline)
        return step_filters

    def selects(self) -> bool:
        """Whether any filter beyond the time range narrows the runs."""
        return bool(self.metadata) or any(
            value is not None
            for value in (
                self.status,
                self.step_type,
                self.step_name,
                self.min_elimination_rate,
                self.max_elimination_rate,
                self.reason,
                self.min_reason_rate,
                self.min_rejected_rate,
            )
        )


@dataclass(frozen=True, kw_only=True)
class StepFilters:
    """The filters of ``GET /steps`` and ``GET /steps/count``, metadata aside."""

    type: StepType | None = None
    name: str | None = None
    pipeline: str | None = None
    run_id: uuid.UUID | None = None
    status: RunStatus | None = None
    min_elimination_rate: float | None = None
    max_elimination_rate: float | None = None
    min_input_count: int | None = None
    since: datetime | None = None
    until: datetime | None = None
    reason: str | None = None
    min_reason_rate: float | None = None
    min_rejected_rate: float | None = None
    max_rejected_rate: float | None = None

    def conditions(self, dialect: str) -> list[ColumnElement[bool]]:
        """These filters as conditions on ``StepRow``."""
        conditions: list[ColumnElement[bool]] = [
            column == value
            for column, value in (
                (StepRow.type, None if self.type is None else self.type.value),
                (StepRow.name, self.name),
                (StepRow.pipeline, self.pipeline),
                (StepRow.run_id, self.run_id),
                (StepRow.status, None if self.status is None else self.status.value),
            )
            if value is not None
        ]
        if self.min_elimination_rate is not None:
            conditions.append(StepRow.elimination_rate >= self.min_elimination_rate)
        if self.max_elimination_rate is not None:
            conditions.append(StepRow.elimination_rate <= self.max_elimination_rate)
        if self.min_input_count is not None:
            conditions.append(StepRow.input_count >= self.min_input_count)
        if self.since is not None:
            conditions.append(StepRow.started_at >= self.since)
        if self.until is not None:
            conditions.append(StepRow.started_at <= self.until)
        return conditions + step_conditions(
            dialect,
            reason=self.reason,
            min_reason_rate=self.min_reason_rate,
            min_rejected_rate=self.min_rejected_rate,
            max_rejected_rate=self.max_rejected_rate,
        )
