"""Dependencies as ``Annotated`` aliases, so route signatures read like prose.

The session dependencies are also the seam where the driver's own ``OSError`` and
``TimeoutError`` (asyncpg raises them when the database refuses, hangs or is cut off)
become ``DatabaseUnavailableError``: raised inside a database session, they are database
failures (503); raised anywhere else, they are bugs (500).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api._state import AppState
from xray.api.errors import APIError, DatabaseUnavailableError, FieldError, validation_error

__all__ = [
    "MAX_METADATA_FILTERS",
    "MAX_METADATA_KEY_LENGTH",
    "MAX_METADATA_VALUE_LENGTH",
    "Cursor",
    "DecisionLimit",
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


@contextlib.asynccontextmanager
async def _database_failures() -> AsyncIterator[None]:
    try:
        yield
    except (OSError, TimeoutError) as exc:
        raise DatabaseUnavailableError(str(exc)) from exc


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A read session for one request."""
    _require_schema(state)
    async with _database_failures(), state.sessions() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


@contextlib.asynccontextmanager
async def write_session(state: AppState) -> AsyncIterator[AsyncSession]:
    """One transaction for one ingest request: committed whole, or rolled back whole.

    On SQLite, writers queue for the one write lock; a writer waits at most the statement
    timeout for it (a writer ahead of it stuck on a locked file must not stall the rest).
    """
    _require_schema(state)
    async with _database_failures(), contextlib.AsyncExitStack() as stack:
        if state.write_lock is not None:
            try:
                async with asyncio.timeout(state.config.database_statement_timeout):
                    await state.write_lock.acquire()
            except TimeoutError:
                raise DatabaseUnavailableError("timed out waiting for the write lock") from None
            stack.callback(state.write_lock.release)
        session = await stack.enter_async_context(state.sessions())
        await stack.enter_async_context(session.begin())
        yield session


# Each metadata filter is one more condition on every run scanned: bounded in number and
# size (SQLite also refuses expressions past a fixed depth).
MAX_METADATA_FILTERS = 20
MAX_METADATA_KEY_LENGTH = 200
MAX_METADATA_VALUE_LENGTH = 10_000


async def metadata_filters(request: Request) -> list[tuple[str, str]]:
    """The ``metadata.<key>=<value>`` query parameters, in order (repeatable, ANDed);
    a 422 naming the parameter when there are too many or one is too long."""
    filters = [
        (name[len("metadata.") :], value)
        for name, value in request.query_params.multi_items()
        if name.startswith("metadata.")
    ]
    if len(filters) > MAX_METADATA_FILTERS:
        raise validation_error(
            [
                FieldError(
                    field="metadata",
                    message=f"at most {MAX_METADATA_FILTERS} metadata.<key> filters "
                    f"(got {len(filters)})",
                )
            ]
        )
    problems = [
        FieldError(field=f"metadata.{key[:MAX_METADATA_KEY_LENGTH]}", message=message)
        for key, value in filters
        for message in (
            f"the key is longer than {MAX_METADATA_KEY_LENGTH} characters"
            if len(key) > MAX_METADATA_KEY_LENGTH
            else None,
            f"the value is longer than {MAX_METADATA_VALUE_LENGTH} characters"
            if len(value) > MAX_METADATA_VALUE_LENGTH
            else None,
        )
        if message
    ]
    if problems:
        raise validation_error(problems)
    return filters


MetadataFilters = Annotated[list[tuple[str, str]], Depends(metadata_filters)]
Cursor = Annotated[
    str | None,
    Query(description="`next_cursor` of the previous page, unchanged.", max_length=4096),
]
Limit = Annotated[int, Query(ge=1, le=500, description="Items per page (1-500).")]
# Decisions are small rows: their pages may be longer.
DecisionLimit = Annotated[int, Query(ge=1, le=1000, description="Items per page (1-1000).")]
