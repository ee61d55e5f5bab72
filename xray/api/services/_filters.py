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
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Float, and_, cast, exists, func, literal, not_, or_, select
from sqlalchemy.dialects.postgresql import JSONB

from xray.api.db.models import DecisionRow, RunMetadataRow, RunRow, StepRow
from xray.shared import RunStatus, StepType

__all__ = ["metadata_candidates", "metadata_filter", "run_conditions", "step_conditions"]

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


def _metadata_equals(dialect: str, key: str, value: str) -> ColumnElement[bool]:
    candidates = metadata_candidates(value)
    if dialect == "postgresql":
        # `@>` containment is what the GIN (jsonb_path_ops) index answers.
        return or_(
            *(
                RunRow.meta.op("@>", is_comparison=True)(literal({key: c}, JSONB))
                for c in candidates
            )
        )
    # SQLite: the run_metadata rows (kept at ingest), found by the (key, atom) index.
    rows = RunMetadataRow
    matches = []
    for c in candidates:
        if isinstance(c, bool):
            matches.append(rows.type == ("true" if c else "false"))
        elif c is None:
            matches.append(rows.type == "null")
        elif isinstance(c, str):
            matches.append(and_(rows.type == "text", rows.atom == c))
        else:
            matches.append(and_(rows.type.in_(("integer", "real")), rows.atom == c))
    return RunRow.id.in_(select(rows.run_id).where(rows.key == key, or_(*matches)))


def metadata_filter(dialect: str, key: str, value: str) -> ColumnElement[bool]:
    """``metadata.<key>=<value>``, or its negation when ``key`` ends in ``!``."""
    if key.endswith("!"):
        return not_(_metadata_equals(dialect, key[:-1], value))
    return _metadata_equals(dialect, key, value)


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


def run_conditions(
    dialect: str,
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
) -> list[ColumnElement[bool]]:
    """Conditions on ``RunRow``; ``step_*``, rate and reason filters keep runs having one
    step that matches all of them."""
    conditions: list[ColumnElement[bool]] = []
    if pipeline is not None:
        conditions.append(RunRow.pipeline == pipeline)
    if status is not None:
        conditions.append(RunRow.status == status.value)
    if since is not None:
        conditions.append(RunRow.started_at >= since)
    if until is not None:
        conditions.append(RunRow.started_at <= until)
    for key, value in metadata:
        conditions.append(metadata_filter(dialect, key, value))
    step_filters: list[ColumnElement[bool]] = []
    if step_type is not None:
        step_filters.append(StepRow.type == step_type.value)
    if step_name is not None:
        step_filters.append(StepRow.name == step_name)
    if min_elimination_rate is not None:
        step_filters.append(StepRow.elimination_rate >= min_elimination_rate)
    if max_elimination_rate is not None:
        step_filters.append(StepRow.elimination_rate <= max_elimination_rate)
    step_filters += step_conditions(
        dialect,
        reason=reason,
        min_reason_rate=min_reason_rate,
        min_rejected_rate=min_rejected_rate,
    )
    if step_filters:
        if pipeline is not None:
            step_filters.append(StepRow.pipeline == pipeline)
        conditions.append(RunRow.id.in_(select(StepRow.run_id).where(*step_filters)))
    return conditions
