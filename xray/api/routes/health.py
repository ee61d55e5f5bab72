"""``GET /healthz`` (the process is up) and ``GET /readyz`` (and the database answers)."""

from __future__ import annotations

import asyncio
from typing import Literal

from fastapi import APIRouter
from pydantic import BaseModel
from sqlalchemy import text

from xray.api.deps import StateDep
from xray.api.errors import (
    SCHEMA_MISSING_MESSAGE,
    APIError,
    ErrorBody,
    is_database_unavailable,
    is_schema_missing,
)

__all__ = ["Health", "Readiness", "router"]

router = APIRouter(tags=["health"])

READY_TIMEOUT_S = 3.0


class Health(BaseModel):
    """Liveness answer."""

    status: Literal["ok"] = "ok"


class Readiness(BaseModel):
    """Readiness answer."""

    status: Literal["ready"] = "ready"


@router.get("/healthz", response_model=Health, summary="Liveness (no database access)")
async def healthz() -> Health:
    return Health()


@router.get(
    "/readyz",
    response_model=Readiness,
    summary="Readiness: the database answers and the schema is migrated",
    responses={503: {"model": ErrorBody, "description": "Database unavailable."}},
)
async def readyz(state: StateDep) -> Readiness:
    unavailable = APIError(
        503, "the database is unavailable right now", headers={"Retry-After": "1"}
    )
    if not state.schema_ready:
        raise unavailable
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), state.engine.connect() as connection:
            # Also proves the schema is there (with run_migrations off, someone else migrates).
            await connection.execute(text("SELECT 1 FROM runs LIMIT 1"))
    except Exception as exc:
        if is_schema_missing(exc):
            raise APIError(503, SCHEMA_MISSING_MESSAGE, headers={"Retry-After": "1"}) from None
        if is_database_unavailable(exc):
            raise unavailable from None
        raise
    return Readiness()
