"""The background sender: one thread that encodes, and ``max_in_flight`` that post.

This is the only module that imports ``httpx``, and only when the threads start, so a
process where X-Ray is disabled never loads it. Transport errors are translated into
loss reasons here and nowhere else.

The ``xray-sender`` thread takes recorded items from the buffer, encodes them into the
open batch and seals it when it reaches ``TARGET_BYTES`` of JSON, or when a request is
idle (so batches grow while the API is busy and stay small when it is not). Sealed
batches wait in the ``Outbox`` (memory, then the disk spool). Each ``xray-post-N``
thread takes the oldest batch and posts it (``POST {base_url}/batch``, gzip'd JSON,
keep-alive connections):

- 2xx: sent.
- connection error, timeout, 429, 5xx: retried with exponential backoff and full jitter
  (0.5 s doubling, capped at 10 s; a 429's ``Retry-After`` is honoured up to 60 s) for
  ``max_retry_seconds`` (and at most ``max_retries`` times, when set), then dropped
  (``network`` / ``http_5xx`` / ``http_429``). Meanwhile the API counts as away and
  waiting batches go to the spool. A timeout after the request was sent leaves its fate
  unknown: it is retried like the rest, and since the server upserts on the client's
  ids, a batch it had stored is stored once.
- 413: the batch is split in halves and each half sent; a single item still too large
  is dropped (``too_large``). 400 / 422 are split the same way, so one invalid item
  cannot sink its neighbours (``invalid``).
- any other 4xx (401, 403, 404 ...): dropped (``http_4xx``), logged once per status.

Exit passes on the remaining time: requests get at most what is left, and what is not
sent by then goes to the spool within the same deadline (dropped as ``shutdown`` only
without one).
"""

from __future__ import annotations

import email.utils
import json
import random
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple, Protocol

from xray.sdk._batches import Batch, Packer, split
from xray.sdk._buffer import Buffer, Counters
from xray.sdk._guard import internal_error, logger
from xray.sdk._outbox import Outbox
from xray.sdk._payload import Encoder
from xray.sdk._spool import Spool
from xray.shared import SDKConfig

__all__ = ["HTTPTransport", "Response", "Sender", "Transport"]

MAX_BACKOFF = 10.0
MAX_RETRY_AFTER = 60.0
BASE_BACKOFF = 0.5
_MAX_RESPONSE_BYTES = 64 * 1024
_CHUNK = 256  # items encoded per hold of the encode lock
_MAX_TIMEOUT = 120.0
_ASSIST_WAIT = 0.05


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
    ``send`` is called from up to ``max_in_flight`` threads at once (set it to 1 for a
    transport that is not thread-safe).

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

    def __init__(self, base_url: str, connections: int = 4) -> None:
        import httpx  # lazily: a disabled SDK never pays for it

        self._httpx = httpx
        self._url = httpx.URL(base_url.rstrip("/") + "/batch")
        # The transport, not httpx.Client: the client logs every request at INFO on the
        # "httpx" logger, which would put X-Ray's own traffic in the user's logs. Its
        # pool is thread-safe and keeps one connection alive per request in flight.
        limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
        self._transport = httpx.HTTPTransport(retries=0, limits=limits)

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


def _reason(status: int | None) -> str:
    return "network" if status is None else "http_429" if status == 429 else "http_5xx"


