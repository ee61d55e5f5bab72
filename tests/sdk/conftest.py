"""Every SDK test starts with no default client and leaves none behind."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from xray.sdk import _client
from xray.sdk._context import runtime
from xray.sdk.testing import Recording, recording


@pytest.fixture(autouse=True)
def fresh_sdk(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    # Each test spools into its own folder, never the user's cache.
    monkeypatch.setenv("XRAY_SPOOL_DIR", str(tmp_path / "spool"))
    saved = (runtime.client, runtime.resolved, runtime.recording)
    before = set(_client._clients)
    runtime.client, runtime.resolved = None, False
    _client._refresh_recording()
    yield
    for client in set(_client._clients) - before:
        client.shutdown(timeout=5)
    runtime.client, runtime.resolved, runtime.recording = saved


@pytest.fixture
def rec() -> Iterator[Recording]:
    """Record into memory with a fresh default client (flush_interval long: flush() drives)."""
    with recording(flush_interval=60) as r:
        yield r
