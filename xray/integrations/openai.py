"""The OpenAI client recorded without code: ``instrument(client)``.

Each ``client.chat.completions.create`` and ``client.responses.create`` call becomes one
``llm`` step named after the call, inside the current run (or an implicit run of its own):

- params: ``model``, ``temperature``, ``top_p``, the max-tokens argument, ``tools`` (their
  names), ``tool_choice``, ``seed``, ``n``, ``stream``;
- input: the messages (chat) or ``input``/``instructions`` (responses); output: the
  assistant message(s) or the response's text. Both are previews, capped and redacted by
  the SDK like any step's input and output;
- metadata: ``input_tokens``, ``output_tokens``, ``total_tokens``, ``finish_reason``,
  ``response_model``, ``response_id`` (the same keys the OTLP ingest gives GenAI spans).

A streamed call is one step that ends when the stream does (exhausted, closed, or failed),
with the output assembled from the chunks. An error from the call is recorded on the step
and re-raised unchanged. Like every step, recording fails open: a problem on X-Ray's side
is logged at debug level and the call's result is what it would have been without X-Ray.

Example:
    >>> from openai import OpenAI  # doctest: +SKIP
    >>> from xray.integrations.openai import instrument  # doctest: +SKIP
    >>> client = instrument(OpenAI())  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Generator, Iterator, Mapping
from typing import Any, TypeVar

from xray.sdk._context import runtime
from xray.sdk._guard import internal_error
from xray.sdk._step import _NO_RESULT, Step, _Spec

__all__ = ["instrument"]

C = TypeVar("C")

#: The calls ``instrument`` records, as attribute paths from the client.
CALLS = (("chat", "completions", "create"), ("responses", "create"))

_MARK = "__xray_instrumented__"
_PARAMS = (
    "model",
    "temperature",
    "top_p",
    "max_tokens",
    "max_completion_tokens",
    "max_output_tokens",
    "tool_choice",
    "seed",
    "n",
    "stream",
)


def instrument(client: C) -> C:
    """Record ``client``'s chat completion and responses calls as ``llm`` steps.

    Works on ``openai.OpenAI`` and ``openai.AsyncOpenAI`` (and Azure's); instrumenting the
    same client twice changes nothing. Returns the client.

    Example:
        >>> client = instrument(OpenAI())  # doctest: +SKIP
        >>> client.chat.completions.create(model="gpt-4o-mini", messages=[...])  # doctest: +SKIP
    """
    for path in CALLS:
        try:
            owner: Any = client
            for attribute in path[:-1]:
                owner = getattr(owner, attribute)
            original = getattr(owner, path[-1])
            if getattr(original, _MARK, False):
                continue
            name = ".".join(path)
            # `required_args` hides that the async client's create is a coroutine function.
            is_async = inspect.iscoroutinefunction(inspect.unwrap(original))
            wrap = _wrap_async if is_async else _wrap_sync
            wrapped = wrap(original, name)
            setattr(wrapped, _MARK, True)
            setattr(owner, path[-1], wrapped)
        except Exception as exc:  # an older client without this API: record the others
            internal_error(exc)
    return client


# -- what a call records ------------------------------------------------------------------


def _begin(name: str, kwargs: Mapping[str, Any]) -> Step | None:
    if not runtime.recording and runtime.resolved:  # X-Ray is off: one check
        return None
    try:
        s = _Spec(name, "llm", None, None).begin((), None)
        if s is None or not s.recording:
            return None
        params = {k: kwargs[k] for k in _PARAMS if kwargs.get(k) is not None}
        tools = kwargs.get("tools")
        if isinstance(tools, list | tuple):
            params["tools"] = [_tool_name(tool) for tool in tools]
        s.set_params(**params)
        if name == "responses.create":
            given = {k: kwargs[k] for k in ("instructions", "input") if k in kwargs}
            s.set_input(given.get("input") if len(given) == 1 else given)
        else:
            s.set_input(kwargs.get("messages"))
        s.input_count = None  # messages are not candidates
        return s
    except Exception as exc:
        internal_error(exc)
        return None


def _tool_name(tool: Any) -> Any:
    if isinstance(tool, Mapping):
        function = tool.get("function")
        if isinstance(function, Mapping) and function.get("name"):
            return function["name"]
        return tool.get("name") or tool.get("type")
    return repr(tool)


def _dump(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(exclude_none=True) if callable(dump) else value


def _usage(s: Step, usage: Any) -> None:
    if usage is None:
        return
    found = {
        "input_tokens": _attr(usage, "prompt_tokens", "input_tokens"),
        "output_tokens": _attr(usage, "completion_tokens", "output_tokens"),
        "total_tokens": _attr(usage, "total_tokens"),
    }
    s.annotate(**{k: v for k, v in found.items() if v is not None})


def _attr(value: Any, *names: str) -> Any:
    for name in names:
        found = getattr(value, name, None)
        if found is not None:
            return found
    return None


def _record(s: Step, result: Any) -> None:
    """A non-streamed result: output, usage, finish reason, model."""
    if hasattr(result, "choices"):  # chat completion
        messages = [_dump(choice.message) for choice in result.choices]
        s.set_output(messages[0] if len(messages) == 1 else messages)
        reasons = [c.finish_reason for c in result.choices if c.finish_reason]
        if reasons:
            s.annotate(finish_reason=reasons[0] if len(reasons) == 1 else reasons)
    else:  # responses API
        text = getattr(result, "output_text", None)
        s.set_output(text if text else _dump(getattr(result, "output", None)))
        status = getattr(result, "status", None)
        if status:
            s.annotate(finish_reason=status)
    s.output_count = None
    _usage(s, getattr(result, "usage", None))
    model, response_id = getattr(result, "model", None), getattr(result, "id", None)
    if model:
        s.annotate(response_model=model)
    if response_id:
        s.annotate(response_id=response_id)


def _end(s: Step, result: Any) -> None:
    try:
        _record(s, result)
    except Exception as exc:
        internal_error(exc)
    s._end(_NO_RESULT)


def _fail(s: Step, exc: BaseException) -> None:
    try:
        status = getattr(exc, "status_code", None)
        if isinstance(status, int):
            s.annotate(status_code=status)
    except Exception as error:
        internal_error(error)
    s._fail(exc)


# -- streams --------------------------------------------------------------------------


class _Assembled:
    """A streamed call's chunks (chat) or events (responses), assembled as they pass."""

    def __init__(self) -> None:
        self.text: dict[int, list[str]] = {}
        self.tool_calls: dict[tuple[int, int], dict[str, Any]] = {}
        self.finish: dict[int, str] = {}
        self.usage: Any = None
        self.model: str | None = None
        self.id: str | None = None
        self.response: Any = None  # responses API: the final response object
        self.done = False

    def add(self, chunk: Any) -> None:
        try:
            self._add(chunk)
        except Exception as exc:
            internal_error(exc)

    def _add(self, chunk: Any) -> None:
        kind = getattr(chunk, "type", None)
        if isinstance(kind, str):  # a responses API event
            if kind in ("response.completed", "response.incomplete", "response.failed"):
                self.response = getattr(chunk, "response", None)
            return
        self.model = getattr(chunk, "model", None) or self.model
        self.id = getattr(chunk, "id", None) or self.id
        self.usage = getattr(chunk, "usage", None) or self.usage
        for choice in getattr(chunk, "choices", None) or ():
            delta = choice.delta
            if getattr(delta, "content", None):
                self.text.setdefault(choice.index, []).append(delta.content)
            for call in getattr(delta, "tool_calls", None) or ():
                slot = self.tool_calls.setdefault(
                    (choice.index, call.index), {"type": "function", "name": "", "arguments": ""}
                )
                slot["id"] = getattr(call, "id", None) or slot.get("id")
                function = getattr(call, "function", None)
                if function is not None:
                    slot["name"] += getattr(function, "name", None) or ""
                    slot["arguments"] += getattr(function, "arguments", None) or ""
            if choice.finish_reason:
                self.finish[choice.index] = choice.finish_reason

    def finish_step(self, s: Step, error: BaseException | None) -> None:
        if self.done:
            return
        self.done = True
        if error is not None:
            _fail(s, error)
            return
        if self.response is not None:
            _end(s, self.response)
            return
        try:
            indexes = sorted({*self.text, *self.finish, *(i for i, _ in self.tool_calls)})
            messages = []
            for i in indexes:
                message: dict[str, Any] = {"role": "assistant"}
                if i in self.text:
                    message["content"] = "".join(self.text[i])
                calls = [c for (ci, _), c in sorted(self.tool_calls.items()) if ci == i]
                if calls:
                    message["tool_calls"] = calls
                messages.append(message)
            s.set_output(messages[0] if len(messages) == 1 else messages)
            s.output_count = None
            reasons = [self.finish[i] for i in indexes if i in self.finish]
            if reasons:
                s.annotate(finish_reason=reasons[0] if len(reasons) == 1 else reasons)
            _usage(s, self.usage)
            if self.model:
                s.annotate(response_model=self.model)
            if self.id:
                s.annotate(response_id=self.id)
        except Exception as exc:
            internal_error(exc)
        s._end(_NO_RESULT)


def _watch_stream(s: Step, stream: Any) -> Any:
    """Let ``stream`` pass its chunks through an assembler; the step ends with it."""
    inner = getattr(stream, "_iterator", None)
    if not isinstance(inner, Iterator):
        s.annotate(stream_not_assembled=True)
        s._end(_NO_RESULT)
        return stream
    assembled = _Assembled()

    def chunks() -> Generator[Any, None, None]:
        error: BaseException | None = None
        try:
            for chunk in inner:
                assembled.add(chunk)
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            # GeneratorExit (the stream closed early) is the reader's choice, not a failure.
            failed = error if not isinstance(error, GeneratorExit) else None
            assembled.finish_step(s, failed)

    watched = chunks()
    stream._iterator = watched
    close = stream.close

    @functools.wraps(close)
    def close_and_record() -> None:
        watched.close()
        assembled.finish_step(s, None)  # closed before the first chunk was read
        close()

    stream.close = close_and_record
    return stream


def _watch_async_stream(s: Step, stream: Any) -> Any:
    inner = getattr(stream, "_iterator", None)
    if not isinstance(inner, AsyncIterator):
        s.annotate(stream_not_assembled=True)
        s._end(_NO_RESULT)
        return stream
    assembled = _Assembled()

    async def chunks() -> AsyncGenerator[Any, None]:
        error: BaseException | None = None
        try:
            async for chunk in inner:
                assembled.add(chunk)
                yield chunk
        except BaseException as exc:
            error = exc
            raise
        finally:
            failed = error if not isinstance(error, GeneratorExit) else None
            assembled.finish_step(s, failed)

    watched = chunks()
    stream._iterator = watched
    close = stream.close

    @functools.wraps(close)
    async def close_and_record() -> None:
        await watched.aclose()
        assembled.finish_step(s, None)
        await close()

    stream.close = close_and_record
    return stream


def _after(s: Step, result: Any, streamed: bool, watch: Callable[[Step, Any], Any]) -> Any:
    if streamed:
        try:
            return watch(s, result)
        except Exception as exc:
            internal_error(exc)
            return result
    _end(s, result)
    return result


# -- wrappers -----------------------------------------------------------------------------


def _wrap_sync(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        s = _begin(name, kwargs)
        if s is None:
            return original(*args, **kwargs)
        try:
            result = original(*args, **kwargs)
        except BaseException as exc:
            _fail(s, exc)
            raise
        return _after(s, result, kwargs.get("stream") is True, _watch_stream)

    return create


def _wrap_async(original: Callable[..., Any], name: str) -> Callable[..., Any]:
    @functools.wraps(original)
    async def create(*args: Any, **kwargs: Any) -> Any:
        s = _begin(name, kwargs)
        if s is None:
            return await original(*args, **kwargs)
        try:
            result = await original(*args, **kwargs)
        except BaseException as exc:
            _fail(s, exc)
            raise
        return _after(s, result, kwargs.get("stream") is True, _watch_async_stream)

    return create
