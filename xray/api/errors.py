"""The one seam where failures become HTTP answers.

Every non-2xx answer has the same JSON body::

    {"error": "validation_error", "message": "steps[0].type: ...", "fields": [...]}

Database failures (and only those) become 503 ``database_unavailable`` with
``Retry-After`` (the SDK retries those); bad input becomes 400 or 422 naming the field,
with at most ``MAX_FIELD_ERRORS`` entries and the total in ``fields_total``; nothing a
client sends yields a 500.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Field, ValidationError
from sqlalchemy.exc import (
    DataError,
    DBAPIError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse

from xray.api.services.errors import InvalidInputError, NotFoundError, ServiceError

__all__ = [
    "MAX_FIELD_ERRORS",
    "SCHEMA_MISSING_MESSAGE",
    "APIError",
    "DatabaseUnavailableError",
    "ErrorBody",
    "FieldError",
    "error_response",
    "field_errors",
    "install_error_handlers",
    "is_database_unavailable",
    "is_schema_missing",
]

logger = logging.getLogger("xray.api")

# An error reply names at most this many fields (and says how many there were), so its
# size does not grow with the number of invalid items in a request.
MAX_FIELD_ERRORS = 20
# Validation error types that mean "cannot be interpreted" (400) rather than "invalid" (422).
_BAD_REQUEST_TYPES = frozenset({"datetime_out_of_range"})

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    503: "database_unavailable",
}


class FieldError(BaseModel):
    """One offending field, as a path into the request (``steps[3].type``, ``limit``)."""

    field: str
    message: str


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: str = Field(examples=["validation_error"])
    message: str = Field(examples=["steps[0].type: Input should be 'llm', 'retrieval', ..."])
    fields: list[FieldError] = Field(
        default_factory=list, description=f"At most {MAX_FIELD_ERRORS} offending fields."
    )
    fields_total: int | None = Field(
        None,
        description="With `fields`: how many offending fields were found (may exceed "
        "the entries listed).",
    )


class APIError(Exception):
    """An expected failure with its HTTP status, code and message.

    Example:
        >>> raise APIError(404, "run 42 not found")  # doctest: +SKIP
    """

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        fields: Sequence[FieldError] = (),
        fields_total: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code or _CODES.get(status_code, "error")
        self.message = message
        self.fields = list(fields[:MAX_FIELD_ERRORS])
        self.fields_total = len(fields) if fields_total is None else fields_total
        self.headers = headers


class DatabaseUnavailableError(Exception):
    """A database operation failed for want of the database (refused, timed out, cut off):
    raised by the session seam in ``deps`` from the driver's own ``OSError`` or
    ``TimeoutError``, so that only database failures answer 503."""


def error_response(
    status_code: int,
    message: str,
    *,
    code: str | None = None,
    fields: Sequence[FieldError] = (),
    fields_total: int | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """The JSON answer for an error (also used by the pure-ASGI middleware)."""
    body = ErrorBody(
        error=code or _CODES.get(status_code, "error"),
        message=message,
        fields=list(fields[:MAX_FIELD_ERRORS]),
        fields_total=(len(fields) if fields_total is None else fields_total) if fields else None,
    )
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=status_code, headers=headers
    )


# A path names a field; a client-chosen key in it (a metadata or reason key) may be long.
_MAX_PATH = 300


def _field_path(loc: Iterable[Any], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    if len(path) > _MAX_PATH:
        path = path[: _MAX_PATH - 3] + "..."
    return path or "body"


def field_errors(errors: Iterable[Any], *, prefix: str = "", skip: int = 0) -> list[FieldError]:
    """The first ``MAX_FIELD_ERRORS`` pydantic error dicts as ``FieldError``s; ``skip``
    drops leading loc parts."""
    result: list[FieldError] = []
    for error in itertools.islice(errors, MAX_FIELD_ERRORS):
        loc = tuple(error.get("loc", ()))[skip:]
        message = str(error.get("msg", "invalid value"))
        # Say what was sent for short scalar values; never echo large payloads.
        value = error.get("input")
        if isinstance(value, (str, int, float, bool)) and len(repr(value)) <= 80:
            message = f"{message} (got {value!r})"
        result.append(FieldError(field=_field_path(loc, prefix), message=message))
    return result


def validation_error(
    errors: Sequence[FieldError], *, total: int | None = None, status_code: int = 422
) -> APIError:
    """A 422 (or ``status_code``) whose message names the first offending field; ``total``
    counts every offending field when ``errors`` holds only the first ones."""
    total = len(errors) if total is None else max(total, len(errors))
    first = errors[0] if errors else FieldError(field="body", message="invalid")
    more = f" (and {total - 1} more)" if total > 1 else ""
    return APIError(
        status_code, f"{first.field}: {first.message}{more}", fields=errors, fields_total=total
    )


def _status_for(errors: Sequence[Any]) -> int:
    types = {error.get("type") for error in errors}
    return 400 if types and types <= _BAD_REQUEST_TYPES else 422


def from_validation_error(exc: ValidationError, *, prefix: str = "", skip: int = 0) -> APIError:
    """A pydantic ``ValidationError`` as a 422 (400 for dates outside the calendar)."""
    # Bodies are validated fail-fast (see the wire models), so errors() stays small.
    errors = exc.errors(include_url=False, include_context=False)
    return validation_error(
        field_errors(errors, prefix=prefix, skip=skip),
        total=exc.error_count(),
        status_code=_status_for(errors),
    )


# PostgreSQL SQLSTATEs that mean "cannot talk to the database now": connection exceptions
# (08xxx), shutdown / starting up (57P0x), too many connections, database not accepting
# connections (55000 on connect) or gone (3D000); the schema not migrated yet (42P01,
# undefined table); and the transient conflicts a retry resolves (serialization failure,
# deadlock). The SDK retries all of these on 503.
_UNAVAILABLE_SQLSTATES = frozenset(
    {"57P01", "57P02", "57P03", "53300", "55000", "3D000", "42P01", "40001", "40P01"}
)


def _causes(exc: BaseException) -> list[BaseException]:
    chain: list[BaseException] = []
    pending: list[BaseException | None] = [exc]
    while pending and len(chain) < 10:
        current = pending.pop()
        if current is None or any(current is seen for seen in chain):
            continue
        chain.append(current)
        pending += [getattr(current, "orig", None), current.__cause__, current.__context__]
    return chain


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot be reached right now (→ 503)."""
    for cause in _causes(exc):
        if isinstance(cause, (OperationalError, InterfaceError, PoolTimeoutError)):
            return True
        if isinstance(cause, DBAPIError) and cause.connection_invalidated:
            return True
        # asyncpg raises plain OSError / TimeoutError when the server refuses or hangs.
        if isinstance(cause, (OSError, TimeoutError, ConnectionError)):
            return True
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and (
            sqlstate.startswith("08") or sqlstate in _UNAVAILABLE_SQLSTATES
        ):
            return True
    return False


