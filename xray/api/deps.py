"""Dependencies as ``Annotated`` aliases, so route signatures read like prose."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api._state import AppState
from xray.api.errors import APIError

__all__ = [
    "Cursor",
    "Limit",
    "MetadataFilters",
    "SessionDep",
    "StateDep",
    "get_session",
    "get_state",
    "metadata_filters",
    "write_session",
]


async def get_state(request: Request) -> AppState:
    """The app's state, created by the lifespan (async: no thread-pool hop per request)."""
    state: AppState | None = getattr(request.app.state, "xray", None)
    if state is None:
        raise APIError(503, "the server is starting; retry shortly", code="database_unavailable")
    return state


StateDep = Annotated[AppState, Depends(get_state)]


def _require_schema(state: AppState) -> None:
    if not state.schema_ready:
        raise APIError(
            503,
            "the database is unavailable or not migrated yet; retry later",
            headers={"Retry-After": "1"},
        )


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A read session for one request."""
    _require_schema(state)
    async with state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@contextlib.asynccontextmanager
async def write_session(state: AppState) -> AsyncIterator[AsyncSession]:
    """One transaction for one ingest request: committed whole, or rolled back whole."""
    _require_schema(state)
    lock = state.write_lock if state.write_lock is not None else contextlib.nullcontext()
    async with lock, state.sessions() as session, session.begin():
        yield session


async def metadata_filters(request: Request) -> list[tuple[str, str]]:
    """The ``metadata.<key>=<value>`` query parameters, in order (repeatable, ANDed)."""
    return [
        (name[len("metadata.") :], value)
        for name, value in request.query_params.multi_items()
        if name.startswith("metadata.")
    ]


MetadataFilters = Annotated[list[tuple[str, str]], Depends(metadata_filters)]
Cursor = Annotated[
    str | None,
    Query(description="`next_cursor` of the previous page, unchanged.", max_length=4096),
]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page (1-500).")]
