"""Ingest is idempotent, order-independent and atomic, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
import sqlite3
from typing import Any

import httpx
import pytest

from tests.api._data import decision, ids, new_id, run, step
from tests.api.conftest import ClientFactory


async def _post(client: httpx.AsyncClient, path: str, body: Any) -> dict[str, Any]:
    response = await client.post(path, json=body)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


async def _decisions(client: httpx.AsyncClient, step_id: str) -> list[dict[str, Any]]:
    response = await client.get(f"/steps/{step_id}/decisions", params={"limit": 1000})
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_batch_writes_runs_steps_and_decisions(client: httpx.AsyncClient) -> None:
    r = run()
    s = step(r["id"], input_count=4, output_count=1, decisions=[decision("a"), decision("b")])
    result = await _post(client, "/batch", {"runs": [r], "steps": [s]})
    assert result == {"runs": 1, "steps": 1, "decisions": 2}
    detail = (await client.get(f"/runs/{r['id']}")).json()
    assert detail["pipeline"] == "competitor-selection"
    assert [x["id"] for x in detail["steps"]] == [s["id"]]
    assert detail["steps"][0]["elimination_rate"] == 0.75
    assert [d["candidate_key"] for d in await _decisions(client, s["id"])] == ["a", "b"]


async def test_same_batch_twice_leaves_one_copy_of_everything(client: httpx.AsyncClient) -> None:
    r = run()
    s = step(r["id"], decisions=[decision(f"c{i}") for i in range(5)])
    batch = {"runs": [r], "steps": [s]}
    await _post(client, "/batch", batch)
    await _post(client, "/batch", batch)
    page = (await client.get("/runs")).json()
    assert ids(page) == [r["id"]]
    assert page["items"][0]["step_count"] == 1
    assert [d["candidate_key"] for d in await _decisions(client, s["id"])] == [
        f"c{i}" for i in range(5)
    ]


async def test_run_end_after_start_leaves_one_row_with_final_state(
    client: httpx.AsyncClient,
) -> None:
    run_id = new_id()
    await _post(client, "/runs", run(run_id, input={"q": 1}, metadata={"seller": 7}))
    await _post(
        client,
        "/runs",
        run(run_id, status="success", ended=3, output={"best": "x"}, duration_ms=3000.0),
    )
    page = (await client.get("/runs")).json()
    assert ids(page) == [run_id]
    final = page["items"][0]
    assert final["status"] == "success"
    assert final["output"] == {"best": "x"}
    assert final["input"] == {"q": 1}  # kept from the start message
    assert final["metadata"] == {"seller": 7}
    assert final["duration_ms"] == 3000.0


async def test_stale_running_update_never_regresses_a_finished_run(
    client: httpx.AsyncClient,
) -> None:
    run_id = new_id()
    await _post(client, "/runs", run(run_id, status="error", ended=2, error={"type": "E"}))
    await _post(client, "/runs", run(run_id, status="running", input={"late": True}))
    got = (await client.get(f"/runs/{run_id}")).json()
    assert got["status"] == "error"
    assert got["ended_at"] is not None
    assert got["error"]["type"] == "E"
    assert got["input"] == {"late": True}  # what was missing is filled in


async def test_start_and_end_in_one_request_apply_in_order(client: httpx.AsyncClient) -> None:
    run_id = new_id()
    body = [run(run_id), run(run_id, status="success", ended=1)]
    assert (await _post(client, "/runs", body))["runs"] == 1
    assert (await client.get(f"/runs/{run_id}")).json()["status"] == "success"


async def test_step_before_its_run_creates_a_placeholder_the_run_completes(
    client: httpx.AsyncClient,
) -> None:
    run_id = new_id()
    early = step(
        None,
        pipeline="late-pipeline",
        run_started_at="2024-05-01T11:59:00+00:00",
        decisions=[decision("k")],
    )
    await _post(client, f"/runs/{run_id}/steps", early)
    placeholder = (await client.get(f"/runs/{run_id}")).json()
    assert placeholder["status"] == "running"
    assert placeholder["pipeline"] == "late-pipeline"
    assert placeholder["started_at"] == "2024-05-01T11:59:00Z"

    await _post(
        client,
        "/runs",
        run(run_id, pipeline="late-pipeline", status="success", ended=5, metadata={"a": 1}),
    )
    final = (await client.get(f"/runs/{run_id}")).json()
    assert final["status"] == "success"
    assert final["metadata"] == {"a": 1}
    assert [s["id"] for s in final["steps"]] == [early["id"]]
    candidate = (await client.get("/candidates/k")).json()["items"]
    assert [d["run_id"] for d in candidate] == [run_id]


async def test_step_for_unknown_run_without_pipeline_is_404_and_writes_nothing(
    client: httpx.AsyncClient,
) -> None:
    known = run()
    unknown = new_id()
    body = {"runs": [known], "steps": [step(known["id"]), step(unknown)]}
    response = await client.post("/batch", json=body)
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert unknown in response.json()["message"]
    # All or nothing: the run applied before the failing step was rolled back too.
    assert (await client.get("/runs")).json()["items"] == []


async def test_resent_step_replaces_its_decisions_as_a_set(client: httpx.AsyncClient) -> None:
    r = run()
    first = step(r["id"], decisions=[decision("a"), decision("b"), decision("c")])
    await _post(client, "/batch", {"runs": [r], "steps": [first]})
    again = dict(first, decisions=[decision("b", "accepted"), decision("d")], output_count=1)
    await _post(client, f"/runs/{r['id']}/steps", again)
    got = await _decisions(client, first["id"])
    assert [(d["candidate_key"], d["decision"]) for d in got] == [
        ("b", "accepted"),
        ("d", "rejected"),
    ]
    assert (await client.get(f"/steps/{first['id']}")).json()["output_count"] == 1


async def test_one_invalid_item_rejects_the_whole_request(client: httpx.AsyncClient) -> None:
    r = run()
    good = step(r["id"])
    bad = step(r["id"], type="not-a-type")
    response = await client.post("/batch", json={"runs": [r], "steps": [good, bad]})
    assert response.status_code == 422
    body = response.json()
    assert body["error"] == "validation_error"
    assert "steps[1].type" in [f["field"] for f in body["fields"]]
    assert "steps[1].type" in body["message"]
    assert (await client.get("/runs")).json()["items"] == []


async def test_step_run_id_must_match_the_path(client: httpx.AsyncClient) -> None:
    r = run()
    await _post(client, "/runs", r)
    response = await client.post(f"/runs/{r['id']}/steps", json=[step(new_id())])
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "steps[0].run_id"


async def test_batch_step_without_run_id_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/batch", json={"steps": [step(None, pipeline="p")]})
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == "steps[0].run_id"


async def test_elimination_rate_is_computed_only_with_input(client: httpx.AsyncClient) -> None:
    r = run()
    steps = [
        step(r["id"], seq=0, input_count=5000, output_count=30),
        step(r["id"], seq=1, input_count=0, output_count=0),
        step(r["id"], seq=2, input_count=None, output_count=3),
        step(r["id"], seq=3, input_count=10, output_count=40, type="generate"),
        step(r["id"], seq=4, input_count=10, output_count=7),
    ]
    await _post(client, "/batch", {"runs": [r], "steps": steps})
    got = (await client.get(f"/runs/{r['id']}")).json()["steps"]
    # As a user reads them: 0.3, not 0.30000000000000004.
    # A step that grew its input (10 -> 40) has no elimination rate: null, not negative.
    assert [s["elimination_rate"] for s in got] == [0.994, None, None, None, 0.3]


async def test_thousands_of_decisions_in_one_step_are_stored_in_order(
    client: httpx.AsyncClient,
) -> None:
    r = run()
    many = [decision(f"cand-{i:05d}", score=i / 7) for i in range(5000)]
    s = step(r["id"], input_count=5000, output_count=0, decisions=many)
    result = await _post(client, "/batch", {"runs": [r], "steps": [s]})
    assert result["decisions"] == 5000
    keys: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 1000}
        if cursor:
            params["cursor"] = cursor
        page = (await client.get(f"/steps/{s['id']}/decisions", params=params)).json()
        keys += [d["candidate_key"] for d in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert keys == [f"cand-{i:05d}" for i in range(5000)]


async def test_gzip_body_is_accepted(client: httpx.AsyncClient) -> None:
    r = run()
    body = gzip.compress(json.dumps({"runs": [r]}).encode())
    response = await client.post(
        "/batch",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert ids((await client.get("/runs")).json()) == [r["id"]]


async def test_unknown_fields_are_ignored_for_forward_compatibility(
    client: httpx.AsyncClient,
) -> None:
    r = run(future_field={"x": 1})
    await _post(client, "/runs", r)
    assert (await client.get(f"/runs/{r['id']}")).status_code == 200


async def test_same_step_twice_in_one_request_keeps_the_last(client: httpx.AsyncClient) -> None:
    r = run()
    s1 = step(r["id"], decisions=[decision("a")])
    s2 = dict(s1, decisions=[decision("z")], name="renamed")
    result = await _post(client, "/batch", {"runs": [r], "steps": [s1, s2]})
    assert result == {"runs": 1, "steps": 1, "decisions": 1}
    assert (await client.get(f"/steps/{s1['id']}")).json()["name"] == "renamed"


async def test_sqlite_statistics_are_gathered_at_ingest(
    make_client: ClientFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The planner picks indexes from sqlite_stat1; nothing else fills it.
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite only")
    from xray.api.services import ingest

    monkeypatch.setattr(ingest, "_analyzed_at", float("-inf"))
    r = run()
    async with make_client() as client:
        await _post(client, "/batch", {"runs": [r], "steps": [step(r["id"])]})
    path = database_url.split(":///", 1)[1]
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT tbl FROM sqlite_stat1")}
    assert {"runs", "steps"} <= tables


async def test_a_batch_of_a_stored_step_and_a_new_one_stores_both(
    client: httpx.AsyncClient,
) -> None:
    # The stored step makes writing the new ones as fresh rows fail; both still land, and
    # only the re-sent step's decisions are replaced.
    r = run()
    old = step(r["id"], name="old", decisions=[decision("a"), decision("b")])
    await _post(client, "/batch", {"runs": [r], "steps": [old]})
    old["decisions"] = [decision("z")]
    new = step(r["id"], name="new", seq=1, decisions=[decision("n")])
    result = await _post(client, "/batch", {"steps": [new, old]})
    assert result == {"runs": 0, "steps": 2, "decisions": 2}
    detail = (await client.get(f"/runs/{r['id']}")).json()
    assert [s["name"] for s in detail["steps"]] == ["old", "new"]
    assert [d["candidate_key"] for d in await _decisions(client, old["id"])] == ["z"]
    assert [d["candidate_key"] for d in await _decisions(client, new["id"])] == ["n"]
