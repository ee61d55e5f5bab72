"""Recorded items into request bodies: encode, pack by bytes, compress.

A ``Packer`` keeps one open batch: the JSON of each step (and the latest state of each
run) as bytes, up to ``TARGET_BYTES`` of JSON; then it is sealed into a ``Batch``, the
gzip'd ``{"runs": [...], "steps": [...]}`` body exactly as it is posted or spooled. Held
this way a backlog costs its compressed size and nothing for the garbage collector.

One ``Packer`` is used by one thread at a time (the caller holds the sender's encode
lock): its encoder caches are not shared.
"""

from __future__ import annotations

import itertools
import json
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any

from xray.sdk._guard import internal_error
from xray.sdk._payload import Encoder
from xray.sdk._run import Run
from xray.sdk._serialize import _compact

__all__ = ["MAX_BATCH_BYTES", "TARGET_BYTES", "Batch", "Packer", "split"]

# A sealed batch's JSON: large enough that requests are few, small enough that the
# server stores one well within a request timeout, well under the API's default 5 MiB
# body limit (a 413 splits anyway).
TARGET_BYTES = 256 * 1024
MAX_BATCH_BYTES = 4 * 1024 * 1024

_seq = itertools.count(1)


class Batch:
    """One request body and what it stands for; ``body`` is None while only on disk."""

    __slots__ = (
        "attempts",
        "body",
        "created",
        "decisions",
        "encoding",
        "entry",
        "first_failure",
        "items",
        "name",
        "runs",
        "seq",
        "steps",
        "timeouts",
    )

    def __init__(
        self,
        body: bytes | None,
        encoding: str,
        *,
        items: int,
        runs: int = 0,
        steps: int = 0,
        decisions: int = 0,
        created: int | None = None,
        seq: int | None = None,
    ) -> None:
        self.body = body
        self.encoding = encoding
        self.items = items  # buffered items: a run's start and end packed together count 2
        self.runs = runs
        self.steps = steps
        self.decisions = decisions
        self.created = time.time_ns() if created is None else created
        self.seq = next(_seq) if seq is None else seq
        self.first_failure: float | None = None
        self.attempts = 0
        self.timeouts = 0  # each one doubles the next attempt's request timeout
        self.name: str | None = None  # its spool file, once written
        self.entry: Any = None  # the locked spool file it was read from

    @staticmethod
    def current_seq() -> int:
        """A number above every batch made so far (a watermark for ``flush``)."""
        return next(_seq)

    @property
    def size(self) -> int:
        return len(self.body) if self.body is not None else 0

    def header(self) -> dict[str, Any]:
        return {
            "items": self.items,
            "runs": self.runs,
            "steps": self.steps,
            "decisions": self.decisions,
            "encoding": self.encoding,
            "created": self.created,
        }


def seal(run_json: list[bytes], step_json: list[bytes], compress: bool, **counts: Any) -> Batch:
    """The request body of these encoded runs and steps, as a ``Batch``."""
    head = b'{"runs":[' + b",".join(run_json) + b'],"steps":['
    body = b",".join(step_json)
    if not compress:
        return Batch(head + body + b"]}", "identity", **counts)
    # Level 1: batches of similar steps compress to ~3% at level 1 and ~2.4% at 5, for
    # half the CPU; the CPU is the user's. The pieces go to one compressor rather than
    # being joined into one more copy first.
    gz = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
    data = gz.compress(head) + gz.compress(body) + gz.compress(b"]}") + gz.flush()
    return Batch(data, "gzip", **counts)


def split(batch: Batch) -> list[Batch] | None:
    """Two halves of a batch the server refused as a whole (413/400/422), or None if one item."""
    assert batch.body is not None
    raw = zlib.decompress(batch.body, 31) if batch.encoding == "gzip" else batch.body
    data = json.loads(raw)
    entries = [("runs", r) for r in data.get("runs") or []]
    entries += [("steps", s) for s in data.get("steps") or []]
    if len(entries) <= 1:
        return None
    middle = len(entries) // 2
    extra = batch.items - len(entries)  # run updates packed into one entry
    halves = []
    for i, part in enumerate((entries[:middle], entries[middle:])):
        runs = [_compact.encode(e).encode() for k, e in part if k == "runs"]
        steps = [_compact.encode(e).encode() for k, e in part if k == "steps"]
        decisions = sum(len(e.get("decisions") or []) for k, e in part if k == "steps")
        half = seal(
            runs,
            steps,
            batch.encoding == "gzip",
            items=len(part) + (extra if i == 0 else 0),
            runs=len(runs),
            steps=len(steps),
            decisions=decisions,
            created=batch.created,
            seq=batch.seq,  # a flush waiting for the whole waits for its halves
        )
        halves.append(half)
    return halves


