"""``GET /runs`` and ``GET /runs/{id}``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Path, Response

from xray.api.deps import Cursor, Limit, SessionDep
from xray.api.errors import APIError
from xray.api.routes._common import (
    ERRORS,
    NameFilter,
    errors,
    metadata_doc,
)
from xray.api.routes.analysis import Filters
from xray.api.services import analysis, queries
from xray.shared import Page, RunDetailOut, RunOut

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
        "least one step matching all of them: `?step_type=filter&min_elimination_rate=0.9`. "
        "`reason`, `min_reason_rate` and `min_rejected_rate` join that step condition: "
        "`?reason=locale_mismatch&min_reason_rate=1` finds runs where one step rejected its "
        "whole input for `locale_mismatch`."
    ),
    openapi_extra=metadata_doc(),
)
async def list_runs(
    session: SessionDep,
    filters: Filters,
    pipeline: NameFilter = None,
    limit: Limit = 50,
    cursor: Cursor = None,
) -> Response:
    return await queries.list_runs(session, filters, pipeline=pipeline, limit=limit, cursor=cursor)


@router.get(
    "/runs/count",
    summary="How many runs match the filters of GET /runs (exact up to 100,000)",
    responses=ERRORS,
    openapi_extra=metadata_doc(),
)
async def count_runs(
    session: SessionDep,
    filters: Filters,
    pipeline: NameFilter = None,
) -> dict[str, Any]:
    return await analysis.count_runs(session, pipeline=pipeline, filters=filters)


@router.get(
    "/runs/{run_id}",
    response_model=RunDetailOut,
    summary="One run with its steps in order (tree via parent_id)",
    responses=errors(404, 422),
)
async def get_run(
    session: SessionDep, run_id: Annotated[uuid.UUID, Path(description="The run's id.")]
) -> Response:
    run = await queries.get_run(session, run_id=run_id)
    if run is None:
        raise APIError(404, f"run {run_id} not found")
    return run
