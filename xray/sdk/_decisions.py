"""Per-candidate decisions: what a step records, how much it keeps, and what it infers.

On the user's thread (``DecisionLog.add``) a decision costs a few operations: the
candidate is held as it is (its key is taken in the sender, ``prepare``), a bulk call
keeps one ``Block`` of columns (``_columns``), ``reason_counts`` is always kept, and the
detail level decides what else is held:

- ``summary``: nothing else (for a step with a ``key``, the candidates decided, whose
  keys win over inference);
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
from collections import Counter
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from xray.sdk._columns import Block, aligned, as_list, entries_block
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
_OWN_KEYS = frozenset(_SCALAR_KEYS)


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
    try:
        text = (
            raw
            if isinstance(raw, str)
            else repr(raw)
            if not isinstance(raw, _SCALAR_KEYS)
            else str(raw)
        )
    except Exception:  # a user's __repr__ that fails: the type still names it
        text = f"<{type(raw).__name__}>"
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
    """The decisions of one step, held per its detail level (see the module docstring).

    Per-item calls add one entry each; bulk calls add one ``Block`` each (its keys are
    taken in the sender, by ``prepare``). ``held`` counts what is held against the cap.
    """

    __slots__ = (
        "_reservoirs",
        "blocks",
        "cap",
        "detail",
        "entries",
        "explicit_columns",
        "explicit_keys",
        "finished",
        "held",
        "overflow",
        "per_reason",
        "reason_counts",
        "total",
        "unheld",
    )

    def __init__(self, detail: str, cap: int, per_reason: int, track_keys: bool) -> None:
        self.detail = detail
        self.cap = cap
        self.per_reason = per_reason
        self.total = 0
        self.held = 0
        self.overflow = 0
        self.reason_counts: dict[str, int] = {}
        self.entries: list[Entry] = []
        self.blocks: list[Block] = []
        # reason -> [seen, sample]; only for sampled rejections
        self._reservoirs: dict[str | None, list[Any]] = {}
        self.explicit_keys: set[Hashable] | None = set() if track_keys else None
        # Key columns of frames decided in bulk: explicit too, kept as columns.
        self.explicit_columns: list[Any] = []
        # Candidates decided per item but not held as entries, for their keys.
        self.unheld: list[Any] | None = [] if track_keys else None
        self.finished = False  # prepared and inferred by the sender (see Encoder.step)

    def add(
        self,
        item: Any,
        decision: str,
        reason: str | None,
        score: float | None,
        rank: int | None,
        attrs: dict[str, Any] | None,
    ) -> None:
        """One per-item decision (caller's thread): the candidate is kept as it is and its
        key taken in the sender (``prepare``), like the keys of inference."""
        order = self.total
        self.total = order + 1
        if reason is not None and decision == REJECTED:
            counts = self.reason_counts
            counts[reason] = counts.get(reason, 0) + 1
        detail = self.detail
        if detail == FULL or (detail == SAMPLED and decision != REJECTED):
            if self.held < self.cap:
                self.held += 1
                self.entries.append((order, item, decision, reason, score, rank, attrs))
                return
            self.overflow += 1
        elif detail == SAMPLED:
            self._sample(reason, (order, item, decision, reason, score, rank, attrs))
        if self.unheld is not None:
            self.unheld.append(item)  # its key still wins over inference

    def add_block(self, block: Block) -> None:
        """A bulk call's decisions (caller's thread): counted now, keys taken later."""
        n = block.length
        block.order = self.total
        self.total += n
        reason = block.reason
        if reason is not None and block.decision == REJECTED:
            counts = self.reason_counts
            if aligned(reason):
                for text, seen in Counter(as_list(reason)).items():
                    if text is not None:
                        counts[text] = counts.get(text, 0) + seen
            else:
                counts[reason] = counts.get(reason, 0) + n
        detail = self.detail
        if detail == SUMMARY:
            if self.explicit_keys is not None:
                self.blocks.append(block)  # only its keys: they win over inference
            return
        if detail == SAMPLED and block.decision == REJECTED:
            block.sample = True
        else:
            take = min(n, max(self.cap - self.held, 0))
            block.take = take
            self.held += take
            self.overflow += n - take
        self.blocks.append(block)

    def drop(self, count: int) -> None:
        """Decisions that could not be recorded: counted in the total, never held."""
        self.total += count
        self.overflow += count

    def prepare(self, key: KeySpec, inferring: bool) -> None:
        """Take the keys of the candidates decided explicitly, and sample the bulk
        rejections (sender thread, once, before inference). The explicit keys are
        gathered only when ``inferring``: only inference reads them."""
        explicit = self.explicit_keys if inferring else None
        entries = self.entries
        if entries:
            # The held per-item decisions become one block: their columns, the candidates'
            # column replaced by their keys.
            made = entries_block(entries)
            assert made.keys is not None
            made.keys = keys = _keys(made.keys, key)
            if explicit is not None:
                add_hashable(explicit, keys)
            self.entries = []
        for slot in self._reservoirs.values():
            slot[1] = _keyed(slot[1], key)
        if self.unheld and explicit is not None:
            add_hashable(explicit, _keys(self.unheld, key))
        self.unheld = None
        for block in self.blocks:
            if block.keys is None and (block.take or block.sample or explicit is not None):
                block.keys = block_keys(block, key, None if block.sample else block.take)
            if block.keys is None:  # only counted: nothing of it is read
                continue
            if explicit is not None:
                if block.items is None:  # a frame's: compared as a column, if it can be
                    self.explicit_columns.append(block.column)
                else:
                    add_hashable(explicit, block.keys)
            if block.sample:
                self._sample_block(block)
        if entries:
            self.blocks.insert(0, made)

    def add_inferred_block(self, keys: list[Any], decision: Any, ranks: list[Any] | None) -> None:
        """Inferred decisions as one block (sender thread only).

        ``decision`` is one verb or a list aligned with ``keys``; held as the same decisions
        made one by one would be.
        """
        n = len(keys)
        if not n:
            return
        if self.detail == SUMMARY:
            self.total += n
            return
        if self.detail == SAMPLED:
            verbs = decision if type(decision) is list else [decision] * n
            rejected = [i for i, verb in enumerate(verbs) if verb == REJECTED]
            if rejected:
                order = self.total
                kept = [i for i, verb in enumerate(verbs) if verb != REJECTED]
                self.total += len(rejected)
                self._sample_many(
                    None,
                    len(rejected),
                    lambda j: (
                        order + rejected[j],
                        keys[rejected[j]],
                        REJECTED,
                        None,
                        None,
                        None,
                        None,
                    ),
                )
                if not kept:
                    return
                keys = [keys[i] for i in kept]
                decision = verbs[kept[0]] if type(decision) is list else decision
                ranks = [ranks[i] for i in kept] if ranks is not None else None
                n = len(keys)
        block = Block(None, None, n, decision, None, None, ranks, {}, {})
        block.keys = keys
        block.order = self.total
        self.total += n
        block.take = take = min(n, max(self.cap - self.held, 0))
        self.held += take
        self.overflow += n - take
        self.blocks.append(block)

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

    def _sample_block(self, block: Block) -> None:
        keys = block.keys
        assert keys is not None
        order = block.order
        # Python lists once, read by index for each sampled rejection.
        block.attrs = {name: as_list(column) for name, column in block.attrs.items()}
        for field in ("reason", "score", "rank"):
            value = getattr(block, field)
            if aligned(value):
                setattr(block, field, as_list(value))

        def make(index: int) -> Entry:
            return (
                order + index,
                keys[index],
                block.decision,
                block.value(block.reason, index),
                block.value(block.score, index),
                block.value(block.rank, index),
                block.row_attrs(index),
            )

        reason = block.reason
        if not aligned(reason):
            self._sample_many(reason, block.length, make)
            return
        groups: dict[Any, list[int]] = {}
        for index, text in enumerate(as_list(reason)):
            group = groups.get(text)
            if group is None:
                groups[text] = [index]
            else:
                group.append(index)
        for text, indices in groups.items():
            self._sample_many(text, len(indices), lambda j, at=indices: make(at[j]))  # type: ignore[misc]

    def _sample_many(self, reason: str | None, count: int, make: Callable[[int], Entry]) -> None:
        """``count`` rejections through the reservoir at once: a uniform sample of all seen.

        Only the rejections that end up in the sample are made into entries.
        """
        slot = self._reservoirs.get(reason)
        if slot is None:
            slot = self._reservoirs[reason] = [0, []]
        before = slot[0]
        seen = slot[0] = before + count
        k = self.per_reason
        sample: list[Entry] = slot[1]
        if seen <= k:
            sample.extend(make(j) for j in range(count))
            return
        # The sample of all seen is a uniform k-subset; those of its members among the
        # earlier rejections are a uniform subset of the current (uniform) sample.
        chosen = random.sample(range(seen), k)
        fresh = sorted(i - before for i in chosen if i >= before)
        old = random.sample(sample, k - len(fresh))
        slot[1] = old + [make(j) for j in fresh]

    def pieces(self) -> list[Entry | tuple[Block, int]]:
        """Held ``(block, rows)`` and sampled entries in the order made, within the cap
        (after ``prepare``)."""
        held: list[Any] = [b for b in self.blocks if b.take and not b.sample]
        for _seen, sample in self._reservoirs.values():
            held.extend(sample)
        held.sort(key=_order)
        out: list[Entry | tuple[Block, int]] = []
        room = self.cap
        for piece in held:
            if room <= 0:
                break
            if type(piece) is tuple:
                out.append(piece)
                room -= 1
            else:
                rows = min(piece.take, room)
                out.append((piece, rows))
                room -= rows
        return out


def _keyed(entries: list[Entry], key: KeySpec) -> list[Entry]:
    """``entries`` with each candidate replaced by its raw key."""
    keys = _keys([e[1] for e in entries], key)
    return [(e[0], k, e[2], e[3], e[4], e[5], e[6]) for e, k in zip(entries, keys, strict=True)]


def _order(piece: Any) -> int:
    return piece[0] if type(piece) is tuple else piece.order  # type: ignore[no-any-return]


def add_hashable(into: set[Hashable], keys: list[Any]) -> None:
    """Add ``keys`` to ``into``, unhashable ones by their text."""
    if set(map(type, keys)) <= {str, int}:
        into.update(keys)
    else:
        into.update(map(_hashable, keys))


def block_keys(block: Block, key: KeySpec, rows: int | None) -> list[Any]:
    """The raw keys of a block's candidates, each taken once with the step's ``key``.

    A DataFrame's key column becomes Python values only for its first ``rows`` (those
    held) when ``rows`` is given.
    """
    if block.items is None:
        column = block.column
        if rows is not None and rows < block.length:
            column = getattr(column, "iloc", column)[:rows]  # by position, also in pandas
        return as_list(column)
    items = block.items
    if type(key) is str:
        try:
            return list(map(itemgetter(key), items))  # dict candidates with the field
        except Exception:  # a candidate without it, or not a mapping: one by one
            pass
    return [candidate_key(item, key) for item in items]


def _keys(items: Iterable[Any], key: KeySpec) -> list[Any]:
    """The raw key of each item; dict candidates with a field key go fast, and so do
    scalar candidates without a key (their own keys)."""
    if key is None:
        listed = items if type(items) is list or type(items) is tuple else list(items)
        if set(map(type, listed)) <= _OWN_KEYS:
            return list(listed)
        items = listed
    elif type(key) is str:
        listed = items if type(items) is list or type(items) is tuple else list(items)
        try:
            return list(map(itemgetter(key), listed))
        except Exception:  # a candidate without the field, or not a mapping
            items = listed
    return [candidate_key(item, key) for item in items]


def _hashed(raws: Sequence[Any]) -> Sequence[Hashable]:
    return raws if set(map(type, raws)) <= {str, int} else list(map(_hashable, raws))


def infer(
    log: DecisionLog,
    key: KeySpec,
    step_type: str,
    inputs: Any,
    outputs: Any,
    keys_given: bool = False,
) -> None:
    """Add the decisions implied by ``outputs`` being a subset of ``inputs`` to ``log``.

    Does nothing when an output candidate is not among the inputs (the step transformed
    its candidates rather than filtering them). DataFrames and arrays (see ``_frames``)
    are compared by their key columns, without a loop per row; ``keys_given`` says the
    inputs and outputs are keys already.
    """
    if type(inputs) is not tuple and not keys_given:
        from xray.sdk import _frames  # only a DataFrame step gets here

        _frames.infer(log, key, step_type, inputs, outputs)
        return
    explicit = log.explicit_keys
    if log.explicit_columns and explicit is not None:  # compared here as Python values
        for column in log.explicit_columns:
            add_hashable(explicit, as_list(column))
        log.explicit_columns = []
    out_raw = outputs if keys_given else _keys(outputs, key)
    in_raw = inputs if keys_given else _keys(inputs, key)
    out_hashed = _hashed(out_raw)
    in_hashed = _hashed(in_raw)
    # The first of equal keys wins: reversed, the later ones are overwritten.
    kept: dict[Hashable, int] = dict(
        zip(reversed(out_hashed), range(len(out_hashed) - 1, -1, -1), strict=True)
    )
    # Set operations (in C): a filter's inputs are many, its outputs few.
    distinct = set(in_hashed)
    if not kept.keys() <= distinct:
        return
    left = distinct - explicit if explicit else distinct
    if log.detail == SUMMARY:
        log.total += len(left)  # nothing held: count
        return
    # In input order, each key once (the first time it comes).
    hashed: list[Hashable] = (
        list(in_hashed) if len(distinct) == len(in_hashed) else list(dict.fromkeys(in_hashed))
    )
    if len(left) < len(hashed):
        hashed = list(filter(left.__contains__, hashed))
    if log.detail == FULL and len(hashed) > log.cap - log.held:
        # Beyond the cap only counted: the rest never become decisions.
        room = max(log.cap - log.held, 0)
        log.drop(len(hashed) - room)
        hashed = hashed[:room]
    if in_hashed is in_raw:
        unique: list[Any] = hashed
    else:
        firsts = dict(zip(reversed(in_hashed), reversed(in_raw), strict=True))  # first raw
        unique = [firsts[h] for h in hashed]
    add_inferred(log, step_type, unique, hashed, kept)


def add_inferred(
    log: DecisionLog, step_type: str, raws: list[Any], hashed: list[Any], kept: dict[Any, int]
) -> None:
    """Infer ``raws`` (distinct, not explicit) against ``kept`` (key -> output position)."""
    if log.detail == SUMMARY:
        log.total += len(raws)  # nothing is held in summary: just count
        return
    keep_verb = SELECTED if step_type == "select" else ACCEPTED
    verbs = [keep_verb if h in kept else REJECTED for h in hashed]
    ranks = None
    if step_type == "rank":
        ranks = [None if (at := kept.get(h)) is None else at + 1 for h in hashed]
    first = verbs[0] if verbs else keep_verb
    log.add_inferred_block(raws, first if verbs.count(first) == len(verbs) else verbs, ranks)
