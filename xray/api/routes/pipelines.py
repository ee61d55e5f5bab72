"""``GET /pipelines``: every pipeline name with its run count and latest start."""

from __future__ import annotations

from fastapi import APIRouter, Response

from xray.api.deps import Cursor, Limit, SessionDep
from xray.api.routes._common import ERRORS
from xray.api.services import queries
from xray.shared import Page, PipelineOut

__all__ = ["router"]

router = APIRouter(tags=["pipelines"])


@router.get(
    "/pipelines", response_model=Page[PipelineOut], summary="Pipelines by name", responses=ERRORS
)
async def list_pipelines(session: SessionDep, limit: Limit = 50, cursor: Cursor = None) -> Response:
    return await queries.list_pipelines(session, limit=limit, cursor=cursor)
