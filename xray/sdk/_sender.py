"""The background sender: one daemon thread that batches, encodes, posts and retries.

This is the only module that imports ``httpx``, and only when the thread starts, so a
process where X-Ray is disabled never loads it. Transport errors are translated into
loss reasons here and nowhere else.

Delivery, per batch (``POST {base_url}/batch``, gzip'd JSON ``{"runs": [...],
"steps": [...]}``):

- 2xx: sent.
- connection error, timeout, 429, 5xx: retried up to ``max_retries`` times with
  exponential backoff and full jitter (0.5 s doubling, capped at 30 s); a 429's
  ``Retry-After`` is honoured up to 60 s. Then dropped (``network`` / ``http_5xx`` /
  ``http_429``).
- 413: the batch is split in halves and each half retried; a single item still too large
  is dropped (``too_large``). 400 / 422 are split the same way, so one invalid item
  cannot sink its neighbours (``invalid``).
- any other 4xx (401, 403, 404 ...): dropped (``http_4xx``), logged once per status.

Ids are client-generated and the server upserts, so a retry never duplicates. Shutdown
passes on the remaining time: requests get at most what is left, backoff sleeps are cut
short, and what cannot be sent in time is dropped (``shutdown``).
"""

from __future__ import annotations

import email.utils
import json
import operator
import random
import threading
import time
import zlib
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple, Protocol

from xray.sdk._buffer import Buffer, Counters
from xray.sdk._guard import internal_error, logger
from xray.sdk._payload import Encoder
from xray.sdk._run import Run
from xray.shared import SDKConfig

__all__ = ["HTTPTransport", "Response", "Sender", "Transport"]

MAX_BATCH_BYTES = 4 * 1024 * 1024  # under the API's default 5 MiB body limit
MAX_BACKOFF = 30.0
MAX_RETRY_AFTER = 60.0
BASE_BACKOFF = 0.5
_MAX_RESPONSE_BYTES = 64 * 1024
_compact = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class Response(NamedTuple):
    """What a transport saw: an HTTP status, or ``status=None`` and a network error.

    Example:
        >>> Response(503, retry_after=2.0).status
        503
    """

    status: int | None
    retry_after: float | None = None
    message: str = ""


