"""The dashboard, end to end: real headless Chromium, a real API server, the real demo data.

One server (SQLite, API keys enforced) is started for the module and filled by the demo
pipelines through the SDK, exactly as ``xray demo`` does. Each test drives the browser the
way a person would and asserts on what the page shows; every page is also saved as a
screenshot under ``test-artifacts/dashboard/`` for a person to look at.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest

from tests._servers import RunningServer, api_server
from tests.conftest import IN_CI
from xray.demo import DemoSummary, run_demos

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
API_KEY = "xray-dashboard-test-key"
PHONE_CASE = "B0PHCASE77"
PIPELINE = "competitor-selection"

pytestmark = [pytest.mark.browser, pytest.mark.slow]

if not CHROMIUM.exists():
    if IN_CI:
        pytest.fail(
            f"{CHROMIUM} is missing; under CI=true the browser tests must run", pytrace=False
        )
    pytest.skip(
        f"{CHROMIUM} is not installed (Debian package 'chromium'); these tests run under CI=true",
        allow_module_level=True,
    )

from playwright.sync_api import (  # noqa: E402
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

# A loaded CI machine runs the server, the browser and other suites at once: wait longer
# than Playwright's 5 s default before calling an assertion failed.
expect.set_options(timeout=15_000)


@dataclass(frozen=True)
class Demo:
    server: RunningServer
    summary: DemoSummary

    @property
    def url(self) -> str:
        return self.server.base_url


def _get(server: RunningServer, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.base_url}{path}", params=params, headers={"X-API-Key": API_KEY}, timeout=30
    )
    response.raise_for_status()
    return response.json()


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    """A real API server on SQLite with keys enforced, holding the demo pipelines' runs."""
    workdir = tmp_path_factory.mktemp("dashboard-server")
    database_url = f"sqlite+aiosqlite:///{workdir / 'xray.db'}"
    with api_server(database_url, workdir=workdir, api_keys=(API_KEY,)) as server:
        summary = run_demos(server.base_url, api_key=API_KEY, runs_per_pipeline=8)
        assert summary.bad_candidate_key == PHONE_CASE
        yield Demo(server, summary)


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
    )
    yield browser
    browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile that already holds the API key (as after signing in)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    ctx.add_init_script(f"window.localStorage.setItem('xray.apiKey', {API_KEY!r});")
    yield ctx
    ctx.close()


@pytest.fixture
def page(context: BrowserContext) -> Iterator[Page]:
    page = context.new_page()
    # Uncaught script errors and console errors seen by the page; a test ends with none.
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    # The browser logs every non-2xx response as "Failed to load resource"; the tests assert
    # on how the page shows those. Anything else logged as an error fails the test.
    page.on(
        "console",
        lambda m: (
            errors.append(m.text)
            if m.type == "error" and not m.text.startswith("Failed to load resource")
            else None
        ),
    )
    page.set_default_timeout(15_000)
    yield page
    assert not errors, f"the page logged errors: {errors}"


@pytest.fixture(scope="module")
def shots(artifacts_dir: Path) -> Path:
    path = artifacts_dir / "dashboard"
    path.mkdir(parents=True, exist_ok=True)
    return path


def snap(page: Page, shots: Path, name: str) -> None:
    # From the top, so the sticky header is drawn where a person sees it.
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=str(shots / f"{name}.png"), full_page=True)


def bad_reasoning(run: dict[str, Any]) -> str:
    return str(_step(run, "generate_keywords")["reasoning"])[:60]


def _step(run: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in run["steps"] if s["name"] == name)


def _hash(page: Page) -> str:
    return str(page.evaluate("location.hash"))


def settle(page: Page) -> None:
    """Wait until the page has finished rendering the URL it shows (app.js sets data-ready)."""
    page.wait_for_function("() => document.getElementById('app').dataset.ready === location.hash")


def ids(page: Page, selector: str, attribute: str) -> list[str]:
    settle(page)
    return list(page.locator(selector).evaluate_all(f"els => els.map(e => e.dataset.{attribute})"))


# ------------------------------------------------------------------ the walkthrough


