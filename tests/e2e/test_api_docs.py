"""/docs (Swagger UI) and /redoc render in real Chromium with no network but the server's.

Every request the pages make to another host is refused, as on a machine offline or
behind a proxy that allows nothing out: the pages still show the API, because their
scripts and styles come from the X-Ray package itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests._servers import RunningServer, api_server
from tests.conftest import IN_CI

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.exists():
    if IN_CI:
        pytest.fail(
            f"{CHROMIUM} is missing; under CI=true the browser tests must run", pytrace=False
        )
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

from playwright.sync_api import Page, Route, expect, sync_playwright  # noqa: E402

expect.set_options(timeout=15_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("api-docs")
    # Keys enforced: the documentation pages and their assets need none.
    with api_server(
        f"sqlite+aiosqlite:///{workdir / 'x.db'}", workdir=workdir, api_keys=("k-docs",)
    ) as running:
        yield running


@pytest.fixture
def offline_page() -> Iterator[tuple[Page, list[str]]]:
    """A page whose every request to a host other than 127.0.0.1 is refused; the refused
    ones are noted, except images (ReDoc's footer shows Redocly's logo from their site,
    a decoration the page does without)."""
    refused: list[str] = []

    def route(r: Route) -> None:
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            r.continue_()
        else:
            if r.request.resource_type != "image":
                refused.append(f"{r.request.resource_type} {r.request.url}")
            r.abort()

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        context = browser.new_context()
        context.route("**/*", route)
        page = context.new_page()
        page.set_default_timeout(15_000)
        yield page, refused
        browser.close()


def test_the_docs_pages_name_no_other_host(server: RunningServer) -> None:
    for path in ("/docs", "/redoc"):
        html = httpx.get(f"{server.base_url}{path}", timeout=10).text
        assert "cdn" not in html.lower() and "https://" not in html, (path, html)


def test_swagger_ui_renders_offline(
    server: RunningServer, offline_page: tuple[Page, list[str]]
) -> None:
    page, refused = offline_page
    page.goto(f"{server.base_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("X-Ray")
    # The operations are listed, e.g. the runs query.
    expect(page.locator(".opblock-summary-path", has_text="/runs").first).to_be_visible()
    assert not refused, refused


def test_redoc_renders_offline(server: RunningServer, offline_page: tuple[Page, list[str]]) -> None:
    page, refused = offline_page
    page.goto(f"{server.base_url}/redoc")
    expect(page.locator("h1", has_text="X-Ray").first).to_be_visible()
    expect(page.get_by_text("/runs", exact=False).first).to_be_attached()
    assert not refused, refused
