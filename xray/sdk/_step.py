"""Steps: the ``@step`` decorator / context manager and the ``Step`` object.

This module is the hot path. A decorated call, when recording, does: one context read,
one small object (``Step``), two clock reads, a context set/reset, ``len()`` of the first
argument and of the result, and one ``deque.append`` (``client._submit``). No I/O, no lock
held during I/O, no serialisation: the sender thread turns the ``Step`` into JSON later.
When X-Ray is off the wrapper reads one attribute and calls through.

For a plain function without ``key=`` called inside a recording run or step (the common
case), that work is done by ``_speedups.c`` when it was built: the same steps in C, with
the step's id, single argument, times and result head stored inline instead of as Python
objects (a fraction of the Python path's cost; figures in ``bench/README.md``). Each of
its functions names the one here it mirrors. Everything else,
and every call when the extension is missing or ``XRAY_SDK_PURE_PYTHON=1`` is set, runs
the Python code below; ``tests/sdk/test_speedups.py`` checks both record the same thing.

A finished ``Step`` is handed to the sender as is; changing it after it ended (from a
reference kept by user code) may or may not be reflected in what is sent.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
from collections.abc import Callable
from time import perf_counter_ns
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

from xray.sdk import _ids
from xray.sdk._buffer import Buffer
from xray.sdk._columns import FRAME_MODULES, Block, aligned, as_list, copied
from xray.sdk._context import _Runtime, frame, resolve_default_client, runtime
from xray.sdk._decisions import (
    ACCEPTED,
    REJECTED,
    SCORED,
    SELECTED,
    SUMMARY,
    DecisionLog,
    KeySpec,
)
from xray.sdk._drive import Finish, Opener, wrap_async_generator, wrap_generator
from xray.sdk._guard import guarded, internal_error, warn_once
from xray.sdk._otel import TRACE_MODULE as _OTEL_TRACE
from xray.sdk._otel import link_step
from xray.sdk._run import NOOP_RUN, AsyncFromSync, Run
from xray.sdk._serialize import PREVIEW_ITEMS
from xray.shared import DetailLevel, RunStatus, StepType

__all__ = ["NOOP_STEP", "Step", "StepFactory", "current_run", "current_step", "step"]

F = TypeVar("F", bound=Callable[..., Any])

# Plain str values of the shared vocabulary: compared and encoded on the hot path.
RUNNING: str = RunStatus.RUNNING.value
SUCCESS: str = RunStatus.SUCCESS.value
ERROR: str = RunStatus.ERROR.value

_STEP_TYPES = frozenset(t.value for t in StepType)
_DETAILS = frozenset(d.value for d in DetailLevel)
_AUTO: Any = object()  # "count the output automatically"
CUT: Any = object()  # marks a result cut to its first items: (CUT, head, total)
_NO_RESULT: Any = object()  # a context-manager step has no return value
_COLLECTIONS = (list, tuple, set, frozenset, dict)
_sized: dict[type, bool] = {list: True, tuple: True, dict: True, set: True, str: False}
_BUILTIN_SIZED = frozenset((list, tuple, dict, set, frozenset))
_counter = _ids.counter
_frame_get = frame.get
_frame_set = frame.set
_frame_reset = frame.reset
_modules = sys.modules


def _count(value: Any) -> int | None:
    """``len(value)`` for collections and anything sized, except text; else ``None``."""
    kind = type(value)
    sized = _sized.get(kind)
    if sized is None:
        sized = hasattr(kind, "__len__") and not issubclass(kind, str | bytes | bytearray)
        if len(_sized) < 1000:
            _sized[kind] = sized
    if not sized:
        return None
    try:
        return len(value)
    except Exception:  # a user __len__ that raises is not our business
        return None


class _Spec:
    """What a ``step(...)`` call fixed: name, type, key, detail, and how to read args."""

    __slots__ = ("arg_index", "detail", "fn", "key", "name", "type")

    def __init__(
        self, name: str, type_: str, key: KeySpec, detail: str | None, fn: Any = None
    ) -> None:
        self.name = name
        self.type = type_
        self.key = key
        self.detail = detail
        self.fn = fn
        self.arg_index = 0
        code = getattr(fn, "__code__", None)
        if code is not None and code.co_argcount > 0 and code.co_varnames[0] in ("self", "cls"):
            self.arg_index = 1  # a method: count the first real argument, not self

    def begin(self, args: tuple[Any, ...], kwargs: dict[str, Any] | None) -> Step | None:
        """Open a step for this call, or ``None`` to call through unrecorded."""
        try:
            current = _frame_get()
            kind = type(current)
            if kind is Step:
                return Step(self, current.run, current, args, kwargs)
            if kind is Run:
                return Step(self, current, None, args, kwargs)
            if current is not None:
                return None  # inside a run or step that is not recording
            client = runtime.client if runtime.resolved else resolve_default_client()
            if client is None or not client.enabled:
                return None
            if not client._sampled():
                return NOOP_STEP  # an unsampled implicit run: its inner steps stay quiet
            run = Run(client, self.name, implicit=True)
            run._input_args = (self.fn, args, kwargs or {})
            run._start()
            return Step(self, run, None, args, kwargs)
        except Exception as exc:
            internal_error(exc)
            return None


#: What this module expects of ``_speedups.c`` (its ``INTERFACE`` constant).
_SPEEDUPS_INTERFACE = 3


def _load_speedups() -> Any:
    """The C fast path (``_speedups.c``), or ``None``: not built, stale, or turned off."""
    if os.environ.get("XRAY_SDK_PURE_PYTHON", "").strip().lower() in ("1", "true", "yes"):
        return None
    try:
        from xray.sdk import _speedups
    except ImportError:  # no compiler when it was installed: the Python path does it all
        return None
    if getattr(_speedups, "INTERFACE", None) != _SPEEDUPS_INTERFACE:
        warn_once(
            "stale-speedups",
            "xray: the C fast path in %s was built from other sources (reinstall the "
            "package to rebuild it); using the pure-Python path",
            getattr(_speedups, "__file__", "?"),
        )
        return None
    return _speedups


_speedups = _load_speedups()
#: True when ``@step`` on plain functions runs the C fast path (see ``_speedups.c``).
ACCELERATED = _speedups is not None


if TYPE_CHECKING or not ACCELERATED:

    class _StepFields:
        """A step's storage (``StepFields`` in ``_speedups.c`` when it is built)."""

        __slots__ = (
            "_args",
            "_id",
            "_in",
            "_kwargs",
            "_out",
            "_result",
            "_spec",
            "_status",
            "_t0",
            "_t1",
            "_x",
            "parent",
            "run",
            "seq",
        )

