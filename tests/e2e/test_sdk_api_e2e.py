"""End to end: the real SDK records a pipeline into a real server (``python -m xray.api``
under uvicorn on 127.0.0.1), and the HTTP API answers the questions X-Ray exists for."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._servers import RunningServer, api_server
from tests.api.conftest import truncate
from xray.api import upgrade_database

pytestmark = pytest.mark.slow

KEY = "e2e-key-5f0c1b"

CATALOGUE = [
    {"asin": "B0STAND1", "title": "Laptop stand", "price": 39.0, "relevant": True},
    {"asin": "B0STAND2", "title": "Laptop riser", "price": 45.0, "relevant": True},
    {"asin": "B0CASE", "title": "Phone case", "price": 9.0, "relevant": False},
    {"asin": "B0DESK", "title": "Standing desk", "price": 499.0, "relevant": True},
    *(
        {"asin": f"B0X{i:03d}", "title": f"Cable {i}", "price": 5.0 + i, "relevant": False}
        for i in range(46)
    ),
]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RunningServer]:
    """A real server on an empty database; the session's PostgreSQL one is emptied again
    afterwards, since other test packages share it."""
    if request.param == "sqlite":
        with api_server(
            f"sqlite+aiosqlite:///{tmp_path / 'e2e.db'}",
            workdir=tmp_path / "server",
            api_keys=(KEY,),
        ) as running:
            yield running
        return
    url = request.getfixturevalue("postgres_database")
    upgrade_database(url)
    asyncio.run(truncate(url))
    try:
        with api_server(url, workdir=tmp_path / "server", api_keys=(KEY,)) as running:
            yield running
    finally:
        asyncio.run(truncate(url))


def _pipeline(client: Any, product: dict[str, Any], max_price: float) -> dict[str, Any]:
    from xray import current_step, step

    @step(type="retrieval")
    def search(query: str) -> list[dict[str, Any]]:
        return list(CATALOGUE)

    @step(type="filter", key="asin", detail="full")
    def price_filter(candidates: list[dict[str, Any]], limit: float) -> list[dict[str, Any]]:
        s = current_step()
        s.set_params(max_price=limit)
        kept = []
        for c in candidates:
            if c["price"] > limit:
                s.reject(c, reason="price_above_max", price=c["price"])
            else:
                kept.append(c)
        return kept

    @step(type="llm", key="asin", detail="full")
    def relevance(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        current_step().set_reasoning("kept items that hold a laptop")
        return [c for c in candidates if c["relevant"]]

    @step(type="select", key="asin", detail="full")
    def pick(candidates: list[dict[str, Any]]) -> dict[str, Any]:
        best = min(candidates, key=lambda c: c["price"])
        current_step().select(best, reason="cheapest")
        return best

    with client.run("competitor-selection", input=product, metadata={"seller": 7}) as run:
        best = pick(relevance(price_filter(search(product["title"]), max_price)))
        run.set_output(best)
    return best


def _get(server: RunningServer, path: str, **params: Any) -> Any:
    response = httpx.get(
        server.base_url + path, params=params, headers={"X-API-Key": KEY}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_the_sdk_records_a_pipeline_the_api_can_explain(server: RunningServer) -> None:
    from xray import XRayClient

    client = XRayClient(base_url=server.base_url, api_key=KEY, flush_interval=0.2)
    try:
        best = _pipeline(client, {"title": "Aluminium laptop stand"}, max_price=40.0)
        assert best["asin"] == "B0STAND1"
        assert client.flush(timeout=10)
        stats = client.stats()
        assert stats["dropped"] == 0, stats
    finally:
        client.shutdown(timeout=5)

    runs = _get(server, "/runs", pipeline="competitor-selection")["items"]
    assert len(runs) == 1
    run = runs[0]
    assert run["status"] == "success"
    assert run["metadata"] == {"seller": 7}
    assert run["step_count"] == 4

    detail = _get(server, f"/runs/{run['id']}")
    steps = {s["name"]: s for s in detail["steps"]}
    assert [s["name"] for s in detail["steps"]] == ["search", "price_filter", "relevance", "pick"]
    assert (steps["search"]["type"], steps["search"]["output_count"]) == ("retrieval", 50)
    flt = steps["price_filter"]
    assert (flt["input_count"], flt["output_count"]) == (50, 38)
    assert flt["elimination_rate"] == pytest.approx(1 - 38 / 50)
    assert flt["params"] == {"max_price": 40.0}
    assert flt["reason_counts"] == {"price_above_max": 12}

    rejected = _get(server, f"/steps/{flt['id']}/decisions", decision="rejected")["items"]
    assert {d["candidate_key"] for d in rejected} == {"B0STAND2", "B0DESK"} | {
        f"B0X{i:03d}" for i in range(36, 46)
    }
    assert {d["reason"] for d in rejected} == {"price_above_max"}

    # The cross-pipeline question, one request each.
    llm = _get(server, "/steps", type="llm", min_elimination_rate=0.9)["items"]
    assert [s["name"] for s in llm] == ["relevance"]
    found = _get(server, "/runs", step_type="llm", min_elimination_rate=0.9)["items"]
    assert [r["id"] for r in found] == [run["id"]]
    assert _get(server, "/runs", step_type="filter", min_elimination_rate=0.9)["items"] == []
    assert [r["id"] for r in _get(server, "/runs", **{"metadata.seller": "7"})["items"]] == [
        run["id"]
    ]

    # Where did the laptop riser drop out?
    fate = _get(server, "/candidates/B0STAND2")["items"]
    assert [(d["step_name"], d["decision"], d["reason"]) for d in fate] == [
        ("price_filter", "rejected", "price_above_max")
    ]
    chosen = _get(server, "/candidates/B0STAND1")["items"]
    assert [(d["step_name"], d["decision"]) for d in chosen][-1] == ("pick", "selected")


def test_a_wrong_key_loses_the_data_but_never_the_users_result(server: RunningServer) -> None:
    from xray import XRayClient

    client = XRayClient(base_url=server.base_url, api_key="wrong", flush_interval=0.2)
    try:
        best = _pipeline(client, {"title": "stand"}, max_price=40.0)
        assert best["asin"] == "B0STAND1"
        client.flush(timeout=10)
        assert client.stats()["dropped_by_reason"].get("http_4xx", 0) > 0
    finally:
        client.shutdown(timeout=5)
    assert _get(server, "/runs")["items"] == []


def test_the_server_requires_the_configured_key(server: RunningServer) -> None:
    response = httpx.get(server.base_url + "/runs", timeout=10)
    assert response.status_code == 401
    assert response.json()["error"] == "unauthorized"
    assert httpx.get(server.base_url + "/healthz", timeout=10).json() == {"status": "ok"}