def test_newcomer_finds_why_the_laptop_stand_got_a_phone_case(
    demo: Demo, page: Page, shots: Path
) -> None:
    bad = _get(demo.server, f"/runs/{demo.summary.bad_run_id}")
    good = _get(demo.server, f"/runs/{demo.summary.good_run_id}")
    good_choice = good["output"]["competitor"]["asin"]

    # 1. The runs list, then filter to the bad run by pipeline and metadata.
    page.goto(f"{demo.url}/")
    expect(page.locator("h1")).to_have_text("Runs")
    expect(page.locator("#runs-table tbody tr").first).to_be_visible()
    snap(page, shots, "01-runs")
    page.select_option("#f-pipeline", PIPELINE)
    page.fill(
        "#f-meta", f"product_asin={demo.summary.product_asin}, seed={bad['metadata']['seed']}"
    )
    page.click("#runs-filters button[type=submit]")
    rows = page.locator("#runs-table tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", bad["id"])
    expect(rows.first).to_contain_text("Kickstand Phone Case")
    # The filters are in the URL: the view can be shared and reloaded.
    assert "pipeline=competitor-selection" in _hash(page)
    assert "meta=seed%3D" in _hash(page)
    page.reload()
    expect(rows).to_have_count(1)
    snap(page, shots, "02-runs-filtered")

    # 2. The run (a click anywhere on the row opens it): every step in the funnel, in order.
    rows.first.locator("td.num").first.click()
    expect(page.locator("h1")).to_have_text(PIPELINE)
    funnel = page.locator("#funnel .funnel-row")
    expect(funnel).to_have_count(len(bad["steps"]))
    expect(funnel.nth(0)).to_contain_text(bad["steps"][0]["name"])
    # The header names what the run selected, one click from its path.
    expect(page.locator("#run-selected")).to_contain_text(PHONE_CASE)
    expect(page.locator("#run-selected a")).to_have_attribute(
        "href", f"#/candidates/{PHONE_CASE}?run={bad['id']}"
    )
    # Drawn to scale: the bars' widths are in the ratio of the steps' input counts.
    search, price = _step(bad, "search_catalogue"), _step(bad, "price_filter")
    widths = [
        page.locator(f'.funnel-row[data-step-name="{s["name"]}"] .bar-in').bounding_box()
        for s in (search, price)
    ]
    assert widths[0] and widths[1]
    ratio = widths[1]["width"] / widths[0]["width"]
    assert abs(ratio - price["input_count"] / search["input_count"]) < 0.01
    snap(page, shots, "03-run")

    # 3. The category filter kept the phone case: open the step and find its decision.
    category = _step(bad, "category_filter")
    page.locator('.funnel-row[data-step-name="category_filter"]').click()
    expect(page.locator("#recorded-note")).to_have_text(
        f"{category['candidates_recorded']:,} of {category['candidates_total']:,} decisions recorded ({category['detail']})"
    )
    expect(page.locator(".params")).to_contain_text("match_level")
    expect(page.locator(".params")).to_contain_text("department")
    page.fill("#d-cand", PHONE_CASE)
    page.click("#decision-filters button[type=submit]")
    decision = page.locator(f'#decisions-table tbody tr[data-candidate="{PHONE_CASE}"]')
    expect(decision).to_have_count(1)
    expect(decision.locator(".decision")).to_have_text("accepted")
    expect(decision).to_contain_text("same_department")
    snap(page, shots, "04-run-category-filter")

    # 4. The laptop stand the good run chose lost at the selection in the bad run.
    page.locator('.funnel-row[data-step-name="select_competitor"]').click()
    expect(page.locator(".funnel-row.is-open")).to_have_attribute(
        "data-step-name", "select_competitor"
    )
    page.fill("#d-cand", good_choice)
    page.click("#decision-filters button[type=submit]")
    stand = page.locator(f'#decisions-table tbody tr[data-candidate="{good_choice}"]')
    expect(stand.locator(".decision")).to_have_text("rejected")

    # 5. The phone case's path through the run: kept everywhere, then selected.
    page.goto(f"{demo.url}/#/runs/{bad['id']}?step={category['id']}&cand={PHONE_CASE}")
    page.locator(f'#decisions-table a.candidate:text-is("{PHONE_CASE}")').click()
    expect(page.locator("h1")).to_have_text(PHONE_CASE)
    sentence = page.locator("#path-sentence")
    expect(sentence).to_contain_text("kept, kept")
    expect(sentence).to_contain_text("selected at select_competitor: top_rank")
    expect(page.locator('.path-node[data-step-name="category_filter"]')).to_contain_text(
        "same_department"
    )
    expect(page.locator(f'#candidate-runs tr[data-run-id="{bad["id"]}"]')).to_have_count(1)
    across = _get(demo.server, f"/candidates/{PHONE_CASE}", limit=200)
    runs_seen = len({d["run_id"] for d in across["items"]})
    expect(page.locator("#outcome-summary")).to_contain_text(f"In {runs_seen} run")
    expect(page.locator("#outcome-summary")).to_contain_text("selected")
    snap(page, shots, "05-candidate")

    # 6. Compare with the good run of the same product, picked from the run page.
    page.goto(f"{demo.url}/#/runs/{bad['id']}")
    page.fill("#compare-with", good["id"])
    page.click("#compare-go")
    expect(page.locator("h1")).to_have_text("Compare runs")
    expect(page.locator("#first-divergence")).to_contain_text("generate_keywords")
    select = page.locator('#compare-table tr[data-step-name="select_competitor"]')
    expect(select.locator(".kept-diff").nth(0)).to_contain_text(PHONE_CASE)
    expect(select.locator(".kept-diff").nth(1)).to_contain_text(good_choice)
    # Swapped, the good run is A: B's keyword model added "phone stand".
    page.click("#compare-swap")
    expect(page.locator(".run-card").nth(0)).to_contain_text(good["id"][:8])
    search = page.locator('#compare-table tr[data-step-name="search_catalogue"]')
    expect(search.locator(".param-diff .val-added")).to_contain_text(["+ phone stand"])
    # The keyword model said different things; both texts are one click away.
    keywords = page.locator('#compare-table tr[data-step-name="generate_keywords"]')
    keywords.locator(".reasoning-diff summary").click()
    expect(keywords.locator(".reasoning-diff")).to_contain_text(bad_reasoning(bad))
    expect(select.locator(".kept-diff").nth(0)).to_contain_text(good_choice)
    expect(select.locator(".kept-diff").nth(1)).to_contain_text(PHONE_CASE)
    snap(page, shots, "06-compare")


