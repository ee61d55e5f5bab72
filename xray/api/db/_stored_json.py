"""Reading stored JSON values back, whatever was stored.

Ingest refuses values deeper than ``MAX_JSON_DEPTH`` (``xray.shared._wire``), but rows
written before that rule, or by hand, may nest deeper than a serialiser can follow. Every
JSON column is decoded here (the engine's ``json_deserializer``), so every read path
answers such a row with the value cut at the limit instead of failing: containers below
the limit are replaced by ``TRUNCATED``, and a value too deep even to parse becomes
``TRUNCATED`` whole.
"""

from __future__ import annotations

import json
from typing import Any

from xray.shared._wire import MAX_JSON_DEPTH, json_too_deep

__all__ = ["TRUNCATED", "load_stored_json"]

TRUNCATED = f"[nested deeper than {MAX_JSON_DEPTH} levels; not shown]"


def _cut(value: Any, depth: int) -> Any:
    if type(value) is dict:
        if depth >= MAX_JSON_DEPTH:
            return TRUNCATED
        return {key: _cut(item, depth + 1) for key, item in value.items()}
    if type(value) is list:
        if depth >= MAX_JSON_DEPTH:
            return TRUNCATED
        return [_cut(item, depth + 1) for item in value]
    return value


def load_stored_json(text: str | bytes) -> Any:
    """Decode one stored JSON value; parts nested past ``MAX_JSON_DEPTH`` are cut.

    Example:
        >>> load_stored_json('{"a": [1, 2]}')
        {'a': [1, 2]}
    """
    # Cheap test first: fewer brackets than the limit cannot nest past it.
    if isinstance(text, bytes):
        brackets = text.count(b"[") + text.count(b"{")
    else:
        brackets = text.count("[") + text.count("{")
    try:
        value = json.loads(text)
    except RecursionError:
        return TRUNCATED
    if brackets > MAX_JSON_DEPTH and json_too_deep(value):
        return _cut(value, 0)
    return value
