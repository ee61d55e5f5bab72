"""Every query filter, alone and combined, returns exactly the expected ids, in order."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api._data import at, decision, run, step

# name: (pipeline, status, start second, metadata)
RUNS: dict[str, tuple[str, str, int, dict[str, Any]]] = {
    "r1": ("competitor-selection", "success", 100, {"seller": 7, "env": "prod"}),
    "r2": ("competitor-selection", "error", 200, {"seller": "7", "env": "dev"}),
    "r3": ("listing-quality", "success", 300, {"seller": 8, "flag": True}),
    "r4": ("listing-quality", "running", 400, {"env": "prod", "note": "it's'; DROP TABLE runs;--"}),
    "r5": ("categorize", "success", 500, {}),
}
# name: (run, seq, step name, type, in, out, status, decisions)
STEPS: dict[str, tuple[str, int, str, str, int | None, int | None, str, list[Any]]] = {
    "s1a": ("r1", 0, "search", "retrieval", None, 5000, "success", []),
    "s1b": (
        "r1",
        1,
        "price_filter",
        "filter",
        5000,
        30,
        "success",
        [
            decision("laptop-stand-1", "accepted"),
            decision("phone-case", "rejected", reason="price"),
            decision("x", "rejected", reason="price"),
        ],
    ),
    "s1c": (
        "r1",
        2,
        "rank",
        "rank",
        30,
        30,
        "success",
        [decision("laptop-stand-1", "selected", score=0.9, rank=1)],
    ),
    "s2a": (
        "r2",
        0,
        "price_filter",
        "filter",
        100,
        50,
        "success",
        [
            decision("phone-case", "accepted"),
            decision("laptop-stand-1", "rejected", reason="price"),
        ],
    ),
    "s2b": ("r2", 1, "relevance", "llm", 50, 5, "success", []),
    "s3a": (
        "r3",
        0,
        "dedupe",
        "filter",
        1000,
        50,
        "success",
        [decision("phone-case", "rejected", reason="duplicate")],
    ),
    "s3b": ("r3", 1, "pick", "select", 50, 1, "success", []),
    "s4a": ("r4", 0, "price_filter", "filter", 10, 10, "error", []),
}


@pytest.fixture
async def data(client: httpx.AsyncClient) -> dict[str, str]:
    """Post the data set above; return name -> id (and id -> name)."""
    names: dict[str, str] = {}
    runs = []
    for name, (pipeline, status, start, metadata) in RUNS.items():
        ended = start + 50 if status != "running" else None
        body = run(pipeline=pipeline, status=status, started=start, ended=ended, metadata=metadata)
        names[name] = body["id"]
        runs.append(body)
    steps = []
    for name, (run_name, seq, step_name, type_, n_in, n_out, status, decisions) in STEPS.items():
        body = step(
            names[run_name],
            name=step_name,
            type=type_,
            seq=seq,
            started=RUNS[run_name][2] + seq + 1,
            input_count=n_in,
            output_count=n_out,
            status=status,
            decisions=decisions,
        )
        names[name] = body["id"]
        steps.append(body)
    response = await client.post("/batch", json={"runs": runs, "steps": steps})
    assert response.status_code == 200, response.text
    names.update({v: k for k, v in list(names.items())})
    return names


async def _names(
    client: httpx.AsyncClient, data: dict[str, str], path: str, params: Any = None
) -> list[str]:
    response = await client.get(path, params=params)
    assert response.status_code == 200, response.text
    page = response.json()
    assert page["next_cursor"] is None
    return [data[item["id"]] for item in page["items"]]


RUN_CASES: list[tuple[Any, list[str]]] = [
    ({}, ["r5", "r4", "r3", "r2", "r1"]),
    ({"pipeline": "competitor-selection"}, ["r2", "r1"]),
    ({"pipeline": "nope"}, []),
    ({"status": "success"}, ["r5", "r3", "r1"]),
    ({"status": "running"}, ["r4"]),
    ({"since": at(200)}, ["r5", "r4", "r3", "r2"]),
    ({"until": at(300)}, ["r3", "r2", "r1"]),
    ({"since": at(200), "until": at(300)}, ["r3", "r2"]),
    ({"since": "2024-05-01T14:03:20+02:00"}, ["r5", "r4", "r3", "r2"]),  # = at(200)
    ({"since": "2024-05-01T12:03:20"}, ["r5", "r4", "r3", "r2"]),  # no zone: UTC
    ({"metadata.seller": "7"}, ["r2", "r1"]),
    ({"metadata.seller": "8"}, ["r3"]),
    ({"metadata.seller": "nope"}, []),
    ({"metadata.env": "prod"}, ["r4", "r1"]),
    ([("metadata.env", "prod"), ("metadata.seller", "7")], ["r1"]),
    ({"metadata.flag": "true"}, ["r3"]),
    ({"metadata.flag": "false"}, []),
    ({"metadata.seller": "7.0"}, ["r1"]),  # numbers compare as numbers; "7" is a string
    ({"metadata.seller": "07"}, []),
    ({"metadata.note": "it's'; DROP TABLE runs;--"}, ["r4"]),
    ({"metadata.missing": "x"}, []),
    ({"step_type": "filter"}, ["r4", "r3", "r2", "r1"]),
    ({"step_type": "filter", "min_elimination_rate": 0.9}, ["r3", "r1"]),
    ({"step_type": "llm", "min_elimination_rate": 0.9}, ["r2"]),
    ({"step_type": "filter", "max_elimination_rate": 0.6}, ["r4", "r2"]),
    ({"step_name": "price_filter", "min_elimination_rate": 0.9}, ["r1"]),
    ({"min_elimination_rate": 0.97}, ["r3", "r1"]),
    (
        {"pipeline": "listing-quality", "step_type": "filter", "min_elimination_rate": 0.9},
        ["r3"],
    ),
    ({"status": "success", "metadata.env": "prod"}, ["r1"]),
    ({"status": "error", "step_type": "filter", "metadata.seller": "7"}, ["r2"]),
]


@pytest.mark.parametrize(("params", "expected"), RUN_CASES)
async def test_run_filters(
    client: httpx.AsyncClient, data: dict[str, str], params: Any, expected: list[str]
) -> None:
    assert await _names(client, data, "/runs", params) == expected


async def test_run_items_carry_their_step_count(
    client: httpx.AsyncClient, data: dict[str, str]
) -> None:
    page = (await client.get("/runs")).json()
    counts = {data[item["id"]]: item["step_count"] for item in page["items"]}
    assert counts == {"r1": 3, "r2": 2, "r3": 2, "r4": 1, "r5": 0}


STEP_CASES: list[tuple[Any, list[str]]] = [
    ({}, ["s4a", "s3b", "s3a", "s2b", "s2a", "s1c", "s1b", "s1a"]),
    ({"type": "filter", "min_elimination_rate": 0.9}, ["s3a", "s1b"]),
    ({"type": "filter"}, ["s4a", "s3a", "s2a", "s1b"]),
    ({"name": "price_filter"}, ["s4a", "s2a", "s1b"]),
    ({"pipeline": "listing-quality"}, ["s4a", "s3b", "s3a"]),
    ({"status": "error"}, ["s4a"]),
    ({"max_elimination_rate": 0.5}, ["s4a", "s2a", "s1c"]),
    ({"min_elimination_rate": 0.5, "max_elimination_rate": 0.95}, ["s3a", "s2b", "s2a"]),
    ({"min_input_count": 1000}, ["s3a", "s1b"]),
    ({"since": at(300), "until": at(400)}, ["s3b", "s3a"]),
    (
        {"type": "filter", "pipeline": "competitor-selection", "min_elimination_rate": 0.4},
        ["s2a", "s1b"],
    ),
    ({"type": "custom"}, []),
]


@pytest.mark.parametrize(("params", "expected"), STEP_CASES)
async def test_step_filters(
    client: httpx.AsyncClient, data: dict[str, str], params: Any, expected: list[str]
) -> None:
    assert await _names(client, data, "/steps", params) == expected


async def test_step_filter_by_run_id(client: httpx.AsyncClient, data: dict[str, str]) -> None:
    assert await _names(client, data, "/steps", {"run_id": data["r1"]}) == ["s1c", "s1b", "s1a"]


async def test_step_items_carry_the_contract_fields(
    client: httpx.AsyncClient, data: dict[str, str]
) -> None:
    item = (await client.get(f"/steps/{data['s1b']}")).json()
    assert item["run_id"] == data["r1"]
    assert item["pipeline"] == "competitor-selection"
    assert item["name"] == "price_filter"
    assert item["type"] == "filter"
    assert item["status"] == "success"
    assert (item["input_count"], item["output_count"]) == (5000, 30)
    assert item["elimination_rate"] == pytest.approx(0.994)
    assert item["started_at"] == "2024-05-01T12:01:42Z"
    assert "duration_ms" in item


async def test_run_detail_has_steps_in_seq_order(
    client: httpx.AsyncClient, data: dict[str, str]
) -> None:
    detail = (await client.get(f"/runs/{data['r1']}")).json()
    assert [data[s["id"]] for s in detail["steps"]] == ["s1a", "s1b", "s1c"]
    assert detail["step_count"] == 3
    assert detail["metadata"] == {"seller": 7, "env": "prod"}


async def test_unknown_run_and_step_are_404(
    client: httpx.AsyncClient, data: dict[str, str]
) -> None:
    missing = "00000000-0000-0000-0000-000000000000"
    for path in (f"/runs/{missing}", f"/steps/{missing}", f"/steps/{missing}/decisions"):
        response = await client.get(path)
        assert response.status_code == 404, path
        assert response.json()["error"] == "not_found"
        assert missing in response.json()["message"]


DECISION_CASES: list[tuple[Any, list[str]]] = [
    ({}, ["laptop-stand-1", "phone-case", "x"]),
    ({"decision": "rejected"}, ["phone-case", "x"]),
    ({"reason": "price"}, ["phone-case", "x"]),
    ({"candidate_key": "x"}, ["x"]),
    ({"decision": "accepted", "reason": "price"}, []),
]


@pytest.mark.parametrize(("params", "expected"), DECISION_CASES)
async def test_step_decision_filters(
    client: httpx.AsyncClient, data: dict[str, str], params: Any, expected: list[str]
) -> None:
    response = await client.get(f"/steps/{data['s1b']}/decisions", params=params)
    assert [d["candidate_key"] for d in response.json()["items"]] == expected


async def test_decisions_carry_their_step_identity(
    client: httpx.AsyncClient, data: dict[str, str]
) -> None:
    item = (await client.get(f"/steps/{data['s1c']}/decisions")).json()["items"][0]
    assert item["step_id"] == data["s1c"]
    assert item["run_id"] == data["r1"]
    assert (item["pipeline"], item["step_name"], item["step_type"], item["step_seq"]) == (
        "competitor-selection",
        "rank",
        "rank",
        2,
    )
    assert (item["decision"], item["score"], item["rank"]) == ("selected", 0.9, 1)


CANDIDATE_CASES: list[tuple[str, Any, list[str]]] = [
    ("phone-case", {}, ["s3a", "s2a", "s1b"]),
    ("laptop-stand-1", {}, ["s2a", "s1b", "s1c"]),
    ("laptop-stand-1", {"pipeline": "competitor-selection"}, ["s2a", "s1b", "s1c"]),
    ("phone-case", {"pipeline": "listing-quality"}, ["s3a"]),
    ("never-seen", {}, []),
]


@pytest.mark.parametrize(("key", "params", "expected"), CANDIDATE_CASES)
async def test_candidate_fate_across_steps_and_runs(
    client: httpx.AsyncClient, data: dict[str, str], key: str, params: Any, expected: list[str]
) -> None:
    response = await client.get(f"/candidates/{key}", params=params)
    assert response.status_code == 200, response.text
    assert [data[d["step_id"]] for d in response.json()["items"]] == expected


async def test_candidate_filter_by_run(client: httpx.AsyncClient, data: dict[str, str]) -> None:
    response = await client.get("/candidates/laptop-stand-1", params={"run_id": data["r1"]})
    assert [data[d["step_id"]] for d in response.json()["items"]] == ["s1b", "s1c"]


async def test_candidate_keys_may_contain_slashes(client: httpx.AsyncClient) -> None:
    r = run()
    key = "https://shop.example/item/42?ref=a b"
    body = {"runs": [r], "steps": [step(r["id"], decisions=[decision(key)])]}
    assert (await client.post("/batch", json=body)).status_code == 200
    from urllib.parse import quote

    response = await client.get("/candidates/" + quote(key, safe="/"))
    assert [d["candidate_key"] for d in response.json()["items"]] == [key]


async def test_pipelines_by_name_with_counts(
    client: httpx.AsyncClient, data: dict[str, str]
) -> None:
    items = (await client.get("/pipelines")).json()["items"]
    assert [(p["pipeline"], p["run_count"], p["last_started_at"]) for p in items] == [
        ("categorize", 1, "2024-05-01T12:08:20Z"),
        ("competitor-selection", 2, "2024-05-01T12:03:20Z"),
        ("listing-quality", 2, "2024-05-01T12:06:40Z"),
    ]
