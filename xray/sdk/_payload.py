"""Turning captured runs and steps into the wire's JSON shapes (sender thread only).

The shapes are ``xray.shared.RunIn`` and ``StepIn`` (a test validates real SDK output
against them). Everything a user handed us passes through ``json_safe`` / ``preview``
(bounded, redacted by key) and then through the user's ``redact`` hook, before it is
encoded; nothing leaves the process otherwise.
"""

from __future__ import annotations

import json
import math
import os
import platform
import socket
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from pydantic_core import PydanticSerializationError, to_json

from xray.sdk import _ids
from xray.sdk._columns import Writer, entries_block
from xray.sdk._decisions import DecisionLog, infer, key_text
from xray.sdk._run import _UNSET, Run
from xray.sdk._serialize import (
    _SCALARS,
    PREVIEW_ITEMS,
    PREVIEW_NESTED,
    REDACTED,
    Head,
    Redactor,
    _compact,
    json_safe,
    preview,
    truncate,
)
from xray.sdk._step import _AUTO, CUT, Step, _Extra
from xray.shared import RunStatus, SDKConfig

__all__ = ["Encoder", "RedactHook", "sdk_info"]

#: ``redact(kind, item)`` gets ``"run"`` or ``"step"`` and the wire dict; returns the dict
#: to send (possibly changed) or ``None`` to send nothing for this item.
RedactHook = Callable[[str, dict[str, Any]], dict[str, Any] | None]

_NO_EXTRA = _Extra()
_MAX_TRACEBACK = 20_000
_MAX_MESSAGE = 4_000
_MAX_REASONING = 50_000
_MAX_REASON = 500
_INT_MIN, _INT_MAX = -(2**63), 2**63
_CACHE_LIMIT = 1000
_SEEN_LIMIT = 64  # previews remembered within a batch (see Encoder.batch)
_VALUE: Any = object()  # marks a key of Encoder._seen made of a value's id


def _no_default(value: Any) -> Any:
    raise TypeError(f"not JSON: {type(value).__name__}")


