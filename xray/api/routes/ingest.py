"""Ingest: ``POST /batch`` (the SDK's transport), ``POST /runs``, ``POST /runs/{id}/steps``.

Bodies are parsed by ``xray.api._payload`` (not FastAPI) so that malformed JSON is a 400 and
an invalid item a 422 naming it (``steps[3].type``); the OpenAPI request schemas are
declared explicitly below.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Path, Request
from pydantic import TypeAdapter

from xray.api._fast_wire import (
    decode_batch,
    decode_run,
    decode_runs,
    decode_step,
    decode_steps,
)
from xray.api._payload import first_byte, load_body, load_fast
from xray.api.deps import StateDep, write_session
from xray.api.errors import FieldError, validation_error
from xray.api.routes._common import errors
from xray.api.services.ingest import ingest
from xray.shared import BatchIn, BatchResult, RunIn, StepIn
from xray.shared._wire import RunList, StepList

__all__ = ["REQUEST_MODELS", "router"]

router = APIRouter(tags=["ingest"])

T = TypeVar("T")
F = TypeVar("F")

# Models referenced by the request schemas below; _app adds them to the OpenAPI components.
REQUEST_MODELS = (BatchIn, RunIn, StepIn)

_ANY: TypeAdapter[Any] = TypeAdapter(Any)
_BATCH = TypeAdapter(BatchIn)
_ONE_RUN, _RUN_LIST = TypeAdapter(RunIn), TypeAdapter[list[RunIn]](RunList)
_ONE_STEP, _STEP_LIST = TypeAdapter(StepIn), TypeAdapter[list[StepIn]](StepList)
_INGEST_ERRORS = errors(400, 404, 413, 422)


def _body(*models: str, one_or_many: bool) -> dict[str, Any]:
    refs = [{"$ref": f"#/components/schemas/{m}"} for m in models]
    schema: dict[str, Any] = refs[0]
    if one_or_many:
        schema = {"anyOf": [refs[0], {"type": "array", "items": refs[0]}]}
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": schema}},
            "description": "JSON, optionally with `Content-Encoding: gzip`.",
        }
    }


def _one_or_many(
    body: bytes,
    fast: tuple[Callable[[bytes], F | None], Callable[[bytes], list[F] | None]],
    one: TypeAdapter[T],
    many: TypeAdapter[list[T]],
    what: str,
) -> Sequence[F | T]:
    # A single object's errors are named by field; a list's by item (`steps[3].type`).
    start = first_byte(body)
    if start == b"[":
        return load_fast(body, fast[1], many, prefix=f"{what}s")
    if start != b"{":
        load_body(body, _ANY)  # a 400 when the body is not JSON at all
        raise validation_error(
            [FieldError(field="body", message=f"expected a {what} object or a list of them")]
        )
    return [load_fast(body, fast[0], one)]


@router.post(
    "/batch",
    response_model=BatchResult,
    summary="Ingest runs and steps (the SDK's transport)",
    responses=_INGEST_ERRORS,
    openapi_extra=_body("BatchIn", one_or_many=False),
)
async def post_batch(request: Request, state: StateDep) -> BatchResult:
    """Upsert runs first, then steps with their decisions; all or nothing."""
    batch = load_fast(await request.body(), decode_batch, _BATCH)
    async with write_session(state) as session:
        return await ingest(session, runs=batch.runs, steps=batch.steps)


@router.post(
    "/runs",
    response_model=BatchResult,
    summary="Create or update runs (one object or a list), idempotent on id",
    responses=_INGEST_ERRORS,
    openapi_extra=_body("RunIn", one_or_many=True),
)
async def post_runs(request: Request, state: StateDep) -> BatchResult:
    """A run's end after its start leaves one row with the final state; a finished run
    never regresses to running."""
    runs = _one_or_many(await request.body(), (decode_run, decode_runs), _ONE_RUN, _RUN_LIST, "run")
    async with write_session(state) as session:
        return await ingest(session, runs=runs)


@router.post(
    "/runs/{run_id}/steps",
    response_model=BatchResult,
    summary="Add steps with their decisions to a run, idempotent on step id",
    responses=_INGEST_ERRORS,
    openapi_extra=_body("StepIn", one_or_many=True),
)
async def post_steps(
    request: Request,
    state: StateDep,
    run_id: Annotated[uuid.UUID, Path(description="The run's id.")],
) -> BatchResult:
    """A re-sent step replaces its decisions as a set; a step may arrive before its run
    when it carries ``pipeline`` (a placeholder run is created)."""
    body = await request.body()
    steps = _one_or_many(body, (decode_step, decode_steps), _ONE_STEP, _STEP_LIST, "step")
    is_list = first_byte(body) == b"["
    mismatched = [
        FieldError(
            field=f"steps[{i}].run_id" if is_list else "run_id",
            message=f"must equal the run id in the path ({run_id})",
        )
        for i, s in enumerate(steps)
        if s.run_id is not None and s.run_id != run_id
    ]
    if mismatched:
        raise validation_error(mismatched)
    async with write_session(state) as session:
        return await ingest(session, steps=steps, run_id=run_id)
