"""The SDK against the real API (``python -m xray.api`` on SQLite, in a subprocess)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._servers import RunningServer, api_server
from xray.sdk import XRayClient, current_step, step

pytestmark = pytest.mark.slow

KEY = "e2e-key"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("sdk-e2e")
    url = f"sqlite+aiosqlite:///{workdir / 'xray.db'}"
    # A loaded shared machine can take longer than the default to start Python and migrate.
    with api_server(url, workdir=workdir, api_keys=(KEY,), startup_timeout=120) as running:
        yield running


@step(type="filter", key="asin", detail="full")
def price_filter(candidates: list[dict[str, Any]], max_price: float) -> list[dict[str, Any]]:
    s = current_step()
    s.set_params(max_price=max_price)
    kept = []
    for c in candidates:
        if c["price"] > max_price:
            s.reject(c, reason="price_above_max", price=c["price"])
        else:
            kept.append(c)
    return kept


@step(type="select", key="asin")
def pick(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    current_step().select(candidates[0], reason="cheapest")
    return candidates[:1]


def get(server: RunningServer, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.base_url}{path}", params=params, headers={"X-API-Key": KEY}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_a_recorded_run_is_queryable_with_steps_and_decisions(
    server: RunningServer, clean_environment: Path
) -> None:
    client = XRayClient(base_url=server.base_url, api_key=KEY, flush_interval=0.1)
    catalogue = [{"asin": f"B{i:03d}", "price": float(i)} for i in range(50)]
    with client.run("e2e", input={"asin": "B0X"}, metadata={"seller": 7}) as run:
        best = pick(price_filter(catalogue, max_price=9.5))
        run.set_output(best[0])
    assert client.flush(20)
    assert client.stats()["dropped"] == 0

    detail = get(server, f"/runs/{run.id}")
    assert detail["status"] == "success" and detail["metadata"] == {"seller": 7}
    assert detail["output"] == {"asin": "B000", "price": 0.0}
    steps = {s["name"]: s for s in detail["steps"]}
    assert [s["name"] for s in detail["steps"]] == ["price_filter", "pick"]
    filtered = steps["price_filter"]
    assert (filtered["input_count"], filtered["output_count"]) == (50, 10)
    assert filtered["elimination_rate"] == pytest.approx(0.8)
    assert filtered["reason_counts"] == {"price_above_max": 40}
    decisions = get(server, f"/steps/{filtered['id']}/decisions", reason="price_above_max")
    assert len(decisions["items"]) == 40
    found = get(server, "/runs", step_type="filter", min_elimination_rate=0.75, pipeline="e2e")
    assert run.id in [r["id"] for r in found["items"]]


def test_a_wrong_key_drops_with_http_4xx_and_the_pipeline_is_unaffected(
    server: RunningServer, clean_environment: Path
) -> None:
    client = XRayClient(base_url=server.base_url, api_key="wrong", flush_interval=0.1)
    with client.run("e2e-wrong-key"):
        assert pick(price_filter([{"asin": "A", "price": 1.0}], max_price=2)) == [
            {"asin": "A", "price": 1.0}
        ]
    assert client.flush(20)
    stats = client.stats()
    assert stats["sent"] == 0 and stats["dropped_by_reason"].get("http_4xx", 0) > 0
