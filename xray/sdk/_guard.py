"""The one guard around every piece of SDK code that runs inside a user's call.

X-Ray must never change what an instrumented program does. Every SDK code path that runs
on the user's thread is wrapped by this guard: it catches ``Exception`` (never
``BaseException``: ``KeyboardInterrupt``, ``SystemExit`` and cancellation belong to the
user), logs the internal error at debug level on the ``xray`` logger, and returns.

Three spellings of the same guard, chosen by cost:

- ``with guard:`` for code that is not on the per-call hot path;
- ``@guarded(default)`` for public methods (``Step.reject`` ...);
- ``try: ... except Exception as exc: internal_error(exc)`` on the decorated-call hot
  path, where a ``with`` block's two method calls would double X-Ray's overhead
  (CPython 3.11's ``try`` costs nothing until something raises).

User exceptions are never seen here: the step wrappers re-raise them unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
from collections.abc import Callable
from types import TracebackType
from typing import Any, ParamSpec, TypeVar

__all__ = ["guard", "guarded", "internal_error", "logger", "reset_after_fork", "warn_once"]

logger = logging.getLogger("xray")

P = ParamSpec("P")
R = TypeVar("R")

_warned: set[str] = set()
_warned_lock = threading.Lock()


def reset_after_fork() -> None:
    """A forked child gets a fresh lock (the parent's may have been held mid-fork)."""
    global _warned_lock
    _warned_lock = threading.Lock()


def internal_error(exc: BaseException) -> None:
    """Record that X-Ray's own code failed; never raises."""
    # A broken logging setup must not break the user either.
    with contextlib.suppress(Exception):
        logger.debug("xray: internal error suppressed: %r", exc, exc_info=exc)


def warn_once(key: str, message: str, *args: object) -> None:
    """Log ``message`` as a warning the first time ``key`` is seen in this process.

    Repeated failures (a server that stays down, a bad key) must not flood the user's logs.
    """
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    with contextlib.suppress(Exception):
        logger.warning(message, *args)


class _Guard:
    """``with guard:`` swallows and logs ``Exception`` raised by X-Ray's own code."""

    __slots__ = ()

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if exc_type is None or exc is None:
            return False
        if issubclass(exc_type, Exception):
            internal_error(exc)
            return True
        return False


guard = _Guard()


def guarded(default: Any = None) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate an SDK function so that an internal error returns ``default`` instead.

    Example:
        >>> @guarded(default=0)
        ... def broken() -> int:
        ...     return 1 // 0
        >>> broken()
        0
    """

    def decorate(fn: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                internal_error(exc)
                return default  # type: ignore[no-any-return]

        return wrapper

    return decorate
