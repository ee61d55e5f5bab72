"""Test helpers: see exactly what a pipeline recorded, without a server or a network.

``InMemoryTransport`` receives the same gzip'd JSON batches the HTTP transport would
post (it decodes them), so assertions see the real wire format. ``recording()`` wires one
into a fresh default client for the duration of a ``with`` block.

Example:
    >>> from xray.sdk.testing import recording
    >>> with recording() as rec:
    ...     keep_cheap([{"price": 5}, {"price": 50}])
    >>> rec.step("keep_cheap")["output_count"]
    1
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from xray.sdk._client import XRayClient
from xray.sdk._context import runtime
from xray.sdk._sender import Response
from xray.shared import DecisionColumnsIn

__all__ = ["InMemoryTransport", "Recording", "recording"]

_DECISION_DEFAULTS: dict[str, Any] = {"reason": None, "score": None, "rank": None, "attributes": {}}


class InMemoryTransport:
    """A transport that keeps every batch in memory; optionally answers with set statuses.

    Args:
        statuses: HTTP statuses to answer, in order, before answering 200 forever
            (e.g. ``[503, 503]`` to exercise retries).

    Example:
        >>> transport = InMemoryTransport()
        >>> client = XRayClient(transport=transport)
        >>> client.flush(); transport.steps  # doctest: +SKIP
        []
    """

    def __init__(self, statuses: Iterable[int] = ()) -> None:
        self._lock = threading.Lock()
        self._statuses = list(statuses)
        self.batches: list[dict[str, Any]] = []
        self.requests: list[dict[str, str]] = []

    def send(self, body: bytes, headers: Mapping[str, str], timeout: float) -> Response:
        with self._lock:
            self.requests.append(dict(headers))
            if self._statuses:
                return Response(self._statuses.pop(0), None, "scripted answer")
            raw = gzip.decompress(body) if headers.get("Content-Encoding") == "gzip" else body
            self.batches.append(json.loads(raw))
        return Response(200)

    def close(self) -> None:
        return None

    @property
    def runs(self) -> list[dict[str, Any]]:
        """Each run once, in its latest state, in the order first seen."""
        latest: dict[str, dict[str, Any]] = {}
        with self._lock:
            for batch in self.batches:
                for run in batch.get("runs", []):
                    latest[run["id"]] = run
        return list(latest.values())

    @property
    def run_updates(self) -> list[dict[str, Any]]:
        """Every run state sent, in order (a run is sent at its start and at its end)."""
        with self._lock:
            return [run for batch in self.batches for run in batch.get("runs", [])]

    @property
    def steps(self) -> list[dict[str, Any]]:
        """Every step sent, in the order received.

        Decisions are shown one by one with every field, as the server stores them: the
        columnar blocks (``decision_columns``) are unfolded after the listed decisions, and
        a decision's ``reason``, ``score``, ``rank`` and ``attributes`` take their defaults
        (null / {}) when the wire leaves them out.
        """
        with self._lock:
            steps = [s for batch in self.batches for s in batch.get("steps", [])]
        return [
            {
                **s,
                "decisions": [
                    {**_DECISION_DEFAULTS, **d}
                    for d in [*s.get("decisions", ()), *_unfold(s.get("decision_columns", ()))]
                ],
            }
            for s in steps
        ]

    def step(self, name: str) -> dict[str, Any]:
        """The one step called ``name`` (AssertionError if there is not exactly one)."""
        found = [s for s in self.steps if s["name"] == name]
        assert len(found) == 1, f"expected one step {name!r}, found {len(found)}"
        return found[0]

    def decisions(self, step_name: str) -> list[dict[str, Any]]:
        """The decisions of the one step called ``step_name``."""
        decisions: list[dict[str, Any]] = self.step(step_name)["decisions"]
        return decisions

    def clear(self) -> None:
        with self._lock:
            self.batches.clear()
            self.requests.clear()


def _unfold(blocks: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The decisions of ``decision_columns`` blocks one by one (what the server stores)."""
    return [
        row.model_dump(mode="json")
        for block in blocks
        for row in DecisionColumnsIn.model_validate(block).rows()
    ]


class Recording:
    """What ``recording()`` yields: the client and its in-memory transport."""

    def __init__(self, client: XRayClient, transport: InMemoryTransport) -> None:
        self.client = client
        self.transport = transport

    def flush(self) -> None:
        """Deliver everything recorded so far to the transport."""
        self.client.flush(timeout=10)

    @property
    def runs(self) -> list[dict[str, Any]]:
        self.flush()
        return self.transport.runs

    @property
    def steps(self) -> list[dict[str, Any]]:
        self.flush()
        return self.transport.steps

    def step(self, name: str) -> dict[str, Any]:
        self.flush()
        return self.transport.step(name)

    def decisions(self, step_name: str) -> list[dict[str, Any]]:
        self.flush()
        return self.transport.decisions(step_name)


@contextmanager
def recording(**client_kwargs: Any) -> Iterator[Recording]:
    """Record into memory with a fresh default client; restore the previous one after.

    Keyword arguments go to ``XRayClient`` (``default_detail="full"``, ``redact=...``).

    Example:
        >>> with recording(default_detail="full") as rec:
        ...     price_filter(candidates, max_price=60)  # doctest: +SKIP
        >>> rec.decisions("price_filter")[0]["reason"]  # doctest: +SKIP
        'price_above_max'
    """
    previous = (runtime.client, runtime.resolved)
    transport = client_kwargs.pop("transport", None) or InMemoryTransport()
    client = XRayClient(transport=transport, **client_kwargs)
    try:
        yield Recording(client, transport)
    finally:
        client.shutdown(timeout=10)
        runtime.client, runtime.resolved = previous
