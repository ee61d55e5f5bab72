"""``GET /runs`` and ``GET /runs/{id}``."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path

from xray.api.deps import Cursor, Limit, MetadataFilters, SessionDep
from xray.api.errors import APIError
from xray.api.routes._common import (
    ERRORS,
    MaxRate,
    MinRate,
    NameFilter,
    Since,
    Until,
    errors,
)
from xray.api.services import queries
from xray.shared import Page, RunDetailOut, RunOut, RunStatus, StepType

__all__ = ["router"]

router = APIRouter(tags=["runs"])


@router.get(
    "/runs",
    response_model=Page[RunOut],
    summary="List runs, newest first",
    responses=ERRORS,
    description=(
        "Filters combine with AND. `metadata.<key>=<value>` (repeatable) matches the run "
        'metadata value\'s text (`metadata.seller=7` matches 7 and "7"). `step_type`, '
        "`step_name`, `min_elimination_rate`, `max_elimination_rate` keep runs having at "
        "least one step matching all of them: `?step_type=filter&min_elimination_rate=0.9`."
    ),
)
async def list_runs(
    session: SessionDep,
    metadata: MetadataFilters,
    pipeline: NameFilter = None,
    status: RunStatus | None = None,
    since: Since = None,
    until: Until = None,
    step_type: StepType | None = None,
    step_name: NameFilter = None,
    min_elimination_rate: MinRate = None,
    max_elimination_rate: MaxRate = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Page[RunOut]:
    return await queries.list_runs(
        session,
        pipeline=pipeline,
        status=status,
        since=since,
        until=until,
        metadata=metadata,
        step_type=step_type,
        step_name=step_name,
        min_elimination_rate=min_elimination_rate,
        max_elimination_rate=max_elimination_rate,
        limit=limit,
        cursor=cursor,
    )


@router.get(
    "/runs/{run_id}",
    response_model=RunDetailOut,
    summary="One run with its steps in order (tree via parent_id)",
    responses=errors(404, 422),
)
async def get_run(
    session: SessionDep, run_id: Annotated[uuid.UUID, Path(description="The run's id.")]
) -> RunDetailOut:
    run = await queries.get_run(session, run_id=run_id)
    if run is None:
        raise APIError(404, f"run {run_id} not found")
    return run
