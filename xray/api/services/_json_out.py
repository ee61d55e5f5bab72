"""Response bodies assembled from rows, with stored JSON passed through as text.

The list and detail endpoints answer with the fields of their ``*Out`` models, in the
models' order and encoded as FastAPI encodes them (compact, UTF-8, UTC as ``Z``), but
without building ORM objects or validating models per row: the row's columns go straight
into ``orjson``, and a stored JSON value is spliced in as the text the database returned
(``orjson.Fragment``). Only a value with more brackets than ``MAX_JSON_DEPTH`` is parsed,
to be cut at the limit like every other read path (``xray.api.db._stored_json``).
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson
from fastapi import Response

from xray.api.db._stored_json import load_stored_json
from xray.shared import ErrorInfo
from xray.shared._wire import MAX_JSON_DEPTH

__all__ = ["EMPTY_OBJECT", "error_info", "json_response", "parsed", "stored", "stored_object"]

EMPTY_OBJECT = orjson.Fragment(b"{}")


def parsed(text: str) -> Any:
    """A stored JSON value decoded, cut at the depth limit like every read path."""
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        return load_stored_json(text)
    return orjson.loads(text)


def stored(text: str | None) -> orjson.Fragment | None:
    """A stored JSON value for the body: its text, or ``None`` for SQL NULL."""
    if text is None:
        return None
    if text.count("[") + text.count("{") > MAX_JSON_DEPTH:
        return orjson.Fragment(orjson.dumps(load_stored_json(text)))
    return orjson.Fragment(text)


def stored_object(text: str | None) -> orjson.Fragment:
    """A stored JSON object that the model defaults to ``{}`` when missing."""
    return EMPTY_OBJECT if text is None else stored(text) or EMPTY_OBJECT


def error_info(text: str | None) -> dict[str, Any] | None:
    """A stored error as ``ErrorInfo`` answers it: its fields, in the model's order.

    Rare, so it is read through the model rather than passed through.
    """
    if text is None:
        return None
    value = load_stored_json(text)
    if value is None:
        return None
    return ErrorInfo.model_validate(value).model_dump(mode="json")


def _default(value: Any) -> Any:
    # asyncpg's own UUID class, where a driver value reaches the body unconverted.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(type(value).__name__)


def json_response(content: Any) -> Response:
    """``content`` encoded once, as the body of a 200 ``application/json`` answer."""
    body = orjson.dumps(content, default=_default, option=orjson.OPT_UTC_Z)
    return Response(content=body, media_type="application/json")