# ------------------------------------------------------------------ the other pages


def test_runs_filter_by_step_type_and_elimination_matches_the_api(
    demo: Demo, page: Page, shots: Path
) -> None:
    bad = _get(demo.server, f"/runs/{demo.summary.bad_run_id}")
    good = _get(demo.server, f"/runs/{demo.summary.good_run_id}")
    # A threshold between the two runs' selection steps: the bad run above, the good below.
    rates = sorted(
        (
            _step(bad, "select_competitor")["elimination_rate"],
            _step(good, "select_competitor")["elimination_rate"],
        )
    )
    assert rates[0] < rates[1], "the demo's two laptop-stand runs select from equal pools"
    threshold = round((rates[0] + rates[1]) / 2 * 100, 3)
    expected = _get(
        demo.server, "/runs", step_type="select", min_elimination_rate=threshold / 100, limit=500
    )["items"]

    page.goto(f"{demo.url}/#/runs")
    page.select_option("#f-step_type", "select")
    page.fill("#f-min_elim", str(threshold))
    page.click("#runs-filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('step_type=select')")
    shown = ids(page, "#runs-table tbody tr", "runId")
    assert shown == [r["id"] for r in expected]
    higher = bad if rates[1] == _step(bad, "select_competitor")["elimination_rate"] else good
    lower = good if higher is bad else bad
    assert higher["id"] in shown and lower["id"] not in shown


def test_runs_list_pages_with_a_cursor_kept_in_the_url(demo: Demo, page: Page) -> None:
    expected = [r["id"] for r in _get(demo.server, "/runs", limit=10)["items"]]
    page.goto(f"{demo.url}/#/runs?limit=5")
    first = ids(page, "#runs-table tbody tr", "runId")
    assert first == expected[:5]
    total = len(_get(demo.server, "/runs", limit=500)["items"])
    expect(page.locator("#pager-label")).to_have_text(f"Page 1 · runs 1–5 of {total}")  # noqa: RUF001
    page.get_by_role("button", name="Next page").click()
    page.wait_for_function("() => location.hash.includes('cursor=')")
    assert ids(page, "#runs-table tbody tr", "runId") == expected[5:]
    expect(page.locator("#pager-label")).to_have_text(f"Page 2 · runs 6–10 of {total}")  # noqa: RUF001
    page.get_by_role("button", name="Next page").click()
    page.wait_for_function("() => location.hash.includes('back=')")
    expect(page.locator("#pager-label")).to_contain_text("Page 3 · runs 11–")  # noqa: RUF001
    page.get_by_role("button", name="Previous page").click()
    page.wait_for_function("() => !location.hash.includes('back=')")
    assert ids(page, "#runs-table tbody tr", "runId") == expected[5:]
    page.get_by_role("button", name="First page").click()
    page.wait_for_function("() => !location.hash.includes('cursor=')")
    assert ids(page, "#runs-table tbody tr", "runId") == first


def test_sampled_step_says_honestly_how_many_decisions_were_recorded(
    demo: Demo, page: Page, shots: Path
) -> None:
    bad = _get(demo.server, f"/runs/{demo.summary.bad_run_id}")
    search = _step(bad, "search_catalogue")
    assert (
        search["detail"] == "sampled" and search["candidates_recorded"] < search["candidates_total"]
    )
    page.goto(f"{demo.url}/#/runs/{bad['id']}?step={search['id']}")
    missing = search["candidates_total"] - search["candidates_recorded"]
    expect(page.locator("#recorded-note")).to_have_text(
        f"{search['candidates_recorded']:,} of {search['candidates_total']:,} decisions recorded"
        f" (sampled; {missing:,} not recorded)"
    )
    # The reason histogram shows every reason counted, recorded or not.
    for reason, count in search["reason_counts"].items():
        expect(page.locator("#reason-histogram")).to_contain_text(reason)
        expect(page.locator("#reason-histogram")).to_contain_text(f"{count:,}")
    # Decisions come 100 to a page; the next page holds other candidates.
    first = ids(page, "#decisions-table tbody tr", "candidate")
    assert len(first) == 100
    page.locator("#decisions").get_by_role("button", name="Next page").click()
    page.wait_for_function("() => location.hash.includes('dcursor=')")
    second = ids(page, "#decisions-table tbody tr", "candidate")
    assert second and not set(first) & set(second)
    # Filtering by decision shows only that decision.
    page.select_option("#d-decision", "rejected")
    page.wait_for_function("() => location.hash.includes('decision=rejected')")
    settle(page)
    decisions = page.locator("#decisions-table .decision").all_text_contents()
    assert set(decisions) == {"rejected"}
    # A reason that is not in the counted reasons (an acceptance reason) can be typed.
    page.select_option("#d-decision", "")
    page.wait_for_function("() => !location.hash.includes('decision=')")
    settle(page)
    page.fill("#d-reason", "keyword_match")
    page.click("#decision-filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('reason=keyword_match')")
    settle(page)
    reasons = page.locator("#decisions-table tbody tr td:nth-child(3)").all_text_contents()
    assert reasons and set(reasons) == {"keyword_match"}
    snap(page, shots, "07-run-sampled-step")


