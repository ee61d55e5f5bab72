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
import itertools
import json
import math
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from pathlib import PurePath
from typing import Any

__all__ = [
    "PREVIEW_DEPTH",
    "PREVIEW_ITEMS",
    "PREVIEW_NESTED",
    "REDACTED",
    "Head",
    "Redactor",
    "json_safe",
    "preview",
    "truncate",
]

REDACTED = "[REDACTED]"
_MAX_DEPTH = 6
#: A preview shows the first few items of a collection, a few levels deep ("small").
PREVIEW_ITEMS = 10  # scalars
PREVIEW_NESTED = 3  # lists of mappings, lists, objects: the first few candidates
PREVIEW_DEPTH = 4
_SCALARS = (str, int, float, bool, type(None))
# Built once: json.dumps with options builds a new encoder on every call.
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Head(list):  # type: ignore[type-arg]
    """The first items of a longer list, kept for a preview; ``total`` is the full length.

    A step keeps this instead of its whole result: a preview shows only the first items,
    and holding fewer references keeps the garbage collector's work per step small.
    """

    __slots__ = ("total",)

    def __init__(self, items: list[Any], total: int) -> None:
        super().__init__(items)
        self.total = total


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
        text = f"<unrepresentable {type(value).__name__}>"
    return truncate(text, max_str)


def json_safe(
    value: Any,
    *,
    redactor: Redactor | None = None,
    max_items: int = 50,
    max_str: int = 2000,
    max_depth: int = _MAX_DEPTH,
) -> Any:
    """Return a JSON-encodable copy of ``value``, bounded and with secrets redacted.

    Example:
        >>> import datetime
        >>> json_safe({"when": datetime.date(2026, 1, 2), "tags": {"a"}, "password": "x"},
        ...           redactor=Redactor(["password"]))
        {'when': '2026-01-02', 'tags': ['a'], 'password': '[REDACTED]'}
    """
    try:
        return _Converter(redactor, max_items, max_str, max_depth).convert(value, 0)
    except Exception as exc:  # a user object that fails while read: lose this value only
        return f"<unavailable: {type(exc).__name__}>"


