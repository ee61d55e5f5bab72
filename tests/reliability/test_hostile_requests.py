"""Hostile requests against a real server (``python -m xray.api`` on loopback), on SQLite
and PostgreSQL: every one answers a bounded, named 4xx, nothing accepted is lost, and
nothing stored can break a read.
"""

from __future__ import annotations

import gzip
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests._servers import RunningServer, api_server
from tests.api._data import decision, run, step
from tests.reliability._stores import DATABASES, execute, fresh_database
from xray.shared._wire import MAX_JSON_BYTES, MAX_JSON_DEPTH

TRUNCATED = f"[nested deeper than {MAX_JSON_DEPTH} levels; not shown]"


@pytest.fixture(scope="module", params=DATABASES)
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("hostile")
    for database_url in fresh_database(request.param, request, workdir):
        with api_server(database_url, workdir=workdir) as running:
            yield running


@pytest.fixture
def http(server: RunningServer) -> Iterator[httpx.Client]:
    # The timeout only keeps a broken server from hanging the suite.
    with httpx.Client(base_url=server.base_url, timeout=60) as client:
        yield client


def _pipeline() -> str:
    return f"hostile-{uuid.uuid4().hex[:8]}"


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = {"a": value}
    return value


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _fields(response: httpx.Response) -> list[str]:
    return [f["field"] for f in response.json()["fields"]]


# -- 1. one rule for stored JSON values --------------------------------------------------

TOO_DEEP = _nested(MAX_JSON_DEPTH + 8)


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("run.input", "runs[0].input"),
        ("run.output", "runs[0].output"),
        ("run.metadata", "runs[0].metadata"),
        ("step.params", "steps[0].params"),
        ("step.input", "steps[0].input"),
        ("step.metadata", "steps[0].metadata"),
        ("decision.attributes", "steps[0].decisions[0].attributes"),
    ],
)
def test_a_value_nested_past_the_limit_is_422_naming_the_field(
    http: httpx.Client, where: str, field: str
) -> None:
    pipeline = _pipeline()
    r = run(pipeline=pipeline)
    s = step(r["id"], decisions=[decision("k")])
    target = {"run": r, "step": s, "decision": s["decisions"][0]}[where.split(".")[0]]
    target[where.split(".")[1]] = {"deep": TOO_DEEP}
    response = http.post("/batch", json={"runs": [r], "steps": [s]})
    assert response.status_code == 422, response.text
    assert field in _fields(response)
    assert str(MAX_JSON_DEPTH) in response.json()["message"]
    assert http.get("/runs", params={"pipeline": pipeline}).json()["items"] == []


def test_a_value_at_the_limit_round_trips(http: httpx.Client) -> None:
    deepest = _nested(MAX_JSON_DEPTH)
    r = run(pipeline=_pipeline(), input=deepest, metadata={"k": _nested(MAX_JSON_DEPTH - 1)})
    assert http.post("/runs", json=r).status_code == 200
    got = http.get(f"/runs/{r['id']}").json()
    assert got["input"] == deepest
    assert _depth(got["metadata"]) == MAX_JSON_DEPTH


def test_a_value_larger_than_the_limit_is_422_naming_the_field(http: httpx.Client) -> None:
    r = run(pipeline=_pipeline(), output={"blob": "x" * MAX_JSON_BYTES})
    response = http.post("/batch", json={"runs": [r]})
    assert response.status_code == 422, response.text
    assert _fields(response) == ["runs[0].output"]
    assert str(MAX_JSON_BYTES) in response.json()["message"]


