"""Runs: one execution of a pipeline, opened by ``client.run(...)`` or implicitly.

A run is submitted twice: when it starts (status ``running``, so a crashed process still
leaves a visible run) and when it ends (final state, same id; the server upserts). A run
ends by the ``with`` block or decorated call that opened it; an implicit run (a step
called outside any run) ends with its root step and is named after it.
"""

from __future__ import annotations

import functools
import inspect
import itertools
import time
import uuid
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar, cast

from xray.sdk._context import frame
from xray.sdk._drive import Finish, Opener, wrap_async_generator, wrap_generator
from xray.sdk._guard import guarded, internal_error
from xray.sdk._otel import otel_ids
from xray.shared import RunStatus

if TYPE_CHECKING:
    from xray.sdk._client import XRayClient

__all__ = ["NOOP_RUN", "Run", "RunScope"]

F = TypeVar("F", bound=Callable[..., Any])
T = TypeVar("T")

RUNNING: str = RunStatus.RUNNING.value
SUCCESS: str = RunStatus.SUCCESS.value
ERROR: str = RunStatus.ERROR.value

_UNSET: Any = object()


class Run:
    """One execution of a pipeline. Get it from ``client.run(...)``.

    Example:
        >>> with client.run("competitor-selection", metadata={"seller": 7}) as run:  # doctest: +SKIP
        ...     run.set_output(select(rank(candidates)))
    """

    __slots__ = (
        "_client",
        "_error",
        "_id",
        "_input",
        "_input_args",
        "_metadata",
        "_output",
        "_seq",
        "_t0",
        "_t1",
        "_traceback",
        "_wall0",
        "implicit",
        "pipeline",
        "status",
    )

    #: False for the no-op run handed out when X-Ray is off or the run was not sampled.
    recording = True

    def __init__(
        self,
        client: XRayClient,
        pipeline: str,
        *,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
        implicit: bool = False,
    ) -> None:
        self._client = client
        self._id = str(uuid.uuid4())
        self.pipeline = pipeline
        self.status = RUNNING
        self.implicit = implicit
        self._input = input
        self._input_args: (
            tuple[Callable[..., Any] | None, tuple[Any, ...], dict[str, Any]] | None
        ) = None
        self._metadata: dict[str, Any] = dict(metadata) if metadata else {}
        linked = otel_ids()
        if linked is not None:
            self._metadata = {**linked, **self._metadata}
        self._output: Any = _UNSET
        self._error: BaseException | None = None
        self._traceback: TracebackType | None = None
        self._seq = itertools.count()
        self._t1 = 0
        self._wall0 = time.time_ns()
        self._t0 = time.perf_counter_ns()

    @property
    def id(self) -> str:
        """The run's client-generated UUID (as text), known from the start."""
        return self._id

    @property
    def metadata(self) -> dict[str, Any]:
        """Free JSON metadata, queryable with ``GET /runs?metadata.<key>=<value>``."""
        return self._metadata

    @guarded()
    def set_output(self, value: Any) -> None:
        """Record the run's output (by default: the decorated function's return value).

        Example:
            >>> run.set_output(best)  # doctest: +SKIP
        """
        self._output = value

    @guarded()
    def set_input(self, value: Any) -> None:
        """Record the run's input (by default: ``input=`` or the decorated call's arguments)."""
        self._input = value
        self._input_args = None

    @guarded()
    def annotate(self, **metadata: Any) -> None:
        """Add metadata to the run.

        Example:
            >>> run.annotate(experiment="b", seller=7)  # doctest: +SKIP
        """
        self._metadata.update(metadata)

    # -- lifecycle (SDK internal) ----------------------------------------------------

    def _start(self) -> None:
        self._client._submit(self)

    def _end(self, exc: BaseException | None = None, result: Any = _UNSET) -> None:
        try:
            self._t1 = time.perf_counter_ns()
            if exc is not None:
                self._error = exc
                self._traceback = exc.__traceback__
                self.status = ERROR
            else:
                if self._output is _UNSET and result is not _UNSET:
                    self._output = result
                self.status = SUCCESS
            self._client._submit(self)
        except Exception as error:
            internal_error(error)

    def __repr__(self) -> str:
        return f"<Run {self.pipeline!r} {self._id} {self.status}>"