def is_schema_missing(exc: BaseException) -> bool:
    """Whether ``exc`` says X-Ray's tables are not there (migrations have not run)."""
    for cause in _causes(exc):
        if getattr(cause, "sqlstate", None) == "42P01" or "no such table" in str(cause):
            return True
    return False


SCHEMA_MISSING_MESSAGE = (
    "the database has no X-Ray tables yet: run `xray db upgrade` "
    "(or start the server with migrations on)"
)


def _is_bad_value(exc: BaseException) -> bool:
    for cause in _causes(exc):
        if isinstance(cause, (DataError, IntegrityError)):
            return True
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate[:2] in ("22", "23"):
            return True
    return False


async def _api_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, APIError)
    return error_response(
        exc.status_code,
        exc.message,
        code=exc.code,
        fields=exc.fields,
        fields_total=exc.fields_total,
        headers=exc.headers,
    )


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)
    if isinstance(exc, InvalidInputError):
        fields = [FieldError(field=exc.field or "body", message=exc.message)]
        return error_response(422, validation_error(fields).message, fields=fields)
    status = 404 if isinstance(exc, NotFoundError) else 400
    return error_response(status, exc.message)


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    message = {
        404: "no such endpoint (see /docs)",
        405: "method not allowed on this endpoint (see /docs)",
    }.get(exc.status_code, str(exc.detail))
    if exc.status_code == 404 and exc.detail not in ("Not Found", None):
        message = str(exc.detail)
    return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))


async def _request_validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = list(exc.errors())
    if any(e.get("type") == "json_invalid" for e in errors):
        return error_response(400, "the request body is not valid JSON")
    # loc starts with where the value came from ("query", "path", "body"): drop it.
    error = validation_error(
        field_errors(errors, skip=1), total=len(errors), status_code=_status_for(errors)
    )
    return await _api_error(_request, error)


async def _database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
    logger.warning("database unavailable: %r", exc.__cause__ or exc)
    return error_response(
        503, "the database is unavailable right now; retry later", headers={"Retry-After": "1"}
    )


async def _database_error(_request: Request, exc: Exception) -> JSONResponse:
    if is_database_unavailable(exc):
        logger.warning("database unavailable: %s", exc.__class__.__name__, exc_info=False)
        missing = is_schema_missing(exc)
        return error_response(
            503,
            SCHEMA_MISSING_MESSAGE
            if missing
            else "the database is unavailable right now; retry later",
            headers={"Retry-After": "1"},
        )
    if any(isinstance(cause, OverflowError) for cause in _causes(exc)):
        return error_response(400, "a date or number in the request is out of range")
    if _is_bad_value(exc):
        # A value the database refuses despite validation (e.g. out of a column's range).
        return error_response(400, "a value in the request cannot be stored or compared")
    logger.exception("database error")
    return error_response(500, "internal error", code="internal_error")


async def _overflow_error(_request: Request, exc: Exception) -> JSONResponse:
    # e.g. a date at the edge of the calendar shifted out of range by its time zone.
    return error_response(400, f"a value in the request is out of range: {exc}")


async def _unexpected_error(_request: Request, exc: Exception) -> JSONResponse:
    # A bug, not bad input: still a JSON body (Starlette re-raises afterwards, so the
    # traceback reaches the server log).
    return error_response(500, "internal error", code="internal_error")


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the JSON error body."""
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(DatabaseUnavailableError, _database_unavailable)
    app.add_exception_handler(OverflowError, _overflow_error)
    app.add_exception_handler(Exception, _unexpected_error)
