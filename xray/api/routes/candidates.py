"""``GET /candidates/{key}``: one candidate's fate across steps and runs."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from xray.api.deps import Cursor, DecisionLimit, SessionDep
from xray.api.routes._common import ERRORS
from xray.api.services import queries
from xray.shared import DecisionOut, Page
from xray.shared._wire import MAX_NAME_LENGTH

__all__ = ["router"]

router = APIRouter(tags=["candidates"])


@router.get(
    "/candidates/{candidate_key:path}",
    response_model=Page[DecisionOut],
    summary="Every decision about one candidate, newest run first, then by step order",
    responses=ERRORS,
)
async def candidate_decisions(
    session: SessionDep,
    candidate_key: Annotated[
        str, Path(max_length=512, description="The candidate key (may contain '/').")
    ],
    run_id: uuid.UUID | None = None,
    pipeline: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    limit: DecisionLimit = 100,
    cursor: Cursor = None,
) -> Response:
    return await queries.candidate_decisions(
        session,
        candidate_key=candidate_key,
        run_id=run_id,
        pipeline=pipeline,
        limit=limit,
        cursor=cursor,
    )
