"""The dashboard links a traced run to the user's tracing UI when
``api.trace_url_template`` is set (real server, real Chromium)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from playwright.sync_api import sync_playwright

from tests._servers import RunningServer, api_server
from tests.otlp.conftest import KEY

pytestmark = [pytest.mark.slow, pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TEMPLATE = "https://tracing.example/trace/{trace_id}?span={span_id}"


@pytest.fixture
def traced_server(tmp_path: Path) -> Iterator[RunningServer]:
    if not CHROMIUM.exists():
        pytest.skip("needs /usr/bin/chromium")
    with api_server(
        f"sqlite+aiosqlite:///{tmp_path / 'link.db'}",
        workdir=tmp_path,
        api_keys=(KEY,),
        extra_env={"XRAY_TRACE_URL_TEMPLATE": TEMPLATE},
    ) as server:
        yield server


def test_a_traced_run_links_to_the_trace(traced_server: RunningServer) -> None:
    request = ExportTraceServiceRequest()
    span = (
        request.resource_spans.add()
        .scope_spans.add()
        .spans.add(
            trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex("00f067aa0ba902b7"), name="ranking"
        )
    )
    span.start_time_unix_nano = time.time_ns()
    span.end_time_unix_nano = span.start_time_unix_nano + 1_000_000
    answer = httpx.post(
        f"{traced_server.base_url}/v1/traces",
        content=request.SerializeToString(),
        headers={"Content-Type": "application/x-protobuf", "X-API-Key": KEY},
    )
    assert answer.status_code == 200
    tracing = httpx.get(f"{traced_server.base_url}/tracing", headers={"X-API-Key": KEY})
    assert tracing.json() == {"trace_url_template": TEMPLATE}

    run_id = "4bf92f35-77b3-4da6-a3ce-929d0e0e4736"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            context = browser.new_context()
            context.add_init_script(f"window.localStorage.setItem('xray.apiKey', {KEY!r});")
            page = context.new_page()
            page.goto(f"{traced_server.base_url}/#/runs/{run_id}")
            link = page.locator("#trace-link")
            link.wait_for(timeout=15_000)
            # The run's own metadata has no span id (a run is a trace): only the trace id.
            assert link.get_attribute("href") == f"https://tracing.example/trace/{TRACE}?span="
            assert link.get_attribute("target") == "_blank"
        finally:
            browser.close()