def test_queries_page_searches_steps_across_pipelines(demo: Demo, page: Page, shots: Path) -> None:
    expected = _get(demo.server, "/steps", type="filter", min_elimination_rate=0.3, limit=50)
    pipelines = {s["pipeline"] for s in expected["items"]}
    page.goto(f"{demo.url}/#/steps")
    expect(page.locator("h1")).to_have_text("Queries")
    page.select_option("#f-type", "filter")
    page.fill("#q-min_elim", "30")
    page.click("#steps-filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('min_elim=30')")
    assert ids(page, "#steps-table tbody tr", "stepId") == [s["id"] for s in expected["items"]]
    rows = page.locator("#steps-table tbody tr")
    assert set(page.locator("#steps-table .chip-type").all_text_contents()) == {"filter"}
    for pipeline in pipelines:
        expect(page.locator("#steps-table")).to_contain_text(pipeline)
    snap(page, shots, "08-queries")
    # A result opens its run with the step expanded.
    target = expected["items"][0]
    rows.first.locator("a.strong").click()
    expect(page.locator(".funnel-row.is-open")).to_have_attribute("data-step-id", target["id"])
    expect(page.locator("h1")).to_have_text(target["pipeline"])


# ------------------------------------------------------------------ keys, states, safety


def test_login_form_when_keys_are_enforced_and_sign_out(
    demo: Demo, browser: Browser, shots: Path
) -> None:
    ctx = browser.new_context(viewport={"width": 1400, "height": 900})
    try:
        page = ctx.new_page()
        sent: list[tuple[str, str | None]] = []
        page.on("request", lambda r: sent.append((r.url, r.headers.get("x-api-key"))))
        page.goto(f"{demo.url}/#/runs?pipeline={PIPELINE}")
        form = page.locator("#login-form")
        expect(form).to_be_visible()
        expect(page.locator("#runs-table")).to_have_count(0)
        snap(page, shots, "09-login")

        page.fill("#api-key", "not-the-key")
        page.click("#login-form button[type=submit]")
        expect(page.locator("#login-form .form-error")).to_contain_text("not accepted")
        assert page.evaluate("localStorage.getItem('xray.apiKey')") is None

        page.fill("#api-key", API_KEY)
        page.click("#login-form button[type=submit]")
        expect(page.locator("#runs-table tbody tr").first).to_be_visible()
        # Still on the page asked for, with its filter.
        assert "pipeline=competitor-selection" in _hash(page)
        expect(page.locator("#f-pipeline")).to_have_value(PIPELINE)
        # The key travels only in the X-API-Key header, never in a URL.
        assert all(API_KEY not in url for url, _ in sent)
        api_calls = [(url, key) for url, key in sent if "/runs?" in url or "/pipelines?" in url]
        assert api_calls and api_calls[-1][1] == API_KEY
        assert API_KEY not in page.url

        page.click("#sign-out")
        expect(form).to_be_visible()
        assert page.evaluate("localStorage.getItem('xray.apiKey')") is None
    finally:
        ctx.close()