# One C encoder made once: ``JSONEncoder.encode`` builds a new one on every call, which
# costs as much as encoding a small preview. No circular check: the fast path encodes
# only flat values it has just checked.
_c_encoder: Any = getattr(json.encoder, "c_make_encoder", None)  # not in typeshed
_flat_encoder = (
    _c_encoder(
        None, _no_default, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if _c_encoder is not None
    else None
)


def _encode_flat(value: Any) -> str:
    """JSON of an acyclic value (same text as ``_compact.encode``)."""
    if _flat_encoder is None:
        return _compact.encode(value)
    return "".join(_flat_encoder(value, 0))


_REDACTED_JSON = _encode_flat(REDACTED)
# JSON of one str, as ``_compact`` writes it (non-ASCII kept); C in CPython.
_json_str: Callable[[str], str] = json.encoder.encode_basestring


def _json_bytes(item: dict[str, Any]) -> bytes:
    """UTF-8 JSON of a wire dict whose values are already JSON-safe.

    Decision columns hold thousands of values: pydantic-core writes them in Rust. A value
    it cannot write (a lone surrogate) goes through ``_compact``, which raises what the
    caller handles.
    """
    try:
        return to_json(item, inf_nan_mode="null")
    except PydanticSerializationError:
        return _compact.encode(item).encode("utf-8")


def sdk_info() -> dict[str, Any]:
    """Who sent this run: SDK version, Python, host and process id."""
    from xray import __version__

    return {
        "name": "xray-python",
        "version": __version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
    }


_last_second: list[tuple[int, str]] = [(-1, "")]


def _iso(ns: int) -> str:
    """ISO-8601 UTC with microseconds; the date-time part is cached per second."""
    seconds, fraction = divmod(ns, 1_000_000_000)
    # One tuple, read and replaced whole: two encoding threads can only miss the cache.
    cached_second, text = _last_second[0]
    if cached_second != seconds:
        text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
        _last_second[0] = (seconds, text)
    return f"{text}.{fraction // 1000:06d}+00:00"


def _error(exc: BaseException | None, tb: TracebackType | None) -> dict[str, Any] | None:
    if exc is None:
        return None
    try:
        message = str(exc)
    except Exception:
        message = "<unprintable exception>"
    try:
        text = "".join(traceback.format_exception(type(exc), exc, tb))
    except Exception:
        text = None
    return {
        "type": truncate(type(exc).__qualname__, 200),
        "message": truncate(message, _MAX_MESSAGE),
        "traceback": truncate(text, _MAX_TRACEBACK) if text else None,
    }


def _uncut(value: Any) -> Any:
    if type(value) is tuple and len(value) == 3 and value[0] is CUT:
        return Head(value[1], value[2])
    return value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except Exception:
        return None
    return number if math.isfinite(number) else None


def _integer(value: Any) -> int | None:
    if value is None:
        return None
    try:
        return int(value)
    except Exception:
        return None


class Encoder:
    """Builds wire dicts with one configuration (preview size, redaction, hook)."""

    def __init__(
        self,
        config: SDKConfig,
        redact: RedactHook | None = None,
        sdk: dict[str, Any] | None = None,
    ) -> None:
        self.max_preview = config.max_preview_bytes
        self._one_budget = max(64, self.max_preview)  # the preview of a lone argument
        self.redactor = Redactor(config.redact_keys)
        self.hook = redact
        self.default_detail = config.default_detail.value
        self.cap = config.max_decisions_per_step
        self.per_reason = config.rejected_samples_per_reason
        self.sdk = sdk if sdk is not None else sdk_info()
        self._columns = Writer(self.redactor, key_text)
        # Fast path state (sender thread only): keys known not to name a secret, the
        # constant JSON of a step per (run, spec), argument names per function.
        self._plain_keys: set[str] = set()
        self._tails: dict[tuple[Any, ...], str] = {}
        self._names: dict[Any, tuple[tuple[str, bool] | None, ...]] = {}
        self._reason_json: dict[Any, str] = {}
        # Previews already rendered in the batch being encoded (see ``batch``).
        self._seen: dict[Any, str | None] | None = None
        self._held: list[Any] = []

    # -- helpers -------------------------------------------------------------------

    def _safe(self, value: Any) -> Any:
        return json_safe(value, redactor=self.redactor)

    def _preview(self, value: Any, budget: int | None = None) -> Any:
        return preview(value, max_bytes=budget or self.max_preview, redactor=self.redactor)

    def _arguments(
        self, fn: Any, args: tuple[Any, ...] | None, kwargs: dict[str, Any] | None
    ) -> Any:
        """Name each argument the way the function does, and preview it."""
        args = args or ()
        kwargs = kwargs or {}
        code = getattr(fn, "__code__", None)
        names: tuple[str, ...] = ()
        if code is not None:
            names = code.co_varnames[: code.co_argcount]
        named: dict[str, Any] = {}
        for i, value in enumerate(args):
            name = names[i] if i < len(names) else f"arg{i}"
            if i == 0 and name in ("self", "cls"):
                continue
            named[name] = value
        named.update(kwargs)
        if not named:
            return None
        if fn is None and len(named) == 1 and "arg0" in named:
            return self._preview(named["arg0"])  # set_input(value): the value itself
        budget = max(64, self.max_preview // len(named))
        out: dict[str, Any] = {}
        for name, value in named.items():
            if self.redactor.is_secret(name):
                out[name] = "[REDACTED]"
            else:
                out[name] = self._preview(value, budget)
        return out

    def _hook(self, kind: str, item: dict[str, Any]) -> dict[str, Any] | None:
        if self.hook is None:
            return item
        return self.hook(kind, item)

    # -- runs ------------------------------------------------------------------------

    def run(self, run: Run) -> dict[str, Any] | None:
        """The ``RunIn`` dict for the run's current state."""
        t1 = run._t1
        status = run.status
        ended = status != RunStatus.RUNNING and t1 > 0
        if run._input_args is not None:
            fn, args, kwargs = run._input_args
            input_value = self._arguments(fn, args, kwargs)
        else:
            input_value = self._preview(run._input) if run._input is not None else None
        output = run._output
        item: dict[str, Any] = {
            "id": run._id,
            "pipeline": truncate(run.pipeline, 200) or "pipeline",
            "status": status if ended else RunStatus.RUNNING.value,
            "started_at": _iso(run._wall0),
            "ended_at": _iso(run._wall0 + (t1 - run._t0)) if ended else None,
            "duration_ms": (t1 - run._t0) / 1e6 if ended else None,
            "input": input_value,
            "output": self._preview(_uncut(output)) if ended and output is not _UNSET else None,
            "metadata": self._safe(run._metadata) if run._metadata else {},
            "error": _error(run._error, run._traceback) if ended else None,
            "sdk": self.sdk,
        }
        return self._hook("run", item)

    # -- steps -----------------------------------------------------------------------

    def step_text(self, s: Step, plain: bool = True) -> tuple[bytes, int] | None:
        """``_compact.encode(self.step(s))`` as UTF-8 and its number of decisions, no hook.

        A step that recorded nothing but its arguments and result (the common case) takes
        ``_plain_text`` unless ``plain`` is false. ``None`` when a ``redact`` hook must
        see the dict.
        """
        if self.hook is not None:
            return None
        if plain and s._x is None:
            text = self._plain_text(s)
            if text is not None:
                return text.encode("utf-8"), 0
        item = self.step(s)
        assert item is not None
        return _json_bytes(item), item["candidates_recorded"]

    def step(self, s: Step) -> dict[str, Any] | None:
        """The ``StepIn`` dict of a finished step, its decisions as ``decision_columns``.

        Every held decision, per-item or bulk, travels in the columnar form: a run of
        per-item decisions becomes one block, each bulk call (and the inferred decisions)
        its own, in the order they were made.
        """
        spec = s._spec
        detail = spec.detail or self.default_detail
        x = s._x or _NO_EXTRA
        log = x.log
        inferring = x.snapshot is not None and spec.key is not None
        if inferring and log is None:
            log = x.log = DecisionLog(detail, self.cap, self.per_reason, True)
        blocks: list[dict[str, Any]] = []
        recorded = 0
        if log is not None:
            if not log.finished:  # once, however many times the step is encoded
                log.finished = True
                log.prepare(spec.key, inferring)
                if inferring:
                    assert x.snapshot is not None
                    inputs, outputs = x.snapshot
                    infer(log, spec.key, spec.type, inputs, outputs)
            write = self._columns.block
            entries: list[Any] = []
            piece: Any
            for piece in log.pieces():
                if type(piece) is tuple and len(piece) == 7:
                    entries.append(piece)
                    continue
                if entries:
                    blocks.append(write(entries_block(entries), 0, len(entries)))
                    recorded += len(entries)
                    entries = []
                block, rows = piece
                blocks.append(write(block, 0, rows))
                recorded += rows
            if entries:
                blocks.append(write(entries_block(entries), 0, len(entries)))
                recorded += len(entries)
        item = self._own_fields(s)
        item["input"] = self._arguments(spec.fn, s._args, s._kwargs)
        item["output"] = self._preview(_uncut(s._result)) if s._result is not None else None
        item.update(self._shared_fields(s, x, log, detail, recorded, blocks))
        return self._hook("step", item)

    # A step's wire fields in two groups, the one definition of each: what a call has of
    # its own, and what the steps of one (run, spec) share when they recorded nothing but
    # their arguments and result. ``step`` sends both; ``_plain_text`` encodes the second
    # group once per (run, spec) and writes the arguments and result between them.

    def _own_fields(self, s: Step) -> dict[str, Any]:
        """The fields of ``s`` that differ from call to call, except input and output."""
        run = s.run
        t0 = run._wall0 + (s._t0 - run._t0)
        elapsed = s._t1 - s._t0
        return {
            "id": _ids.uuid_text(s._id),
            "parent_id": _ids.uuid_text(s.parent._id) if s.parent is not None else None,
            "seq": s.seq,
            "status": s._status,
            "started_at": _iso(t0),
            "ended_at": _iso(t0 + elapsed),
            "duration_ms": elapsed / 1e6 if elapsed > 0 else 0.0,
            "input_count": s._in,
            "output_count": None if s._out is _AUTO else s._out,
        }

    def _shared_fields(
        self,
        s: Step,
        x: _Extra,
        log: DecisionLog | None,
        detail: str,
        recorded: int,
        blocks: list[dict[str, Any]],
    ) -> dict[str, Any]:
        """The fields of ``s`` set by its run, its spec and what it recorded (``x``, ``log``)."""
        spec = s._spec
        run = s.run
        return {
            "run_id": run._id,
            "pipeline": truncate(run.pipeline, 200) or "pipeline",
            "run_started_at": _iso(run._wall0),
            "name": truncate(x.name or spec.name or "step", 200),
            "type": spec.type,
            "params": self._safe(x.params) if x.params else {},
            "reasoning": truncate(x.reasoning, _MAX_REASONING) if x.reasoning else None,
            "reason_counts": dict(log.reason_counts) if log is not None else {},
            "metadata": self._safe(x.metadata) if x.metadata else {},
            "error": _error(x.error, x.traceback),
            "detail": detail,
            "candidates_total": log.total if log is not None and log.total else None,
            "candidates_recorded": recorded,
            "decisions": [],
            "decision_columns": blocks,
        }

    # -- the fast path: a plain step straight to JSON text ------------------------------

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Encode one batch: previews of the same objects are rendered once within it.

        The sender encodes a batch only after taking it from the buffer, so every step in
        it has ended before any of its values is read. A preview rendered once for the
        batch therefore shows its objects as they were at some moment after each of these
        steps ended and before it was sent: the same promise as rendering it again for
        every step (values are read in the sender, never copied on the caller's path).
        """
        self._seen = {}
        try:
            yield
        finally:
            self._seen = None
            self._held = []  # drop the references to the user's objects

    def _plain_text(self, s: Step) -> str | None:
        """The JSON of ``step(s)`` for a step that recorded nothing extra, or ``None``.

        Same fields as ``step`` (from ``_own_fields`` and ``_shared_fields``), without
        the intermediate dict of the shared part: it is encoded once per (run, spec), and
        a preview of plain data (the first candidates as flat dicts of scalars) is encoded
        straight away instead of being copied first. Anything else (keyword arguments,
        unusual values) returns ``None`` or takes the general path for that one value.
        """
        spec = s._spec
        fn = spec.fn
        if fn is None or s._kwargs:
            return None
        run = s.run
        detail = spec.detail or self.default_detail
        key = (run, spec, run.pipeline, spec.name, spec.type, detail)
        tail = self._tails.get(key)
        if tail is None:
            if len(self._tails) >= _CACHE_LIMIT:
                self._tails.clear()
            shared = self._shared_fields(s, _NO_EXTRA, None, detail, 0, [])
            tail = self._tails[key] = _compact.encode(shared)[1:]
        seen = self._seen
        if seen is None:  # outside a batch: a batch of this one step
            with self.batch():
                return self._plain_text(s)
        args = s._args
        keys = self._names.get(getattr(fn, "__code__", None))
        inputs: str | None
        if keys and args and len(args) == 1 and keys[0] is not None and not keys[0][1]:
            # The usual step(candidates), with the argument's name known not to be secret.
            inputs = f"{{{keys[0][0]}{self._preview_json(args[0], self._one_budget, seen)}}}"
        else:
            inputs = self._arguments_json(fn, args, seen)
            if inputs is None:
                return None
        result = s._result
        output = "null" if result is None else self._preview_json(result, self.max_preview, seen)
        own = _encode_flat(self._own_fields(s))
        return f'{own[:-1]},"input":{inputs},"output":{output},{tail}'

    def _arguments_json(
        self, fn: Any, args: tuple[Any, ...] | None, seen: dict[Any, str | None]
    ) -> str | None:
        """``_arguments`` as JSON text, for positional arguments only."""
        code = getattr(fn, "__code__", None)
        if code is None:
            return None
        keys = self._names.get(code)
        if keys is None:
            if len(self._names) >= _CACHE_LIMIT:
                self._names.clear()
            keys = self._names[code] = self._argument_keys(code)
        args = args or ()
        if len(args) > len(keys):
            return None  # *args: named arg0, arg1 ... by the general path
        if len(args) == 1 and keys[0] is not None:  # the usual step(candidates)
            key, secret = keys[0]
            if secret:
                return f"{{{key}{_REDACTED_JSON}}}"
            return f"{{{key}{self._preview_json(args[0], self._one_budget, seen)}}}"
        shown = [(key, value) for key, value in zip(keys, args, strict=False) if key is not None]
        if not shown:
            return "null"
        budget = max(64, self.max_preview // len(shown))
        parts = [
            key + (_REDACTED_JSON if secret else self._preview_json(value, budget, seen))
            for (key, secret), value in shown
        ]
        return "{" + ",".join(parts) + "}"

    def _argument_keys(self, code: Any) -> tuple[tuple[str, bool] | None, ...]:
        """Per parameter: its JSON key and whether it names a secret; None for self/cls."""
        names = code.co_varnames[: code.co_argcount]
        return tuple(
            None
            if i == 0 and name in ("self", "cls")
            else (_encode_flat(name) + ":", self.redactor.is_secret(name))
            for i, name in enumerate(names)
        )

    def _preview_json(self, value: Any, budget: int, seen: dict[Any, str | None]) -> str:
        """``preview(value)`` as JSON text, rendered once per object within ``seen``.

        ``seen`` maps ``(_VALUE, id, budget)`` to the text of a value (a step's input list
        that the previous steps had too), the ids of a list's first items to their JSON
        when plain (``None`` when not), and ``(ids, total, budget)`` to the general path's
        text for such a list (three shapes that cannot be equal). A list's preview depends
        only on its first items and its length, so a filter's output, or the next step's
        input that is that output, reuses the text an earlier preview made of the same
        candidates. ``self._held`` keeps these objects alive so that their ids cannot be
        reused while the entries exist.
        """
        kind = type(value)
        if kind is tuple and len(value) == 3 and value[0] is CUT:
            head, total = value[1], value[2]
            key: Any = None  # a step's own tuple: never seen again
        else:
            key = (_VALUE, id(value), budget)
            text = seen.get(key)
            if text is not None:
                return text
            if kind is list:
                head, total = value, len(value)
            else:
                head = total = None
        if len(seen) >= _SEEN_LIMIT:  # a few steps' worth: the memory stays warm
            seen.clear()
            self._held.clear()
        if head and type(head) is list and type(total) is int:
            # By the ids of the first items: their JSON if plain (None if not), then the
            # general path's text for these items, this length and this budget.
            items = head[: PREVIEW_ITEMS if isinstance(head[0], _SCALARS) else PREVIEW_NESTED]
            ids = tuple(map(id, items))
            if ids in seen:
                text = seen[ids]
            else:
                text = seen[ids] = self._plain_items_json(items)
                self._held.append(items)
            if text is not None:
                shown = len(items)
                if total > shown:
                    text = f'{text[:-1]},"... {total - shown} more"]'
                if len(text) > budget:
                    text = None
            if text is None:
                general = (ids, total, budget)
                text = seen.get(general)
                if text is None:
                    text = seen[general] = _compact.encode(self._preview(_uncut(value), budget))
        else:
            text = _compact.encode(self._preview(_uncut(value), budget))
        if key is not None:
            seen[key] = text
            self._held.append(value)
        return text

    def _plain_items_json(self, items: list[Any]) -> str | None:
        """The JSON of a list's first items if plain (scalars or flat dicts), or ``None``.

        Only when it equals what ``preview`` makes of them: no secret key, no container
        inside a candidate, no string or number JSON cannot take as is (the caller checks
        the length against the preview's budget).
        """
        try:
            # A plain loop: for a few small dicts it beats set/map/regex tricks.
            plain_keys = self._plain_keys
            for item in items:
                t = type(item)
                if t is dict:
                    if len(item) > PREVIEW_ITEMS:
                        return None
                    if not plain_keys.issuperset(item) and not self._learn_keys(item):
                        return None
                    for v in item.values():
                        t = type(v)
                        if t is str or t is float or t is bool or v is None:
                            continue
                        if t is int and _INT_MIN <= v < _INT_MAX:
                            continue
                        return None
                elif t is str or t is float or t is bool or item is None:
                    continue
                elif t is not int or not _INT_MIN <= item < _INT_MAX:
                    return None
            return _encode_flat(items)  # ValueError for NaN: the general path says "nan"
        except Exception:  # e.g. a list changed by another thread: the general path copes
            return None

    def _learn_keys(self, item: dict[Any, Any]) -> bool:
        """Remember the keys of ``item`` as not secret; False if one is (or not a str)."""
        is_secret = self.redactor.is_secret
        for k in item:
            if type(k) is not str or is_secret(k):
                return False
        if len(self._plain_keys) < 10_000:
            self._plain_keys.update(item)
        return True
