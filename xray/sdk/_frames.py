"""DataFrames and arrays as candidates: pandas, polars and NumPy structured arrays.

Imported only when such a value reaches a step, and then it imports nothing itself: the
library is read from ``sys.modules``, where the value's own module already is. The SDK
alone never imports pandas, polars or NumPy.

A frame's candidates are its rows, named by the step's ``key`` column (without a key:
an ``id`` column, else the row index). Counts come from ``len()``; decisions inferred
from a step that returned a subset of its input frame come from the key columns by
vectorised set operations, never a Python loop per row. A step's inferred decisions on
frames are kept as two blocks, the kept candidates first, then the dropped ones.
"""

from __future__ import annotations

import sys
from typing import Any

from xray.sdk import _decisions
from xray.sdk._columns import FRAME_MODULES, as_list
from xray.sdk._decisions import (
    ACCEPTED,
    FULL,
    REJECTED,
    SELECTED,
    SUMMARY,
    DecisionLog,
    KeySpec,
    candidate_key,
)

__all__ = ["is_frame", "key_column", "library", "snapshot"]


def library(value: Any) -> str | None:
    """``"pandas"``, ``"polars"`` or ``"numpy"`` for a value of theirs, else ``None``."""
    top = type(value).__module__.partition(".")[0]
    return top if top in FRAME_MODULES else None


def is_frame(value: Any) -> bool:
    """A table of candidates: a pandas or polars DataFrame, or a NumPy structured array."""
    top = library(value)
    if top is None:
        return False
    if top == "numpy":
        return getattr(getattr(value, "dtype", None), "names", None) is not None
    return hasattr(value, "columns") and hasattr(value, "shape")


def key_column(frame: Any, key: KeySpec) -> Any:
    """The keys of a frame's rows (a series, an array or a list), or ``None`` if it has none.

    A series or a plain one-dimensional array is its own key column: its values are the
    candidates, as scalars are their own keys in a list.
    """
    if not is_frame(frame):
        return frame
    if callable(key):
        return [candidate_key(row, key) for row in _rows(frame)]
    name = key if key is not None else "id"
    top = library(frame)
    if top == "numpy":
        if name in frame.dtype.names:
            return frame[name].copy()  # a view would see later writes to the array
        return sys.modules["numpy"].arange(len(frame)) if key is None else None
    if name in frame.columns:
        return frame[name]  # pandas copies on write; polars never writes in place
    if top == "pandas" and (key is None or frame.index.name == name):
        return frame.index
    if key is None:
        return sys.modules["polars"].Series(range(len(frame)))
    return None


def _rows(frame: Any) -> list[dict[str, Any]]:
    """The rows as dicts: only for a key that is a function (it needs the candidate)."""
    top = library(frame)
    if top == "pandas":
        rows: list[dict[str, Any]] = frame.to_dict("records")
        return rows
    if top == "polars":
        return list(frame.iter_rows(named=True))
    names = frame.dtype.names
    return [dict(zip(names, row, strict=True)) for row in frame.tolist()]


def snapshot(inputs: Any, outputs: Any, key: KeySpec) -> tuple[Any, Any] | None:
    """The key columns of a frame step's input and output, taken when the step ends."""
    if not (is_frame(inputs) and is_frame(outputs)):
        return None
    before, after = key_column(inputs, key), key_column(outputs, key)
    if before is None or after is None:
        return None
    return before, after