def test_empty_and_error_states_are_readable(demo: Demo, page: Page, shots: Path) -> None:
    page.goto(f"{demo.url}/#/runs?meta=nobody%3Dhas-this")
    settle(page)
    expect(page.locator(".state-empty")).to_contain_text("No runs match these filters.")
    page.click("text=Clear all filters")
    expect(page.locator("#runs-table tbody tr").first).to_be_visible()
    page.goto(f"{demo.url}/#/runs?meta=nobody%3Dhas-this")
    settle(page)
    snap(page, shots, "10-empty")

    page.goto(f"{demo.url}/#/runs/{uuid.uuid4()}")
    settle(page)
    expect(page.locator(".state-error")).to_contain_text("Not found (HTTP 404)")
    snap(page, shots, "11-not-found")

    page.goto(f"{demo.url}/#/runs?status=finished")
    settle(page)
    error = page.locator(".state-error")
    expect(error).to_contain_text("Request rejected (HTTP 422)")
    expect(error).to_contain_text("status")
    # The filter form stays, so the rejected filter can be fixed in place.
    page.select_option("#f-status", "error")
    page.click("#runs-filters button[type=submit]")
    settle(page)
    expect(page.locator(".state-error")).to_have_count(0)
    assert "status=error" in _hash(page)

    page.goto(f"{demo.url}/#/steps?type=bogus")
    settle(page)
    expect(page.locator(".state-error")).to_contain_text("Request rejected (HTTP 422)")
    expect(page.locator("#steps-filters")).to_be_visible()

    page.goto(f"{demo.url}/#/nowhere")
    expect(page.locator(".state-error")).to_contain_text("Page not found")

    page.goto(f"{demo.url}/#/steps?type=filter&min_input=999999999")
    settle(page)
    expect(page.locator(".state-empty")).to_contain_text("No steps match this query.")

    page.goto(f"{demo.url}/#/compare")
    expect(page.locator(".state-empty")).to_contain_text("Pick two runs to compare.")

    page.goto(f"{demo.url}/#/candidates/no-such-candidate")
    settle(page)
    expect(page.locator(".state-empty")).to_contain_text("No decisions about this candidate")


def test_unreachable_api_shows_an_error_not_a_blank_page(demo: Demo, page: Page) -> None:
    page.goto(f"{demo.url}/#/runs")
    settle(page)
    # The server goes away between two pages: every API request now fails at the network.
    page.route("**/runs?*", lambda route: route.abort())
    page.route("**/pipelines?*", lambda route: route.abort())
    page.goto(f"{demo.url}/#/runs?status=error")
    settle(page)
    expect(page.locator(".state-error")).to_contain_text("Cannot reach the X-Ray API")
    expect(page.locator(".recovery a", has_text="All runs")).to_be_visible()


def test_user_data_is_shown_as_text_never_run_as_markup(
    demo: Demo, page: Page, shots: Path
) -> None:
    evil = '<img src=x onerror="window.__xss=1">'
    script = "<script>window.__xss=2</script>"
    run_id, step_id = str(uuid.uuid4()), str(uuid.uuid4())
    started = datetime.now(UTC).isoformat()
    batch = {
        "runs": [
            {
                "id": run_id,
                "pipeline": f"xss {evil}",
                "status": "success",
                "started_at": started,
                "output": {"answer": script},
                "metadata": {"note": evil},
            }
        ],
        "steps": [
            {
                "id": step_id,
                "run_id": run_id,
                "name": f"step {evil}",
                "type": "filter",
                "started_at": started,
                "input_count": 3,
                "output_count": 2,
                "params": {"html": script},
                "reasoning": f"Because {evil}",
                "reason_counts": {evil: 1},
                "detail": "full",
                "candidates_total": 3,
                "candidates_recorded": 3,
                "decisions": [
                    {"candidate_key": f"k{evil}", "decision": "rejected", "reason": evil},
                    {"candidate_key": "javascript:alert(1)", "decision": "accepted"},
                    {"candidate_key": "shelf/42 ä?x=1#top", "decision": "accepted"},
                ],
            }
        ],
    }
    response = httpx.post(
        f"{demo.url}/batch", json=batch, headers={"X-API-Key": API_KEY}, timeout=30
    )
    assert response.status_code == 200, response.text

    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.goto(f"{demo.url}/#/runs")
    settle(page)
    expect(page.locator("#runs-table")).to_contain_text(f"xss {evil}")
    expect(page.locator("#runs-table")).to_contain_text(script)
    page.goto(f"{demo.url}/#/runs/{run_id}?step={step_id}")
    settle(page)
    expect(page.locator(".reasoning")).to_have_text(f"Because {evil}")
    expect(page.locator("#reason-histogram")).to_contain_text(evil)
    expect(page.locator("#decisions-table")).to_contain_text(f"k{evil}")
    # A candidate key that looks like a URL stays an in-page link.
    link = page.locator('#decisions-table a.candidate:text-is("javascript:alert(1)")')
    assert (link.get_attribute("href") or "").startswith("#/candidates/")
    page.goto(f"{demo.url}/#/candidates/{quote(f'k{evil}', safe='')}?run={run_id}")
    settle(page)
    expect(page.locator("h1")).to_have_text(f"k{evil}")
    snap(page, shots, "12-escaping")
    # A key with a slash, a space, a query and a fragment survives the round trip.
    page.goto(f"{demo.url}/#/runs/{run_id}?step={step_id}")
    settle(page)
    page.locator('#decisions-table a.candidate:text-is("shelf/42 ä?x=1#top")').click()
    settle(page)
    expect(page.locator("h1")).to_have_text("shelf/42 ä?x=1#top")
    expect(page.locator("#path-sentence")).to_have_text("kept")
    assert page.evaluate("window.__xss") is None
    assert dialogs == []
    assert page.locator("main img, main script").count() == 0


