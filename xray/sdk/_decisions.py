"""Per-candidate decisions: what a step records, how much it keeps, and what it infers.

On the user's thread (``DecisionLog.add``) a decision costs a few dictionary operations:
``reason_counts`` is always kept, and the detail level decides what else is held:

- ``summary``: nothing else (O(1) memory per step);
- ``sampled``: every accepted / selected / scored decision, and for rejections a
  reservoir of at most ``rejected_samples_per_reason`` per reason (uniform sample);
- ``full``: every decision.

Every level stops holding at ``max_decisions_per_step`` and counts the rest, so the step
says ``candidates_total`` vs ``candidates_recorded``.

Inference (``infer``, in the sender thread): when a step has a ``key`` and returned a
subset of its input, each input candidate without an explicit decision is ``accepted``
(``selected`` for a ``select`` step) when it is in the output and ``rejected`` (no reason)
when it is not; explicit calls win and carry the reasons.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Iterable, Mapping
from typing import Any

from xray.shared import Decision, DetailLevel

__all__ = ["DecisionLog", "KeySpec", "candidate_key", "infer", "key_text"]

KeySpec = str | Callable[[Any], Any] | None

ACCEPTED = Decision.ACCEPTED.value
REJECTED = Decision.REJECTED.value
SELECTED = Decision.SELECTED.value
SCORED = Decision.SCORED.value
SUMMARY = DetailLevel.SUMMARY.value
SAMPLED = DetailLevel.SAMPLED.value
FULL = DetailLevel.FULL.value

# (order, raw key, decision, reason, score, rank, attributes)
Entry = tuple[int, Any, str, str | None, float | None, int | None, dict[str, Any] | None]

_MISSING = object()
_SCALAR_KEYS = (str, int, float, bool)


def candidate_key(item: Any, key: KeySpec) -> Any:
    """The raw key of a candidate: ``key`` as field name, attribute name or callable.

    Without ``key``: a scalar is its own key; a mapping or object with an ``id`` uses it;
    anything else is identified by its (bounded) text.

    Example:
        >>> candidate_key({"asin": "B01"}, "asin"), candidate_key("B02", None)
        ('B01', 'B02')
    """
    if type(item) is dict and type(key) is str:  # the common case, without ABC checks
        return item.get(key)
    if key is None:
        if isinstance(item, _SCALAR_KEYS):
            return item
        if isinstance(item, Mapping):
            found = item.get("id", _MISSING)
        else:
            found = getattr(item, "id", _MISSING)
        return item if found is _MISSING else found
    try:
        if isinstance(key, str):
            if isinstance(item, Mapping):
                return item.get(key)
            return getattr(item, key, None)
        return key(item)
    except Exception:  # a user's key function failed: identify the candidate itself
        return candidate_key(item, None)


def key_text(raw: Any) -> str:
    """The wire form of a candidate key: a non-empty string of at most 512 characters."""
    text = (
        raw
        if isinstance(raw, str)
        else repr(raw)
        if not isinstance(raw, _SCALAR_KEYS)
        else str(raw)
    )
    if not text:
        return "<empty>"
    return text if len(text) <= 512 else text[:509] + "..."


def _hashable(raw: Any) -> Hashable:
    try:
        hash(raw)
    except TypeError:
        return key_text(raw)
    return raw  # type: ignore[no-any-return]


class DecisionLog:
    """The decisions of one step, held per its detail level (see the module docstring)."""

    __slots__ = (
        "_reservoirs",
        "cap",
        "detail",
        "entries",
        "explicit_keys",
        "overflow",
        "per_reason",
        "reason_counts",
        "total",
    )

    def __init__(self, detail: str, cap: int, per_reason: int, track_keys: bool) -> None:
        self.detail = detail
        self.cap = cap
        self.per_reason = per_reason
        self.total = 0
        self.overflow = 0
        self.reason_counts: dict[str, int] = {}
        self.entries: list[Entry] = []
        # reason -> [seen, sample]; only for sampled rejections
        self._reservoirs: dict[str | None, list[Any]] = {}
        self.explicit_keys: set[Hashable] | None = set() if track_keys else None

    def add(
        self,
        raw_key: Any,
        decision: str,
        reason: str | None,
        score: float | None,
        rank: int | None,
        attrs: dict[str, Any] | None,
    ) -> None:
        order = self.total
        self.total = order + 1
        if reason is not None and decision == REJECTED:
            counts = self.reason_counts
            counts[reason] = counts.get(reason, 0) + 1
        explicit = self.explicit_keys
        if explicit is not None:
            kind = type(raw_key)  # str and int keys (the usual) are hashable as they are
            explicit.add(raw_key if kind is str or kind is int else _hashable(raw_key))
        detail = self.detail
        if detail == SUMMARY:
            return
        entry: Entry = (order, raw_key, decision, reason, score, rank, attrs)
        if detail == SAMPLED and decision == REJECTED:
            self._sample(reason, entry)
        elif len(self.entries) < self.cap:
            self.entries.append(entry)
        else:
            self.overflow += 1

    def add_inferred(self, raw_key: Any, decision: str, rank: int | None) -> None:
        """An inferred decision: no reason, not counted as explicit (sender thread only)."""
        order = self.total
        self.total = order + 1
        entry: Entry = (order, raw_key, decision, None, None, rank, None)
        if self.detail == SAMPLED and decision == REJECTED:
            self._sample(None, entry)
        elif len(self.entries) < self.cap:
            self.entries.append(entry)
        else:
            self.overflow += 1

    def _sample(self, reason: str | None, entry: Entry) -> None:
        slot = self._reservoirs.get(reason)
        if slot is None:
            slot = self._reservoirs[reason] = [0, []]
        slot[0] += 1
        sample: list[Entry] = slot[1]
        if len(sample) < self.per_reason:
            sample.append(entry)
        else:
            # Algorithm R: each of the `seen` rejections is kept with equal probability.
            j = random.randrange(slot[0])
            if j < self.per_reason:
                sample[j] = entry

    def recorded(self) -> list[Entry]:
        """Every held decision in the order it was made, within the cap."""
        entries = list(self.entries)
        for _seen, sample in self._reservoirs.values():
            entries.extend(sample)
        if len(entries) > len(self.entries):
            entries.sort(key=lambda e: e[0])
        return entries[: self.cap]


def _keys(items: Iterable[Any], key: KeySpec) -> list[tuple[Hashable, Any]]:
    """(hashable key, raw key) of each item; dict candidates with a field key go fast."""
    out: list[tuple[Hashable, Any]] = []
    append = out.append
    field = key if type(key) is str else None
    for item in items:
        raw = (
            item.get(field)
            if field is not None and type(item) is dict
            else candidate_key(item, key)
        )
        kind = type(raw)
        append((raw if kind is str or kind is int else _hashable(raw), raw))
    return out


def infer(
    log: DecisionLog,
    key: KeySpec,
    step_type: str,
    inputs: Iterable[Any],
    outputs: Iterable[Any],
) -> None:
    """Add the decisions implied by ``outputs`` being a subset of ``inputs`` to ``log``.

    Does nothing when an output candidate is not among the inputs (the step transformed
    its candidates rather than filtering them).
    """
    kept: dict[Hashable, int] = {}
    for index, (hashed, _raw) in enumerate(_keys(outputs, key)):
        kept.setdefault(hashed, index)
    seen: set[Hashable] = set()
    candidates: list[tuple[Hashable, Any]] = []
    for hashed, raw in _keys(inputs, key):
        if hashed not in seen:
            seen.add(hashed)
            candidates.append((hashed, raw))
    if not kept.keys() <= seen:
        return
    explicit = log.explicit_keys or set()
    if explicit:
        candidates = [c for c in candidates if c[0] not in explicit]
    if log.detail == SUMMARY:
        log.total += len(candidates)  # nothing is held in summary: just count
        return
    keep_verb = SELECTED if step_type == "select" else ACCEPTED
    with_rank = step_type == "rank"
    for hashed, raw in candidates:
        found = kept.get(hashed)
        if found is None:
            log.add_inferred(raw, REJECTED, None)
        else:
            log.add_inferred(raw, keep_verb, found + 1 if with_rank else None)
