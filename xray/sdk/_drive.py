"""Wrapping (async) generator functions, for generator steps and generator runs.

A step or run that decorates a generator opens when iteration starts, is current only
while the generator's own code runs (not while its consumer holds a yielded value), and
ends exactly once: when the generator returns, raises, or is closed early by its
consumer. ``send``/``throw`` (``asend``/``athrow``) are forwarded, so the wrapper is
transparent to coroutine-style generators, and it stays a generator function
(``inspect.isgeneratorfunction`` / ``isasyncgenfunction`` still say so).
"""

from __future__ import annotations

import functools
from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any

from xray.sdk._context import frame

__all__ = ["Finish", "Opener", "wrap_async_generator", "wrap_generator"]

#: ``finish(error, produced, returned)``: called once at the end with the exception the
#: generator raised (or ``None``), how many values it yielded, and what it returned.
Finish = Callable[[BaseException | None, int, Any], None]

#: ``open(args, kwargs)`` at the first ``next()``: the step or run to make current and
#: its ``Finish``, or ``None`` to pass the generator through unrecorded.
Opener = Callable[[tuple[Any, ...], dict[str, Any]], tuple[Any, Finish] | None]


def wrap_generator(
    fn: Callable[..., Generator[Any, Any, Any]], open_: Opener
) -> Callable[..., Generator[Any, Any, Any]]:
    """A generator function that runs ``fn``'s generator inside what ``open_`` opens.

    Example:
        >>> wrapped = wrap_generator(pages, lambda args, kwargs: None)  # doctest: +SKIP
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Generator[Any, Any, Any]:
        opened = open_(args, kwargs)
        if opened is None:
            return (yield from fn(*args, **kwargs))
        current, finish = opened
        gen = fn(*args, **kwargs)
        produced = 0
        method: Callable[[Any], Any] = gen.send
        arg: Any = None
        while True:
            token = frame.set(current)
            try:
                value = method(arg)
            except StopIteration as stop:
                frame.reset(token)
                finish(None, produced, stop.value)
                return stop.value
            except BaseException as exc:
                frame.reset(token)
                finish(exc, produced, None)
                raise
            frame.reset(token)
            produced += 1
            try:
                arg = yield value
                method = gen.send
            except GeneratorExit:  # the consumer stopped early: a normal end
                token = frame.set(current)
                try:
                    gen.close()
                finally:
                    frame.reset(token)
                finish(None, produced, None)
                raise
            except BaseException as exc:
                method, arg = gen.throw, exc

    return wrapper


def wrap_async_generator(
    fn: Callable[..., AsyncGenerator[Any, Any]], open_: Opener
) -> Callable[..., AsyncGenerator[Any, Any]]:
    """:func:`wrap_generator` for async generators.

    Example:
        >>> wrapped = wrap_async_generator(stream, lambda args, kwargs: None)  # doctest: +SKIP
    """

    @functools.wraps(fn)
    async def wrapper(*args: Any, **kwargs: Any) -> AsyncGenerator[Any, Any]:
        opened = open_(args, kwargs)
        agen = fn(*args, **kwargs)
        # Unrecorded, nothing is made current; values, asend() and athrow() still pass
        # through by hand (``async for`` would drop the last two).
        current, finish = opened if opened is not None else (None, None)
        produced = 0
        method: Callable[[Any], Any] = agen.asend
        arg: Any = None
        while True:
            token = frame.set(current) if finish is not None else None
            try:
                value = await method(arg)
            except StopAsyncIteration:
                if token is not None:
                    frame.reset(token)
                if finish is not None:
                    finish(None, produced, None)
                return
            except BaseException as exc:
                if token is not None:
                    frame.reset(token)
                if finish is not None:
                    finish(exc, produced, None)
                raise
            if token is not None:
                frame.reset(token)
            produced += 1
            try:
                arg = yield value
                method = agen.asend
            except GeneratorExit:
                token = frame.set(current) if finish is not None else None
                try:
                    await agen.aclose()
                finally:
                    if token is not None:
                        frame.reset(token)
                if finish is not None:
                    finish(None, produced, None)
                raise
            except BaseException as exc:
                method, arg = agen.athrow, exc

    return wrapper
