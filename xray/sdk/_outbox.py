"""Where sealed batches wait: memory up to ``max_buffer_bytes``, then the disk spool.

Policy:

- a new batch stays in memory while there is room and the API answers; it goes to the
  spool when memory is full or the API is away (the last request failed and none has
  succeeded since), so a crash or a kill loses at most what is not encoded yet;
- when the API goes away, what waits in memory is written to the spool too;
- requests always take the oldest batch there is, in memory or on disk (a file's name
  starts with its batch's creation time), so batches are sent in the order they were
  made, by this process or by the next one that uses the same spool;
- only when neither memory nor the spool has room is a batch dropped (``queue_full``);
  a spool that cannot be written (read-only, disk full) counts ``spool_errors`` and the
  batch stays in memory if it fits.

Thread-safe: the sender's threads and, when the recording threads encode, those too.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from xray.sdk._batches import Batch
from xray.sdk._buffer import Counters
from xray.sdk._spool import SUFFIX, Spool

__all__ = ["Outbox"]

_SPOOL_RETRY_SECONDS = 30.0
_RESCAN_SECONDS = 30.0
_token = secrets.token_hex(4)
_names = itertools.count(1)


def reset_after_fork() -> None:
    global _token
    _token = secrets.token_hex(4)


class Outbox:
    """Sealed batches waiting for a request, in memory and in the spool."""

    def __init__(
        self,
        max_bytes: int,
        counters: Counters,
        spool: Spool | None,
        warn: Callable[..., None],
    ) -> None:
        self.max_bytes = max_bytes
        self.counters = counters
        self.spool = spool
        self._warn = warn
        self.cond = threading.Condition()
        self._memory: deque[Batch] = deque()
        self._pending: list[Batch] = []  # encoded on a recording thread, bound for the spool
        self._memory_bytes = 0
        self._in_flight: dict[int, Batch] = {}
        self._outstanding: dict[int, Batch] = {}  # made here, not yet sent or dropped
        self._own_files: dict[str, Batch] = {}
        self._claimed: set[str] = set()
        self._spool_paused_until = 0.0
        self._rescanned = time.monotonic()
        self.away = False
        self.gate = 0.0  # monotonic time before which no request starts (backoff)
        self.closed = False
        self.spool_broken = False  # configured, but the folder could not be used
        self.idle = 0  # requests waiting for a batch: the open batch should be sealed

    # -- accounting --------------------------------------------------------------------

    @property
    def memory_bytes(self) -> int:
        with self.cond:
            return self._memory_bytes + sum(b.size for b in self._in_flight.values())

    @property
    def memory_items(self) -> int:
        with self.cond:
            return sum(b.items for b in self._memory) + sum(b.items for b in self._pending)

    @property
    def in_flight(self) -> int:
        with self.cond:
            return len(self._in_flight)

    def settled_through(self, seq: int) -> bool:
        """True when every batch made here up to ``seq`` was sent or dropped."""
        with self.cond:
            return not any(b.seq <= seq for b in self._outstanding.values())

    def wait_settled(self, seq: int, deadline: float) -> bool:
        with self.cond:
            while any(b.seq <= seq for b in self._outstanding.values()):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self.cond.wait(min(remaining, 0.5))
            return True

    @property
    def outstanding(self) -> int:
        with self.cond:
            return len(self._outstanding)

    # -- adding ------------------------------------------------------------------------

    def add(self, batch: Batch, io: bool = True) -> None:
        """Keep a new batch in memory or in the spool, or drop it when neither has room.

        ``io=False`` (on a recording thread): no disk write here; a batch bound for the
        spool waits for ``write_pending`` on the sender thread.
        """
        with self.cond:
            self._outstanding[id(batch)] = batch
            fits = self._memory_bytes + batch.size <= self.max_bytes
            if fits and not self.away:
                self._remember(batch)
                return
            if not io:
                self._pending.append(batch)
                self._memory_bytes += batch.size
                return
        if self._to_spool(batch):
            with self.cond:
                self.cond.notify()
            return
        with self.cond:
            if self._memory_bytes + batch.size <= self.max_bytes:
                self._remember(batch)
                return
            self._outstanding.pop(id(batch), None)
            self.cond.notify_all()
        self.counters.drop("queue_full", batch.items)

    def write_pending(self) -> None:
        """Place the batches recording threads left for the spool (sender thread)."""
        with self.cond:
            if not self._pending:
                return
            pending, self._pending = self._pending, []
            self._memory_bytes -= sum(b.size for b in pending)
        for batch in pending:  # still outstanding meanwhile: a flush waits for them
            self.add(batch)

    def _remember(self, batch: Batch) -> None:  # under cond
        self._memory.append(batch)
        self._memory_bytes += batch.size
        self.cond.notify()

    def _spool_usable(self) -> Spool | None:
        if self.spool is None or time.monotonic() < self._spool_paused_until:
            return None
        return self.spool

    def _to_spool(self, batch: Batch) -> bool:
        spool = self._spool_usable()
        if spool is None or batch.body is None:
            if self.spool_broken and batch.body is not None:
                self.counters.add(spool_errors=1)  # it would have gone there
            return False
        claim = batch.size + 1024  # the body and a generous header
        if not spool.reserve(claim):
            self._warn(
                "spool-full",
                "xray: the spool %s is full (sdk.max_spool_bytes = %d); batches stay in memory",
                spool.directory,
                spool.max_bytes,
            )
            return False
        name = f"{batch.created:020d}-{_token}-{next(_names):010d}{SUFFIX}"
        try:
            spool.write(name, batch.header(), batch.body)
        except OSError as exc:
            spool.release(claim)
            self._spool_paused_until = time.monotonic() + _SPOOL_RETRY_SECONDS
            self.counters.add(spool_errors=1)
            self._warn(
                "spool-error",
                "xray: cannot write to the spool %s (%s); keeping batches in memory",
                spool.directory,
                exc,
            )
            return False
        spool.release(claim)
        with self.cond:
            batch.name = name
            batch.body = None
            self._own_files[name] = batch
        return True

    # -- the API's state ---------------------------------------------------------------

    def api_away(self) -> None:
        """A request failed: what waits in memory goes to the spool (kept if it cannot)."""
        with self.cond:
            self.away = True
            moving = list(self._memory)
            self._memory.clear()
            self._memory_bytes = 0
        kept: list[Batch] = []
        for batch in moving:
            if not self._to_spool(batch):
                kept.append(batch)
        with self.cond:
            for batch in reversed(kept):
                self._memory.appendleft(batch)
                self._memory_bytes += batch.size
            self.cond.notify_all()

    def api_back(self) -> None:
        with self.cond:
            if self.away or self.gate:
                self.away = False
                self.gate = 0.0
                self.cond.notify_all()

    # -- taking ------------------------------------------------------------------------

    def take(self, timeout: float) -> Batch | None:
        """The oldest batch that may be sent now, in memory or spooled; None after ``timeout``."""
        deadline = time.monotonic() + timeout
        while True:
            with self.cond:
                if self.closed:
                    return None
                now = time.monotonic()
                if self.gate > now:
                    self.cond.wait(min(self.gate - now, max(0.0, deadline - now)))
                    if time.monotonic() >= deadline:
                        return None
                    continue
                name = self._oldest_file()
                memory = self._memory[0] if self._memory else None
                if memory is not None and (name is None or memory.created <= _created(name)):
                    self._memory.popleft()
                    self._memory_bytes -= memory.size
                    self._in_flight[id(memory)] = memory
                    return memory
                if name is None:
                    remaining = deadline - now
                    if remaining <= 0:
                        return None
                    self.idle += 1
                    try:
                        self.cond.wait(remaining)
                    finally:
                        self.idle -= 1
                    continue
                self._claimed.add(name)
            batch = self._claim(name)
            if batch is not None:
                return batch

    def _oldest_file(self) -> str | None:  # under cond
        spool = self._spool_usable() if self.spool is not None else None
        if spool is None:
            return None
        for name in spool.names():
            if name not in self._claimed:
                return name
        return None

    def _claim(self, name: str) -> Batch | None:
        assert self.spool is not None
        entry = self.spool.claim(name)
        with self.cond:
            own = self._own_files.get(name)
            if entry is None:
                self._claimed.discard(name)
                if own is not None and not (self.spool.directory / name).exists():
                    # Sent by another process sharing the spool: settled as far as we know.
                    self._own_files.pop(name, None)
                    self._outstanding.pop(id(own), None)
                    self.cond.notify_all()
                return None
            header = entry.header
            if own is not None:
                batch = own
                batch.body = entry.body
            else:
                batch = Batch(
                    entry.body,
                    str(header.get("encoding")),
                    items=int(header.get("items", 0)),
                    runs=int(header.get("runs", 0)),
                    steps=int(header.get("steps", 0)),
                    decisions=int(header.get("decisions", 0)),
                    created=_created(name),
                )
                batch.name = name
            batch.entry = entry
            self._in_flight[id(batch)] = batch
            return batch

    # -- after a request ---------------------------------------------------------------

    def done(self, batch: Batch) -> None:
        """Sent or dropped: forget it (and delete its spool file)."""
        entry = batch.entry
        if entry is not None:
            entry.remove()
        elif batch.name is not None and self.spool is not None:
            # A copy written while it was in flight (``persist``).
            with contextlib.suppress(OSError):
                os.unlink(self.spool.directory / batch.name)
        with self.cond:
            self._in_flight.pop(id(batch), None)
            self._outstanding.pop(id(batch), None)
            if batch.name is not None:
                self._own_files.pop(batch.name, None)
                self._claimed.discard(batch.name)
                if self.spool is not None:
                    self.spool.forget(batch.name)
            batch.body = None
            batch.entry = None
            self.cond.notify_all()

    def give_back(self, batch: Batch) -> None:
        """Not delivered yet: keep it for a later attempt (to the spool if the API is away)."""
        entry = batch.entry
        if entry is not None:  # its file stays where it is, oldest first
            entry.release()
            with self.cond:
                batch.entry = None
                batch.body = None  # on disk: read again when its turn comes
                self._in_flight.pop(id(batch), None)
                if batch.name is not None:
                    self._claimed.discard(batch.name)
                self.cond.notify_all()
            return
        with self.cond:
            self._in_flight.pop(id(batch), None)
            closed = self.closed
        if closed:  # exit: the spool or nothing (a copy may be there already)
            if batch.name is None and not self._to_spool(batch):
                with self.cond:
                    self._outstanding.pop(id(batch), None)
                self.counters.drop("shutdown", batch.items)
            return
        if self.away and self._to_spool(batch):
            with self.cond:
                self.cond.notify_all()
            return
        with self.cond:
            self._memory.appendleft(batch)
            self._memory_bytes += batch.size
            self.cond.notify_all()

    # -- exit and serverless -----------------------------------------------------------

    def persist(self) -> int:
        """Write what waits in memory, and copies of what is in flight, to the spool.

        Returns how many items are still only in memory (no spool, or it cannot take them).
        """
        with self.cond:
            waiting = list(self._memory) + self._pending
            self._memory.clear()
            self._pending = []
            self._memory_bytes = 0
            flying = [b for b in self._in_flight.values() if b.entry is None and b.body]
        kept: list[Batch] = []
        for batch in waiting:
            if not self._to_spool(batch):
                kept.append(batch)
        for batch in flying:
            body = batch.body
            if self._to_spool(batch):
                batch.body = body  # its request is still using it
        with self.cond:
            for batch in reversed(kept):
                self._memory.appendleft(batch)
                self._memory_bytes += batch.size
            self.cond.notify_all()
        return sum(b.items for b in kept)

    def spooled_here(self) -> tuple[int, int]:
        """Items and files this process left in the spool."""
        with self.cond:
            files = [b for b in self._own_files.values() if id(b) in self._outstanding]
            return sum(b.items for b in files), len(files)

    def drop_memory(self) -> int:
        """Forget what is only in memory (shutdown); return how many items that was."""
        with self.cond:
            lost = [*self._memory, *self._pending]
            lost += [b for b in self._in_flight.values() if b.name is None]
            self._memory.clear()
            self._pending = []
            self._memory_bytes = 0
            for b in lost:
                self._outstanding.pop(id(b), None)
            self.cond.notify_all()
        return sum(b.items for b in lost)

    def maybe_rescan(self) -> None:
        """Now and then, see files other processes added to a shared spool."""
        if self.spool is None or time.monotonic() - self._rescanned < _RESCAN_SECONDS:
            return
        self._rescanned = time.monotonic()
        self.spool.rescan()
        with self.cond:
            self.cond.notify_all()

    def replace(self, batch: Batch, halves: list[Batch]) -> None:
        """A refused batch becomes its halves, first in line."""
        self.done(batch)
        with self.cond:
            for half in reversed(halves):
                self._outstanding[id(half)] = half
                self._memory.appendleft(half)
                self._memory_bytes += half.size
            self.cond.notify_all()

    def close(self) -> None:
        with self.cond:
            self.closed = True
            self.cond.notify_all()

    def describe(self) -> dict[str, Any]:
        spool = self.spool
        return {
            "buffer_bytes": self.memory_bytes,
            "in_flight": self.in_flight,
            "spooled": spool.items if spool is not None else 0,
            "spool_bytes": spool.size if spool is not None else 0,
        }


def _created(name: str) -> int:
    try:
        return int(name.split("-", 1)[0])
    except ValueError:
        return 0
