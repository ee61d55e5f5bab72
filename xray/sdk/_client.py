"""``XRayClient``: configuration, the process default, and the delivery machinery.

Which client records a step:

1. inside ``client.run(...)``: that run's client;
2. otherwise the process default: the most recently constructed ``XRayClient``
   (unless it was built with ``set_default=False``);
3. if no client was ever constructed, the first step or run builds one from config
   (``xray.config.yaml`` upward from the cwd, ``XRAY_*`` variables) exactly once. With no
   config at all that client is disabled and every decorator calls straight through.

A client that cannot be configured never raises: a missing config disables it silently,
an invalid one disables it with one warning on ``logging.getLogger("xray")``.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import inspect
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TypedDict, TypeVar, cast

from xray.sdk import _guard, _ids, _outbox
from xray.sdk._buffer import Buffer, Counters
from xray.sdk._context import runtime
from xray.sdk._guard import guard, internal_error, logger, warn_once
from xray.sdk._payload import Encoder, RedactHook, sdk_info
from xray.sdk._run import RunScope
from xray.sdk._sender import HTTPTransport, Sender, Transport, spool_opener
from xray.sdk._spool import SUFFIX, default_spool_dir, fallback_spool_dir
from xray.shared import ConfigError, ConfigNotFoundError, SDKConfig, load_sdk_config

__all__ = ["ClientStats", "XRayClient", "get_client"]

F = TypeVar("F", bound=Callable[..., Any])

_clients: weakref.WeakSet[XRayClient] = weakref.WeakSet()
_registry_lock = threading.RLock()


class ClientStats(TypedDict):
    """What ``client.stats()`` reports; counts are items (a run update or a step).

    ``queued`` items wait in memory (as objects or encoded), ``buffer_bytes`` is the
    encoded size held in memory (waiting and in flight), ``in_flight`` the requests under
    way, ``spooled`` / ``spool_bytes`` what waits in the disk spool, ``spool_errors`` the
    batches the spool could not take (kept in memory instead).

    ``dropped_by_reason`` keys: ``queue_full`` (memory and spool both full), ``http_4xx``
    (refused, e.g. 401), ``network`` / ``http_5xx`` / ``http_429`` (still failing after
    ``max_retry_seconds``), ``too_large`` (one item over the server's limit), ``invalid``
    (one item the server rejected), ``shutdown`` (not sent by the exit deadline and no
    spool to keep it), ``serialization``, ``redacted`` (the ``redact`` hook returned
    ``None``), ``no_transport``.

    Example:
        >>> client.stats()["sent"]  # doctest: +SKIP
        42
    """

    enabled: bool
    queued: int
    sent: int
    dropped: int
    dropped_by_reason: dict[str, int]
    retried: int
    failed: int
    buffer_bytes: int
    in_flight: int
    spooled: int
    spool_bytes: int
    spool_errors: int


class XRayClient:
    """Records runs, steps and decisions and sends them to the X-Ray API, fail-open.

    Configuration, highest first: keyword arguments > ``XRAY_*`` environment variables >
    ``xray.config.yaml`` (``XRAY_CONFIG`` or found upward from the cwd) > defaults. Any
    ``sdk:`` key of the config file is a keyword argument (``base_url``, ``api_key``,
    ``buffer_size``, ``flush_interval``, ``default_detail``, ``sample_rate`` ...).

    Args:
        config_path: read this config file instead of searching for one.
        transport: where batches go instead of HTTP (``xray.sdk.testing.InMemoryTransport``);
            a client with a transport is enabled even without any config.
        redact: ``redact(kind, item) -> item | None`` called on every run (``kind="run"``)
            and step (``"step"``) wire dict before it leaves the process.
        set_default: make this the client that ``@step`` uses outside ``client.run``.

    Example:
        >>> client = XRayClient(base_url="http://127.0.0.1:8000", api_key="...")
        >>> with client.run("competitor-selection", input=product) as run:  # doctest: +SKIP
        ...     run.set_output(pipeline(product))
    """

    def __init__(
        self,
        *,
        config_path: str | Path | None = None,
        transport: Transport | None = None,
        redact: RedactHook | None = None,
        set_default: bool = True,
        **overrides: Any,
    ) -> None:
        self.enabled = False
        self._config = SDKConfig()
        self._transport = transport
        self._redact = redact
        self._closed = False
        with guard:
            self._config, self.enabled = _configure(config_path, transport, overrides)
        self._default_detail = self._config.default_detail.value
        self._sample_rate = self._config.sample_rate
        self._setup()
        if self.enabled and transport is None:
            with guard:
                if _spool_has_batches(self._config):
                    # What an earlier process left in the spool is sent without waiting
                    # for a step (not in a forked child: its parent sends it).
                    self._buffer.on_first = None
                    self._start()
        with _registry_lock:
            _clients.add(self)
            if set_default:
                runtime.client = self
                runtime.resolved = True
            _refresh_recording()

    def _setup(self) -> None:
        """(Re)build the buffer and sender: at construction and in a forked child."""
        config = self._config
        self._counters = Counters()
        self._sender: Sender | None = None
        self._buffer = Buffer(config.buffer_size, config.batch_size, self._counters, self._start)
        self._submit = self._buffer.put
        if not self.enabled:
            self._buffer.accepting = False

    def _start(self) -> None:
        with guard:
            if self._sender is None:
                self._sender = self._make_sender()
                self._buffer.overflow = self._sender.assist
            self._sender.start()

    def _make_sender(self) -> Sender:
        config = self._config
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "xray-python",
        }
        if config.compress:
            headers["Content-Encoding"] = "gzip"
        if config.api_key:
            headers["Authorization"] = f"Bearer {config.api_key}"
            headers["X-API-Key"] = config.api_key
        transport = self._transport

        def factory() -> Transport:
            if transport is not None:
                return transport
            return HTTPTransport(config.base_url, config.max_in_flight + 1)

        encoder = Encoder(config, self._redact, sdk_info())
        return Sender(
            config, self._buffer, self._counters, encoder, factory, headers, spool_opener(config)
        )

    # -- public API ----------------------------------------------------------------------

    @property
    def config(self) -> SDKConfig:
        """The resolved ``sdk:`` configuration (defaults when disabled)."""
        return self._config

    def run(
        self,
        pipeline: str,
        input: Any = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> RunScope:
        """Open a run: ``with client.run("name") as run:`` or ``@client.run("name")``.

        Example:
            >>> with client.run("competitor-selection", input=product, metadata={"seller": 7}) as run:  # doctest: +SKIP
            ...     run.set_output(best)
        """
        return RunScope(self, str(pipeline) if pipeline else "pipeline", input, metadata)

    def flush(self, timeout: float | None = None) -> bool:
        """Send everything recorded so far; wait at most ``timeout`` s (default: shutdown_timeout).

        Returns True when everything queued before the call was sent or dropped.

        Example:
            >>> client.flush(timeout=5)  # doctest: +SKIP
            True
        """
        try:
            wait = self._config.shutdown_timeout if timeout is None else float(timeout)
            sender = self._sender
            if sender is None:
                return len(self._buffer) == 0
            return sender.flush(wait)
        except Exception as exc:
            internal_error(exc)
            return False

    def shutdown(self, timeout: float | None = None) -> bool:
        """Flush within ``timeout`` s (default: ``shutdown_timeout``), then stop; idempotent.

        Afterwards the client records nothing. Returns True when nothing was left behind.

        Example:
            >>> client.shutdown(timeout=2)  # doctest: +SKIP
            True
        """
        try:
            wait = self._config.shutdown_timeout if timeout is None else float(timeout)
            self._closed = True
            self.enabled = False
            self._buffer.accepting = False
            with _registry_lock:
                _refresh_recording()
            sender = self._sender
            if sender is None:
                left = self._buffer.clear()
                if left:
                    self._counters.drop("shutdown", left)
                return left == 0
            return sender.stop(wait)
        except Exception as exc:
            internal_error(exc)
            return False

    close = shutdown

    def invocation(self, timeout: float | None = None) -> contextlib.AbstractContextManager[None]:
        """``with client.invocation():`` around one serverless invocation (Lambda, Cloud Run job).

        At the end of the block, what the invocation recorded is sent within ``timeout`` s
        (default: ``shutdown_timeout``); what is not sent by then is written to the spool,
        so a platform that freezes the process between invocations loses nothing. The
        block's own exceptions pass through unchanged.

        Example:
            >>> def handler(event, context):  # doctest: +SKIP
            ...     with client.invocation(timeout=2):
            ...         return pipeline(event)
        """
        return _invocation(self, timeout)

    def flush_after(self, timeout: float | None = None) -> Callable[[F], F]:
        """Decorate a serverless handler: ``client.invocation(timeout)`` around each call.

        Example:
            >>> @client.flush_after(timeout=2)  # doctest: +SKIP
            ... def handler(event, context):
            ...     return pipeline(event)
        """

        def decorate(fn: F) -> F:
            if inspect.iscoroutinefunction(fn):

                @functools.wraps(fn)
                async def run_async(*args: Any, **kwargs: Any) -> Any:
                    try:
                        return await fn(*args, **kwargs)
                    finally:
                        self._end_invocation(timeout)

                return cast(F, run_async)

            @functools.wraps(fn)
            def run(*args: Any, **kwargs: Any) -> Any:
                with _invocation(self, timeout):
                    return fn(*args, **kwargs)

            return cast(F, run)

        return decorate

    def _end_invocation(self, timeout: float | None) -> None:
        """Flush for most of ``timeout``, then spool what is left, within ``timeout``."""
        try:
            wait = self._config.shutdown_timeout if timeout is None else float(timeout)
            sender = self._sender
            if sender is None or not self.enabled:
                return
            reserve = min(0.5, wait / 4) if self._config.spool_dir is not None else 0.0
            if not sender.flush(wait - reserve):
                sender.persist(reserve)
        except Exception as exc:
            internal_error(exc)

    def stats(self) -> ClientStats:
        """Delivery counters.

        Example:
            >>> client.stats()["dropped_by_reason"]  # doctest: +SKIP
            {'queue_full': 12}
        """
        counters = self._counters
        sender = self._sender
        outbox = sender.outbox if sender is not None else None
        queued = len(self._buffer)
        delivery = {"buffer_bytes": 0, "in_flight": 0, "spooled": 0, "spool_bytes": 0}
        if sender is not None and outbox is not None:
            queued += outbox.memory_items
            delivery = outbox.describe()
            delivery["buffer_bytes"] += sender.open_bytes
        with counters.lock:
            dropped = dict(counters.dropped)
            return ClientStats(
                enabled=self.enabled,
                queued=queued,
                sent=counters.sent,
                dropped=sum(dropped.values()),
                dropped_by_reason=dropped,
                retried=counters.retried,
                failed=counters.failed,
                buffer_bytes=delivery["buffer_bytes"],
                in_flight=delivery["in_flight"],
                spooled=delivery["spooled"],
                spool_bytes=delivery["spool_bytes"],
                spool_errors=counters.spool_errors,
            )

    def __enter__(self) -> XRayClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.shutdown()

    def __repr__(self) -> str:
        state = "enabled" if self.enabled else "disabled"
        where = "custom transport" if self._transport is not None else self._config.base_url
        return f"<XRayClient {state} {where}>"

    # -- SDK internal --------------------------------------------------------------------

    def _sampled(self) -> bool:
        rate = self._sample_rate
        return rate >= 1.0 or (rate > 0.0 and random.random() < rate)

    def _after_fork_in_child(self) -> None:
        # The parent's queue belongs to the parent (it sends it); its thread and locks
        # did not survive the fork. Start clean; the sender restarts on the next item.
        self._setup()
        if self._closed:
            self._buffer.accepting = False


@contextlib.contextmanager
def _invocation(client: XRayClient, timeout: float | None) -> Iterator[None]:
    try:
        yield
    finally:
        client._end_invocation(timeout)


def _spool_has_batches(config: SDKConfig) -> bool:
    """Whether the configured spool holds batches (one directory listing, no I/O else)."""
    if config.spool_dir is None:
        return False
    if config.spool_dir == "auto":
        folders = [default_spool_dir(config.base_url), fallback_spool_dir(config.base_url)]
    else:
        folders = [Path(config.spool_dir).expanduser()]
    for folder in folders:
        try:
            with os.scandir(folder) as it:
                if any(e.name.endswith(SUFFIX) for e in it):
                    return True
        except OSError:
            continue
    return False


def _configure(
    config_path: str | Path | None, transport: Transport | None, overrides: dict[str, Any]
) -> tuple[SDKConfig, bool]:
    try:
        config = load_sdk_config(config_path, **overrides)
    except ConfigNotFoundError:
        if transport is None:
            logger.debug("xray: no configuration found; the SDK is disabled")
            return SDKConfig(), False
        config = load_sdk_config(config_path, **{"enabled": True, **overrides})
    except ConfigError as exc:
        warn_once(f"config:{exc}", "xray: invalid configuration, X-Ray is disabled: %s", exc)
        return SDKConfig(), False
    except Exception as exc:  # e.g. an unreadable directory while searching
        warn_once(f"config:{exc!r}", "xray: cannot load configuration, X-Ray is disabled: %r", exc)
        return SDKConfig(), False
    return config, config.enabled


def _refresh_recording() -> None:
    runtime.recording = any(c.enabled for c in list(_clients))


def get_client() -> XRayClient:
    """The process's default client, built from config on first use if none was made.

    Example:
        >>> get_client().stats()["enabled"]  # doctest: +SKIP
        False
    """
    client = runtime.client
    if runtime.resolved and client is not None:
        return client  # type: ignore[no-any-return]
    with _registry_lock:
        if not runtime.resolved or runtime.client is None:
            XRayClient()
        return runtime.client  # type: ignore[no-any-return]


def _shutdown_all() -> None:
    """atexit: flush every live client, all within the longest ``shutdown_timeout``."""
    clients = [c for c in list(_clients) if not c._closed]
    if not clients:
        return
    deadline = time.monotonic() + max(c._config.shutdown_timeout for c in clients)
    for client in clients:
        client.shutdown(max(0.0, deadline - time.monotonic()))


def _before_fork() -> None:
    # Let a sender that is still importing httpx finish (bounded): the child would
    # otherwise inherit a half-initialised module and never be able to send.
    for client in list(_clients):
        sender = client._sender
        if sender is not None and sender.alive and not sender.ready.is_set():
            sender.ready.wait(2.0)


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.RLock()
    _guard.reset_after_fork()
    _ids.reset_after_fork()
    _outbox.reset_after_fork()
    for client in list(_clients):
        with guard:
            client._after_fork_in_child()


atexit.register(_shutdown_all)
if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_child=_after_fork_in_child)