def test_every_read_path_serves_rows_stored_before_the_rule(
    http: httpx.Client, server: RunningServer
) -> None:
    pipeline = _pipeline()
    r = run(pipeline=pipeline, metadata={"seller": "s1"})
    s = step(r["id"], decisions=[decision("legacy-key")])
    assert http.post("/batch", json={"runs": [r], "steps": [s]}).status_code == 200
    # Written directly in SQL, as rows from before the rule (or from another writer) are.
    deep = json.dumps(_nested(300))
    too_deep_to_parse = '{"a":' * 3000 + "1" + "}" * 3000
    db = server.database_url
    execute(
        db,
        "UPDATE runs SET input = $1::jsonb, output = $2::jsonb WHERE pipeline = $3",
        deep,
        too_deep_to_parse,
        pipeline,
    )
    execute(
        db,
        "UPDATE steps SET params = $1::jsonb, output = $1::jsonb WHERE pipeline = $2",
        json.dumps({"k": _nested(300)}),
        pipeline,
    )
    execute(
        db,
        "UPDATE decisions SET attributes = $1::jsonb "
        "WHERE step_id IN (SELECT id FROM steps WHERE pipeline = $2)",
        json.dumps({"k": _nested(300)}),
        pipeline,
    )
    for path in (
        "/runs",
        f"/runs?pipeline={pipeline}",
        f"/runs/{r['id']}",
        "/steps",
        f"/steps/{s['id']}",
        f"/steps/{s['id']}/decisions",
        "/candidates/legacy-key",
        "/pipelines",
    ):
        response = http.get(path)
        assert response.status_code == 200, (path, response.text[:300])
    got = http.get(f"/runs/{r['id']}").json()
    assert got["output"] == TRUNCATED
    assert _depth(got["input"]) == MAX_JSON_DEPTH
    assert TRUNCATED in json.dumps(got["input"])
    assert got["metadata"] == {"seller": "s1"}
    assert _depth(got["steps"][0]["params"]) == MAX_JSON_DEPTH
    attributes = http.get(f"/steps/{s['id']}/decisions").json()["items"][0]["attributes"]
    assert _depth(attributes) == MAX_JSON_DEPTH


# -- 2. validation stops early -------------------------------------------------------------


def test_600000_empty_steps_in_a_tiny_gzip_get_a_small_422(
    http: httpx.Client, server: RunningServer
) -> None:
    body = gzip.compress(b'{"steps": [' + b",".join([b"{}"] * 600_000) + b"]}", 9)
    assert len(body) < 10_000
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    response = http.post("/batch", content=body, headers=headers)
    assert response.status_code == 422, response.text[:300]
    assert len(response.content) < 10_000
    reply = response.json()
    assert 1 <= len(reply["fields"]) <= 20
    assert reply["fields_total"] >= len(reply["fields"])
    assert reply["fields"][0]["field"].startswith("steps[0].")
    assert http.get("/healthz").status_code == 200


def test_many_invalid_items_name_at_most_20_fields_and_count_them(http: httpx.Client) -> None:
    # One invalid run with many invalid fields in one JSON object.
    bad = {f"k{i}": i for i in range(50)}
    r = run(pipeline=_pipeline(), metadata=bad)
    r.update(status="??", started_at="never", duration_ms=-1, pipeline="")
    response = http.post("/runs", json=[r] * 5000)
    assert response.status_code == 422
    reply = response.json()
    assert len(reply["fields"]) <= 20
    assert reply["fields_total"] >= 4
    assert reply["fields"][0]["field"].startswith("runs[0].")


# -- 3. gzip read to the end -----------------------------------------------------------------


