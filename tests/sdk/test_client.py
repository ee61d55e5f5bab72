"""How a client is configured and chosen, and what it reports; never raising."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from xray.sdk import XRayClient, current_step, get_client, step
from xray.sdk._context import runtime
from xray.sdk.testing import InMemoryTransport


@step(type="filter")
def keep_even(items: list[int]) -> list[int]:
    return [i for i in items if i % 2 == 0]


def test_no_config_means_disabled_silently(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="xray")
    client = XRayClient()
    assert not client.enabled
    assert keep_even([1, 2]) == [2]
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert client.stats() == {
        "enabled": False,
        "queued": 0,
        "sent": 0,
        "dropped": 0,
        "dropped_by_reason": {},
        "retried": 0,
        "failed": 0,
        "buffer_bytes": 0,
        "in_flight": 0,
        "spooled": 0,
        "spool_bytes": 0,
        "spool_errors": 0,
    }


def test_an_invalid_config_disables_with_exactly_one_warning(
    clean_environment: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (clean_environment / "xray.config.yaml").write_text("sdk:\n  buffer_size: -5\n")
    XRayClient()
    XRayClient()
    assert keep_even([1, 2]) == [2]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and r.name == "xray"]
    assert len(warnings) == 1
    assert "sdk.buffer_size" in warnings[0].getMessage()


def test_unknown_keyword_arguments_disable_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    client = XRayClient(base_url="http://127.0.0.1:9", flush_intervall=1)
    assert not client.enabled
    assert "flush_intervall" in caplog.text


def test_keyword_arguments_override_file_and_environment(
    clean_environment: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (clean_environment / "xray.config.yaml").write_text(
        "sdk:\n  base_url: http://file.invalid\n  flush_interval: 9\n  api_key: from-file\n"
    )
    monkeypatch.setenv("XRAY_API_KEY", "from-env")
    client = XRayClient(flush_interval=0.5)
    assert client.enabled
    assert client.config.base_url == "http://file.invalid"
    assert client.config.api_key == "from-env"
    assert client.config.flush_interval == 0.5


def test_enabled_false_in_config_disables(clean_environment: Path) -> None:
    (clean_environment / "xray.config.yaml").write_text("sdk:\n  enabled: false\n")
    assert not XRayClient().enabled


def test_the_first_step_builds_the_default_client_from_config_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("XRAY_BASE_URL", "http://127.0.0.1:9")
    assert not runtime.resolved
    keep_even([2])
    client = get_client()
    assert client.enabled and client.config.base_url == "http://127.0.0.1:9"
    keep_even([2])
    assert get_client() is client
    assert client.stats()["queued"] + client.stats()["sent"] + client.stats()["dropped"] >= 1


def test_the_most_recent_client_is_the_default_unless_it_opts_out() -> None:
    first = XRayClient(transport=InMemoryTransport())
    assert get_client() is first
    second = XRayClient(transport=InMemoryTransport())
    assert get_client() is second
    XRayClient(transport=InMemoryTransport(), set_default=False)
    assert get_client() is second


def test_a_run_records_with_its_own_client_even_when_not_the_default() -> None:
    default_transport, own_transport = InMemoryTransport(), InMemoryTransport()
    XRayClient(transport=default_transport)
    own = XRayClient(transport=own_transport, set_default=False, flush_interval=60)
    with own.run("own"):
        keep_even([1, 2])
    own.flush(5)
    get_client().flush(5)
    assert [s["name"] for s in own_transport.steps] == ["keep_even"]
    assert default_transport.steps == []


def test_flush_and_shutdown_are_safe_twice_and_shutdown_stops_recording() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, flush_interval=60)
    keep_even([2])
    assert client.flush(5) and client.flush(5)
    assert client.shutdown(5) and client.shutdown(5)
    assert keep_even([4]) == [4]
    with client.run("after-shutdown") as run:
        assert not run.recording
    assert len(transport.steps) == 1
    assert not current_step().recording


def test_a_client_is_a_context_manager_that_shuts_down() -> None:
    transport = InMemoryTransport()
    with XRayClient(transport=transport) as client:
        keep_even([2])
    assert not client.enabled and len(transport.steps) == 1


def test_a_burst_past_buffer_size_is_encoded_on_the_recording_thread_not_dropped() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, buffer_size=5, batch_size=5, flush_interval=60)
    with client.run("flood"):
        for i in range(50):
            keep_even([i])
    stats = client.stats()
    assert stats["dropped"] == 0
    assert stats["queued"] + stats["sent"] >= 51
    assert client.flush(5)
    after = client.stats()
    assert after["queued"] == 0 and after["dropped"] == 0
    assert after["sent"] == 52  # 50 steps + the run's start and end
    assert len(transport.steps) == 50


def test_top_level_names_are_the_sdk_public_surface() -> None:
    import xray.sdk

    assert set(xray._SDK_NAMES) == set(xray.sdk.__all__)
    for name in xray.sdk.__all__:
        assert getattr(xray, name) is getattr(xray.sdk, name)


def test_a_disabled_sdk_does_not_import_httpx() -> None:
    code = (
        "import sys\n"
        "from xray import step\n"
        "@step(type='filter')\n"
        "def f(x): return x\n"
        "f([1])\n"
        "print('httpx' in sys.modules)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd="/"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