else:
    _StepFields = _speedups.StepFields


class _Extra:
    """The parts of a step that only some steps use (see ``Step.__init__``)."""

    __slots__ = (
        "error",
        "log",
        "metadata",
        "name",
        "owner",
        "params",
        "reasoning",
        "snapshot",
        "traceback",
    )

    def __init__(self) -> None:
        self.name: str | None = None
        self.params: dict[str, Any] | None = None
        self.reasoning: str | None = None
        self.metadata: dict[str, Any] | None = None
        self.log: DecisionLog | None = None
        self.error: BaseException | None = None
        self.traceback: TracebackType | None = None
        # (inputs, outputs): copies of the candidates, or a frame step's key columns.
        self.snapshot: tuple[Any, Any] | None = None
        self.owner: tuple[StepFactory, Any] | None = None


class Step(_StepFields):
    """One decision point in a run. Inside a step, get it with ``current_step()``.

    Example:
        >>> @step(type="filter", key="asin")
        ... def price_filter(candidates, max_price):
        ...     s = current_step()
        ...     s.set_params(max_price=max_price)
        ...     for c in candidates:
        ...         if c["price"] > max_price:
        ...             s.reject(c, reason="price_above_max", price=c["price"])
        ...     return [c for c in candidates if c["price"] <= max_price]
    """

    __slots__ = ()

    #: False for the no-op step handed out when nothing is being recorded.
    recording = True

    def __init__(
        self,
        spec: _Spec,
        run: Run,
        parent: Step | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
    ) -> None:
        self._spec = spec
        self.run = run
        self.parent = parent
        self.seq = next(run._seq)
        self._id = _ids._prefix | next(_counter)
        self._args = args
        self._kwargs = kwargs
        if len(args) > spec.arg_index:
            first = args[spec.arg_index]
            self._in = len(first) if type(first) in _BUILTIN_SIZED else _count(first)
        else:
            self._in = None
        self._out = _AUTO
        self._status = RUNNING
        self._result: Any = None
        # Everything a plain decorated call does not touch lives in one lazily made
        # object: every attribute set here is paid on every call.
        self._x: _Extra | None = None
        self._t1 = 0
        if _OTEL_TRACE in _modules:
            link_step(self)
        self._t0 = perf_counter_ns()

    @property
    def _extra(self) -> _Extra:
        x = self._x
        if x is None:
            x = self._x = _Extra()
        return x

    # -- what the user reads ---------------------------------------------------------

    @property
    def id(self) -> str:
        """The step's client-generated UUID, as text."""
        return _ids.uuid_text(self._id)

    @property
    def name(self) -> str:
        x = self._x
        return (x.name if x is not None else None) or self._spec.name

    @property
    def type(self) -> str:
        return self._spec.type

    @property
    def detail(self) -> str:
        """``summary``, ``sampled`` or ``full``: how many decisions this step keeps."""
        return self._spec.detail or self.run._client._default_detail

    @property
    def input_count(self) -> int | None:
        """How many candidates came in (default: ``len()`` of the first argument)."""
        return self._in

    @input_count.setter
    def input_count(self, value: int | None) -> None:
        self._in = value if value is None or (type(value) is int and value >= 0) else None

    @property
    def output_count(self) -> int | None:
        """How many candidates went out (default: ``len()`` of the return value)."""
        return None if self._out is _AUTO else self._out

    @output_count.setter
    def output_count(self, value: int | None) -> None:
        self._out = value if value is None or (type(value) is int and value >= 0) else None

    # -- what the user records -------------------------------------------------------

    @guarded()
    def set_params(self, **params: Any) -> None:
        """Record the parameters the step ran with (thresholds, model, prompt version).

        Example:
            >>> current_step().set_params(max_price=60.0, model="gpt-4o-mini")
        """
        x = self._extra
        if x.params is None:
            x.params = {}
        x.params.update(params)

    @guarded()
    def set_reasoning(self, text: str) -> None:
        """Record why the step decided what it did (an LLM's explanation, a rule).

        Example:
            >>> current_step().set_reasoning("Accessories are not competitors of stands.")
        """
        self._extra.reasoning = text if isinstance(text, str) else repr(text)

    @guarded()
    def annotate(self, **metadata: Any) -> None:
        """Attach free metadata to the step.

        Example:
            >>> current_step().annotate(cache_hit=True)
        """
        x = self._extra
        if x.metadata is None:
            x.metadata = {}
        x.metadata.update(metadata)

    @guarded()
    def set_input(self, value: Any) -> None:
        """Give a context-manager step its input (counted and previewed like an argument).

        Example:
            >>> with step("rank", type="rank") as s:  # doctest: +SKIP
            ...     s.set_input(candidates)
        """
        self._args = (value,)
        self._kwargs = None
        self._in = _count(value)

    @guarded()
    def set_output(self, value: Any) -> None:
        """Give a context-manager step its output (counted and previewed like a result)."""
        self._result = value
        self._out = _count(value)

    @guarded()
    def rename(self, name: str) -> None:
        """Change the step's name for this call (e.g. ``f"search:{keyword}"``)."""
        self._extra.name = str(name)

    # The per-item calls run once per candidate in a loop: each does its work inline (one
    # call into the log), and the candidate's key is taken later, in the sender.

    def accept(
        self, item: Any, reason: str | None = None, score: float | None = None, **attrs: Any
    ) -> None:
        """Record that ``item`` passed this step.

        Example:
            >>> current_step().accept(c, reason="in_stock", score=0.9)
        """
        try:
            x = self._x
            log = x.log if x is not None else None
            if log is None:
                log = self._new_log()
            if reason is not None and type(reason) is not str:
                reason = str(reason)
            log.add(item, ACCEPTED, reason, score, None, attrs)
        except Exception as exc:
            internal_error(exc)

    def reject(self, item: Any, reason: str | None = None, **attrs: Any) -> None:
        """Record that ``item`` was dropped here, and why (counted in ``reason_counts``).

        Example:
            >>> current_step().reject(c, reason="price_above_max", price=c["price"])
        """
        try:
            x = self._x
            log = x.log if x is not None else None
            if log is None:
                log = self._new_log()
            if reason is not None and type(reason) is not str:
                reason = str(reason)
            log.add(item, REJECTED, reason, None, None, attrs)
        except Exception as exc:
            internal_error(exc)

    def select(
        self, item: Any, reason: str | None = None, score: float | None = None, **attrs: Any
    ) -> None:
        """Record that ``item`` was chosen.

        Example:
            >>> current_step().select(best, reason="top_rated")
        """
        try:
            x = self._x
            log = x.log if x is not None else None
            if log is None:
                log = self._new_log()
            if reason is not None and type(reason) is not str:
                reason = str(reason)
            log.add(item, SELECTED, reason, score, None, attrs)
        except Exception as exc:
            internal_error(exc)

    def score(self, item: Any, score: float, rank: int | None = None, **attrs: Any) -> None:
        """Record the score (and rank) ``item`` got here.

        Example:
            >>> current_step().score(c, 0.82, rank=3)
        """
        try:
            x = self._x
            log = x.log if x is not None else None
            if log is None:
                log = self._new_log()
            log.add(item, SCORED, None, score, rank, attrs)
        except Exception as exc:
            internal_error(exc)

    def accept_many(self, items: Any, reason: Any = None, score: Any = None, **attrs: Any) -> None:
        """Record that every one of ``items`` passed this step, in one call.

        ``items`` is a list of candidates, a DataFrame (its rows, named by the step's key
        column) or a series of keys. ``reason``, ``score`` and each attribute are one
        value for all of them or a sequence aligned with ``items`` (a list, an array, a
        series). Records exactly what ``accept`` called once per item would.

        Example:
            >>> current_step().accept_many(kept, reason="in_stock", price=[c["price"] for c in kept])
        """
        self._decide_many(items, ACCEPTED, reason, score, None, attrs)

    def reject_many(self, items: Any, reason: Any = None, **attrs: Any) -> None:
        """Record that every one of ``items`` was dropped here, and why, in one call.

        ``items``, ``reason`` and the attributes as in ``accept_many``. Counted in
        ``reason_counts`` and held per the step's detail and caps exactly as ``reject``
        called once per item; much cheaper for many candidates.

        Example:
            >>> dropped = [c for c in candidates if c["price"] > max_price]
            >>> current_step().reject_many(
            ...     dropped, reason="price_above_max", price=[c["price"] for c in dropped]
            ... )
            >>> current_step().reject_many(df[df.price > 60], reason="price_above_max",
            ...                            price=df.loc[df.price > 60, "price"])
        """
        self._decide_many(items, REJECTED, reason, None, None, attrs)

    def select_many(self, items: Any, reason: Any = None, score: Any = None, **attrs: Any) -> None:
        """Record that every one of ``items`` was chosen, in one call (see ``accept_many``).

        Example:
            >>> current_step().select_many(top, reason="top_rated", score=[c["score"] for c in top])
        """
        self._decide_many(items, SELECTED, reason, score, None, attrs)

    def score_many(self, items: Any, scores: Any, ranks: Any = None, **attrs: Any) -> None:
        """Record the scores (and ranks) of ``items``, aligned with them, in one call.

        Example:
            >>> current_step().score_many(candidates, [0.82, 0.4], ranks=[1, 2])
        """
        self._decide_many(items, SCORED, None, scores, ranks, attrs)

    def _decide_many(
        self,
        items: Any,
        decision: str,
        reason: Any,
        score: Any,
        rank: Any,
        attrs: dict[str, Any],
    ) -> None:
        # The caller's part of a bulk call: lengths checked, sequences copied shallowly,
        # counted. Keys are taken and values converted in the sender (``DecisionLog``).
        try:
            x = self._x
            log = x.log if x is not None else None
            if log is None:
                log = self._new_log()
            kind = type(items)
            rows: list[Any] | None
            column: Any = None
            if kind is list or kind is tuple:
                rows = list(items)
            elif kind.__module__.partition(".")[0] in FRAME_MODULES:
                from xray.sdk import _frames  # only a DataFrame or an array gets here

                rows = None
                column = _frames.key_column(items, self._spec.key)
                if column is None:
                    problem = f"no key column {self._spec.key!r} in its frame"
                    self._drop_many(log, problem, len(items))
                    return
                column = copied(column)
            else:
                rows = list(items)
            n = len(rows) if rows is not None else len(column)
            if not n:
                return
            for name, value in (("reason", reason), ("score", score), ("rank", rank)):
                if aligned(value) and len(value) != n:
                    problem = f"{len(value)} values of {name} for {n} candidates"
                    self._drop_many(log, problem, n, rows)
                    return
            if reason is not None:
                if aligned(reason):
                    reasons = as_list(reason)
                    if not set(map(type, reasons)) <= {str, type(None)}:
                        reasons = [None if r is None else str(r) for r in reasons]
                    reason = reasons
                elif type(reason) is not str:
                    reason = str(reason)
            columns: dict[str, Any] = {}
            shared: dict[str, Any] = {}
            for name, value in attrs.items():
                if aligned(value):
                    if len(value) != n:
                        problem = f"{len(value)} values of attribute {name!r} for {n} candidates"
                        self._drop_many(log, problem, n, rows)
                        return
                    columns[name] = copied(value)
                else:
                    shared[name] = value
            if log.detail == SUMMARY and log.explicit_keys is None:
                rows = column = None  # only counted: nothing of the candidates is needed
                columns = {}
            log.add_block(
                Block(
                    rows,
                    column,
                    n,
                    decision,
                    reason,
                    copied(score),
                    copied(rank),
                    columns,
                    shared,
                )
            )
        except Exception as exc:
            internal_error(exc)

    def _drop_many(self, log: DecisionLog, problem: str, count: int, rows: Any = None) -> None:
        """A bulk call that cannot be recorded: warned once, counted, never raised.

        Its candidates still count as decided explicitly (when they can be named), so
        inference does not record them a second time.
        """
        log.drop(count)
        if rows is not None and log.explicit_keys is not None:
            log.blocks.append(
                Block(list(rows), None, len(rows), REJECTED, None, None, None, {}, {})
            )
        warn_once(
            f"bulk-dropped-{self._spec.name}-{problem}",
            "xray: a bulk decision call in step %r has %s; its %d decisions are counted "
            "in candidates_total, not recorded",
            self.name,
            problem,
            count,
        )

    def _new_log(self) -> DecisionLog:
        cfg = self.run._client._config
        log = self._extra.log = DecisionLog(
            self._spec.detail or cfg.default_detail.value,
            cfg.max_decisions_per_step,
            cfg.rejected_samples_per_reason,
            self._spec.key is not None,
        )
        return log

    # -- lifecycle (SDK internal) ----------------------------------------------------

    def _end(self, result: Any) -> None:
        self._t1 = perf_counter_ns()
        try:
            self._status = SUCCESS
            if result is not _NO_RESULT:
                self._result = result
                if self._out is _AUTO:
                    self._out = len(result) if type(result) in _BUILTIN_SIZED else _count(result)
            if self._spec.key is not None and self._args:
                self._take_snapshot()
            kept = self._result
            if type(kept) is list and len(kept) > PREVIEW_ITEMS:
                # Keep only what a preview shows (a plain tuple: cheapest to build here);
                # the sender turns it into a Head. Fewer live references, less GC work.
                self._result = (CUT, kept[:PREVIEW_ITEMS], len(kept))
            run = self.run
            run._client._submit(self)
            if run.implicit and self.parent is None:
                run._end(None, self._result)
        except Exception as exc:
            internal_error(exc)

    def _fail(self, exc: BaseException) -> None:
        self._t1 = perf_counter_ns()
        try:
            self._status = ERROR
            x = self._extra
            x.error = exc
            x.traceback = exc.__traceback__
            run = self.run
            run._client._submit(self)
            if run.implicit and self.parent is None:
                run._end(exc)
        except Exception as error:
            internal_error(error)

    def _take_snapshot(self) -> None:
        # Inference runs later, in the sender thread: copy the two containers now (not
        # their items) so a caller that mutates the list afterwards cannot change it.
        inputs = (
            self._args[self._spec.arg_index] if len(self._args) > self._spec.arg_index else None
        )
        outputs = self._result
        if isinstance(inputs, _COLLECTIONS) and isinstance(outputs, _COLLECTIONS):
            self._extra.snapshot = (
                tuple(inputs.values() if isinstance(inputs, dict) else inputs),
                tuple(outputs.values() if isinstance(outputs, dict) else outputs),
            )
        elif type(inputs).__module__.partition(".")[0] in FRAME_MODULES:
            from xray.sdk import _frames  # only a DataFrame step gets here

            self._extra.snapshot = _frames.snapshot(inputs, outputs, self._spec.key)

    def __repr__(self) -> str:
        return f"<Step {self.name!r} type={self.type} {self._status}>"


