"""``GET /steps``, ``GET /steps/count``, ``GET /steps/{id}`` and
``GET /steps/{id}/decisions``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from xray.api.deps import Cursor, DecisionLimit, Limit, MetadataFilters, SessionDep
from xray.api.errors import APIError
from xray.api.routes._common import (
    ERRORS,
    MaxRate,
    MinRate,
    NameFilter,
    Reason,
    ReasonRate,
    RejectedRate,
    Since,
    Until,
    errors,
    metadata_doc,
)
from xray.api.services import analysis, queries
from xray.api.services._filters import StepFilters
from xray.shared import Decision, DecisionOut, Page, RunStatus, StepOut, StepType

__all__ = ["router"]

router = APIRouter(tags=["steps"])

_StepId = Annotated[uuid.UUID, Path(description="The step's id.")]


def _step_filters(
    type: StepType | None = None,
    name: NameFilter = None,
    pipeline: NameFilter = None,
    run_id: uuid.UUID | None = None,
    status: RunStatus | None = None,
    min_elimination_rate: MinRate = None,
    max_elimination_rate: MaxRate = None,
    min_input_count: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
    since: Since = None,
    until: Until = None,
    reason: Reason = None,
    min_reason_rate: ReasonRate = None,
    min_rejected_rate: RejectedRate = None,
    max_rejected_rate: RejectedRate = None,
) -> StepFilters:
    return StepFilters(
        type=type,
        name=name,
        pipeline=pipeline,
        run_id=run_id,
        status=status,
        min_elimination_rate=min_elimination_rate,
        max_elimination_rate=max_elimination_rate,
        min_input_count=min_input_count,
        since=since,
        until=until,
        reason=reason,
        min_reason_rate=min_reason_rate,
        min_rejected_rate=min_rejected_rate,
        max_rejected_rate=max_rejected_rate,
    )


_Filters = Annotated[StepFilters, Depends(_step_filters)]


@router.get(
    "/steps",
    response_model=Page[StepOut],
    summary="Steps across every pipeline, newest first",
    responses=ERRORS,
    description="E.g. every filter step that eliminated more than 90%: "
    "`?type=filter&min_elimination_rate=0.9`. `metadata.<key>=<value>` keeps steps of runs "
    "with that metadata; `reason=locale_mismatch&min_reason_rate=1` finds steps that "
    "rejected their whole input for that reason.",
    openapi_extra=metadata_doc(),
)
async def list_steps(
    session: SessionDep,
    metadata: MetadataFilters,
    filters: _Filters,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    return await queries.list_steps(session, filters, metadata=metadata, limit=limit, cursor=cursor)


@router.get(
    "/steps/count",
    summary="How many steps match the filters of GET /steps (exact up to 100,000)",
    responses=ERRORS,
    openapi_extra=metadata_doc(),
)
async def count_steps(
    session: SessionDep, metadata: MetadataFilters, filters: _Filters
) -> dict[str, Any]:
    return await analysis.count_steps(session, filters, metadata=metadata)


@router.get(
    "/steps/{step_id}",
    response_model=StepOut,
    summary="One step",
    responses=errors(404, 422),
)
async def get_step(session: SessionDep, step_id: _StepId) -> Response:
    step = await queries.get_step(session, step_id=step_id)
    if step is None:
        raise APIError(404, f"step {step_id} not found")
    return step


@router.get(
    "/steps/{step_id}/decisions",
    response_model=Page[DecisionOut],
    summary="A step's decisions, in the order the SDK recorded them",
    responses=errors(400, 404, 422),
)
async def list_step_decisions(
    session: SessionDep,
    step_id: _StepId,
    decision: Decision | None = None,
    reason: Annotated[str | None, Query(max_length=500)] = None,
    candidate_key: Annotated[str | None, Query(max_length=512)] = None,
    limit: DecisionLimit = 100,
    cursor: Cursor = None,
) -> Response:
    page = await queries.list_step_decisions(
        session,
        step_id=step_id,
        decision=decision,
        reason=reason,
        candidate_key=candidate_key,
        limit=limit,
        cursor=cursor,
    )
    if page is None:
        raise APIError(404, f"step {step_id} not found")
    return page