class _NoopRun(Run):
    """Stands in for a run when X-Ray is off, so user code never needs an ``if``."""

    __slots__ = ()
    recording = False

    def __init__(self) -> None:
        self._id = "00000000-0000-0000-0000-000000000000"
        self.pipeline = ""
        self.status = RUNNING
        self.implicit = False
        self._metadata = {}

    @property
    def metadata(self) -> dict[str, Any]:
        return {}  # a fresh dict: writes to the no-op run must not accumulate

    def set_output(self, value: Any) -> None:
        return None

    def set_input(self, value: Any) -> None:
        return None

    def annotate(self, **metadata: Any) -> None:
        return None

    def _start(self) -> None:
        return None

    def _end(self, exc: BaseException | None = None, result: Any = _UNSET) -> None:
        return None

    def __repr__(self) -> str:
        return "<Run (not recording)>"


NOOP_RUN: Run = _NoopRun()


class AsyncFromSync(Generic[T]):
    """``async with`` for a context manager whose enter and exit never wait: the same
    ``__enter__``/``__exit__``, so ``with`` and ``async with`` cannot drift apart."""

    __slots__ = ()

    def __enter__(self) -> T:
        raise NotImplementedError

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        raise NotImplementedError

    async def __aenter__(self) -> T:
        return self.__enter__()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        return self.__exit__(exc_type, exc, tb)


class RunScope(AsyncFromSync[Run]):
    """What ``client.run(...)`` returns: a context manager and a decorator.

    As a context manager it opens one run; as a decorator it opens a new run per call,
    with the call's arguments as input and its return value as output unless
    ``run.set_input`` / ``run.set_output`` say otherwise.

    Example:
        >>> @client.run("nightly-categorisation")  # doctest: +SKIP
        ... def categorise(products): ...
    """

    __slots__ = ("_client", "_input", "_metadata", "_pipeline", "_tokens")

    def __init__(
        self,
        client: XRayClient,
        pipeline: str,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> None:
        self._client = client
        self._pipeline = pipeline
        self._input = input
        self._metadata = metadata
        self._tokens: list[tuple[Run, Any]] = []

    def _open(self) -> Run:
        try:
            client = self._client
            if not client.enabled or not client._sampled():
                return NOOP_RUN
            run = Run(client, self._pipeline, input=self._input, metadata=self._metadata)
            run._start()
            return run
        except Exception as exc:
            internal_error(exc)
            return NOOP_RUN

    def __enter__(self) -> Run:
        run = self._open()
        self._tokens.append((run, frame.set(run)))
        return run

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            run, token = self._tokens.pop()
            frame.reset(token)
        except Exception as error:
            internal_error(error)
            return False
        run._end(exc)
        return False  # the user's exception propagates unchanged

    def __call__(self, fn: F) -> F:
        """Decorate ``fn``: every call is one run (for a generator: one iteration)."""
        scope = self
        if inspect.isasyncgenfunction(fn):
            return cast(F, wrap_async_generator(fn, self._opener(fn)))
        if inspect.isgeneratorfunction(fn):
            return cast(F, wrap_generator(fn, self._opener(fn)))
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
                run = scope._open_for_call(fn, args, kwargs)
                token = frame.set(run)
                try:
                    result = await fn(*args, **kwargs)
                except BaseException as exc:
                    frame.reset(token)
                    run._end(exc)
                    raise
                frame.reset(token)
                run._end(None, result)
                return result

            return cast(F, async_wrapper)

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            run = scope._open_for_call(fn, args, kwargs)
            token = frame.set(run)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                frame.reset(token)
                run._end(exc)
                raise
            frame.reset(token)
            run._end(None, result)
            return result

        return cast(F, wrapper)

    def _opener(self, fn: Callable[..., Any]) -> Opener:
        """A run per iteration of a generator: it starts at the first ``next()`` and ends
        when the generator returns (its return value is the output), raises or is closed."""

        def open_run(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Finish]:
            run = self._open_for_call(fn, args, kwargs)

            def finish(error: BaseException | None, produced: int, returned: Any) -> None:
                run._end(error, returned if returned is not None else _UNSET)

            return run, finish

        return open_run

    def _open_for_call(
        self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Run:
        run = self._open()
        if run.recording and self._input is None:
            run._input_args = (fn, args, kwargs)
        return run
