"""Turn an ingest request body into validated wire models, or a 400/422 naming the field.

The body is parsed here rather than by FastAPI so that (1) malformed JSON is a 400 and a
bad field a 422 whose name is a path into the body (``steps[3].type``), (2) values the
databases cannot store are caught before any write: NaN/Infinity (not JSON, and not
storable in JSONB) are refused, integers beyond 64 bits are refused, and NUL characters
and lone surrogates (PostgreSQL text cannot hold them) become U+FFFD.

Three paths give the same answers. ``load_fast`` first decodes the body with the msgspec
mirror of the wire models (``xray.api._fast_wire``, which refuses the values above), then
``load_body`` validates it straight from the bytes with pydantic's JSON parser when a few
substring searches show the body cannot hold any of them. Otherwise, or when the bytes are not valid JSON,
the body goes through ``json.loads``, the cleaning walk and ``validate_python``, which
say precisely what is wrong.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import TypeAdapter, ValidationError

from xray.api.errors import APIError, FieldError, from_validation_error, validation_error

__all__ = ["Parsed", "first_byte", "load_body", "load_fast", "parse_json", "validate_body"]

T = TypeVar("T")
F = TypeVar("F")

_INT64 = 2**63 - 1
# Digits mapped to "0", "E" to "e", "+" deleted: 64-bit overflow needs a run of 19 zeros,
# and a float that overflows to infinity needs an exponent of three or more digits.
_DIGITS = bytes.maketrans(b"123456789E", b"000000000e")
_NUMBER_END = frozenset(b",]} \t\r\n")
# What only a body needing the slow path can contain (also found inside strings: then
# the slow path runs for nothing, and answers the same).
_SUSPECT = (b"\\u0000", b"\\ud", b"\\uD", b"NaN", b"Infinity")
_LEADING_SPACE = re.compile(rb"[ \t\r\n]*")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# In JSON text, NUL and lone surrogates can only arrive as \u escapes (raw control
# characters are invalid JSON, and UTF-8 cannot encode surrogates), and a 64-bit overflow
# needs 19+ digits: a body without these skips the cleaning walk.
_NEEDS_CLEANING = re.compile(r"\\u0000|\\u[dD][89a-fA-F]|[0-9]{19}")


class _NotJSON(ValueError):
    pass


def _refuse_constant(name: str) -> Any:
    raise _NotJSON(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _NotJSON(f"number {text[:40]} is out of range")
    return value


def _clean_text(value: str) -> str:
    return _UNSTORABLE.sub("\ufffd", value) if _UNSTORABLE.search(value) else value


def _clean(value: Any, path: str, errors: list[FieldError]) -> Any:
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        if not -_INT64 <= value <= _INT64:
            errors.append(FieldError(field=path or "body", message="integer out of 64-bit range"))
        return value
    if isinstance(value, list):
        return [_clean(item, f"{path}[{i}]", errors) for i, item in enumerate(value)]
    if isinstance(value, dict):
        return {
            _clean_text(k): _clean(v, f"{path}.{k}" if path else k, errors)
            for k, v in value.items()
        }
    return value


@dataclass(frozen=True)
class Parsed:
    """A parsed body, and whether it may hold values that need cleaning or refusing."""

    data: Any
    needs_cleaning: bool = True


def parse_json(body: bytes) -> Parsed:
    """Parse a request body as strict JSON; a 400 ``bad_request`` when it is not."""
    if not body.strip():
        raise APIError(400, "the request body is empty; expected JSON")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise APIError(400, f"the request body is not UTF-8 (byte {exc.start})") from None
    try:
        data = json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)
    except _NotJSON as exc:
        raise APIError(400, f"the request body is not valid JSON: {exc}") from None
    except json.JSONDecodeError as exc:
        raise APIError(
            400,
            f"the request body is not valid JSON: {exc.msg} (line {exc.lineno}, "
            f"column {exc.colno})",
        ) from None
    except (ValueError, RecursionError) as exc:
        # e.g. integers with more digits than Python parses, or absurd nesting.
        raise APIError(400, f"the request body is not valid JSON: {exc}") from None
    return Parsed(data, needs_cleaning=_NEEDS_CLEANING.search(text) is not None)


def validate_body(parsed: Parsed, adapter: TypeAdapter[T], *, prefix: str = "") -> T:
    """Clean and validate parsed JSON; a 422 naming every offending field otherwise."""
    data = cleaned = parsed.data
    if parsed.needs_cleaning:
        errors: list[FieldError] = []
        try:
            cleaned = _clean(data, prefix if isinstance(data, list) else "", errors)
        except RecursionError:
            raise APIError(400, "the request body is nested too deeply") from None
        if errors:
            raise validation_error(errors)
    try:
        return adapter.validate_python(cleaned)
    except ValidationError as exc:
        raise from_validation_error(exc, prefix=prefix if isinstance(data, list) else "") from None


def _plain(body: bytes) -> bool:
    """Whether ``body`` certainly holds no value the cleaning walk would change or refuse."""
    if any(s in body for s in _SUSPECT):
        return False
    digits = body.translate(_DIGITS, b"+")
    if b"0" * 19 in digits:
        return False
    # A number with a 3+ digit exponent is followed by a delimiter; hex in UUIDs is not.
    at = digits.find(b"e000")
    while at >= 0:
        end = at + 4
        while end < len(digits) and digits[end] == 0x30:
            end += 1
        if end == len(digits) or digits[end] in _NUMBER_END:
            return False
        at = digits.find(b"e000", end)
    return True


def first_byte(body: bytes) -> bytes:
    """The first byte of the JSON text in ``body`` (``b"["`` for an array), or ``b""``."""
    start = _LEADING_SPACE.match(body)
    return body[start.end() : start.end() + 1] if start else b""


def load_body(body: bytes, adapter: TypeAdapter[T], *, prefix: str = "") -> T:
    """Validate a request body into ``adapter``'s type; a 400 or 422 naming the field.

    ``prefix`` names the items when the body is a list (``runs`` gives ``runs[3].id``).

    Example:
        >>> load_body(b'{"runs": []}', TypeAdapter(BatchIn)).runs  # doctest: +SKIP
        []
    """
    if _plain(body):
        try:
            return adapter.validate_json(body)
        except ValidationError as exc:
            # Malformed JSON: the slow path names the line and column (and the encoding).
            if not any(e["type"] == "json_invalid" for e in exc.errors(include_url=False)):
                raise from_validation_error(exc, prefix=prefix) from None
        except RecursionError:
            pass
    return validate_body(parse_json(body), adapter, prefix=prefix)


def load_fast(
    body: bytes,
    fast: Callable[[bytes], F | None],
    adapter: TypeAdapter[T],
    *,
    prefix: str = "",
) -> F | T:
    """``fast(body)`` when it accepts the body, else ``load_body(body, adapter)``.

    ``fast`` accepts a subset of what ``adapter`` accepts, with the same values
    (``xray.api._fast_wire``); whatever it refuses, ``adapter`` accepts or names the field.

    Example:
        >>> load_fast(b'{"runs": []}', decode_batch, TypeAdapter(BatchIn))  # doctest: +SKIP
        BatchFast(runs=[], steps=[])
    """
    decoded = fast(body)
    if decoded is not None:
        return decoded
    return load_body(body, adapter, prefix=prefix)
