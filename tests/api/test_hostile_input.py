"""Malformed, mistyped, oversized and malicious input gets a clear 4xx, never a 500."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.api._data import decision, ids, new_id, run, step
from tests.api.conftest import ClientFactory
from xray.api import create_app
from xray.shared import APIConfig

INGEST = ["/batch", "/runs", f"/runs/{new_id()}/steps"]


async def _post_raw(client: httpx.AsyncClient, path: str, content: bytes | str) -> httpx.Response:
    return await client.post(path, content=content, headers={"Content-Type": "application/json"})


@pytest.mark.parametrize("path", INGEST)
@pytest.mark.parametrize(
    "content", ["{", '{"runs": [}', "not json", "", "   ", '{"a": NaN}', "[Infinity]", "1e999"]
)
async def test_malformed_json_is_400(client: httpx.AsyncClient, path: str, content: str) -> None:
    response = await _post_raw(client, path, content)
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"] == "bad_request"
    assert "JSON" in body["message"] or "empty" in body["message"]


async def test_invalid_utf8_is_400(client: httpx.AsyncClient) -> None:
    response = await _post_raw(client, "/batch", b'{"runs": ["\xff\xfe"]}')
    assert response.status_code == 400
    assert "UTF-8" in response.json()["message"]


async def test_absurd_nesting_is_400(client: httpx.AsyncClient) -> None:
    response = await _post_raw(client, "/runs", "[" * 100_000 + "]" * 100_000)
    assert response.status_code in (400, 422)


@pytest.mark.parametrize("path", INGEST)
@pytest.mark.parametrize("content", ["42", '"run"', "null", "true"])
async def test_json_that_is_not_an_object_or_list_is_422(
    client: httpx.AsyncClient, path: str, content: str
) -> None:
    response = await _post_raw(client, path, content)
    assert response.status_code == 422, response.text
    assert response.json()["fields"]


WRONG_RUNS: list[tuple[dict[str, Any], str]] = [
    ({"started_at": "yesterday"}, "started_at"),
    ({"started_at": None}, "started_at"),
    ({"id": "not-a-uuid"}, "id"),
    ({"pipeline": ""}, "pipeline"),
    ({"pipeline": 7}, "pipeline"),
    ({"pipeline": "p" * 201}, "pipeline"),
    ({"status": "finished"}, "status"),
    ({"metadata": [1, 2]}, "metadata"),
    ({"duration_ms": -1}, "duration_ms"),
    ({"error": {"message": "no type"}}, "error.type"),
]


@pytest.mark.parametrize(("change", "field"), WRONG_RUNS)
async def test_wrong_run_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    body = [run(), {**run(), **change}]
    response = await client.post("/runs", json=body)
    assert response.status_code == 422, response.text
    fields = [f["field"] for f in response.json()["fields"]]
    assert f"runs[1].{field}" in fields
    assert f"runs[1].{field}" in response.json()["message"]
    single = await client.post("/runs", json={**run(), **change})
    assert field in [f["field"] for f in single.json()["fields"]]


WRONG_STEPS: list[tuple[dict[str, Any], str]] = [
    ({"type": "sorting-hat"}, "type"),
    ({"type": None}, "type"),
    ({"type": "FILTER"}, "type"),
    ({"input_count": "many"}, "input_count"),
    ({"input_count": -1}, "input_count"),
    ({"input_count": 2**70}, "input_count"),
    ({"seq": 1.5}, "seq"),
    ({"decisions": {"a": 1}}, "decisions"),
    ({"decisions": [{"candidate_key": "a", "decision": "maybe"}]}, "decisions[0].decision"),
    ({"decisions": [{"candidate_key": "", "decision": "accepted"}]}, "decisions[0].candidate_key"),
    (
        {"decisions": [{"candidate_key": "k" * 513, "decision": "accepted"}]},
        "decisions[0].candidate_key",
    ),
    ({"reasoning": "r" * 100_001}, "reasoning"),
    ({"reason_counts": {"price": "many"}}, "reason_counts.price"),
    ({"detail": "everything"}, "detail"),
    ({"parent_id": 12}, "parent_id"),
]


@pytest.mark.parametrize(("change", "field"), WRONG_STEPS)
async def test_wrong_step_fields_are_422_naming_the_field(
    client: httpx.AsyncClient, change: dict[str, Any], field: str
) -> None:
    r = run()
    body = {"runs": [r], "steps": [step(r["id"]), {**step(r["id"]), **change}]}
    response = await client.post("/batch", json=body)
    assert response.status_code == 422, response.text
    assert f"steps[1].{field}" in [f["field"] for f in response.json()["fields"]]
    assert (await client.get("/runs")).json()["items"] == []


async def test_huge_strings_within_the_limit_round_trip(client: httpx.AsyncClient) -> None:
    r = run(input={"blob": "x" * 1_000_000}, metadata={"k": "v" * 10_000})
    s = step(r["id"], reasoning="why " * 25_000, decisions=[decision("k" * 512, reason="r" * 500)])
    response = await client.post("/batch", json={"runs": [r], "steps": [s]})
    assert response.status_code == 200, response.text
    got = (await client.get(f"/runs/{r['id']}")).json()
    assert got["input"]["blob"] == "x" * 1_000_000
    assert got["steps"][0]["reasoning"] == "why " * 25_000
    assert (await client.get("/runs", params={"metadata.k": "v" * 10_000})).json()["items"]
    found = (await client.get("/candidates/" + "k" * 512)).json()["items"]
    assert [d["reason"] for d in found] == ["r" * 500]


async def test_unicode_round_trips_and_is_filterable(client: httpx.AsyncClient) -> None:
    pipeline = "比較-パイプライン 🚀 ünïcødé"
    key = "候補/🔑/ß"
    r = run(pipeline=pipeline, metadata={"länder": "Ελλάδα", "emoji": "👍🏽"})
    s = step(r["id"], name="фильтр", reasoning="‮right-to-left‬", decisions=[decision(key)])
    assert (await client.post("/batch", json={"runs": [r], "steps": [s]})).status_code == 200
    assert ids((await client.get("/runs", params={"pipeline": pipeline})).json()) == [r["id"]]
    by_meta = await client.get("/runs", params={"metadata.länder": "Ελλάδα"})
    assert ids(by_meta.json()) == [r["id"]]
    assert ids((await client.get("/steps", params={"name": "фильтр"})).json()) == [s["id"]]
    found = (await client.get("/candidates/" + quote(key, safe="/"))).json()["items"]
    assert [d["candidate_key"] for d in found] == [key]
    pipelines = (await client.get("/pipelines")).json()["items"]
    assert [p["pipeline"] for p in pipelines] == [pipeline]


async def test_nul_characters_and_lone_surrogates_are_replaced_not_fatal(
    client: httpx.AsyncClient,
) -> None:
    run_id = new_id()
    body = {
        "id": run_id,
        "pipeline": "p\x00q",
        "started_at": "2024-01-01T00:00:00Z",
        "metadata": {"k\x00": "\ud800x"},
        "input": ["\udfff", "\x00"],
    }
    raw = json.dumps(body)  # ensure_ascii: sent as \u0000 and \ud800 escapes
    assert "\\ud800" in raw
    response = await _post_raw(client, "/runs", raw)
    assert response.status_code == 200, response.text
    got = (await client.get(f"/runs/{run_id}")).json()
    assert got["pipeline"] == "p\ufffdq"
    assert got["metadata"] == {"k\ufffd": "\ufffdx"}
    assert got["input"] == ["\ufffd", "\ufffd"]


async def test_nul_in_the_url_is_400(client: httpx.AsyncClient) -> None:
    for url in ("/runs?pipeline=a%00b", "/candidates/a%00b", "/runs?metadata.k%00=v"):
        response = await client.get(url)
        assert response.status_code == 400, url
        assert response.json()["error"] == "bad_request"


SQL_VALUES = [
    "' OR '1'='1",
    "'; DROP TABLE runs; --",
    '" OR ""="',
    "%",
    "_",
    "\\",
    "*/ SELECT 1 /*",
    "$1",
    ":id",
    "') OR 1=1 --",
    "$.x",
    '$."a"',
    "null",
]
STRING_FILTERS = {
    "/runs": ["pipeline", "step_name", "metadata.seller", "metadata.' OR 1=1 --", 'metadata.$."x"'],
    "/steps": ["name", "pipeline"],
    "/candidates/{v}": ["pipeline"],
}


@pytest.mark.parametrize("value", SQL_VALUES)
async def test_sql_metacharacters_in_every_filter_value_match_nothing(
    client: httpx.AsyncClient, value: str
) -> None:
    r = run(pipeline="real", metadata={"seller": 7})
    s = step(r["id"], decisions=[decision("real-key", reason="price")])
    assert (await client.post("/batch", json={"runs": [r], "steps": [s]})).status_code == 200
    for path, names in STRING_FILTERS.items():
        url = path.replace("{v}", quote(value, safe=""))
        for name in names:
            response = await client.get(url, params={name: value})
            assert response.status_code == 200, (path, name, response.text)
            assert response.json()["items"] == [], (path, name)
    decisions_url = f"/steps/{s['id']}/decisions"
    for name in ("reason", "candidate_key"):
        response = await client.get(decisions_url, params={name: value})
        assert response.status_code == 200
        assert response.json()["items"] == []
    # Typed parameters refuse the value instead of passing it on.
    for path, name in [
        ("/runs", "status"),
        ("/runs", "step_type"),
        ("/runs", "since"),
        ("/steps", "run_id"),
        ("/steps", "min_input_count"),
        ("/steps", "min_elimination_rate"),
        (decisions_url, "decision"),
    ]:
        response = await client.get(path, params={name: value})
        assert response.status_code == 422, (path, name)
        assert response.json()["fields"][0]["field"] == name
    # And the data is intact.
    assert ids((await client.get("/runs")).json()) == [r["id"]]
    assert (await client.get("/candidates/real-key")).json()["items"]


WRONG_QUERY: list[tuple[str, dict[str, str], str]] = [
    ("/runs", {"limit": "abc"}, "limit"),
    ("/runs", {"limit": "0"}, "limit"),
    ("/runs", {"limit": "501"}, "limit"),
    ("/runs", {"since": "last tuesday"}, "since"),
    ("/runs", {"status": "done"}, "status"),
    ("/runs", {"step_type": "sorting-hat"}, "step_type"),
    ("/runs", {"min_elimination_rate": "nan"}, "min_elimination_rate"),
    ("/runs", {"min_elimination_rate": "inf"}, "min_elimination_rate"),
    ("/steps", {"type": "x"}, "type"),
    ("/steps", {"run_id": "42"}, "run_id"),
    ("/steps", {"min_input_count": "-1"}, "min_input_count"),
    ("/steps", {"min_input_count": str(2**64)}, "min_input_count"),
    ("/steps", {"until": "2024-13-45"}, "until"),
    ("/steps", {"pipeline": "p" * 201}, "pipeline"),
    ("/candidates/k", {"limit": "1001"}, "limit"),
    ("/candidates/k", {"run_id": "x"}, "run_id"),
]


@pytest.mark.parametrize(("path", "params", "field"), WRONG_QUERY)
async def test_wrong_query_parameters_are_422_naming_the_parameter(
    client: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    response = await client.get(path, params=params)
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"] == "validation_error"
    assert [f["field"] for f in body["fields"]] == [field]
    assert body["message"].startswith(field)


async def test_bad_uuid_in_the_path_is_422(client: httpx.AsyncClient) -> None:
    for path in ("/runs/42", "/steps/xyz", "/steps/xyz/decisions"):
        response = await client.get(path)
        assert response.status_code == 422
        assert response.json()["fields"][0]["field"] in ("run_id", "step_id")
    response = await client.post("/runs/not-a-uuid/steps", json=[])
    assert response.status_code == 422


async def test_unknown_path_and_wrong_method_answer_json(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    response = await client.delete("/runs")
    assert response.status_code == 405
    assert response.json()["error"] == "method_not_allowed"
    response = await client.put("/batch", json={})
    assert response.status_code == 405


async def test_empty_lists_are_fine(client: httpx.AsyncClient) -> None:
    for path, body in (("/batch", {}), ("/runs", []), (f"/runs/{new_id()}/steps", [])):
        response = await client.post(path, json=body)
        assert response.status_code == 200, path
        assert response.json() == {"runs": 0, "steps": 0, "decisions": 0}


async def test_random_mutations_of_valid_payloads_never_answer_500(
    client: httpx.AsyncClient,
) -> None:
    rng = random.Random(20240501)
    junk: list[Any] = [None, "", "x", -1, 2**40, 1.5, True, [], {}, [1], {"a": None}, "2024-01-01"]
    statuses = set()
    for _ in range(60):
        r = run()
        s = step(r["id"], input_count=3, output_count=1, decisions=[decision("a")])
        target = rng.choice([r, s, s["decisions"][0]])
        key = rng.choice(sorted(target))
        target[key] = rng.choice(junk)
        response = await client.post("/batch", json={"runs": [r], "steps": [s]})
        statuses.add(response.status_code)
        assert response.status_code < 500, (key, target[key], response.text)
    assert statuses <= {200, 404, 422}


class TestBodyLimit:
    async def test_declared_oversize_body_is_413(self, make_client: ClientFactory) -> None:
        async with make_client(max_body_bytes=2048) as client:
            response = await client.post("/batch", json={"runs": [run(input="x" * 5000)]})
            assert response.status_code == 413
            assert response.json()["error"] == "payload_too_large"
            assert "2048" in response.json()["message"]

    async def test_streamed_oversize_body_without_length_is_413(
        self, make_client: ClientFactory
    ) -> None:
        async def chunks() -> Any:
            for _ in range(10):
                yield b" " * 1000

        async with make_client(max_body_bytes=4096) as client:
            response = await client.post("/batch", content=chunks())
            assert response.status_code == 413

    async def test_gzip_bomb_is_413_after_decompression(self, make_client: ClientFactory) -> None:
        bomb = gzip.compress(b'{"runs": [' + b" " * 50_000_000 + b"]}")
        assert len(bomb) < 100_000
        async with make_client(max_body_bytes=1_000_000) as client:
            response = await client.post(
                "/batch", content=bomb, headers={"Content-Encoding": "gzip"}
            )
            assert response.status_code == 413
            assert "decompressed" in response.json()["message"]

    async def test_body_at_the_limit_is_accepted(self, make_client: ClientFactory) -> None:
        async with make_client(max_body_bytes=4096) as client:
            body = json.dumps({"runs": [run()]}).encode()
            body = body + b" " * (4096 - len(body))
            response = await client.post("/batch", content=body)
            assert response.status_code == 200, response.text

    async def test_broken_gzip_is_400(self, client: httpx.AsyncClient) -> None:
        for content in (b"not gzip at all", gzip.compress(b'{"runs": []}')[:-12]):
            response = await client.post(
                "/batch", content=content, headers={"Content-Encoding": "gzip"}
            )
            assert response.status_code == 400
            assert "gzip" in response.json()["message"]

    async def test_unsupported_encoding_is_400(self, client: httpx.AsyncClient) -> None:
        response = await client.post("/batch", content=b"{}", headers={"Content-Encoding": "br"})
        assert response.status_code == 400
        assert "Content-Encoding" in response.json()["message"]


@pytest.mark.parametrize("when", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-05:00"])
async def test_dates_that_overflow_in_utc_are_400(client: httpx.AsyncClient, when: str) -> None:
    response = await client.get("/runs", params={"since": when})
    assert response.status_code == 400
    assert "out of range" in response.json()["message"]
    response = await client.post("/runs", json=run(started_at=when))
    assert response.status_code == 400
    assert "out of range" in response.json()["message"]


async def test_only_database_failures_answer_503(tmp_path: Path) -> None:
    # A file or socket error outside the database is a bug (500), not an outage (503).
    app = create_app(APIConfig(database_url=f"sqlite+aiosqlite:///{tmp_path / 'x.db'}"))

    @app.get("/file")
    def missing_file() -> None:
        (tmp_path / "no-such-file").read_bytes()

    @app.get("/slow")
    async def slow() -> None:
        raise TimeoutError("an HTTP call elsewhere timed out")

    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            for path in ("/file", "/slow"):
                response = await client.get(path)
                assert response.status_code == 500, path
                assert response.json()["error"] == "internal_error"
