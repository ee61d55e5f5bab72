"""Making user values safe to send: JSON-safe, bounded in size, and redacted.

Everything here runs in the sender thread, never on the user's call path, and never
raises (the sender's caller guards it): any value becomes *something* JSON can encode.

- ``json_safe`` converts dataclasses, pydantic models, datetimes, UUIDs, enums, paths,
  decimals, numpy scalars and arrays, sets, mappings and sequences; anything else becomes
  a bounded ``repr``. It never iterates an arbitrary iterable (that could consume a
  user's generator) and bounds depth, items per container and string length.
- Mapping keys that name secrets (``redact_keys``, matched case-insensitively on the
  whole key or its last ``_``-separated words: ``openai_api_key`` matches ``api_key``,
  ``max_tokens`` does not match ``token``) have their values replaced by ``[REDACTED]``.
- ``preview`` renders a value within ``max_bytes`` of JSON; larger previews are cut and
  returned as a string ending in ``...``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as _dt
import decimal
import enum
import json
import math
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

__all__ = ["REDACTED", "Redactor", "json_safe", "preview", "truncate"]

REDACTED = "[REDACTED]"
_MAX_DEPTH = 6
_SCALARS = (str, int, float, bool, type(None))


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to at most ``limit`` characters, marking the cut with ``...``."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 3)] + "..."


class Redactor:
    """Decides which mapping keys hold secrets.

    Example:
        >>> r = Redactor(["api_key", "token"])
        >>> r.is_secret("OpenAI-API-Key"), r.is_secret("max_tokens")
        (True, False)
    """

    __slots__ = ("_cache", "_names")

    def __init__(self, names: Iterable[str]) -> None:
        self._names = frozenset(_normalise(n) for n in names if n)
        self._cache: dict[str, bool] = {}

    def is_secret(self, key: str) -> bool:
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        norm = _normalise(key)
        secret = norm in self._names or any(norm.endswith("_" + n) for n in self._names)
        if len(self._cache) < 10_000:
            self._cache[key] = secret
        return secret


def _normalise(key: str) -> str:
    return key.strip().lower().replace("-", "_").replace(" ", "_")


def _bounded_repr(value: Any, max_str: int) -> str:
    try:
        text = repr(value)
    except Exception:
        text = f"<unrepresentable {type(value).__qualname__}>"
    return truncate(text, max_str)


def json_safe(
    value: Any,
    *,
    redactor: Redactor | None = None,
    max_items: int = 50,
    max_str: int = 2000,
    _depth: int = 0,
) -> Any:
    """Return a JSON-encodable copy of ``value``, bounded and with secrets redacted.

    Example:
        >>> import datetime
        >>> json_safe({"when": datetime.date(2026, 1, 2), "tags": {"a"}, "password": "x"},
        ...           redactor=Redactor(["password"]))
        {'when': '2026-01-02', 'tags': ['a'], 'password': '[REDACTED]'}
    """
    if isinstance(value, str):
        return truncate(value, max_str)
    if value is None or isinstance(value, bool | int):
        if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**63:
            return str(value)  # JSON readers (and PostgreSQL) stop at 64 bits
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if _depth >= _MAX_DEPTH:
        return _bounded_repr(value, min(max_str, 200))
    kw: dict[str, Any] = {
        "redactor": redactor,
        "max_items": max_items,
        "max_str": max_str,
        "_depth": _depth + 1,
    }
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for i, (k, v) in enumerate(value.items()):
            if i >= max_items:
                out["..."] = f"{len(value) - max_items} more"
                break
            key = (
                k
                if isinstance(k, str)
                else _bounded_repr(k, 200)
                if not isinstance(k, _SCALARS)
                else str(k)
            )
            if redactor is not None and redactor.is_secret(key):
                out[key] = REDACTED
            else:
                out[key] = json_safe(v, **kw)
        return out
    if isinstance(value, list | tuple | deque):
        items = [json_safe(v, **kw) for v in _head(value, max_items)]
        if len(value) > max_items:
            items.append(f"... {len(value) - max_items} more")
        return items
    if isinstance(value, set | frozenset):
        items = [json_safe(v, **kw) for v in _head(value, max_items)]
        with contextlib.suppress(Exception):  # a stable order is cosmetic
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        if len(value) > max_items:
            items.append(f"... {len(value) - max_items} more")
        return items
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if isinstance(value, _dt.timedelta):
        return value.total_seconds()
    if isinstance(value, uuid.UUID | PurePath):
        return str(value)
    if isinstance(value, decimal.Decimal):
        return json_safe(float(value)) if value.is_finite() else str(value)
    if isinstance(value, enum.Enum):
        return json_safe(value.value, **kw)
    if isinstance(value, bytes | bytearray | memoryview):
        return f"<{type(value).__name__} of {len(value)} bytes>"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # Not dataclasses.asdict: it deep-copies every field, however large.
        fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
        return json_safe(fields, **{**kw, "_depth": _depth})
    dump = getattr(value, "model_dump", None)
    if callable(dump) and not isinstance(value, type):  # pydantic v2 models
        return json_safe(dump(), **{**kw, "_depth": _depth})
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        return _numpy_safe(value, kw, max_str)
    return _bounded_repr(value, max_str)


def _head(values: Iterable[Any], n: int) -> list[Any]:
    out = []
    for i, v in enumerate(values):
        if i >= n:
            break
        out.append(v)
    return out


def _numpy_safe(value: Any, kw: dict[str, Any], max_str: int) -> Any:
    size = getattr(value, "size", None)
    if getattr(value, "ndim", 0) == 0 and hasattr(value, "item"):
        return json_safe(value.item(), **kw)  # numpy scalar
    if isinstance(size, int) and hasattr(value, "tolist") and size <= kw["max_items"]:
        return json_safe(value.tolist(), **kw)
    return _bounded_repr(value, max_str)


def preview(value: Any, *, max_bytes: int, redactor: Redactor | None) -> Any:
    """A JSON-safe rendering of ``value`` whose JSON is at most about ``max_bytes``.

    Example:
        >>> preview(list(range(1000)), max_bytes=64, redactor=None)[-3:]
        '...'
    """
    safe = json_safe(value, redactor=redactor, max_items=20, max_str=max_bytes)
    if isinstance(safe, str | int | float | bool) or safe is None:
        return safe
    text = json.dumps(safe, ensure_ascii=False, separators=(",", ":"))
    if len(text) <= max_bytes:
        return safe
    return truncate(text, max_bytes)
