"""Questions about populations of runs: ``GET /groups``, ``/contrast``, ``/compare``,
``/trends`` and ``/pipelines/{name}/keys``."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query

from xray.api.deps import MetadataFilters, SessionDep
from xray.api.errors import APIError, FieldError, validation_error
from xray.api.routes._common import (
    ERRORS,
    MaxRate,
    MinRate,
    Reason,
    ReasonRate,
    RejectedRate,
    Since,
    Until,
    errors,
    metadata_doc,
)
from xray.api.services import analysis
from xray.shared import RunStatus, StepType
from xray.shared._wire import MAX_NAME_LENGTH

__all__ = ["router"]

router = APIRouter(tags=["analysis"])

_Pipeline = Annotated[
    str, Query(min_length=1, max_length=MAX_NAME_LENGTH, description="The pipeline.")
]
_Sample = Annotated[
    int,
    Query(
        ge=1,
        le=10_000,
        description="Read at most this many of the newest matching runs; the answer says "
        "`sampled: true` when there were more.",
    ),
]


def run_filters(
    metadata: MetadataFilters,
    status: RunStatus | None = None,
    since: Since = None,
    until: Until = None,
    step_type: StepType | None = None,
    step_name: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    min_elimination_rate: MinRate = None,
    max_elimination_rate: MaxRate = None,
    reason: Reason = None,
    min_reason_rate: ReasonRate = None,
    min_rejected_rate: RejectedRate = None,
) -> analysis.RunFilters:
    """The run filters of ``GET /runs``, for the analyses."""
    return analysis.RunFilters(
        status=status,
        since=since,
        until=until,
        metadata=metadata,
        step_type=step_type,
        step_name=step_name,
        min_elimination_rate=min_elimination_rate,
        max_elimination_rate=max_elimination_rate,
        reason=reason,
        min_reason_rate=min_reason_rate,
        min_rejected_rate=min_rejected_rate,
    )


Filters = Annotated[analysis.RunFilters, Depends(run_filters)]


def _group_key(field: str, text: str) -> analysis.GroupKey:
    try:
        return analysis.parse_group_key(text)
    except ValueError as exc:
        raise validation_error([FieldError(field=field, message=str(exc))]) from None


def _cohort(field: str, text: str) -> tuple[analysis.GroupKey, str]:
    key, sep, value = text.partition(":")
    if not sep:
        raise validation_error(
            [FieldError(field=field, message="use <key>:<value>, e.g. metadata.locale:de-DE")]
        )
    return _group_key(field, key), value


@router.get(
    "/groups",
    summary="A pipeline's runs grouped by a metadata key, output field, status or step param",
    responses=ERRORS,
    openapi_extra=metadata_doc(),
    description=(
        "One item per value of `by` (`metadata.<key>`, `output.<field>`, `status`, "
        "`step.<name>.params.<key>`): `runs`, `statuses`, the most common `outputs`, and "
        "`steps` with median input/output counts, `reason_rates` (each reason's rejections "
        "/ the step's input, summed over the group's runs) and the params constant within "
        "the group. The item that differs most from the other runs is marked `outlier`; "
        "the top-level `outlier` names the step and reason. Run filters as on `GET /runs`."
    ),
)
async def groups(
    session: SessionDep,
    pipeline: _Pipeline,
    by: Annotated[str, Query(min_length=1, max_length=300)],
    filters: Filters,
    sample: _Sample = analysis.DEFAULT_SAMPLE,
    limit: Annotated[int, Query(ge=1, le=500, description="Groups answered (1-500).")] = 50,
) -> dict[str, Any]:
    return await analysis.groups(
        session,
        pipeline=pipeline,
        by=_group_key("by", by),
        filters=filters,
        sample=sample,
        limit=limit,
    )


@router.get(
    "/contrast",
    summary="What sets the runs matching the filters apart from the pipeline's other runs",
    responses=ERRORS,
    openapi_extra=metadata_doc(),
    description=(
        "For every metadata key, output field and step parameter: the value whose share "
        "inside the selection (the run filters) most exceeds its share among the other "
        "runs of the pipeline in the same time range, best-separating first "
        "(`app_version=4.2.0: 51/51 vs 0/99`), with the median ratio of numeric values. "
        "`reasons` lists the step reasons whose rejection shares differ most."
    ),
)
async def contrast(
    session: SessionDep,
    pipeline: _Pipeline,
    filters: Filters,
    sample: _Sample = analysis.DEFAULT_SAMPLE,
    limit: Annotated[int, Query(ge=1, le=200, description="Fields answered (1-200).")] = 20,
) -> dict[str, Any]:
    if not filters.selects():
        raise validation_error(
            [
                FieldError(
                    field="query",
                    message="give at least one run filter (metadata.<key>, status, reason, "
                    "step_name...) to say which runs to contrast with the rest",
                )
            ]
        )
    return await analysis.contrast(
        session, pipeline=pipeline, filters=filters, sample=sample, limit=limit
    )


@router.get(
    "/compare",
    summary="Two runs, or two groups of runs, step by step, with differences ranked",
    responses=errors(400, 404, 422),
    description=(
        "Two runs: `?a=<run id>&b=<run id>`. Every difference is ranked by how telling it "
        "is (a changed parameter, a step rejecting its whole input, a new reason and a "
        "changed output above count noise); `first_difference` is the top one. Two groups: "
        "`?pipeline=P&a=metadata.locale:de-DE&b=rest` (any `by` key of `GET /groups`), "
        "with reason shares, constant params, median counts and outputs per step, and "
        "`first_divergence`."
    ),
)
async def compare(
    session: SessionDep,
    a: Annotated[str, Query(min_length=1, max_length=500)],
    b: Annotated[str, Query(min_length=1, max_length=500)],
    filters: Filters,
    pipeline: Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)] = None,
    sample: _Sample = analysis.DEFAULT_SAMPLE,
) -> dict[str, Any]:
    if pipeline is not None:
        return await analysis.compare_cohorts(
            session,
            pipeline=pipeline,
            a=_cohort("a", a),
            b=None if b == "rest" else _cohort("b", b),
            filters=filters,
            sample=sample,
        )
    ids = []
    for name, text in (("a", a), ("b", b)):
        try:
            ids.append(uuid.UUID(text))
        except ValueError:
            raise validation_error(
                [FieldError(field=name, message="a run id, or pass pipeline= to compare groups")]
            ) from None
    result = await analysis.compare_runs(session, run_a=ids[0], run_b=ids[1])
    if result is None:
        raise APIError(404, f"run {ids[0]} or {ids[1]} not found")
    return result


@router.get(
    "/trends",
    summary="A pipeline's runs per time bucket, with one step's elimination and reasons",
    responses=ERRORS,
    description=(
        "Buckets of `bucket` (`15m`, `1h`, `1d`) by run start, oldest first: `runs`, "
        "`statuses`; with `step`, that step's pooled `elimination_rate`, `rejected_rate` "
        "and top `reason_rates`. Default range: the last 48 buckets; at most 500."
    ),
)
async def trends(
    session: SessionDep,
    pipeline: _Pipeline,
    step: Annotated[
        str | None, Query(max_length=MAX_NAME_LENGTH, description="A step name.")
    ] = None,
    bucket: Annotated[str, Query(max_length=8, description="15m, 1h, 1d ...")] = "1h",
    since: Since = None,
    until: Until = None,
) -> dict[str, Any]:
    try:
        size = analysis.parse_bucket(bucket)
    except ValueError as exc:
        raise validation_error([FieldError(field="bucket", message=str(exc))]) from None
    if since is not None and until is not None and since > until:
        raise validation_error([FieldError(field="since", message="must not be after until")])
    return await analysis.trends(
        session, pipeline=pipeline, step=step, bucket=size, since=since, until=until
    )


@router.get(
    "/pipelines/{name}/keys",
    summary="A pipeline's metadata keys, output fields and step params, with common values",
    responses=errors(404, 422),
)
async def pipeline_keys(
    session: SessionDep,
    name: Annotated[str, Path(max_length=MAX_NAME_LENGTH, description="The pipeline.")],
    sample: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> dict[str, Any]:
    keys = await analysis.pipeline_keys(session, pipeline=name, sample=sample)
    if keys is None:
        raise APIError(404, f"pipeline {name!r} has no runs")
    return keys
