"""What the routers share: documented error answers and typed filter parameters."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from xray.api.errors import ErrorBody
from xray.shared._wire import MAX_NAME_LENGTH, UTCDatetime

__all__ = ["ERRORS", "MaxRate", "MinRate", "NameFilter", "Since", "Until", "errors"]

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
