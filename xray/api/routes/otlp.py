"""OTLP/HTTP traces: ``POST /v1/traces`` (protobuf or JSON, optionally gzip), and
``GET /tracing``, what the dashboard needs to link a run to the user's tracing UI.

The OTLP response contract: 200 with an ``ExportTraceServiceResponse`` in the request's
encoding (``partial_success`` counts the spans that could not be stored and says why);
400 with a ``google.rpc.Status`` (protobuf) or X-Ray's error body (JSON) for a body that
is not a trace export; 415 for another content type. Auth, the body limit and gzip are
the app's middleware, as for every endpoint; 503 (database unavailable, retryable in OTLP
terms) comes from the shared error handlers.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel

from xray.api.deps import StateDep, write_session
from xray.api.errors import APIError, ErrorBody
from xray.api.routes._common import errors
from xray.api.services import otlp

__all__ = ["router"]

router = APIRouter(tags=["otlp"])

_JSON = "application/json"
_PROTOBUF_TYPES = frozenset({otlp.PROTOBUF, "application/protobuf"})
_INVALID_ARGUMENT = 3  # google.rpc.Code


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _status(code: int, message: str) -> bytes:
    """A ``google.rpc.Status`` {code, message} in protobuf (two fields; no library has it
    among the server's dependencies)."""
    text = message.encode("utf-8")
    return b"\x08" + _varint(code) + b"\x12" + _varint(len(text)) + text


def _protobuf_error(status_code: int, message: str) -> Response:
    return Response(
        _status(_INVALID_ARGUMENT, message), status_code=status_code, media_type=otlp.PROTOBUF
    )


_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "An OTLP `ExportTraceServiceRequest`, `application/x-protobuf` or "
        "`application/json` (OTLP/JSON: hex trace and span ids), optionally with "
        "`Content-Encoding: gzip`.",
        "content": {
            otlp.PROTOBUF: {"schema": {"type": "string", "format": "binary"}},
            _JSON: {"schema": {"type": "object"}},
        },
    }
}


@router.post(
    "/v1/traces",
    summary="OTLP/HTTP traces: each trace is a run, each span a step",
    responses={
        200: {
            "description": "`ExportTraceServiceResponse`; `partialSuccess` counts rejected spans.",
            "content": {otlp.PROTOBUF: {}, _JSON: {}},
        },
        **errors(400, 413),
        415: {"model": ErrorBody, "description": "Not protobuf or JSON."},
    },
    openapi_extra=_BODY,
)
async def post_traces(request: Request, state: StateDep) -> Response:
    """Upsert the spans as steps of their trace's run (ids derived from the span ids, so a
    re-sent export changes nothing); the mapping is in docs/otlp.md."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    as_json = content_type == _JSON
    if not as_json and content_type not in _PROTOBUF_TYPES:
        raise APIError(
            415,
            f"Content-Type {content_type or '(none)'!r} is not OTLP: send "
            f"{otlp.PROTOBUF} or {_JSON}",
        )
    body = await request.body()
    try:
        export = otlp.decode_json(body) if as_json else otlp.decode_protobuf(body)
    except APIError as exc:
        if as_json:
            raise
        return _protobuf_error(exc.status_code, exc.message)
    async with write_session(state) as session:
        conversion = await otlp.export_traces(session, export)
    return Response(
        otlp.encode_response(conversion, as_json=as_json),
        media_type=_JSON if as_json else otlp.PROTOBUF,
    )


class TracingOut(BaseModel):
    """How the dashboard links a run or step to the user's tracing UI."""

    trace_url_template: str | None = None


@router.get("/tracing", response_model=TracingOut, summary="Links to the user's tracing UI")
async def get_tracing(state: StateDep) -> TracingOut:
    """``api.trace_url_template``: a URL with ``{trace_id}`` (and optionally ``{span_id}``)
    that the dashboard fills from a run's ``otel.trace_id`` metadata."""
    return TracingOut(trace_url_template=state.config.trace_url_template)