def test_every_list_request_asks_for_one_bounded_page(demo: Demo, page: Page) -> None:
    """The dashboard never fetches a whole table: every list call carries a limit."""
    urls: list[str] = []
    page.on("request", lambda r: urls.append(r.url))
    bad = demo.summary.bad_run_id
    step = _step(_get(demo.server, f"/runs/{bad}"), "search_catalogue")
    for route in (
        "#/runs",
        f"#/runs/{bad}?step={step['id']}",
        f"#/candidates/{PHONE_CASE}?run={bad}",
        f"#/compare?a={bad}&b={demo.summary.good_run_id}",
        "#/steps?type=filter",
    ):
        page.goto(f"{demo.url}/{route}")
        settle(page)
    lists = [
        u
        for u in urls
        if re.search(r"/(runs|steps|pipelines)(\?|$)|/decisions(\?|$)|/candidates/", u)
        and "/static/" not in u
    ]
    assert lists, urls
    for url in lists:
        limit = parse_qs(urlsplit(url).query).get("limit")
        assert limit and 1 <= int(limit[0]) <= 1000, f"unbounded list request: {url}"


def test_failed_and_nested_steps_are_marked_in_the_funnel(
    demo: Demo, page: Page, shots: Path
) -> None:
    run_id, parent, child, failed = (str(uuid.uuid4()) for _ in range(4))
    started = datetime.now(UTC).isoformat()
    boom = {
        "type": "TimeoutError",
        "message": "the model did not answer in 30 s",
        "traceback": "Traceback (most recent call last):\n  ...\nTimeoutError",
    }

    def step(step_id: str, seq: int, name: str, **extra: Any) -> dict[str, Any]:
        return {
            "id": step_id,
            "run_id": run_id,
            "seq": seq,
            "name": name,
            "started_at": started,
            **extra,
        }

    batch = {
        "runs": [
            {
                "id": run_id,
                "pipeline": "nested-demo",
                "status": "error",
                "started_at": started,
                "error": boom,
            }
        ],
        "steps": [
            step(parent, 0, "rerank", type="rank", input_count=50, output_count=10),
            step(
                child,
                1,
                "score_batch",
                type="llm",
                parent_id=parent,
                input_count=50,
                output_count=50,
            ),
            step(failed, 2, "explain", type="llm", status="error", error=boom, input_count=10),
        ],
    }
    response = httpx.post(
        f"{demo.url}/batch", json=batch, headers={"X-API-Key": API_KEY}, timeout=30
    )
    assert response.status_code == 200, response.text

    page.goto(f"{demo.url}/#/runs?pipeline=nested-demo")
    settle(page)
    expect(page.locator(f'#runs-table tr[data-run-id="{run_id}"]')).to_have_class(
        re.compile(r"\brow-error\b")
    )
    expect(page.locator("#runs-table")).to_contain_text("TimeoutError")
    page.goto(f"{demo.url}/#/runs/{run_id}?step={failed}")
    settle(page)
    expect(page.locator(".error-panel").first).to_contain_text(
        "TimeoutError: the model did not answer in 30 s"
    )
    expect(page.locator('.funnel-row[data-step-name="explain"]')).to_have_class(
        re.compile(r"\bis-error\b")
    )
    indent = [
        page.locator(f'.funnel-row[data-step-name="{name}"] .step-name').evaluate(
            "e => parseFloat(getComputedStyle(e).paddingLeft)"
        )
        for name in ("rerank", "score_batch")
    ]
    assert indent[1] > indent[0]
    expect(page.locator(".step-panel .error-panel")).to_contain_text("This step failed")
    snap(page, shots, "13-errors-and-nesting")


def test_time_and_status_filters_match_the_api(demo: Demo, page: Page) -> None:
    page.goto(f"{demo.url}/#/runs")
    settle(page)
    page.fill("#f-since", "2099-01-01T00:00")
    page.click("#runs-filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('since=2099')")
    settle(page)
    expect(page.locator(".state-empty")).to_contain_text("No runs match these filters.")

    # "Last hour" covers the demo, which ran moments ago; the URL keeps the relative range.
    page.goto(f"{demo.url}/#/runs?range=1h&pipeline={PIPELINE}&limit=200")
    shown = ids(page, "#runs-table tbody tr", "runId")
    expected = _get(demo.server, "/runs", pipeline=PIPELINE, limit=200)["items"]
    assert shown == [r["id"] for r in expected]
    expect(page.locator("#f-range")).to_have_value("1h")

    page.select_option("#f-status", "success")
    page.click("#runs-filters button[type=submit]")
    page.wait_for_function("() => location.hash.includes('status=success')")
    shown = ids(page, "#runs-table tbody tr", "runId")
    expected = _get(demo.server, "/runs", pipeline=PIPELINE, status="success", limit=200)["items"]
    assert shown and shown == [r["id"] for r in expected]
    assert set(page.locator("#runs-table .status").all_text_contents()) == {"success"}