def test_concatenated_gzip_members_are_all_read(http: httpx.Client) -> None:
    pipeline = _pipeline()
    runs = [run(pipeline=pipeline, started=i) for i in range(40)]
    raw = json.dumps({"runs": runs}).encode()
    half = len(raw) // 2
    body = gzip.compress(raw[:half]) + gzip.compress(raw[half:])
    response = http.post(
        "/batch",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["runs"] == 40
    listed = http.get("/runs", params={"pipeline": pipeline, "limit": 100}).json()["items"]
    assert sorted(item["id"] for item in listed) == sorted(r["id"] for r in runs)


@pytest.mark.parametrize(
    "tail",
    [b"garbage", b"\x00" * 16, gzip.compress(b"more")[:-6], b"\x1f\x8bnot gzip"],
    ids=["text", "zero-padding", "truncated-member", "bad-member"],
)
def test_anything_after_the_gzip_stream_is_400_and_nothing_is_stored(
    http: httpx.Client, tail: bytes
) -> None:
    pipeline = _pipeline()
    body = gzip.compress(json.dumps({"runs": [run(pipeline=pipeline)]}).encode()) + tail
    response = http.post(
        "/batch",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 400, response.text
    assert "gzip" in response.json()["message"]
    assert http.get("/runs", params={"pipeline": pipeline}).json()["items"] == []


# -- 5. and 6. query parameters --------------------------------------------------------------


@pytest.mark.parametrize("digits", [25, 400, 4301, 9000])
def test_long_digit_strings_in_metadata_filters_match_as_text(
    http: httpx.Client, digits: int
) -> None:
    value = "7" * digits
    pipeline = _pipeline()
    r = run(pipeline=pipeline, metadata={"order": value})
    assert http.post("/runs", json=r).status_code == 200
    response = http.get("/runs", params={"pipeline": pipeline, "metadata.order": value})
    assert response.status_code == 200, response.text[:300]
    assert [item["id"] for item in response.json()["items"]] == [r["id"]]
    other = http.get("/runs", params={"pipeline": pipeline, "metadata.order": value + "1"})
    assert other.json()["items"] == []


@pytest.mark.parametrize(("count", "status", "field"), [(21, 422, "metadata"), (999, 400, "query")])
def test_too_many_metadata_filters_are_4xx_naming_the_limit(
    http: httpx.Client, count: int, status: int, field: str
) -> None:
    # 999 filters once answered 503 on SQLite (expression tree too large).
    query = "&".join(f"metadata.k{i}=v" for i in range(count))
    response = http.get(f"/runs?{query}")
    assert response.status_code == status, response.text[:300]
    assert _fields(response) == [field]
    assert "at most" in response.json()["message"]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"metadata." + "k" * 201: "v"}, "metadata." + "k" * 200),
        ({"metadata.k": "v" * 10_001}, "metadata.k"),
        ({"pipeline": "p" * 201}, "pipeline"),
        ({"cursor": "c" * 4097}, "cursor"),
    ],
)
def test_oversized_query_parameters_are_422_naming_them(
    http: httpx.Client, params: dict[str, str], field: str
) -> None:
    response = http.get("/runs", params=params)
    assert response.status_code == 422, response.text[:300]
    assert _fields(response) == [field]


def test_too_many_query_parameters_are_400_naming_the_query(http: httpx.Client) -> None:
    response = http.get("/steps?" + "&".join(f"x{i}=1" for i in range(300)))
    assert response.status_code == 400
    assert _fields(response) == ["query"]


# -- 7. dates pushed out of the calendar by their offset ------------------------------------


@pytest.mark.parametrize("path", ["/runs", "/steps"])
@pytest.mark.parametrize(
    ("name", "when"),
    [("since", "9999-12-31T23:59:59-05:00"), ("until", "0001-01-01T00:00:00+14:00")],
)
def test_query_dates_out_of_range_are_400_naming_the_parameter(
    http: httpx.Client, path: str, name: str, when: str
) -> None:
    response = http.get(path, params={name: when})
    assert response.status_code == 400, response.text
    assert _fields(response) == [name]
    assert response.json()["message"].startswith(f"{name}: ")


@pytest.mark.parametrize(
    ("where", "field"),
    [
        ("run.started_at", "runs[0].started_at"),
        ("run.ended_at", "runs[0].ended_at"),
        ("step.started_at", "steps[0].started_at"),
        ("step.run_started_at", "steps[0].run_started_at"),
    ],
)
def test_body_dates_out_of_range_are_400_naming_the_field(
    http: httpx.Client, where: str, field: str
) -> None:
    pipeline = _pipeline()
    r = run(pipeline=pipeline)
    s = step(r["id"])
    target = r if where.startswith("run.") else s
    target[where.split(".")[1]] = "0001-01-01T00:00:00+14:00"
    response = http.post("/batch", json={"runs": [r], "steps": [s]})
    assert response.status_code == 400, response.text
    assert _fields(response) == [field]
    assert http.get("/runs", params={"pipeline": pipeline}).json()["items"] == []


def test_the_server_is_still_whole_afterwards(http: httpx.Client, server: RunningServer) -> None:
    assert http.get("/readyz").status_code == 200
    assert "Traceback" not in server.log()


def test_the_reply_stays_small_when_offending_keys_are_long(http: httpx.Client) -> None:
    r = run(pipeline=_pipeline())
    s = step(r["id"], reason_counts={"k" * 50_000 + str(i): "many" for i in range(30)})
    response = http.post("/batch", json={"runs": [r], "steps": [s]})
    assert response.status_code == 422
    assert len(response.content) < 20_000
    assert all(f.startswith("steps[0].reason_counts.kkk") for f in _fields(response))
