"""``GET /compare`` pairs steps by name, so a step only one run has does not shift the rest
(the pairing ``xray diff`` and the dashboard's Compare both show)."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api._data import run, step


async def _two_runs(
    client: httpx.AsyncClient, a: list[dict[str, Any]], b: list[dict[str, Any]], **fields: Any
) -> tuple[str, str]:
    run_a, run_b = run(started=1, **fields.get("a", {})), run(started=2, **fields.get("b", {}))
    steps = [step(run_a["id"], seq=i, **s) for i, s in enumerate(a)]
    steps += [step(run_b["id"], seq=i, **s) for i, s in enumerate(b)]
    response = await client.post("/batch", json={"runs": [run_a, run_b], "steps": steps})
    assert response.status_code < 300, response.text
    return run_a["id"], run_b["id"]


async def _compare(client: httpx.AsyncClient, a: str, b: str) -> Any:
    response = await client.get("/compare", params={"a": a, "b": b})
    assert response.status_code == 200, response.text
    return response.json()


async def test_a_step_only_in_b_shows_as_absent_in_a_and_keeps_the_others_paired(
    client: httpx.AsyncClient,
) -> None:
    a, b = await _two_runs(
        client,
        [{"name": "search", "input_count": 100, "output_count": 50}, {"name": "price"}],
        [
            {"name": "search", "input_count": 100, "output_count": 60},
            {"name": "dedupe"},
            {"name": "price"},
        ],
    )
    body = await _compare(client, a, b)
    assert [
        (s["position"], s["name"], s["a"] is not None, s["b"] is not None) for s in body["steps"]
    ] == [
        (1, "search", True, True),
        (2, "dedupe", False, True),
        (3, "price", True, True),
    ]
    assert body["first_difference"]["kind"] == "absent"


async def test_repeated_step_names_pair_in_order_and_params_changes_rank_first(
    client: httpx.AsyncClient,
) -> None:
    a, b = await _two_runs(
        client,
        [
            {
                "name": "stock_filter",
                "input_count": 100,
                "output_count": 80,
                "params": {"model": "a"},
            },
            {"name": "llm", "params": {"model": "a"}},
        ],
        [
            {
                "name": "stock_filter",
                "input_count": 100,
                "output_count": 60,
                "params": {"model": "a"},
            },
            {"name": "llm", "params": {"model": "b"}},
        ],
    )
    body = await _compare(client, a, b)
    assert [s["params"] for s in body["steps"]] == [[], [{"key": "model", "a": "a", "b": "b"}]]
    # The count change at stock_filter comes first in the run but ranks below the param.
    assert body["first_difference"]["step"] == "llm"
    assert [d["kind"] for d in body["differences"]] == ["params", "counts"]


async def test_small_count_noise_is_not_a_difference(client: httpx.AsyncClient) -> None:
    a, b = await _two_runs(
        client,
        [{"name": "f", "input_count": 1000, "output_count": 500}],
        [{"name": "f", "input_count": 1000, "output_count": 510}],
    )
    body = await _compare(client, a, b)
    assert body["differences"] == [] and body["first_difference"] is None
    assert body["same_input"] is True and body["same_output"] is True
