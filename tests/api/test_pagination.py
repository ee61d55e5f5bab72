"""Keyset pagination: no gaps and no repeats, even while new data arrives between pages."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api._data import decision, run, step


async def _walk(
    client: httpx.AsyncClient, path: str, params: dict[str, Any], between: Any = None
) -> list[str]:
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        query = dict(params, **({"cursor": cursor} if cursor else {}))
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["items"]) <= params["limit"]
        seen += [str(item["id"]) for item in page["items"]]
        cursor = page["next_cursor"]
        pages += 1
        if cursor is None:
            return seen
        if between is not None:
            await between(pages)


async def test_run_pages_have_no_gaps_or_repeats_while_runs_arrive(
    client: httpx.AsyncClient,
) -> None:
    # Several runs share a start time, so the id tie-breaker is exercised too.
    original = [run(started=i // 3) for i in range(23)]
    assert (await client.post("/runs", json=original)).status_code == 200

    async def more_arrive(page: int) -> None:
        newer = [run(started=1000 + page * 10 + i) for i in range(2)]
        assert (await client.post("/runs", json=newer)).status_code == 200

    seen = await _walk(client, "/runs", {"limit": 5}, more_arrive)
    assert len(seen) == len(set(seen))
    # Runs newer than the first page start before the cursor and are not in this walk;
    # every original run is seen exactly once, in order.
    expected = [
        r["id"] for r in sorted(original, key=lambda r: (r["started_at"], r["id"]), reverse=True)
    ]
    assert [i for i in seen if i in set(expected)] == expected


async def test_step_pages_cover_every_step_once(client: httpx.AsyncClient) -> None:
    r = run()
    steps = [step(r["id"], seq=i, started=i // 4) for i in range(17)]
    assert (await client.post("/batch", json={"runs": [r], "steps": steps})).status_code == 200
    seen = await _walk(client, "/steps", {"limit": 4, "type": "filter"})
    assert sorted(seen) == sorted(s["id"] for s in steps)
    assert len(seen) == 17


async def test_candidate_pages_cover_every_decision_once(client: httpx.AsyncClient) -> None:
    runs = [run(started=i) for i in range(4)]
    steps = [
        step(r["id"], seq=j, started=i + j, decisions=[decision("k"), decision("k", "scored")])
        for i, r in enumerate(runs)
        for j in range(2)
    ]
    assert (await client.post("/batch", json={"runs": runs, "steps": steps})).status_code == 200
    all_at_once = (await client.get("/candidates/k", params={"limit": 100})).json()["items"]
    walked = await _walk(client, "/candidates/k", {"limit": 3})
    assert walked == [str(d["id"]) for d in all_at_once]
    assert len(walked) == 16
    # Newest run first.
    order = [d["run_id"] for d in all_at_once]
    assert order == [r["id"] for r in reversed(runs) for _ in range(4)]


async def test_pipeline_pages(client: httpx.AsyncClient) -> None:
    runs = [run(pipeline=f"p{i:02d}") for i in range(7)]
    assert (await client.post("/runs", json=runs)).status_code == 200
    names: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/pipelines", params=params)).json()
        names += [p["pipeline"] for p in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert names == [f"p{i:02d}" for i in range(7)]


@pytest.mark.parametrize("cursor", ["garbage", "!!!", "eyJ4IjoxfQ", "W10", "", "a" * 5000])
async def test_a_cursor_that_is_not_ours_is_400(client: httpx.AsyncClient, cursor: str) -> None:
    response = await client.get("/runs", params={"cursor": cursor})
    if cursor == "":
        assert response.status_code == 200  # empty means "first page"
        return
    assert response.status_code in (400, 422)
    assert response.json()["fields"][0]["field"] == "cursor"


async def test_a_cursor_from_another_list_is_400(client: httpx.AsyncClient) -> None:
    runs = [run(started=i) for i in range(3)]
    await client.post("/runs", json=runs)
    cursor = (await client.get("/runs", params={"limit": 1})).json()["next_cursor"]
    assert cursor
    response = await client.get("/steps", params={"cursor": cursor})
    assert response.status_code == 400
    assert response.json()["error"] == "bad_request"