class _Converter:
    # One object per conversion so the recursion passes two arguments, not five: this
    # runs for every preview the sender renders.
    __slots__ = ("max_depth", "max_items", "max_nested", "max_str", "redactor", "size")

    def __init__(
        self,
        redactor: Redactor | None,
        max_items: int,
        max_str: int,
        max_depth: int,
        max_nested: int | None = None,
    ) -> None:
        self.redactor = redactor
        self.max_items = max_items
        self.max_nested = max_items if max_nested is None else max_nested
        self.max_str = max_str
        self.max_depth = max_depth
        # An upper estimate of the JSON size, so that a small preview needs no encoding
        # to be measured. Characters count one byte (ensure_ascii=False keeps them).
        self.size = 0

    def convert(self, value: Any, depth: int) -> Any:
        kind = type(value)
        if kind is str:
            self.size += len(value) + 2
            return value if len(value) <= self.max_str else truncate(value, self.max_str)
        if value is None or kind is bool:
            self.size += 5
            return value
        if kind is int:
            self.size += 20
            return value if -(2**63) <= value < 2**63 else str(value)
        if kind is float:
            self.size += 24
            return value if math.isfinite(value) else str(value)
        self.size += 2
        if depth >= self.max_depth:
            return _bounded_repr(value, min(self.max_str, 200))
        if kind is dict:
            return self._mapping(value, depth)
        if kind is list or kind is tuple:
            return self._sequence(value, depth)
        try:
            return self._other(value, depth)
        except Exception as exc:  # a user object failing while read loses only itself
            return f"<unavailable: {type(exc).__name__}>"

    def _mapping(self, value: Mapping[Any, Any], depth: int) -> dict[str, Any]:
        if type(value) is dict and len(value) <= self.max_items:
            flat = self._flat(value)
            if flat is not None:
                return flat
        out: dict[str, Any] = {}
        redactor = self.redactor
        secrets = redactor._cache if redactor is not None else None
        limit = self.max_items
        convert = self.convert
        depth += 1
        n = 0
        for k, v in value.items():
            if n >= limit:
                out["..."] = f"{len(value) - limit} more"
                break
            n += 1
            key = (
                k
                if type(k) is str
                else str(k)
                if isinstance(k, _SCALARS)
                else _bounded_repr(k, 200)
            )
            self.size += len(key) + 4
            if secrets is not None:
                secret = secrets.get(key)
                if secret is None:
                    secret = redactor.is_secret(key)  # type: ignore[union-attr]
                if secret:
                    out[key] = REDACTED
                    continue
            out[key] = convert(v, depth)
        return out

    def _flat(self, value: dict[Any, Any]) -> dict[str, Any] | None:
        """A copy of a flat ``{str: short scalar}`` dict without secrets, or ``None``.

        Candidates are usually such dicts; one loop and a C-level copy is several times
        cheaper than converting value by value.
        """
        redactor = self.redactor
        secrets = redactor._cache if redactor is not None else None
        max_str = self.max_str
        size = 0
        for k, v in value.items():
            if type(k) is not str:
                return None
            kind = type(v)
            if kind is str:
                if len(v) > max_str:
                    return None
                size += len(v)
            elif kind is float:
                if not math.isfinite(v):
                    return None
            elif not (kind is int and -(2**63) <= v < 2**63) and v is not None and kind is not bool:
                return None
            if secrets is not None:
                secret = secrets.get(k)
                if secret is None:
                    secret = redactor.is_secret(k)  # type: ignore[union-attr]
                if secret:
                    return None
            size += len(k) + 28
        self.size += size + 2
        return dict(value)

    def _sequence(self, value: Any, depth: int) -> list[Any]:
        limit = self.max_items
        if self.max_nested < limit and value and not isinstance(next(iter(value)), _SCALARS):
            limit = self.max_nested  # candidates are big: a preview shows the first few
        convert = self.convert
        depth += 1
        items = [convert(v, depth) for v in itertools.islice(value, limit)]
        total = value.total if type(value) is Head else len(value)
        if total > min(limit, len(value)):
            items.append(f"... {total - min(limit, len(value))} more")
        return items

    def _other(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            return self.convert(str(value), depth)
        if isinstance(value, bool | int | float):
            return self.convert(value.__class__.__mro__[-2](value), depth)
        if isinstance(value, Mapping):
            return self._mapping(value, depth)
        if isinstance(value, list | tuple | deque):
            return self._sequence(value, depth)
        if isinstance(value, set | frozenset):
            items = self._sequence(value, depth)
            with contextlib.suppress(Exception):  # a stable order is cosmetic
                items.sort(key=lambda item: json.dumps(item, sort_keys=True))
            return items
        if isinstance(value, _dt.datetime | _dt.date | _dt.time):
            return value.isoformat()
        if isinstance(value, _dt.timedelta):
            return value.total_seconds()
        if isinstance(value, uuid.UUID | PurePath):
            return str(value)
        if isinstance(value, decimal.Decimal):
            return self.convert(float(value), depth) if value.is_finite() else str(value)
        if isinstance(value, enum.Enum):
            return self.convert(value.value, depth)
        if isinstance(value, bytes | bytearray | memoryview):
            return f"<{type(value).__name__} of {len(value)} bytes>"
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            # Not dataclasses.asdict: it deep-copies every field, however large.
            fields = {f.name: getattr(value, f.name, None) for f in dataclasses.fields(value)}
            return self._mapping(fields, depth)
        dump = getattr(value, "model_dump", None)
        if callable(dump) and not isinstance(value, type):  # pydantic v2 models
            return self.convert(dump(), depth)
        module = type(value).__module__
        if module == "numpy" or module.startswith("numpy."):
            return self._numpy(value, depth)
        return _bounded_repr(value, self.max_str)

    def _numpy(self, value: Any, depth: int) -> Any:
        size = getattr(value, "size", None)
        if getattr(value, "ndim", 0) == 0 and hasattr(value, "item"):
            return self.convert(value.item(), depth)  # a numpy scalar
        if isinstance(size, int) and hasattr(value, "tolist") and size <= self.max_items:
            return self.convert(value.tolist(), depth)
        return _bounded_repr(value, self.max_str)


def preview(value: Any, *, max_bytes: int, redactor: Redactor | None) -> Any:
    """A JSON-safe rendering of ``value`` whose JSON is at most about ``max_bytes``.

    Example:
        >>> preview(list(range(1000)), max_bytes=64, redactor=None)[-3:]
        '...'
    """
    converter = _Converter(redactor, PREVIEW_ITEMS, max_bytes, PREVIEW_DEPTH, PREVIEW_NESTED)
    try:
        safe = converter.convert(value, 0)
    except Exception as exc:  # e.g. a dict the caller changes while the sender reads it
        return f"<unavailable: {type(exc).__name__}>"
    if converter.size <= max_bytes or not isinstance(safe, dict | list):
        return safe
    text = _compact.encode(safe)
    if len(text) <= max_bytes:
        return safe
    return truncate(text, max_bytes)
