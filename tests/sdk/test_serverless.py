"""Serverless functions: each invocation ends with its data sent (or spooled), bounded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from tests.conftest import free_port
from xray.sdk import XRayClient, step
from xray.sdk.testing import InMemoryTransport


@step(type="transform")
def handle(event: list[int]) -> list[int]:
    return event


def test_flush_after_sends_what_a_handler_recorded_before_it_returns() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, flush_interval=60)

    @client.flush_after(timeout=5)
    def handler(event: list[int]) -> list[int]:
        return handle(event)

    assert handler([1, 2]) == [1, 2]
    assert transport.step("handle")["output_count"] == 2  # no flush() was called


def test_flush_after_works_on_async_handlers_and_lets_their_errors_through() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, flush_interval=60)

    @client.flush_after(timeout=5)
    async def handler(event: list[int]) -> list[int]:
        handle(event)
        raise ValueError("the handler's own error")

    with pytest.raises(ValueError, match="own error"):
        asyncio.run(handler([3]))
    assert transport.step("handle")["output_count"] == 1


def test_an_invocation_with_the_api_away_ends_in_time_with_everything_spooled(
    tmp_path: Path,
) -> None:
    client = XRayClient(
        base_url=f"http://127.0.0.1:{free_port()}", spool_dir=str(tmp_path / "spool")
    )
    started = time.monotonic()
    with client.invocation(timeout=1.0):
        handle([1, 2, 3])
    assert time.monotonic() - started < 30  # bounded (the bound itself is the timeout)
    stats = client.stats()
    assert stats["queued"] == 0 and stats["buffer_bytes"] == 0 and stats["dropped"] == 0
    assert stats["spooled"] == 3  # the implicit run's start and end, and the step
    assert list((tmp_path / "spool").glob("*.xray"))
    client.shutdown(1)
