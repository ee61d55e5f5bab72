"""Opaque keyset-pagination cursors and the WHERE clause that resumes after one.

A cursor is the sort key of the last item of a page (base64url JSON, tagged with the list
it belongs to). Resuming with ``WHERE sort_key after cursor`` instead of OFFSET means no
gaps and no repeats while new rows arrive, and constant cost however deep the page.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, or_

from xray.api.errors import APIError, FieldError

__all__ = ["SortKey", "after", "decode_cursor", "encode_cursor"]

Kind = Literal["datetime", "uuid", "int", "str"]


@dataclass(frozen=True)
class SortKey:
    """One ORDER BY column: the column, its direction and how its value is encoded."""

    column: Any
    descending: bool
    kind: Kind

    def order(self) -> Any:
        return self.column.desc() if self.descending else self.column.asc()


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def encode_cursor(tag: str, values: Sequence[Any]) -> str:
    """The cursor that resumes after the row whose sort key is ``values``."""
    raw = json.dumps([tag, [_encode_value(v) for v in values]], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def _bad_cursor() -> APIError:
    return APIError(
        400,
        "cursor: not a cursor from this list; pass next_cursor unchanged",
        fields=[FieldError(field="cursor", message="invalid cursor")],
    )


def decode_cursor(tag: str, cursor: str, keys: Sequence[SortKey]) -> list[Any]:
    """The sort-key values in ``cursor``; a 400 naming ``cursor`` when it is not one of ours."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        found_tag, raw_values = json.loads(base64.urlsafe_b64decode(padded.encode("ascii")))
        if found_tag != tag or len(raw_values) != len(keys):
            raise ValueError(tag)
        values: list[Any] = []
        for key, raw in zip(keys, raw_values, strict=True):
            if key.kind == "datetime":
                parsed = datetime.fromisoformat(raw)
                if parsed.tzinfo is None:
                    raise ValueError(raw)
                values.append(parsed)
            elif key.kind == "uuid":
                values.append(uuid.UUID(raw))
            elif key.kind == "int":
                if not isinstance(raw, int) or isinstance(raw, bool) or abs(raw) >= 2**63:
                    raise ValueError(raw)
                values.append(raw)
            else:
                if not isinstance(raw, str):
                    raise ValueError(raw)
                values.append(raw)
        return values
    except (ValueError, TypeError, binascii.Error, UnicodeError, json.JSONDecodeError):
        raise _bad_cursor() from None


def after(keys: Sequence[SortKey], values: Sequence[Any]) -> ColumnElement[bool]:
    """Rows strictly after ``values`` in the order ``keys`` (mixed directions allowed).

    Expanded as ``k1 > v1 OR (k1 = v1 AND k2 > v2) OR ...``, plus a redundant bound on the
    first column so PostgreSQL can range-scan the index instead of filtering.
    """
    clauses = []
    for i, key in enumerate(keys):
        equal = [keys[j].column == values[j] for j in range(i)]
        beyond = key.column < values[i] if key.descending else key.column > values[i]
        clauses.append(and_(*equal, beyond))
    first = keys[0].column <= values[0] if keys[0].descending else keys[0].column >= values[0]
    return and_(first, or_(*clauses))