def infer(log: DecisionLog, key: KeySpec, step_type: str, inputs: Any, outputs: Any) -> None:
    """``_decisions.infer`` for key columns: the same decisions, by set operations."""
    columns = log.explicit_columns
    if library(inputs) == "polars" and all(library(c) == "polars" for c in columns):
        log.explicit_columns = []
        unique, kept = _polars_difference(inputs, outputs, log.explicit_keys, columns)
    else:
        before, after = _array(inputs), _array(outputs)
        arrays = [_array(c) for c in columns]
        if before.dtype.kind in "biuSU" and all(a.dtype.kind in "biuSU" for a in arrays):
            # Fixed-width values: NumPy compares them in C.
            log.explicit_columns = []
            unique, kept = _numpy_difference(before, after, log.explicit_keys, arrays)
        else:  # Python objects (text keys): Python's own hash tables are the fast ones
            _decisions.infer(log, key, step_type, before.tolist(), after.tolist(), keys_given=True)
            return
    if unique is None:
        return
    if log.detail == SUMMARY:
        log.total += len(unique)
        return
    keep_verb = SELECTED if step_type == "select" else ACCEPTED
    if library(unique) == "polars":  # stays a series: only held rows become objects
        stay, gone = unique.filter(kept), unique.filter(~kept)
    else:
        stay, gone = unique[kept], unique[~kept]
    ranks = None
    if step_type == "rank":
        first: dict[Any, int] = {}
        for at, raw in enumerate(as_list(outputs)):
            first.setdefault(raw, at + 1)
        ranks = [first.get(raw) for raw in as_list(stay)]
    for rows, verb in ((stay, keep_verb), (gone, REJECTED)):
        if log.detail == FULL:
            # Beyond the cap only counted: cut before the rows become Python objects.
            room = max(log.cap - log.held, 0)
            if len(rows) > room:
                log.drop(len(rows) - room)
                rows = rows[:room]
                ranks = ranks[:room] if ranks is not None and verb is keep_verb else ranks
        log.add_inferred_block(as_list(rows), verb, ranks if verb is keep_verb else None)


def _polars_difference(
    inputs: Any, outputs: Any, explicit: set[Any] | None, columns: list[Any]
) -> tuple[Any, Any]:
    """(distinct input keys not decided explicitly, whether each is in the output) as
    polars series; ``(None, None)`` when an output key is not among the inputs.
    ``columns`` are key columns decided explicitly, ``explicit`` the other keys."""
    pl = sys.modules["polars"]
    distinct = inputs if inputs.n_unique() == len(inputs) else inputs.unique(maintain_order=True)
    outs = outputs.implode()
    # A subset when every distinct output key is found among the distinct inputs: one
    # probe of the inputs against the (few) outputs serves the check and the verbs.
    kept = distinct.is_in(outs)
    if kept.sum() != outputs.n_unique():
        return None, None
    for column in columns:
        if column.dtype == distinct.dtype:
            distinct = distinct.filter(~distinct.is_in(column.implode()))
        else:
            explicit = (explicit or set()) | set(column.to_list())
    if explicit:
        decided = pl.Series(list(explicit))
        if decided.dtype == distinct.dtype:
            distinct = distinct.filter(~distinct.is_in(decided.implode()))
        else:  # mixed key types: compare as Python values
            distinct = pl.Series([k for k in distinct.to_list() if k not in explicit])
    if len(distinct) != len(kept):
        kept = distinct.is_in(outs)
    return distinct, kept


def _numpy_difference(
    before: Any, after: Any, explicit: set[Any] | None, columns: list[Any]
) -> tuple[Any, Any]:
    """``_polars_difference`` for NumPy arrays of numbers or fixed-width text."""
    np = sys.modules["numpy"]
    _values, first = np.unique(before, return_index=True)
    distinct = before[np.sort(first)] if len(first) < len(before) else before
    if not np.isin(after, distinct).all():
        return None, None
    for column in columns:
        distinct = distinct[~np.isin(distinct, column)]
    if explicit:
        distinct = distinct[~np.isin(distinct, np.asarray(list(explicit), dtype=object))]
    return distinct, np.isin(distinct, after)


def _array(column: Any) -> Any:
    """A key column as a NumPy array (a list or range first becomes one)."""
    to_numpy = getattr(column, "to_numpy", None)
    if to_numpy is not None:
        return to_numpy()
    np = sys.modules["numpy"]
    if isinstance(column, np.ndarray):
        return column
    return np.asarray(as_list(column), dtype=object)