class Packer:
    """Encodes recorded items into an open batch and seals it by size."""

    def __init__(
        self,
        encoder: Encoder,
        compress: bool,
        drop: Callable[[str, int], object],
        warn: Callable[..., None],
    ) -> None:
        self._encoder = encoder
        self._compress = compress
        self._drop = drop
        self._warn = warn
        self._runs: dict[int, tuple[bytes, int]] = {}  # id(run) -> (JSON, updates)
        self._run_objects: list[Run] = []  # keeps ids unique while packed
        self._steps: list[bytes] = []
        self._size = 0
        self._items = 0
        self._decisions = 0

    @property
    def pending_bytes(self) -> int:
        """JSON bytes in the open batch."""
        return self._size

    @property
    def pending_items(self) -> int:
        return self._items

    def add(self, items: Iterable[Any]) -> list[Batch]:
        """Encode ``items``; return the batches that filled up (the rest stays open)."""
        sealed: list[Batch] = []
        append = self._steps.append
        with self._encoder.batch():  # previews of the same objects are rendered once
            for item in items:
                if isinstance(item, Run):
                    self._add_run(item)
                else:
                    data = self._step(item)
                    if data is None:
                        continue
                    append(data)
                    self._size += len(data) + 1
                    self._items += 1
                if self._size >= TARGET_BYTES:
                    sealed.append(self.seal())
                    append = self._steps.append  # seal() started a new list
        return sealed

    def seal(self) -> Batch:
        """The open batch as a ``Batch`` (call only when ``pending_items``)."""
        runs = [data for data, _ in self._runs.values()]
        batch = seal(
            runs,
            self._steps,
            self._compress,
            items=self._items,
            runs=len(runs),
            steps=len(self._steps),
            decisions=self._decisions,
        )
        self._runs = {}
        self._run_objects = []
        self._steps = []
        self._size = 0
        self._items = 0
        self._decisions = 0
        return batch

    def _add_run(self, run: Run) -> None:
        key = id(run)
        previous = self._runs.get(key)
        data = self._encode("run", self._encoder.run, run)
        if data is None:  # redacted or not encodable (counted): an earlier state stays
            return
        if previous is not None:
            self._size -= len(previous[0]) + 1
            self._runs[key] = (data, previous[1] + 1)
        else:
            self._runs[key] = (data, 1)
            self._run_objects.append(run)
        self._size += len(data) + 1
        self._items += 1

    def _step(self, item: Any) -> bytes | None:
        """A step's JSON: as text (the plain path, then the general one), else as a dict."""
        # Only a step that may take the plain path gets a second try without it.
        for plain in (True, False) if item._x is None else (False,):
            try:
                made = self._encoder.step_text(item, plain)
                if made is None:
                    break  # a redact hook must see the dict
                data, decisions = made
            except UnicodeEncodeError:  # a lone surrogate: the dict path reports the drop
                break
            except Exception as exc:  # a value only the next path copes with (or says why)
                internal_error(exc)
                continue
            self._decisions += decisions
            return data
        return self._encode("step", self._encoder.step, item)

    def _encode(
        self, kind: str, build: Callable[[Any], dict[str, Any] | None], item: Any
    ) -> bytes | None:
        try:
            data = build(item)
            if data is None:
                self._drop("redacted", 1)
                return None
            if kind == "step":
                self._decisions += len(data.get("decisions") or ()) + sum(
                    len(block.get("candidate_key") or ())
                    for block in data.get("decision_columns") or ()
                )
            return _compact.encode(data).encode("utf-8")
        except Exception as exc:
            internal_error(exc)
            self._warn("encode", "xray: could not encode a %s; it was dropped: %r", kind, exc)
            self._drop("serialization", 1)
            return None