class _NoopStep(Step):
    """Stands in for a step when nothing is recorded, so user code never needs an ``if``."""

    __slots__ = ()
    recording = False

    def __init__(self) -> None:
        self._spec = _Spec("noop", "custom", None, None)
        self.run = NOOP_RUN
        self.parent = None
        self.seq = 0
        self._id = 0
        self._in = None
        self._out = None
        self._x = None

    @property
    def detail(self) -> str:
        return DetailLevel.SUMMARY.value

    def set_params(self, **params: Any) -> None:
        return None

    def set_reasoning(self, text: str) -> None:
        return None

    def annotate(self, **metadata: Any) -> None:
        return None

    def set_input(self, value: Any) -> None:
        return None

    def set_output(self, value: Any) -> None:
        return None

    def rename(self, name: str) -> None:
        return None

    def accept(self, *args: Any, **kwargs: Any) -> None:
        return None

    def reject(self, *args: Any, **kwargs: Any) -> None:
        return None

    def select(self, *args: Any, **kwargs: Any) -> None:
        return None

    def score(self, *args: Any, **kwargs: Any) -> None:
        return None

    def _decide_many(self, *args: Any) -> None:
        return None

    def _end(self, result: Any) -> None:
        return None

    def _fail(self, exc: BaseException) -> None:
        return None

    def __repr__(self) -> str:
        return "<Step (not recording)>"


