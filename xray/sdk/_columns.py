"""Decisions as columns: what a bulk call keeps, and how columns become wire JSON.

A bulk call (``Step.reject_many`` and its siblings) keeps one ``Block``: the candidates
(or a DataFrame's key column), one decision, and its reason, score, rank and attributes,
each either one value or a sequence aligned with the candidates. On the caller's thread
that is a few ``len()`` checks and shallow copies; keys are taken and values converted
later, in the sender thread, column by column (``Writer``). Per-item decisions take the
same way out: ``entries_block`` turns a run of them into one block before encoding.

The wire form is ``xray.shared.DecisionColumnsIn``: ``candidate_key`` sets the length;
``decision``, ``reason``, ``score`` and ``rank`` are one value or an aligned list;
``attributes`` maps a name to an aligned list (``null`` where absent) and
``shared_attributes`` holds the attributes every decision has.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from xray.sdk._serialize import REDACTED, Redactor, _Converter, truncate

__all__ = ["FRAME_MODULES", "Block", "Writer", "aligned", "as_list", "entries_block"]

#: Top-level modules whose arrays, series and frames count as aligned columns.
FRAME_MODULES = frozenset(("numpy", "pandas", "polars", "pyarrow"))

_MAX_KEY = 512
_MAX_REASON = 500
_MAX_STR = 2000
_INT_MIN, _INT_MAX = -(2**63), 2**63
_NONE = type(None)
_FLAT = frozenset((float, bool, _NONE))
_ALIGNED = (list, tuple, range)


class Block:
    """One bulk call's decisions, kept as columns until the sender encodes them.

    ``items`` holds the candidates (a list) or, for a DataFrame, ``None`` with ``column``
    its key column; ``keys`` is filled in the sender. ``take`` is how many of the first
    candidates are held within the step's cap; ``sample`` marks rejections that go
    through the per-reason reservoir at ``sampled`` detail instead.
    """

    __slots__ = (
        "attrs",
        "column",
        "decision",
        "items",
        "keys",
        "length",
        "order",
        "rank",
        "reason",
        "sample",
        "score",
        "shared",
        "take",
    )

    def __init__(
        self,
        items: list[Any] | None,
        column: Any,
        length: int,
        decision: Any,
        reason: Any,
        score: Any,
        rank: Any,
        attrs: dict[str, Any],
        shared: dict[str, Any],
    ) -> None:
        self.items = items
        self.column = column
        self.length = length
        self.decision = decision
        self.reason = reason
        self.score = score
        self.rank = rank
        self.attrs = attrs  # name -> aligned sequence
        self.shared = shared  # name -> one value for every decision
        self.keys: list[Any] | None = None
        self.order = 0
        self.take = 0
        self.sample = False

    def value(self, column: Any, index: int) -> Any:
        """Row ``index`` of a field that is one value or an aligned sequence."""
        return as_list(column)[index] if aligned(column) else column

    def row_attrs(self, index: int) -> dict[str, Any] | None:
        """The attributes of one decision, as a per-item call would have recorded them."""
        out = dict(self.shared)
        for name, column in self.attrs.items():
            value = as_list(column)[index]
            if value is not None:
                out[name] = value
        return out or None


def aligned(value: Any) -> bool:
    """Whether ``value`` is a sequence aligned with the candidates (not one value)."""
    kind = type(value)
    if kind is list or kind is tuple or kind is range:
        return True
    if kind.__module__.partition(".")[0] in FRAME_MODULES:
        return hasattr(value, "__len__") and getattr(value, "ndim", 1) >= 1
    return False


def copied(value: Any) -> Any:
    """A copy of an aligned sequence that later changes by the caller cannot reach.

    Python sequences are copied shallowly. pandas and polars series are immutable to us
    (pandas copies on write, polars never writes); a NumPy array is copied.
    """
    kind = type(value)
    if kind is list or kind is tuple or kind is range:
        return list(value)
    copy = getattr(value, "copy", None)
    if kind.__module__.partition(".")[0] == "numpy" and copy is not None:
        return copy()
    return value


def as_list(value: Any) -> list[Any]:
    """An aligned sequence as a Python list (NumPy, pandas and polars via ``tolist``)."""
    if type(value) is list:
        return value
    to_list = getattr(value, "tolist", None) or getattr(value, "to_list", None)
    if to_list is not None:
        made = to_list()
        if type(made) is list:
            return made
    return list(value)


def entries_block(entries: list[Any]) -> Block:
    """One block of per-item entries ``(order, key, decision, reason, score, rank, attrs)``.

    Its ``keys`` are the entries' second field (candidates until the caller keys them).
    """
    n = len(entries)
    _orders, items, decisions, reasons, scores, ranks, found = zip(*entries, strict=True)
    names: set[str] = set().union(*filter(None, found))
    attrs = {name: [d.get(name) if d else None for d in found] for name in names}
    block = Block(
        None,
        None,
        n,
        _collapse(decisions),
        _collapse(reasons),
        _collapse(scores),
        _collapse(ranks),
        attrs,
        {},
    )
    block.keys = list(items)
    block.order = entries[0][0]
    block.take = n
    return block


def _collapse(column: tuple[Any, ...]) -> Any:
    """One value when every row has it (the usual: one decision, one reason), else a list."""
    first = column[0]
    return first if column.count(first) == len(column) else list(column)


class Writer:
    """Turns blocks into ``DecisionColumnsIn`` dicts, one column at a time (sender thread)."""

    def __init__(self, redactor: Redactor, key_text: Callable[[Any], str]) -> None:
        self.redactor = redactor
        self.key_text = key_text
        self.convert = _Converter(redactor, 50, _MAX_STR, 6).convert

    def block(self, block: Block, start: int, stop: int) -> dict[str, Any]:
        """The wire dict of rows ``start:stop`` of ``block`` (its keys already taken)."""
        keys = block.keys
        assert keys is not None
        whole = start == 0 and stop == block.length
        out: dict[str, Any] = {
            "candidate_key": self._keys(keys if stop == len(keys) else keys[start:stop]),
            "decision": self._cut(block.decision, start, stop, whole),
        }
        reason = block.reason
        if reason is not None:
            if aligned(reason):
                out["reason"] = self._reasons(self._cut(reason, start, stop, whole))
            else:
                out["reason"] = (
                    reason if len(reason) <= _MAX_REASON else truncate(reason, _MAX_REASON)
                )
        if block.score is not None:
            out["score"] = self._numbers(self._cut(block.score, start, stop, whole), float)
        if block.rank is not None:
            out["rank"] = self._numbers(self._cut(block.rank, start, stop, whole), int)
        if block.attrs:
            secret = self.redactor.is_secret
            out["attributes"] = {
                name: self._values(self._cut(column, start, stop, whole), secret(name))
                for name, column in block.attrs.items()
            }
        if block.shared:
            out["shared_attributes"] = self.convert(block.shared, 0)
        return out

    @staticmethod
    def _cut(value: Any, start: int, stop: int, whole: bool) -> Any:
        if not aligned(value):
            return value
        if whole:
            return as_list(value)
        if type(value) is list:
            return value[start:stop]
        # Cut first (by position, also in pandas): only the held rows become objects.
        return as_list(getattr(value, "iloc", value)[start:stop])

    def _keys(self, keys: list[Any]) -> list[str]:
        kinds = set(map(type, keys))
        if kinds == {str} and "" not in keys and max(map(len, keys)) <= _MAX_KEY:
            return keys
        if kinds == {int}:
            return list(map(str, keys))
        return list(map(self.key_text, keys))

    @staticmethod
    def _reasons(values: list[Any]) -> list[str | None]:
        if set(map(type, values)) <= {str, _NONE}:
            texts = [v for v in values if v is not None]
            if not texts or max(map(len, texts)) <= _MAX_REASON:
                return values
        return [None if v is None else truncate(str(v), _MAX_REASON) for v in values]

    @staticmethod
    def _numbers(value: Any, kind: type) -> Any:
        if type(value) is not list:
            return _number(value, kind)
        kinds = set(map(type, value))
        if kinds <= {kind, _NONE}:
            if kind is int:
                ints = [v for v in value if v is not None]
                if not ints or (min(ints) >= _INT_MIN and max(ints) < _INT_MAX):
                    return value
            elif _all_finite(value, kinds):
                return value
        return [_number(v, kind) for v in value]

    def _values(self, column: Any, secret: bool) -> list[Any]:
        """An attribute column as the per-item path would convert each of its values."""
        values: list[Any] = column if type(column) is list else [column]
        if secret:
            return [None if v is None else REDACTED for v in values]
        kinds = set(map(type, values))
        if kinds <= _FLAT:
            if _all_finite(values, kinds):
                return values
        elif kinds <= {str, _NONE}:
            texts = [v for v in values if v is not None]
            if max(map(len, texts)) <= _MAX_STR:
                return values
        elif kinds <= {int, _NONE}:
            ints = [v for v in values if v is not None]
            if min(ints) >= _INT_MIN and max(ints) < _INT_MAX:
                return values
        convert = self.convert
        return [None if v is None else convert(v, 1) for v in values]


def _all_finite(values: list[Any], kinds: set[type]) -> bool:
    """Whether no float of ``values`` (of types ``kinds``) is infinite or NaN."""
    # One C pass: a NaN or an infinity makes the sum non-finite. Finite values whose sum
    # overflows are checked one by one below.
    if kinds == {float} and math.isfinite(sum(values)):
        return True
    return all(math.isfinite(v) for v in values if type(v) is float)


def _number(value: Any, kind: type) -> Any:
    if value is None:
        return None
    try:
        number = kind(value)
    except Exception:
        return None
    if kind is float and not math.isfinite(number):
        return None
    return number