class Sender:
    """The delivery threads of one client: one encodes, ``max_in_flight`` post."""

    def __init__(
        self,
        config: SDKConfig,
        buffer: Buffer,
        counters: Counters,
        encoder: Encoder,
        transport_factory: Callable[[], Transport],
        headers: Mapping[str, str],
        spool_opener: Callable[[], Spool | None] = lambda: None,
    ) -> None:
        self._config = config
        self._buffer = buffer
        self._counters = counters
        self._transport_factory = transport_factory
        self._spool_opener = spool_opener
        self._headers = dict(headers)
        self._plain_headers = {k: v for k, v in headers.items() if k != "Content-Encoding"}
        self._transport: Transport | None = None
        self._thread: threading.Thread | None = None
        self._workers: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._encode_lock = threading.Lock()
        self._packer = Packer(encoder, config.compress, counters.drop, self._warn_once)
        self._opened = 0.0  # when the open batch got its first item
        self.outbox = Outbox(config.max_buffer_bytes, counters, None, self._warn_once)
        self._stopping = False
        self._deadline: float | None = None
        self._interrupt = threading.Event()
        self._failures = 0
        self._warned: set[str] = set()  # each problem is logged once per client
        self._warned_lock = threading.Lock()
        # Set once the transport exists; fork() waits for it (see _client), because a child
        # forked while this thread imports httpx would inherit a half-imported module.
        self.ready = threading.Event()

    # -- called from user threads -----------------------------------------------------

    def start(self) -> None:
        """Start the threads (idempotent; the buffer calls this on its first item)."""
        with self._lock:
            if self._thread is not None or self._stopping:
                return
            self._thread = threading.Thread(target=self._run, name="xray-sender", daemon=True)
            self._thread.start()

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def open_bytes(self) -> int:
        return self._packer.pending_bytes

    def assist(self) -> None:
        """On a recording thread past ``buffer_size``: encode the oldest items here."""
        if not self.ready.is_set():
            self._buffer.wake.set()
            return
        if not self._encode_lock.acquire(blocking=False):
            # The sender is encoding a chunk. Far past the bound, wait for it (a chunk's
            # CPU time; it holds the lock for no I/O) rather than let objects pile up.
            far = len(self._buffer) >= 2 * self._buffer.capacity
            if not far or not self._encode_lock.acquire(timeout=_ASSIST_WAIT):
                self._buffer.wake.set()
                return
        try:
            # Added under the lock, so that a flush never misses a batch being sealed;
            # without disk I/O on this (the user's) thread.
            for batch in self._pack(self._buffer.take(self._config.batch_size)):
                self.outbox.add(batch, io=False)
        finally:
            self._encode_lock.release()
        self._buffer.wake.set()

    def flush(self, timeout: float) -> bool:
        """Wait until everything recorded before this call was sent or dropped."""
        deadline = time.monotonic() + max(0.0, timeout)
        if not self.alive:
            return len(self._buffer) == 0
        if not self.ready.wait(max(0.0, deadline - time.monotonic())):
            return False
        self._pack_all(deadline)
        self._seal()
        self.outbox.write_pending()
        mark = Batch.current_seq()
        return self.outbox.wait_settled(mark, deadline)

    def persist(self, timeout: float) -> int:
        """Encode what is waiting and write it to the spool; return the items left in memory."""
        deadline = time.monotonic() + max(0.0, timeout)
        if self.alive and self.ready.wait(max(0.0, deadline - time.monotonic())):
            self._pack_all(deadline)
            self._seal()
        return self.outbox.persist()

    def stop(self, timeout: float) -> bool:
        """Send what is waiting within ``timeout`` s, spool the rest, then stop the threads."""
        now = time.monotonic()
        deadline = now + max(0.0, timeout)
        with self._lock:
            self._stopping = True
            thread = self._thread
        self._buffer.accepting = False
        spool = self.outbox.spool
        reserve = min(0.5, timeout / 4) if spool is not None else 0.0
        send_until = deadline - reserve
        self._deadline = send_until
        delivered = True
        if thread is not None and self.ready.wait(max(0.0, send_until - time.monotonic())):
            self._pack_all(send_until)
            self._seal()
            delivered = self.outbox.wait_settled(Batch.current_seq(), send_until)
        left = self._buffer.clear()
        if left:
            delivered = False
            self._counters.drop("shutdown", left)
        self._interrupt.set()
        self.outbox.close()
        if not delivered:
            self.outbox.persist()
            self._counters.drop("shutdown", self.outbox.drop_memory())
        items, files = self.outbox.spooled_here()
        if files and spool is not None:
            logger.warning(
                "xray: %d recorded item(s) in %d batch(es) are left in the spool %s; the next "
                "process that sends to %s with this spool, or `xray upload`, delivers them",
                items,
                files,
                spool.directory,
                self._config.base_url,
            )
        self._buffer.wake.set()
        for t in [thread, *self._workers]:
            if t is not None:
                t.join(max(0.0, deadline - time.monotonic()))
        finished = thread is None or not any(t.is_alive() for t in [thread, *self._workers])
        if finished and self._transport is not None:
            try:
                self._transport.close()
            except Exception as exc:
                internal_error(exc)
        return delivered and finished

    # -- encoding ----------------------------------------------------------------------

    def _pack(self, items: list[object]) -> list[Batch]:  # holding the encode lock
        if items and not self._packer.pending_items:
            self._opened = time.monotonic()
        return self._packer.add(items) if items else []

    def _pack_all(self, deadline: float | None = None) -> None:
        """Encode what waits in the buffer now (not what arrives meanwhile)."""
        pending = len(self._buffer)
        while pending > 0:
            if deadline is not None and time.monotonic() >= deadline:
                return
            with self._encode_lock:
                items = self._buffer.take(min(_CHUNK, pending))
                for batch in self._pack(items):
                    self.outbox.add(batch, io=False)
            self.outbox.write_pending()  # disk writes outside the encode lock
            if not items:
                return
            pending -= len(items)

    def _seal(self) -> None:
        with self._encode_lock:
            if self._packer.pending_items:
                self.outbox.add(self._packer.seal(), io=False)
        self.outbox.write_pending()

    # -- the encoding thread -----------------------------------------------------------

    def _run(self) -> None:
        try:
            self._transport = self._transport_factory()
        except Exception as exc:
            self._transport = None
            self._warn_once(
                "transport", "xray: cannot create the transport, nothing will be sent: %s", exc
            )
        try:
            self.outbox.spool = self._spool_opener()
        except Exception as exc:
            internal_error(exc)
        config = self._config
        self.outbox.spool_broken = (
            self.outbox.spool is None
            and config.spool_dir is not None
            and config.max_spool_bytes > 0
        )
        for i in range(self._config.max_in_flight if self._transport is not None else 0):
            worker = threading.Thread(target=self._work, name=f"xray-post-{i}", daemon=True)
            self._workers.append(worker)
            worker.start()
        self.ready.set()
        interval = self._config.flush_interval
        while not self._stopping:
            try:
                self._buffer.wake.wait(min(interval, 1.0))
                self._buffer.wake.clear()
                if self._stopping:
                    return
                if self._transport is None:
                    self._counters.drop("no_transport", self._buffer.clear())
                    continue
                self.outbox.write_pending()
                self._pack_all()
                if self._packer.pending_items and (
                    self.outbox.idle > 0 or time.monotonic() - self._opened >= interval
                ):
                    self._seal()
                self.outbox.maybe_rescan()
            except Exception as exc:  # the sender must outlive its own bugs
                internal_error(exc)
                time.sleep(0.1)

    # -- the posting threads -----------------------------------------------------------

    def _work(self) -> None:
        while True:
            batch = self.outbox.take(0.5)
            if batch is None:
                if self.outbox.closed:
                    return
                if self._packer.pending_items:
                    self._buffer.wake.set()  # an idle request: seal the open batch
                continue
            try:
                self._deliver(batch)
            except Exception as exc:  # the sender must outlive its own bugs
                internal_error(exc)
                self.outbox.give_back(batch)
                time.sleep(0.1)

    def _claim(self, key: str) -> bool:
        """Whether this thread is the first to report ``key`` (posting threads race)."""
        with self._warned_lock:
            if key in self._warned:
                return False
            self._warned.add(key)
            return True

    def _warn_once(self, key: str, message: str, *args: object) -> None:
        if self._claim(key):
            logger.warning(message, *args)

    def _timeout(self, batch: Batch) -> float:
        # A server that timed out on this batch may be slow rather than gone: give it
        # longer next time, or a batch it can store only slowly would never be answered.
        timeout: float = min(self._config.request_timeout * 2.0**batch.timeouts, _MAX_TIMEOUT)
        if self._deadline is not None:
            timeout = min(timeout, max(0.05, self._deadline - time.monotonic()))
        return timeout

    def _deliver(self, batch: Batch) -> None:
        transport = self._transport
        assert transport is not None
        if batch.body is None:  # nothing to send (already settled elsewhere)
            self.outbox.done(batch)
            return
        headers = self._headers if batch.encoding == "gzip" else self._plain_headers
        response = transport.send(batch.body, headers, self._timeout(batch))
        status = response.status
        if status is not None and 200 <= status < 300:
            self._counters.add(sent=batch.items)
            self.outbox.done(batch)
            self._failures = 0
            self.outbox.api_back()
            if self.outbox.idle == 0 and self._packer.pending_items:
                self._buffer.wake.set()
            return
        if status in (400, 413, 422):
            self._split(batch, status, response.message)
            return
        if status is not None and status != 429 and status < 500 and status != 408:
            self._give_up(batch, "http_4xx", f"http-{status}", status, response.message)
            return
        self._retry_later(batch, status, response)

    def _retry_later(self, batch: Batch, status: int | None, response: Response) -> None:
        now = time.monotonic()
        if batch.first_failure is None:
            batch.first_failure = now
        reason = _reason(status)
        limit = self._config.max_retries
        # While stopping, requests get only what is left of the shutdown deadline: a batch
        # is never given up then, but left for stop() to write to the spool.
        if not self._stopping and (
            (limit is not None and batch.attempts >= limit)
            or now - batch.first_failure >= self._config.max_retry_seconds
        ):
            detail = (
                f"not sent after {batch.attempts + 1} attempts in "
                f"{now - batch.first_failure:.0f} s: {response.message or status}"
            )
            self._counters.add(failed=1)
            self.outbox.done(batch)
            self._drop(batch, reason, f"give-up-{reason}", detail)
            return
        batch.attempts += 1
        if response.message.startswith("timeout"):
            batch.timeouts = min(batch.timeouts + 1, 8)
        self._failures += 1
        self._counters.add(retried=1)
        delay = random.uniform(0, min(MAX_BACKOFF, BASE_BACKOFF * 2 ** min(self._failures, 16)))
        if status == 429 and response.retry_after is not None:
            delay = min(MAX_RETRY_AFTER, max(delay, response.retry_after))
        logger.debug("xray: retry in %.2fs after %s", delay, response.message or status)
        with self.outbox.cond:
            self.outbox.gate = max(self.outbox.gate, now + delay)
        self.outbox.api_away()
        self.outbox.give_back(batch)

    def _give_up(self, batch: Batch, reason: str, key: str, status: int, message: str) -> None:
        self._counters.add(failed=1)
        self.outbox.done(batch)
        detail = f"the X-Ray API answered {status} ({message or 'no message'})"
        self._drop(batch, reason, key, detail)

    def _drop(self, batch: Batch, reason: str, key: str, detail: str) -> None:
        """Count a loss; one warning per kind, the process's first drop saying what to do."""
        claimed = self._claim(key)
        if not self._counters.drop(reason, batch.items, detail) and claimed:
            logger.warning("xray: dropped %d item(s): %s", batch.items, detail)

    def _split(self, batch: Batch, status: int, message: str) -> None:
        try:
            halves = split(batch)
        except Exception as exc:
            internal_error(exc)
            halves = None
        if halves:
            self.outbox.replace(batch, halves)
            return
        reason = "too_large" if status == 413 else "invalid"
        self._counters.add(failed=1)
        self.outbox.done(batch)
        detail = f"the X-Ray API refused an item with {status} ({message or 'no message'})"
        self._drop(batch, reason, f"split-{status}", detail)


def spool_opener(config: SDKConfig) -> Callable[[], Spool | None]:
    """Opens the configured spool in the sender thread; None (with a warning) if unusable."""

    def open_() -> Spool | None:
        from xray.sdk._spool import default_spool_dir, fallback_spool_dir, open_spool

        setting = config.spool_dir
        if setting is None or config.max_spool_bytes <= 0:
            return None
        if setting != "auto":
            candidates = [Path(setting)]
        else:
            candidates = [default_spool_dir(config.base_url), fallback_spool_dir(config.base_url)]
        problems = []
        for directory in candidates:
            try:
                return open_spool(directory, config.max_spool_bytes, config.base_url)
            except OSError as exc:
                problems.append(f"{directory}: {exc}")
        logger.warning(
            "xray: no usable spool (%s); batches are kept in memory only", "; ".join(problems)
        )
        return None

    return open_