def test_a_run_with_hundreds_of_steps_shows_the_first_ones_then_all(demo: Demo, page: Page) -> None:
    run_id = str(uuid.uuid4())
    started = datetime.now(UTC).isoformat()
    steps = [
        {
            "id": str(uuid.uuid4()),
            "run_id": run_id,
            "seq": i,
            "name": f"item_{i:03d}",
            "type": "transform",
            "started_at": started,
            "input_count": 1,
            "output_count": 1,
        }
        for i in range(350)
    ]
    batch = {
        "runs": [
            {"id": run_id, "pipeline": "loop-demo", "status": "success", "started_at": started}
        ],
        "steps": steps,
    }
    response = httpx.post(
        f"{demo.url}/batch", json=batch, headers={"X-API-Key": API_KEY}, timeout=60
    )
    assert response.status_code == 200, response.text
    page.goto(f"{demo.url}/#/runs/{run_id}?step={steps[340]['id']}")
    settle(page)
    # The first 300, plus the step the URL opens even though it is further down.
    expect(page.locator("#funnel .funnel-row")).to_have_count(301)
    expect(page.locator(".funnel-row.is-open")).to_have_attribute("data-step-name", "item_340")
    expect(page.locator(".funnel-more")).to_contain_text("Showing 301 of 350 steps.")
    page.click(".funnel-more a")
    settle(page)
    expect(page.locator("#funnel .funnel-row")).to_have_count(350)
    expect(page.locator(".funnel-row.is-open")).to_have_attribute("data-step-name", "item_340")


# ------------------------------------------------------------------ populations of runs

SUPPORT = "support-answer"


def _support_runs(demo: Demo) -> list[dict[str, Any]]:
    listed = _get(demo.server, "/runs", pipeline=SUPPORT, limit=500)["items"]
    return [_get(demo.server, f"/runs/{r['id']}") for r in listed]


def test_newcomer_finds_why_german_customers_get_the_us_policy(
    demo: Demo, page: Page, shots: Path
) -> None:
    """Symptom about a group of users → the step and the reason, from the Groups page."""
    runs = _support_runs(demo)
    german = [r for r in runs if r["metadata"]["locale"] == "de-DE"]
    assert german and all(r["output"]["region"] == "US" for r in german)

    page.goto(f"{demo.url}/#/groups")
    page.select_option("#f-pipeline", SUPPORT)
    page.wait_for_function("() => location.hash.includes('support-answer')")
    settle(page)
    page.select_option("#f-by", "metadata.locale")
    page.wait_for_function("() => location.hash.includes('by=metadata.locale')")
    settle(page)
    banner = page.locator("#groups-outlier")
    expect(banner).to_contain_text("metadata.locale = de-DE differs most")
    expect(banner).to_contain_text("locale_filter rejects 100% of its input for locale_mismatch")
    expect(banner).to_contain_text("against 77.5% in the other runs")
    outliers = page.locator("#groups-table tr.is-outlier")
    expect(outliers).to_have_count(1)
    expect(outliers).to_have_attribute("data-value", "de-DE")
    expect(outliers).to_contain_text("returns-us")
    cell = page.locator('#groups-steps tr[data-step-name="locale_filter"] td.is-outlier')
    expect(cell).to_contain_text("100% locale_mismatch 100%")
    expect(cell).to_contain_text("refilled")
    # Over time: runs per hour and the outlier step's rejection shares, one look.
    expect(
        page.locator('#trends figure[data-title="locale_filter: locale_mismatch"]')
    ).to_have_count(1)
    bars = page.locator('#trends figure[data-title="Runs"] .trend-bar')
    titles = bars.evaluate_all("els => els.map(e => e.title)")
    assert sum(int(t.rsplit(": ", 1)[1]) for t in titles if not t.endswith("—")) == len(runs)
    snap(page, shots, "10-groups")

    # The group against every other run, step by step.
    outliers.locator("a.cohort-link").click()
    page.wait_for_function("() => location.hash.startsWith('#/compare?pipeline=')")
    settle(page)
    expect(page.locator("#first-divergence")).to_have_text(
        "First divergence at locale_filter: locale_mismatch 100% of its input in A vs 77.5% in B."
    )
    expect(page.locator('#cohort-table tr[data-step-name="locale_filter"]')).to_contain_text(
        "refilled"
    )
    snap(page, shots, "10b-cohorts")
    page.go_back()
    settle(page)

    # The group's runs, and what sets them apart from the others.
    outliers.locator("a").first.click()
    page.wait_for_function("() => location.hash.startsWith('#/runs?')")
    settle(page)
    shown = ids(page, "#runs-table tbody tr", "runId")
    assert sorted(shown) == sorted(r["id"] for r in german)
    first = page.locator("#contrast-table tbody tr").first
    expect(first).to_contain_text("de-DE")
    expect(first).to_contain_text(f"{len(german)}/{len(german)}")
    expect(first).to_contain_text(f"0/{len(runs) - len(german)}")
    expect(page.locator("#contrast-reason")).to_contain_text(
        "locale_filter rejects 100% of its input for locale_mismatch here vs 77.5%"
    )
    # The locale is shown as a column of the pipeline's runs.
    expect(page.locator("#runs-table thead")).to_contain_text("locale")
    snap(page, shots, "11-contrast")

    # One German run: the funnel shows the reasons and the refill without a click.
    page.goto(f"{demo.url}/#/runs/{german[0]['id']}")
    row = page.locator('.funnel-row[data-step-name="locale_filter"]')
    expect(row.locator(".seq")).to_have_text("2")
    expect(row.locator(".reason-line")).to_contain_text("locale_mismatch 40 (100%)")
    expect(row.locator(".reason-line")).to_contain_text("rejected 100% · refilled")
    expect(row.locator(".elim")).to_have_text("77.5%")
    snap(page, shots, "12-run-reasons")