NOOP_STEP: Step = _NoopStep()


def current_step() -> Step:
    """The innermost active step, or a no-op step when there is none or X-Ray is off.

    Example:
        >>> current_step().set_params(threshold=0.5)  # never needs an ``if``
    """
    current = _frame_get()
    return current if isinstance(current, Step) else NOOP_STEP


def current_run() -> Run:
    """The active run, or a no-op run when there is none or X-Ray is off.

    Example:
        >>> current_run().annotate(seller=7)
    """
    current = _frame_get()
    if isinstance(current, Step):
        return current.run
    return current if isinstance(current, Run) else NOOP_RUN


class StepFactory(AsyncFromSync["Step"]):
    """What ``step(...)`` returns: a decorator and a (sync or async) context manager.

    Example:
        >>> rerank = step("rerank", type="rank")
        >>> with rerank as s:  # doctest: +SKIP
        ...     s.set_params(model="cross-encoder")
    """

    __slots__ = ("_spec",)

    def __init__(self, spec: _Spec) -> None:
        self._spec = spec

    def __call__(self, fn: F) -> F:
        spec = self._spec
        if spec.fn is None:
            name = spec.name or getattr(fn, "__name__", None) or "step"
            spec = _Spec(name, spec.type, spec.key, spec.detail, fn)
        if inspect.isasyncgenfunction(fn):
            return cast(F, wrap_async_generator(fn, _step_opener(spec)))
        if inspect.isgeneratorfunction(fn):
            return cast(F, wrap_generator(fn, _step_opener(spec)))
        if inspect.iscoroutinefunction(fn):
            return cast(F, _wrap_coroutine(fn, spec))
        return cast(F, _wrap_function(fn, spec))

    def __enter__(self) -> Step:
        if not self._spec.name:  # a block needs a name; "step" beats failing
            self._spec.name = "step"
        s = self._spec.begin((), None) if runtime.recording or not runtime.resolved else None
        if s is None:
            return NOOP_STEP
        s._extra.owner = (self, _frame_set(s))
        return s

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Literal[False]:
        try:
            current = _frame_get()
            x = getattr(current, "_x", None)
            if x is None or x.owner is None or x.owner[0] is not self:
                return False
            owner, x.owner = x.owner, None
            _frame_reset(owner[1])
            if exc is None:
                current._end(_NO_RESULT)
            else:
                current._fail(exc)
        except Exception as error:
            internal_error(error)
        return False  # the user's exception propagates unchanged


