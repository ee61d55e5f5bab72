"""What the routers share: documented error answers and typed filter parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from xray.api.errors import ErrorBody
from xray.shared._wire import MAX_NAME_LENGTH, UTCDatetime

__all__ = [
    "ERRORS",
    "MaxRate",
    "MinRate",
    "NameFilter",
    "Reason",
    "ReasonRate",
    "RejectedRate",
    "Since",
    "Until",
    "errors",
    "metadata_doc",
]

_DESCRIPTIONS = {
    400: "Malformed request (bad JSON, bad cursor).",
    401: "Missing or invalid API key.",
    404: "Not found.",
    413: "Request body over the size limit.",
    422: "Invalid field; `fields` names it.",
    503: "Database unavailable; retry later.",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for the given error statuses."""
    return {
        code: {"model": ErrorBody, "description": _DESCRIPTIONS[code]}
        for code in (401, 503, *codes)
    }


ERRORS = errors(400, 422)

# UTCDatetime: a date its offset pushes out of the calendar is a 400 naming the parameter.
Since = Annotated[
    UTCDatetime | None, Query(description="ISO-8601; started at or after (UTC if no zone).")
]
Until = Annotated[
    UTCDatetime | None, Query(description="ISO-8601; started at or before (UTC if no zone).")
]
MinRate = Annotated[
    float | None,
    Query(allow_inf_nan=False, description="Elimination rate at least (1 - out/in)."),
]
# A pipeline or step name to filter on: no longer than a stored one can be.
NameFilter = Annotated[str | None, Query(max_length=MAX_NAME_LENGTH)]
MaxRate = Annotated[
    float | None, Query(allow_inf_nan=False, description="Elimination rate at most.")
]
Reason = Annotated[
    str | None,
    Query(
        max_length=500,
        description="Having decisions or `reason_counts` with this rejection reason.",
    ),
]
ReasonRate = Annotated[
    float | None,
    Query(
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="With `reason`: that reason's rejections / the step's input, at least.",
    ),
]
RejectedRate = Annotated[
    float | None,
    Query(
        ge=0,
        le=1,
        allow_inf_nan=False,
        description="Rejection-based rate (rejected / input, from `reason_counts`) bound.",
    ),
]


def metadata_doc() -> dict[str, Any]:
    """OpenAPI for the ``metadata.<key>`` filters, which FastAPI cannot declare itself
    (their names are open-ended); merged into an operation's parameters."""
    return {
        "parameters": [
            {
                "name": "metadata.<key>",
                "in": "query",
                "required": False,
                "schema": {"type": "string"},
                "description": "Run metadata `<key>` equals this value's text (`metadata."
                'seller=7` matches 7 and "7"); repeatable, all must match. Spell it '
                '`metadata.<key>!=<value>` for "differs or is missing".',
                "examples": {"equals": {"value": "de-DE"}},
            }
        ]
    }
