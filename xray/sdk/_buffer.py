"""The bounded in-memory buffer between instrumented calls and the sender thread.

Drop policy: when ``buffer_size`` items are waiting, a new item is dropped and counted
(``queue_full``), so the caller never waits and memory stays bounded; the oldest items
are kept because a run's start and its early steps give the context later ones need.
``put`` is a length check and a ``deque.append`` (atomic under the GIL, no lock); only
drops take a lock, for exact counts. The buffer wakes the sender when a batch is full.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from typing import Any

__all__ = ["Buffer", "Counters"]


class Counters:
    """Delivery counters, by item (a run update or a step), shared with the sender."""

    __slots__ = ("dropped", "failed", "lock", "retried", "sent")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.retried = 0
        self.failed = 0
        self.dropped: dict[str, int] = {}

    def drop(self, reason: str, n: int = 1) -> None:
        with self.lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def add(self, *, sent: int = 0, retried: int = 0, failed: int = 0) -> None:
        with self.lock:
            self.sent += sent
            self.retried += retried
            self.failed += failed


class Buffer:
    """Bounded FIFO of finished steps and run updates waiting to be sent."""

    __slots__ = ("_items", "accepting", "batch_size", "capacity", "counters", "on_first", "wake")

    def __init__(
        self,
        capacity: int,
        batch_size: int,
        counters: Counters,
        on_first: Callable[[], None],
    ) -> None:
        self._items: deque[Any] = deque()
        self.capacity = capacity
        self.batch_size = min(batch_size, capacity)
        self.counters = counters
        self.wake = threading.Event()
        self.accepting = True
        # Called on the first put, to start the sender lazily (and again after fork).
        self.on_first: Callable[[], None] | None = on_first

    def put(self, item: Any) -> bool:
        """Queue ``item``; return False (and count the drop) when full or shut down."""
        items = self._items
        size = len(items)
        if size >= self.capacity or not self.accepting:
            self.counters.drop("queue_full" if self.accepting else "shutdown")
            return False
        items.append(item)
        if self.on_first is not None:
            start, self.on_first = self.on_first, None
            start()
        elif size + 1 >= self.batch_size and not self.wake.is_set():
            self.wake.set()
        return True

    def take(self, n: int) -> list[Any]:
        """Remove and return up to ``n`` items, oldest first (sender thread only)."""
        items = self._items
        popleft = items.popleft
        out: list[Any] = []
        append = out.append
        # Only this thread takes items, so ``len`` can only grow meanwhile; a ``clear``
        # (shutdown, fork) can still empty it under us: keep what was taken.
        try:
            for _ in range(min(n, len(items))):
                append(popleft())
        except IndexError:
            pass
        return out

    def clear(self) -> int:
        """Remove everything; return how many items were removed."""
        n = len(self._items)
        self._items.clear()
        return n

    def __len__(self) -> int:
        return len(self._items)
