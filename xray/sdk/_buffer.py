"""The recording side of delivery: finished steps and run updates waiting to be encoded.

``put`` is a length check and a ``deque.append`` (atomic under the GIL, no lock). Up to
``buffer_size`` items wait here as Python objects; the sender encodes them into
compressed batches (``_batches``), which are what a backlog is made of. When the
recording threads outpace the sender past ``buffer_size`` items, the recording thread
encodes the oldest items itself (``overflow``): nothing is dropped and nobody waits on
I/O, the objects the garbage collector has to scan stay bounded, and the cost of the
burst lands on the thread that made it. Items are dropped here only after shutdown.
"""

from __future__ import annotations

import contextlib
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from xray.sdk._guard import internal_error, logger

__all__ = ["Buffer", "Counters"]

# The setting to change, per reason, for the first-drop warning.
_REMEDY = {
    "queue_full": "raise sdk.max_buffer_bytes or sdk.max_spool_bytes, or set sdk.spool_dir",
    "network": "raise sdk.max_retry_seconds; check sdk.base_url",
    "http_5xx": "raise sdk.max_retry_seconds; check the X-Ray API's logs",
    "http_429": "raise sdk.max_retry_seconds",
    "http_4xx": "check sdk.api_key and sdk.base_url",
    "shutdown": "raise sdk.shutdown_timeout or set sdk.spool_dir",
    "too_large": "lower sdk.max_preview_bytes or raise api.max_body_bytes",
    "invalid": "see the X-Ray API's answer in the debug log",
    "serialization": "see the debug log of the 'xray' logger",
    "no_transport": "check that httpx is installed (pip install 'xray[sdk]')",
}
_QUIET = {"redacted"}  # the user's redact hook asked for it: not a loss to warn about


class Counters:
    """Delivery counters, by item (a run update or a step), shared by the sender's parts."""

    __slots__ = ("dropped", "failed", "lock", "retried", "sent", "spool_errors", "warned")

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = 0
        self.retried = 0
        self.failed = 0
        self.spool_errors = 0
        self.dropped: dict[str, int] = {}
        self.warned = False

    def drop(self, reason: str, n: int = 1, detail: str = "") -> bool:
        """Count ``n`` items lost for ``reason``; True if this was the warned first drop."""
        if n <= 0:
            return False
        with self.lock:
            self.dropped[reason] = self.dropped.get(reason, 0) + n
            first = not self.warned and reason not in _QUIET
            if first:
                self.warned = True
        if first:
            with contextlib.suppress(Exception):
                logger.warning(
                    "xray: dropped %d recorded item(s) (%s%s); later drops are counted in "
                    "client.stats() without a warning. To keep them: %s",
                    n,
                    reason,
                    f": {detail}" if detail else "",
                    _REMEDY.get(reason, "see client.stats()"),
                )
        return first

    def add(
        self, *, sent: int = 0, retried: int = 0, failed: int = 0, spool_errors: int = 0
    ) -> None:
        with self.lock:
            self.sent += sent
            self.retried += retried
            self.failed += failed
            self.spool_errors += spool_errors


class Buffer:
    """FIFO of finished steps and run updates waiting to be encoded."""

    __slots__ = (
        "_items",
        "accepting",
        "batch_size",
        "capacity",
        "counters",
        "on_first",
        "overflow",
        "wake",
    )

    def __init__(
        self,
        capacity: int,
        batch_size: int,
        counters: Counters,
        on_first: Callable[[], None],
    ) -> None:
        self._items: deque[Any] = deque()
        # ``capacity`` and ``batch_size`` are read by the C fast path (``_speedups.c``),
        # which appends by itself below both and calls ``put`` otherwise.
        self.capacity = capacity
        self.batch_size = min(batch_size, capacity)
        self.counters = counters
        self.wake = threading.Event()
        self.accepting = True
        # Called on the first put, to start the sender lazily (and again after fork).
        self.on_first: Callable[[], None] | None = on_first
        # Called when more than ``capacity`` items wait: encode some on this thread.
        self.overflow: Callable[[], None] | None = None

    def put(self, item: Any) -> bool:
        """Queue ``item``; return False (and count the drop) after shutdown."""
        if not self.accepting:
            self.counters.drop("shutdown")
            return False
        items = self._items
        items.append(item)
        size = len(items)
        if self.on_first is not None:
            start, self.on_first = self.on_first, None
            start()
        elif size >= self.capacity and self.overflow is not None:
            try:
                self.overflow()
            except Exception as exc:
                internal_error(exc)
        elif size >= self.batch_size and not self.wake.is_set():
            self.wake.set()
        return True

    def take(self, n: int) -> list[Any]:
        """Remove and return up to ``n`` items, oldest first."""
        items = self._items
        popleft = items.popleft
        out: list[Any] = []
        append = out.append
        # Another thread may take too (an encoding recording thread, a clear at
        # shutdown or fork): keep what was taken.
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