def _wrap_function(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    # The hot path. Everything it touches is a closure variable (a cell load, cheaper
    # than a global or attribute lookup).
    begin = spec.begin
    rt = runtime
    frame_get, frame_set, frame_reset = _frame_get, _frame_set, _frame_reset
    step_class, run_class = Step, Run
    keyed = spec.key is not None

    @functools.wraps(fn)
    def step_wrapper(*args: Any, **kwargs: Any) -> Any:
        if not rt.recording and rt.resolved:
            return fn(*args, **kwargs)
        current = frame_get()
        kind = type(current)
        try:
            if kind is step_class:
                s: Step | None = step_class(spec, current.run, current, args, kwargs or None)
            elif kind is run_class:
                s = step_class(spec, current, None, args, kwargs or None)
            else:
                s = begin(args, kwargs)
        except Exception as exc:
            internal_error(exc)
            s = None
        if s is None:
            return fn(*args, **kwargs)
        if type(s) is not step_class:  # the no-op step of an unsampled implicit run
            token = frame_set(s)
            try:
                return fn(*args, **kwargs)
            finally:
                frame_reset(token)
        token = frame_set(s)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            frame_reset(token)
            s._fail(exc)
            raise
        frame_reset(token)
        s._end(result)
        return result

    if _speedups is None or keyed:
        return step_wrapper
    # The C wrapper does the common case (inside a recording run or step) itself and
    # hands every other call to ``step_wrapper`` above.
    fast = _speedups.StepWrapper(fn, spec, step_wrapper, spec.arg_index)
    functools.update_wrapper(fast, fn)
    return cast(Callable[..., Any], fast)


def _wrap_coroutine(fn: Callable[..., Any], spec: _Spec) -> Callable[..., Any]:
    begin = spec.begin

    @functools.wraps(fn)
    async def step_wrapper(*args: Any, **kwargs: Any) -> Any:
        if not runtime.recording and runtime.resolved:
            return await fn(*args, **kwargs)
        s = begin(args, kwargs)
        if s is None:
            return await fn(*args, **kwargs)
        token = _frame_set(s)
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            _frame_reset(token)
            s._fail(exc)
            raise
        _frame_reset(token)
        s._end(result)
        return result

    return step_wrapper


def _step_opener(spec: _Spec) -> Opener:
    """Open a step for a generator call; its output count is what it yielded."""
    begin = spec.begin

    def open_step(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Finish] | None:
        s = None if not runtime.recording and runtime.resolved else begin(args, kwargs)
        if s is None:
            return None

        def finish(error: BaseException | None, produced: int, returned: Any) -> None:
            if error is not None:
                s._fail(error)
                return
            if s._out is _AUTO:
                s._out = produced
            s._end(_NO_RESULT)

        return s, finish

    return open_step


@overload
def step(name: F, *, type: str = ..., key: KeySpec = ..., detail: str | None = ...) -> F: ...


@overload
def step(
    name: str | None = None,
    *,
    type: str = "custom",
    key: KeySpec = None,
    detail: str | None = None,
) -> StepFactory: ...


def step(
    name: Any = None,
    *,
    type: str = "custom",
    key: KeySpec = None,
    detail: str | None = None,
) -> Any:
    """Mark a decision point: decorate a function (sync, async, generator) or open a block.

    ``type`` is one of the fixed vocabulary (``llm``, ``retrieval``, ``filter``, ``rank``,
    ``select``, ``transform``, ``classify``, ``generate``, ``evaluate``, ``custom``);
    ``key`` names each candidate (a field name, attribute name or callable) and turns on
    decision inference; ``detail`` overrides the configured ``summary``/``sampled``/``full``.

    Example:
        >>> @step(type="filter", key="asin")
        ... def in_stock(candidates):
        ...     return [c for c in candidates if c["stock"] > 0]
        >>> with step("rerank", type="rank") as s:  # doctest: +SKIP
        ...     s.set_params(model="cross-encoder")
    """
    type_ = _checked(type, _STEP_TYPES, "type", "custom", "'custom'")
    detail_ = (
        _checked(detail, _DETAILS, "detail", None, "the configured default_detail")
        if detail is not None
        else None
    )
    if callable(name) and not isinstance(name, str):  # bare @step
        return StepFactory(_Spec("", type_, key, detail_))(name)
    return StepFactory(_Spec(str(name) if name else "", type_, key, detail_))


def _checked(
    value: Any, allowed: frozenset[str], what: str, fallback: str | None, fallback_text: str
) -> Any:
    text = getattr(value, "value", value)
    if isinstance(text, str) and text in allowed:
        return text
    warn_once(
        f"bad-{what}-{text!r}",
        "xray: step %s %r is not one of %s; using %s",
        what,
        value,
        ", ".join(sorted(allowed)),
        fallback_text,
    )
    return fallback


if _speedups is not None:
    _speedups.configure(
        step_type=Step,
        run_type=Run,
        runtime_type=_Runtime,
        buffer_type=Buffer,
        frame=frame,
        runtime=runtime,
        auto=_AUTO,
        cut=CUT,
        running=RUNNING,
        success=SUCCESS,
        count=_count,
        internal_error=internal_error,
        preview_items=PREVIEW_ITEMS,
    )
    _ids.on_new_prefix(_speedups.set_id_prefix)