class Transport(Protocol):
    """How a batch leaves the process. ``xray.sdk.testing.InMemoryTransport`` is one.

    ``body`` is the encoded ``{"runs": [...], "steps": [...]}`` (gzip'd when the headers
    say ``Content-Encoding: gzip``). Retries, splitting and counting stay in the sender.

    Example:
        >>> class Stdout:
        ...     def send(self, body, headers, timeout):
        ...         print(len(body)); return Response(200)
        ...     def close(self): pass
        >>> client = XRayClient(transport=Stdout())  # doctest: +SKIP
    """

    def send(self, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        """Deliver one encoded batch; never raise for network trouble, say so instead."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...


def parse_retry_after(value: str | None) -> float | None:
    """``Retry-After`` as seconds: either a number or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


class HTTPTransport:
    """Posts to ``{base_url}/batch`` with httpx (imported here, on first use)."""

    def __init__(self, base_url: str) -> None:
        import httpx  # lazily: a disabled SDK never pays for it

        self._httpx = httpx
        self._url = httpx.URL(base_url.rstrip("/") + "/batch")
        # The transport, not httpx.Client: the client logs every request at INFO on the
        # "httpx" logger, which would put X-Ray's own traffic in the user's logs.
        self._transport = httpx.HTTPTransport(retries=0)

    def send(self, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        httpx = self._httpx
        request = httpx.Request(
            "POST",
            self._url,
            content=body,
            headers=dict(headers),
            extensions={
                "timeout": {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}
            },
        )
        try:
            response = self._transport.handle_request(request)
            try:
                received = bytearray()
                for chunk in response.stream:  # type: ignore[union-attr]
                    received.extend(chunk)
                    if len(received) > _MAX_RESPONSE_BYTES:
                        break
            finally:
                response.close()
        except httpx.TimeoutException as exc:
            return Response(None, None, f"timeout: {type(exc).__name__}")
        except httpx.HTTPError as exc:
            return Response(None, None, f"{type(exc).__name__}: {exc}")
        except OSError as exc:
            return Response(None, None, f"{type(exc).__name__}: {exc}")
        message = ""
        if response.status_code >= 400:
            message = _error_message(bytes(received))
        return Response(
            response.status_code, parse_retry_after(response.headers.get("retry-after")), message
        )

    def close(self) -> None:
        self._transport.close()


def _error_message(body: bytes) -> str:
    try:
        data = json.loads(body)
    except Exception:
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict):
        parts = [str(data.get("message") or data.get("detail") or "")]
        for field in data.get("fields") or []:
            if isinstance(field, dict):
                parts.append(f"{field.get('field')}: {field.get('message')}")
        return "; ".join(p for p in parts if p)[:500]
    return str(data)[:200]


class _Part(NamedTuple):
    kind: str  # "runs" or "steps"
    body: bytes
    items: int = 1  # buffered items it stands for: a run's start and end travel as one


_BODY = operator.itemgetter(1)  # _Part.body


def _count(parts: list[_Part]) -> int:
    return sum(p.items for p in parts)


class Sender:
    """The one daemon thread per client that empties the buffer into the transport."""

    def __init__(
        self,
        config: SDKConfig,
        buffer: Buffer,
        counters: Counters,
        encoder: Encoder,
        transport_factory: Callable[[], Transport],
        headers: Mapping[str, str],
    ) -> None:
        self._config = config
        self._buffer = buffer
        self._counters = counters
        self._encoder = encoder
        self._transport_factory = transport_factory
        self._headers = dict(headers)
        self._transport: Transport | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._cond = threading.Condition()
        self._requested = 0
        self._completed = 0
        self._stopping = False
        self._deadline: float | None = None
        self._interrupt = threading.Event()
        self._warned: set[str] = set()  # each problem is logged once per client
        # Set once the transport exists; fork() waits for it (see _client), because a child
        # forked while this thread imports httpx would inherit a half-imported module.
        self.ready = threading.Event()

    # -- called from user threads -----------------------------------------------------

    def start(self) -> None:
        """Start the thread (idempotent; the buffer calls this on its first item)."""
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._run, name="xray-sender", daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued before this call was sent or dropped."""
        if not self.alive:
            return len(self._buffer) == 0
        with self._cond:
            self._requested += 1
            wanted = self._requested
        self._buffer.wake.set()
        deadline = time.monotonic() + max(0.0, timeout)
        with self._cond:
            while self._completed < wanted:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self.alive:
                    return self._completed >= wanted
                self._cond.wait(remaining)
        return True

    def stop(self, timeout: float) -> bool:
        """Send what is queued within ``timeout`` s, then stop the thread."""
        deadline = time.monotonic() + max(0.0, timeout)
        with self._lock:
            self._stopping = True
            self._deadline = deadline
            thread = self._thread
        self._interrupt.set()
        self._buffer.wake.set()
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        finished = thread is None or not thread.is_alive()
        left = self._buffer.clear()
        if left:
            self._counters.drop("shutdown", left)
        if finished and self._transport is not None:
            try:
                self._transport.close()
            except Exception as exc:
                internal_error(exc)
        return finished and not left

    # -- the thread --------------------------------------------------------------------

    def _run(self) -> None:
        try:
            self._transport = self._transport_factory()
        except Exception as exc:
            self._transport = None
            self._warn_once(
                "transport", "xray: cannot create the transport, nothing will be sent: %s", exc
            )
        finally:
            self.ready.set()
        interval = self._config.flush_interval
        while True:
            try:
                self._buffer.wake.wait(interval)
                self._buffer.wake.clear()
                with self._cond:
                    wanted = self._requested
                self._drain()
                with self._cond:
                    self._completed = max(self._completed, wanted)
                    self._cond.notify_all()
                if self._stopping:
                    return
            except Exception as exc:  # the sender must outlive its own bugs
                internal_error(exc)
                time.sleep(0.1)

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if key not in self._warned:
            self._warned.add(key)
            logger.warning(message, *args)

    def _expired(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _drain(self) -> None:
        # Take only what is there now, so a flush completes even under constant load.
        pending = len(self._buffer)
        size = self._buffer.batch_size
        while pending > 0:
            items = self._buffer.take(min(size, pending))
            if not items:
                return
            pending -= len(items)
            if self._expired():
                self._counters.drop("shutdown", len(items))
                continue
            if self._transport is None:
                self._counters.drop("no_transport", len(items))
                continue
            for batch in self._encode(items):
                self._deliver(batch)

    def _encode(self, items: list[Any]) -> list[list[_Part]]:
        """Serialise items (a run once, in its latest state) and pack them into batches."""
        parts: list[_Part] = []
        runs = [item for item in items if isinstance(item, Run)]
        if runs:
            run_updates: dict[int, int] = {}
            for item in runs:
                run_updates[id(item)] = run_updates.get(id(item), 0) + 1
            for item in runs:
                updates = run_updates.pop(id(item), 0)
                if updates:
                    self._encode_one("runs", self._encoder.run, item, parts, updates)
        step_json = self._encoder.step_json
        new_part = tuple.__new__
        append = parts.append
        with self._encoder.batch():  # previews of the same objects are rendered once
            for item in items:
                if isinstance(item, Run):
                    continue
                try:
                    text = step_json(item)
                except Exception as exc:  # a bug in the fast path: the general one decides
                    internal_error(exc)
                    text = None
                if text is not None:
                    try:
                        # tuple.__new__: a NamedTuple's own __new__ is Python code.
                        append(new_part(_Part, ("steps", text.encode("utf-8"), 1)))
                        continue
                    except UnicodeEncodeError:  # a lone surrogate: the general path drops it
                        pass
                self._encode_one("steps", self._encoder.step, item, parts, 1)
        if sum(map(len, map(_BODY, parts))) + len(parts) <= MAX_BATCH_BYTES:
            return [parts] if parts else []  # the usual case: one batch
        batches: list[list[_Part]] = []
        current: list[_Part] = []
        size = 0
        for part in parts:
            if current and size + len(part.body) > MAX_BATCH_BYTES:
                batches.append(current)
                current, size = [], 0
            current.append(part)
            size += len(part.body) + 1
        if current:
            batches.append(current)
        return batches

    def _encode_one(
        self,
        kind: str,
        build: Callable[[Any], dict[str, Any] | None],
        item: Any,
        out: list[_Part],
        items: int,
    ) -> None:
        try:
            data = build(item)
            if data is None:
                self._counters.drop("redacted", items)
                return
            out.append(_Part(kind, _compact.encode(data).encode("utf-8"), items))
        except Exception as exc:
            internal_error(exc)
            self._warn_once(
                "encode", "xray: could not encode a %s; it was dropped: %r", kind[:-1], exc
            )
            self._counters.drop("serialization", items)

    def _body(self, parts: list[_Part]) -> bytes:
        runs = b'{"runs":[' + b",".join([p[1] for p in parts if p[0] == "runs"]) + b'],"steps":['
        steps = b",".join([p[1] for p in parts if p[0] == "steps"])
        if not self._config.compress:
            return runs + steps + b"]}"
        # Level 1: batches of similar steps compress to ~3% at level 1 and ~2.4% at 5,
        # for half the CPU (measured with bench/sdk_overhead.py); the CPU is the user's.
        # The pieces are fed to one compressor rather than joined into one more copy of
        # the batch first: that copy, and the separate CRC pass of gzip.compress, cost
        # about as much as the compression itself (fresh pages for a new large buffer).
        gz = zlib.compressobj(1, zlib.DEFLATED, 31)  # wbits 31: a gzip stream
        return gz.compress(runs) + gz.compress(steps) + gz.compress(b"]}") + gz.flush()

    def _timeout(self) -> float:
        timeout = self._config.request_timeout
        if self._deadline is not None:
            timeout = min(timeout, max(0.05, self._deadline - time.monotonic()))
        return timeout

    def _sleep(self, seconds: float) -> None:
        if self._deadline is not None:
            seconds = min(seconds, max(0.0, self._deadline - time.monotonic()))
        if seconds > 0:
            self._interrupt.wait(seconds)

    def _deliver(self, parts: list[_Part]) -> None:
        transport = self._transport
        assert transport is not None
        attempt = 0
        while True:
            if self._expired():
                self._counters.drop("shutdown", _count(parts))
                return
            response = transport.send(self._body(parts), self._headers, self._timeout())
            status = response.status
            if status is not None and 200 <= status < 300:
                self._counters.add(sent=_count(parts))
                return
            if status in (400, 413, 422):
                self._split(parts, status, response.message)
                return
            if status is not None and status != 429 and status < 500 and status != 408:
                self._counters.drop("http_4xx", _count(parts))
                self._counters.add(failed=1)
                self._warn_once(
                    f"http-{status}",
                    "xray: the X-Ray API answered %s (%s); dropping what it refused",
                    status,
                    response.message or "no message",
                )
                return
            reason = "network" if status is None else "http_429" if status == 429 else "http_5xx"
            if attempt >= self._config.max_retries or self._expired():
                self._counters.drop(reason if not self._expired() else "shutdown", _count(parts))
                self._counters.add(failed=1)
                self._warn_once(
                    f"give-up-{reason}",
                    "xray: could not send to the X-Ray API after %d attempts (%s); dropping",
                    attempt + 1,
                    response.message or status,
                )
                return
            delay = random.uniform(0, min(MAX_BACKOFF, BASE_BACKOFF * 2**attempt))
            if status == 429 and response.retry_after is not None:
                delay = min(MAX_RETRY_AFTER, max(delay, response.retry_after))
            attempt += 1
            self._counters.add(retried=1)
            logger.debug("xray: retry %d in %.2fs after %s", attempt, delay, reason)
            self._sleep(delay)

    def _split(self, parts: list[_Part], status: int, message: str) -> None:
        if len(parts) > 1:
            middle = len(parts) // 2
            self._deliver(parts[:middle])
            self._deliver(parts[middle:])
            return
        reason = "too_large" if status == 413 else "invalid"
        self._counters.drop(reason, _count(parts))
        self._counters.add(failed=1)
        self._warn_once(
            f"split-{status}",
            "xray: the X-Ray API refused a %s with %s (%s); dropped it",
            parts[0].kind[:-1],
            status,
            message or "no message",
        )
