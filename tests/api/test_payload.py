"""Bodies validated straight from their bytes answer exactly as the careful path does."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api._data import decision, run, step

# Values the databases cannot store, nested where the fast path's parser would accept them.
REFUSED = [
    ('{"price": NaN}', 400),
    ('{"price": -Infinity}', 400),
    ('{"price": 1e400}', 400),
    ('{"price": 1.5E+999}', 400),
    ('{"price": 123456789012345678901}', 422),
]


@pytest.mark.parametrize(("attributes", "status"), REFUSED)
async def test_unstorable_numbers_inside_a_batch_are_refused_and_nothing_is_written(
    client: httpx.AsyncClient, attributes: str, status: int
) -> None:
    r = run()
    s = step(r["id"], decisions=[decision("k", attributes={})])
    body = json.dumps({"runs": [r], "steps": [s]}).replace(
        '"attributes": {}', f'"attributes": {attributes}'
    )
    response = await client.post(
        "/batch", content=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == status, response.text
    assert (await client.get("/runs")).json()["items"] == []


async def test_hex_in_ids_that_looks_like_an_exponent_is_accepted(
    client: httpx.AsyncClient,
) -> None:
    # "…e123" inside a UUID is not a number: the body is stored as sent.
    run_id = "0e123456-0000-4000-8000-00000000e999"
    r = run(run_id, metadata={"note": "e000 e123, 1e5"})
    response = await client.post("/batch", json={"runs": [r]})
    assert response.status_code == 200, response.text
    got = (await client.get(f"/runs/{run_id}")).json()
    assert got["metadata"] == {"note": "e000 e123, 1e5"}


async def test_a_batch_with_every_kind_of_value_round_trips(client: httpx.AsyncClient) -> None:
    attributes = {"f": 0.1, "i": -7, "big": 2**62, "s": 'ü\n"', "l": [1, {"a": None}], "t": True}
    r = run(metadata={"k": "v"}, input={"q": [1, 2.5]})
    s = step(r["id"], decisions=[decision("k", attributes=attributes, score=0.25, rank=2)])
    assert (await client.post("/batch", json={"runs": [r], "steps": [s]})).status_code == 200
    got = (await client.get(f"/steps/{s['id']}/decisions")).json()["items"]
    assert got[0]["attributes"] == attributes
    assert (got[0]["score"], got[0]["rank"]) == (0.25, 2)