def test_compare_ranks_the_param_and_shows_reason_counts_in_bounded_requests(
    demo: Demo, page: Page, shots: Path
) -> None:
    runs = _support_runs(demo)
    english = next(r for r in runs if r["metadata"]["locale"] == "en-US")
    german = next(r for r in runs if r["metadata"]["locale"] == "de-DE")
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(f"{demo.url}/#/compare?a={english['id']}&b={german['id']}")
    settle(page)
    expect(page.locator("#first-divergence")).to_contain_text(
        'First difference at locale_filter: locale_filter.params.locale: "en-US" → "de-DE"'
    )
    row = page.locator('#compare-table tr[data-step-name="locale_filter"]')
    expect(row.locator(".reason-diff")).to_have_text("locale_mismatch: 31 → 40")
    expect(row).to_contain_text("100% rej. · refilled")
    expect(page.locator(".meta-diff").first).to_contain_text("locale=en-US")
    api_calls = [u for u in requests if "/static/" not in u and not u.endswith("/")]
    # One comparison plus kept candidates for at most four steps (four requests each).
    assert len(api_calls) <= 1 + 4 * 4, api_calls
    assert sum("/compare?" in u for u in api_calls) == 1
    snap(page, shots, "13-compare-support")


def test_long_names_huge_counts_and_long_runs_keep_the_layout(
    demo: Demo, page: Page, shots: Path
) -> None:
    run_id, step_id = str(uuid.uuid4()), str(uuid.uuid4())
    pipeline = "p" * 200
    name = "s" * 200
    reason = "r" * 300
    started = "2026-01-01T00:00:00+00:00"
    body = {
        "runs": [
            {
                "id": run_id,
                "pipeline": pipeline,
                "status": "success",
                "started_at": started,
                "ended_at": "2026-01-02T03:26:05+00:00",
                "duration_ms": 98_765_000,
                "metadata": {"locale": "x" * 150},
                "output": {"text": "o" * 500},
            }
        ],
        "steps": [
            {
                "id": step_id,
                "run_id": run_id,
                "name": name,
                "type": "filter",
                "seq": 0,
                "started_at": started,
                "input_count": 12_345_678,
                "output_count": 1,
                "reason_counts": {reason: 12_345_677},
            }
        ],
    }
    response = httpx.post(
        f"{demo.url}/batch", json=body, headers={"X-API-Key": API_KEY}, timeout=30
    )
    assert response.status_code < 300, response.text

    def fits(selector: str) -> None:
        widths = page.locator(selector).evaluate(
            "t => [t.getBoundingClientRect().right, t.closest('.card, main').getBoundingClientRect().right]"
        )
        assert widths[0] <= widths[1] + 1, (selector, widths)

    page.goto(f"{demo.url}/#/runs/{run_id}")
    row = page.locator(".funnel-row").first
    expect(row.locator(".elim")).to_have_text("99.99999%")
    expect(page.locator("main")).to_contain_text("27 h 26 min")
    name_box = row.locator(".step-name .truncate").bounding_box()
    bar_box = row.locator(".bar").bounding_box()
    assert name_box and bar_box and name_box["x"] + name_box["width"] <= bar_box["x"] + 1
    expect(row.locator(".step-name .truncate")).to_have_attribute("title", name)
    fits("#funnel")
    # Nothing pushes the page sideways: the 200-character name is cut, whole on hover.
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.locator(".title-row h1")).to_have_attribute("title", pipeline)
    snap(page, shots, "14-long-names-run")

    # The step opened: a 300-character reason keeps the histogram and decisions on screen.
    page.goto(f"{demo.url}/#/runs/{run_id}?step={step_id}")
    settle(page)
    expect(page.locator("#reason-histogram")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    snap(page, shots, "14b-long-reason-step")

    page.goto(f"{demo.url}/#/runs?pipeline={pipeline}&cols=locale")
    settle(page)
    fits("#runs-table")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    expect(page.locator("#runs-table td.cell-clip").first).to_have_attribute("title", pipeline)
    snap(page, shots, "15-long-names-runs")
