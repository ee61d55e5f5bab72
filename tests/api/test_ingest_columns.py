"""A step's decisions sent as columns (``decision_columns``) are stored exactly as the
same decisions sent one by one; a bad or misaligned column is a 422 naming it, with
nothing written; hostile columnar input is refused within bounds."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.api._data import decision, new_id, run, step

KEYS = [f"cand-{i}" for i in range(40)]


def _one_by_one() -> list[dict[str, Any]]:
    """Forty decisions with every field, some attributes missing, shared ones overridden."""
    decisions = []
    for i, key in enumerate(KEYS):
        attributes: dict[str, Any] = {"src": "bulk", "price": 0}
        if i % 3:
            attributes["price"] = round(i * 1.25, 2)
        if i % 4 == 0:
            attributes["tags"] = ["a", {"n": i}]
        decisions.append(
            decision(
                key,
                "rejected" if i % 2 else "accepted",
                reason="price_above_max" if i % 2 else None,
                score=i / 8,
                rank=i,
                attributes=attributes,
            )
        )
    return decisions


def _as_columns() -> list[dict[str, Any]]:
    """The same forty decisions: ten one by one are not here; two blocks of columns."""
    rows = _one_by_one()
    blocks = []
    for part in (rows[:25], rows[25:]):
        blocks.append(
            {
                "candidate_key": [d["candidate_key"] for d in part],
                "decision": [d["decision"] for d in part],
                "reason": [d["reason"] for d in part],
                "score": [d["score"] for d in part],
                "rank": [d["rank"] for d in part],
                "attributes": {
                    "price": [d["attributes"]["price"] or None for d in part],
                    "tags": [d["attributes"].get("tags") for d in part],
                },
                "shared_attributes": {"src": "bulk", "price": 0},
            }
        )
    return blocks


async def _decisions(client: httpx.AsyncClient, step_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/steps/{step_id}/decisions", params={"limit": 1000})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    # What the decision is, not which step or row holds it.
    own = ("id", "step_id", "run_id", "pipeline", "step_name", "step_type", "step_seq")
    return [{k: v for k, v in d.items() if k not in own} for d in items]


async def test_columns_and_one_by_one_store_identical_rows(client: httpx.AsyncClient) -> None:
    r = run()
    by_item = step(r["id"], decisions=_one_by_one())
    by_column = step(r["id"], decisions=[], decision_columns=_as_columns())
    mixed = step(r["id"], decisions=_one_by_one()[:10])
    blocks = _as_columns()
    mixed["decision_columns"] = [
        {k: (v[10:] if isinstance(v, list) else v) for k, v in blocks[0].items()}
        | {"attributes": {n: c[10:] for n, c in blocks[0]["attributes"].items()}},
        blocks[1],
    ]
    response = await client.post("/batch", json={"runs": [r], "steps": [by_item, by_column, mixed]})
    assert response.status_code == 200, response.text
    assert response.json() == {"runs": 1, "steps": 3, "decisions": 120}
    expected = await _decisions(client, by_item["id"])
    assert [d["candidate_key"] for d in expected] == KEYS
    assert expected[1]["attributes"] == {"src": "bulk", "price": 1.25}
    assert expected[0]["attributes"] == {"src": "bulk", "price": 0, "tags": ["a", {"n": 0}]}
    assert await _decisions(client, by_column["id"]) == expected
    assert await _decisions(client, mixed["id"]) == expected


async def test_columns_on_the_steps_route_with_one_value_for_all(
    client: httpx.AsyncClient,
) -> None:
    r = run()
    assert (await client.post("/runs", json=r)).status_code == 200
    block = {"candidate_key": ["a", "b"], "decision": "rejected", "reason": "dup", "score": 1}
    s = step(None, decision_columns=[block])
    response = await client.post(f"/runs/{r['id']}/steps", json=[s])
    assert response.status_code == 200, response.text
    got = await _decisions(client, s["id"])
    assert [(d["candidate_key"], d["decision"], d["reason"], d["score"]) for d in got] == [
        ("a", "rejected", "dup", 1.0),
        ("b", "rejected", "dup", 1.0),
    ]
    assert [(d["rank"], d["attributes"]) for d in got] == [(None, {}), (None, {})]


async def test_a_resent_columnar_step_replaces_its_decisions(client: httpx.AsyncClient) -> None:
    r = run()
    s = step(r["id"], decision_columns=[{"candidate_key": ["a", "b", "c"], "decision": "scored"}])
    assert (await client.post("/batch", json={"runs": [r], "steps": [s]})).status_code == 200
    s["decision_columns"] = [{"candidate_key": ["x"], "decision": "selected"}]
    other = step(r["id"], decision_columns=[{"candidate_key": ["n"], "decision": "accepted"}])
    response = await client.post("/batch", json={"steps": [s, other]})
    assert response.status_code == 200, response.text
    assert [d["candidate_key"] for d in await _decisions(client, s["id"])] == ["x"]
    assert [d["candidate_key"] for d in await _decisions(client, other["id"])] == ["n"]


def _block(**fields: Any) -> dict[str, Any]:
    return {"candidate_key": [f"k{i}" for i in range(20)], "decision": "rejected"} | fields


@pytest.mark.parametrize(
    ("block", "field", "message"),
    [
        (_block(reason=["r"] * 19), "reason", "has 19 values for 20 candidate keys"),
        (_block(score=[0.5] * 21), "score", "has 21 values for 20 candidate keys"),
        (_block(decision=["accepted"] * 3), "decision", "has 3 values for 20"),
        (_block(attributes={"p": [1] * 5}), "attributes.p", "has 5 values for 20"),
        (_block(reason=["r"] * 17 + [3, "r", "r"]), "reason[17]", "valid string"),
        (_block(reason=["r"] * 17 + ["x" * 501, "r", "r"]), "reason[17]", "at most 500"),
        (_block(decision=["accepted"] * 17 + ["nope"] * 3), "decision[17]", "'accepted'"),
        (_block(rank=[1] * 17 + [1.5, 1, 1]), "rank[17]", "fractional part"),
        (_block(score="high"), "score", "valid number"),
        (_block(candidate_key=["a", ""]), "candidate_key[1]", "at least 1 character"),
        (_block(candidate_key="a"), "candidate_key", "valid array"),
        (_block(attributes={"p": 5}), "attributes.p", "valid array"),
        (_block(attributes=[1]), "attributes", "an object"),
        (_block(shared_attributes=[1]), "shared_attributes", "an object"),
    ],
)
async def test_a_bad_column_is_422_naming_it_and_nothing_is_written(
    client: httpx.AsyncClient, block: dict[str, Any], field: str, message: str
) -> None:
    r = run()
    good = _block()
    s = step(r["id"], decision_columns=[good, block])
    response = await client.post("/batch", json={"runs": [r], "steps": [s]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["fields"][0]["field"] == f"steps[0].decision_columns[1].{field}"
    assert message in body["fields"][0]["message"]
    assert (await client.get("/runs")).json()["items"] == []


async def test_many_bad_values_in_a_huge_column_give_a_bounded_answer(
    client: httpx.AsyncClient,
) -> None:
    n = 100_000
    block = {"candidate_key": [f"k{i}" for i in range(n)], "decision": [7] * n}
    s = step(new_id(), pipeline="p", decision_columns=[block])
    response = await client.post("/batch", json={"steps": [s]})
    assert response.status_code == 422, response.text
    body = response.json()
    assert [f["field"] for f in body["fields"]] == ["steps[0].decision_columns[0].decision[0]"]
    assert len(response.content) < 2000
    assert (await client.get("/runs")).json()["items"] == []


@pytest.mark.parametrize("where", ["attributes", "shared_attributes"])
async def test_deep_attributes_in_columns_are_refused_by_name(
    client: httpx.AsyncClient, where: str
) -> None:
    deep: Any = 1
    for _ in range(200):
        deep = {"d": deep}
    block = _block()
    if where == "attributes":
        block["attributes"] = {"p": [None] * 19 + [deep]}
        field = "attributes.p[19]"
    else:
        block["shared_attributes"] = {"p": deep}
        field = "shared_attributes"
    s = step(new_id(), pipeline="p", decision_columns=[block])
    response = await client.post("/batch", json={"steps": [s]})
    assert response.status_code == 422, response.text
    assert response.json()["fields"][0]["field"] == f"steps[0].decision_columns[0].{field}"
    assert "deeper than 32" in response.json()["fields"][0]["message"]


async def test_a_large_columnar_step_is_stored_whole(client: httpx.AsyncClient) -> None:
    n = 20_000
    block = {
        "candidate_key": [f"k{i}" for i in range(n)],
        "decision": "rejected",
        "score": [i / n for i in range(n)],
        "attributes": {"price": [i % 90 for i in range(n)]},
    }
    s = step(new_id(), pipeline="p", decision_columns=[block])
    body = json.dumps({"steps": [s]})
    response = await client.post(
        "/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["decisions"] == n
