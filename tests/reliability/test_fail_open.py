"""The fail-open matrix: whatever happens to the API or the config, the pipeline's result
is exactly what it is without X-Ray, nothing escapes, no call blocks, and the process
exits within ``shutdown_timeout`` (checked in a real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT, free_port
from tests.reliability._fake_api import Reply, fake_api, statuses
from xray.sdk import XRayClient, current_step, get_client, step

WATCHDOG = 60.0  # a call that has not returned by then is blocked, not slow


# -- the pipeline, written once, run instrumented and not -----------------------------


def generate(product: dict[str, Any]) -> list[str]:
    return [product["title"], product["title"] + " riser"]


def search(keywords: list[str]) -> list[dict[str, Any]]:
    return [{"asin": f"{k[:3]}-{i}", "price": i * 7 % 50} for k in keywords for i in range(30)]


def price_filter(candidates: list[dict[str, Any]], max_price: int) -> list[dict[str, Any]]:
    kept = []
    for c in candidates:
        if c["price"] > max_price:
            current_step().reject(c, reason="price_above_max", price=c["price"])
        else:
            kept.append(c)
    return kept


def rank(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(candidates, key=lambda c: (c["price"], c["asin"]))


def pipeline(product: dict[str, Any], fns: dict[str, Callable[..., Any]]) -> list[dict[str, Any]]:
    kept = fns["price_filter"](fns["search"](fns["generate"](product)), max_price=20)
    return list(fns["rank"](kept)[:3])


RAW = {"generate": generate, "search": search, "price_filter": price_filter, "rank": rank}
INSTRUMENTED = {
    "generate": step(type="llm")(generate),
    "search": step(type="retrieval", key="asin")(search),
    "price_filter": step(type="filter", key="asin", detail="full")(price_filter),
    "rank": step(type="rank", key="asin", detail="sampled")(rank),
}
PRODUCT = {"title": "laptop stand"}
EXPECTED = pipeline(PRODUCT, RAW)


def run_instrumented(client: XRayClient | None) -> list[dict[str, Any]]:
    if client is None:
        return pipeline(PRODUCT, INSTRUMENTED)
    with client.run("fail-open", input=PRODUCT):
        return pipeline(PRODUCT, INSTRUMENTED)


def in_thread(fn: Callable[[], Any]) -> Any:
    """Call ``fn`` in a thread; fail if it has not returned after WATCHDOG seconds."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(WATCHDOG)
    assert not thread.is_alive(), "the call blocked"
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


# -- the scenarios ----------------------------------------------------------------------

Scenario = Callable[[], AbstractContextManager[str | None]]


@contextmanager
def refused() -> Iterator[str]:
    yield f"http://127.0.0.1:{free_port()}"


@contextmanager
def unresolvable() -> Iterator[str]:
    yield "http://xray-api.invalid:8000"


@contextmanager
def serving(behaviour: Callable[..., Reply]) -> Iterator[str]:
    with fake_api(behaviour) as api:
        yield api.base_url


SERVERS: dict[str, Scenario] = {
    "refused": refused,
    "unresolvable": unresolvable,
    "black_hole": lambda: serving(lambda r: Reply(black_hole=True)),
    "slow": lambda: serving(lambda r: Reply(delay=5.0)),
    "http_500": lambda: serving(statuses(then=500)),
    "http_401": lambda: serving(statuses(then=401)),
    "http_413": lambda: serving(statuses(then=413)),
    "garbage": lambda: serving(lambda r: Reply(garbage=True)),
}


@pytest.mark.parametrize("scenario", sorted(SERVERS))
def test_a_failing_api_never_changes_the_result_or_blocks(scenario: str) -> None:
    with SERVERS[scenario]() as base_url:
        client = XRayClient(
            base_url=base_url,
            api_key="k",
            flush_interval=0.05,
            request_timeout=0.5,
            max_retries=2,
            shutdown_timeout=1.0,
        )
        for _ in range(5):
            assert in_thread(lambda: run_instrumented(client)) == EXPECTED
        in_thread(lambda: client.flush(timeout=1.0))
        in_thread(lambda: client.shutdown(timeout=1.0))
        stats = client.stats()
    assert stats["sent"] == 0
    assert stats["dropped"] > 0 or stats["queued"] == 0


def test_a_missing_config_passes_through(clean_environment: Path) -> None:
    assert in_thread(lambda: run_instrumented(None)) == EXPECTED
    assert not get_client().enabled


def test_an_invalid_config_passes_through(clean_environment: Path) -> None:
    (clean_environment / "xray.config.yaml").write_text("sdk: [not, a, mapping]\n")
    assert in_thread(lambda: run_instrumented(None)) == EXPECTED
    assert in_thread(lambda: run_instrumented(get_client())) == EXPECTED
    assert not get_client().enabled


# -- process exit, in a real subprocess --------------------------------------------------

SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.path.insert(0, {root!r})
    from tests.reliability.test_fail_open import INSTRUMENTED, PRODUCT, pipeline
    from xray import XRayClient
    {construct}
    print(json.dumps(pipeline(PRODUCT, INSTRUMENTED)))
    """
)


def run_script(construct: str, cwd: Path, env: dict[str, str] | None = None) -> tuple[Any, float]:
    code = SCRIPT.format(root=str(REPO_ROOT), construct=construct)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    # The spool is on (its default folder), inside the test's own cache folder.
    environment["XDG_CACHE_HOME"] = str(cwd / "cache")
    environment.update(env or {})
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=environment,
        timeout=120,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return result.stdout, elapsed


@pytest.mark.slow
@pytest.mark.parametrize("behaviour", ["black_hole", "slow"])
def test_process_exit_is_bounded_by_shutdown_timeout(behaviour: str, tmp_path: Path) -> None:
    reply = Reply(black_hole=True) if behaviour == "black_hole" else Reply(delay=120)
    with fake_api(lambda r: reply) as api:
        # Each request may wait 60 s and is retried: unbounded, exit would take minutes.
        construct = (
            f"XRayClient(base_url={api.base_url!r}, request_timeout=60, max_retries=5, "
            "flush_interval=0.05, shutdown_timeout=1)"
        )
        stdout, elapsed = run_script(construct, tmp_path)
        assert api.requests, "the sender never reached the server"
    assert json.loads(stdout) == EXPECTED
    assert elapsed < 60, f"exit took {elapsed:.1f}s: the atexit flush did not honour its bound"
    # What the server never answered is left for the next process, not lost.
    assert list((tmp_path / "cache" / "xray" / "spool").glob("*/*.xray"))


@pytest.mark.slow
def test_a_process_with_no_config_exits_normally(tmp_path: Path) -> None:
    stdout, _ = run_script("XRayClient()", tmp_path)
    assert json.loads(stdout) == EXPECTED


@pytest.mark.slow
def test_a_process_pointing_at_an_unresolvable_host_exits(tmp_path: Path) -> None:
    stdout, elapsed = run_script(
        "pass", tmp_path, env={"XRAY_BASE_URL": "http://xray-api.invalid:8000"}
    )
    assert json.loads(stdout) == EXPECTED
    assert elapsed < 60
