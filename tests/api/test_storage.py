"""Narrow decisions, the SQLite metadata rows, and bodies that keep the ``*Out`` shapes.

Decisions store only their own values (the step's identity is read from ``steps``), the
decision as a code and their attributes as JSON text (migration 0004); the list and detail
endpoints answer from plain rows. What a client sees must not change: every field of the
models, in their order, with the step's identity on each decision.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from alembic import command
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.dialects import sqlite

from tests.api._data import at, decision, run, step
from tests.conftest import _pg_admin, _pg_dsn
from xray.api import apply_retention, create_app
from xray.api._migrate import alembic_config
from xray.api.db.models import RunRow
from xray.api.services._filters import metadata_filter
from xray.shared import APIConfig, DecisionOut, PipelineOut, RunDetailOut, RunOut, StepOut


def _same_as_model(model: type[BaseModel], item: dict[str, Any]) -> None:
    """``item`` is exactly what the model answers: its fields, its order, its values."""
    assert list(item) == list(model.model_fields), model.__name__
    assert model.model_validate(item).model_dump(mode="json") == item


async def _record(client: httpx.AsyncClient) -> tuple[dict[str, Any], dict[str, Any]]:
    r = run(pipeline="shapes", started=0, metadata={"seller": 7, "env": "prod"}, sdk={"v": "1"})
    s = step(
        r["id"],
        name="dedupe",
        seq=3,
        input_count=40,
        output_count=9,
        reason_counts={"locale_mismatch": 40},
        params={"b": [1, {"c": None}], "a": "é"},
        input={"q": "laptop stand"},
        error={"type": "ValueError", "message": "bad", "traceback": "tb"},
        decisions=[
            decision("k-1", "rejected", reason="locale_mismatch", score=0.5, rank=2),
            decision("k-2", "accepted", attributes={"price": 42.5, "tags": ["x"]}),
            decision("k-3", "selected"),
            decision("k-4", "scored", score=1e20),
        ],
    )
    end = r | {"status": "error", "ended_at": at(5), "error": {"type": "Boom", "message": "m"}}
    response = await client.post("/batch", json={"runs": [r, end], "steps": [s]})
    assert response.status_code == 200, response.text
    return r, s


async def test_every_list_and_detail_body_has_the_models_fields_in_order(
    client: httpx.AsyncClient,
) -> None:
    r, s = await _record(client)
    runs = (await client.get("/runs")).json()
    _same_as_model(RunOut, runs["items"][0])
    assert runs["items"][0]["error"] == {"type": "Boom", "message": "m", "traceback": None}
    detail = (await client.get(f"/runs/{r['id']}")).json()
    _same_as_model(RunDetailOut, detail)
    assert detail["metadata"] == {"seller": 7, "env": "prod"} and detail["step_count"] == 1
    for body in [
        (await client.get("/steps")).json()["items"][0],
        (await client.get(f"/steps/{s['id']}")).json(),
        detail["steps"][0],
    ]:
        _same_as_model(StepOut, body)
        assert body["readmitted"] is True and body["rejected_rate"] == 1.0
        assert body["params"] == {"b": [1, {"c": None}], "a": "é"}
        assert body["error"] == {"type": "ValueError", "message": "bad", "traceback": "tb"}
    decisions = (await client.get(f"/steps/{s['id']}/decisions")).json()["items"]
    assert [d["decision"] for d in decisions] == ["rejected", "accepted", "selected", "scored"]
    for d in decisions:
        _same_as_model(DecisionOut, d)
        assert (d["run_id"], d["pipeline"], d["step_name"]) == (r["id"], "shapes", "dedupe")
        assert (d["step_type"], d["step_seq"], d["step_id"]) == ("filter", 3, s["id"])
    assert decisions[1]["attributes"] == {"price": 42.5, "tags": ["x"]}
    assert decisions[3]["score"] == 1e20
    found = (await client.get("/candidates/k-2")).json()["items"]
    assert found == [decisions[1]]
    _same_as_model(PipelineOut, (await client.get("/pipelines")).json()["items"][0])


async def test_decision_filter_and_candidate_filters_read_the_steps_identity(
    client: httpx.AsyncClient,
) -> None:
    a, b = run(pipeline="a", started=0), run(pipeline="b", started=10)
    sa = step(a["id"], decisions=[decision("k", "rejected", reason="r"), decision("j", "accepted")])
    sb = step(b["id"], seq=1, decisions=[decision("k", "selected")])
    await client.post("/batch", json={"runs": [a, b], "steps": [sa, sb]})
    page = await client.get(f"/steps/{sa['id']}/decisions", params={"decision": "accepted"})
    assert [d["candidate_key"] for d in page.json()["items"]] == ["j"]
    everywhere = (await client.get("/candidates/k")).json()["items"]
    assert [(d["pipeline"], d["decision"]) for d in everywhere] == [
        ("b", "selected"),
        ("a", "rejected"),
    ]
    in_a = (await client.get("/candidates/k", params={"pipeline": "a"})).json()["items"]
    assert [d["step_id"] for d in in_a] == [sa["id"]]
    of_run = (await client.get("/candidates/k", params={"run_id": b["id"]})).json()["items"]
    assert [d["step_id"] for d in of_run] == [sb["id"]]
    first = (await client.get("/candidates/k", params={"limit": 1})).json()
    rest = (await client.get("/candidates/k", params={"cursor": first["next_cursor"]})).json()
    assert [d["step_id"] for d in first["items"] + rest["items"]] == [sb["id"], sa["id"]]


async def test_metadata_filter_follows_the_merged_metadata_of_a_run(
    client: httpx.AsyncClient,
) -> None:
    r = run(pipeline="m", metadata={"tenant": "t1", "seller": 7})
    await client.post("/runs", json=[r])
    # The end merges key by key: tenant changes, flag is added, seller stays.
    end = r | {"status": "success", "metadata": {"tenant": "t2", "flag": True}}
    await client.post("/runs", json=[end])

    async def found(**params: str) -> int:
        response = await client.get("/runs", params={f"metadata.{k}": v for k, v in params.items()})
        assert response.status_code == 200
        return len(response.json()["items"])

    assert await found(tenant="t2") == 1
    assert await found(tenant="t1") == 0
    assert await found(seller="7") == 1 and await found(flag="true") == 1
    assert await found(tenant="t2", seller="7") == 1
    response = await client.get("/runs", params={"metadata.tenant!": "t2"})
    assert response.json()["items"] == []


async def test_sqlite_finds_a_metadata_value_through_its_index(
    client: httpx.AsyncClient, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL answers from the GIN index on runs.metadata")
    await client.post("/runs", json=[run(metadata={"customer": "c1"}), run(metadata={})])
    path = database_url.split(":///", 1)[1]
    query = select(RunRow.id).where(metadata_filter("sqlite", "customer", "c1"))
    sql = str(query.compile(dialect=sqlite.dialect(), compile_kwargs={"literal_binds": True}))
    with sqlite3.connect(path) as db:
        plan = " ".join(str(row[-1]) for row in db.execute("EXPLAIN QUERY PLAN " + sql))
        assert len(db.execute(sql).fetchall()) == 1
    assert "ix_run_metadata_key_atom" in plan


async def test_retention_removes_the_metadata_rows_of_the_runs_it_deletes(
    client: httpx.AsyncClient, database_url: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("PostgreSQL has no run_metadata table")
    now = datetime.now(UTC)
    old = run(metadata={"customer": "c1"}, started_at=(now - timedelta(days=40)).isoformat())
    new = run(metadata={"customer": "c2"}, started_at=(now - timedelta(days=1)).isoformat())
    await client.post("/runs", json=[old, new])
    await asyncio.to_thread(apply_retention, database_url, retention_days=30)
    path = database_url.split(":///", 1)[1]
    with sqlite3.connect(path) as db:
        left = db.execute("SELECT atom FROM run_metadata ORDER BY atom").fetchall()
    assert left == [("c2",)]


# -- migration 0004 -------------------------------------------------------------------------

_RUN, _STEP = uuid.uuid4(), uuid.uuid4()
_OLD_DECISIONS = [
    # seq, candidate_key, decision, reason, attributes
    (0, "k-1", "rejected", "too_far", '{"km": 12}'),
    (1, "k-2", "selected", None, "{}"),
]


def _old_rows(dialect: str) -> list[str]:
    def u(value: uuid.UUID) -> str:
        return value.hex if dialect == "sqlite" else str(value)

    t = "'2024-05-01 12:00:00'"
    rows = [
        "INSERT INTO runs (id, pipeline, status, started_at, metadata, sdk, received_at) "
        f"VALUES ('{u(_RUN)}', 'old', 'success', {t}, '{{\"tier\": \"gold\"}}', '{{}}', {t})",
        "INSERT INTO steps (id, run_id, seq, pipeline, run_started_at, name, type, status, "
        "started_at, params, reason_counts, metadata, detail, candidates_recorded) VALUES "
        f"('{u(_STEP)}', '{u(_RUN)}', 2, 'old', {t}, 'geo', 'filter', 'success', {t}, "
        "'{}', '{}', '{}', 'full', 2)",
    ]
    for seq, key, verdict, reason, attributes in _OLD_DECISIONS:
        reason_sql = "NULL" if reason is None else f"'{reason}'"
        rows.append(
            "INSERT INTO decisions (step_id, seq, run_id, pipeline, step_name, step_type, "
            "step_seq, started_at, run_started_at, candidate_key, decision, reason, score, "
            f"rank, attributes) VALUES ('{u(_STEP)}', {seq}, '{u(_RUN)}', 'old', 'geo', "
            f"'filter', 2, {t}, {t}, '{key}', '{verdict}', {reason_sql}, 0.25, {seq}, "
            f"'{attributes}')"
        )
    return rows


async def _sql(dialect: str, target: str, statements: list[str]) -> list[list[tuple[Any, ...]]]:
    if dialect == "sqlite":
        with sqlite3.connect(target) as conn:
            return [[tuple(r) for r in conn.execute(s).fetchall()] for s in statements]
    conn = await asyncpg.connect(target)
    try:
        return [[tuple(r) for r in await conn.fetch(s)] for s in statements]
    finally:
        await conn.close()


async def _read(url: str) -> tuple[list[dict[str, Any]], list[dict[str, Any]], int]:
    app = create_app(APIConfig(database_url=url, run_migrations=False))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://xray.test") as c:
            decisions = (await c.get(f"/steps/{_STEP}/decisions")).json()["items"]
            candidate = (await c.get("/candidates/k-1")).json()["items"]
            tier = len((await c.get("/runs", params={"metadata.tier": "gold"})).json()["items"])
    return decisions, candidate, tier


@pytest.mark.parametrize(
    "dialect", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_migration_0004_keeps_every_decision_and_downgrades(dialect: str, tmp_path: Path) -> None:
    if dialect == "sqlite":
        target = str(tmp_path / "m.db")
        url = f"sqlite+aiosqlite:///{target}"
    else:
        name = f"xray_test_m4_{uuid.uuid4().hex[:12]}"
        asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
        target = _pg_dsn(name)
        url = target.replace("postgresql://", "postgresql+asyncpg://")
    try:
        config = alembic_config(url)
        command.upgrade(config, "0003")
        asyncio.run(_sql(dialect, target, _old_rows(dialect)))
        command.upgrade(config, "0004")
        decisions, candidate, tier = asyncio.run(_read(url))
        assert [(d["candidate_key"], d["decision"], d["reason"]) for d in decisions] == [
            ("k-1", "rejected", "too_far"),
            ("k-2", "selected", None),
        ]
        assert decisions[0]["attributes"] == {"km": 12} and decisions[1]["rank"] == 1
        for d in decisions:
            assert (d["run_id"], d["pipeline"], d["step_name"]) == (str(_RUN), "old", "geo")
            assert (d["step_type"], d["step_seq"], d["score"]) == ("filter", 2, 0.25)
        assert candidate == decisions[:1]
        assert tier == 1  # SQLite: the run_metadata rows were filled from existing runs
        # New decisions continue the numbering of the old ones.
        ids = asyncio.run(
            _sql(
                dialect,
                target,
                [
                    "INSERT INTO decisions (step_id, seq, run_started_at, candidate_key, "
                    f"decision, attributes) VALUES ('{_STEP.hex if dialect == 'sqlite' else _STEP}'"
                    ", 9, '2024-05-01 12:00:00', 'k-9', 1, '{}')",
                    "SELECT id FROM decisions ORDER BY id",
                ],
            )
        )[1]
        assert len({i for (i,) in ids}) == 3
        command.downgrade(config, "0003")
        old = asyncio.run(
            _sql(
                dialect,
                target,
                ["SELECT step_name, decision, pipeline FROM decisions WHERE seq < 2 ORDER BY seq"],
            )
        )
        assert old == [[("geo", "rejected", "old"), ("geo", "selected", "old")]]
    finally:
        if dialect == "postgres":
            asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def test_openapi_still_describes_each_answer_by_its_model(client: httpx.AsyncClient) -> None:
    paths = (await client.get("/openapi.json")).json()["paths"]
    expected = {
        "/runs": "Page_RunOut_",
        "/runs/{run_id}": "RunDetailOut",
        "/steps": "Page_StepOut_",
        "/steps/{step_id}": "StepOut",
        "/steps/{step_id}/decisions": "Page_DecisionOut_",
        "/candidates/{candidate_key}": "Page_DecisionOut_",
        "/pipelines": "Page_PipelineOut_",
    }
    for path, model in expected.items():
        schema = paths[path]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert schema == {"$ref": f"#/components/schemas/{model}"}, path


async def test_common_and_rare_filters_answer_the_same_runs_in_order(
    client: httpx.AsyncClient,
) -> None:
    # Enough runs that on SQLite "prod" (and the filter step) count as common and "dev" as
    # rare, so both forms of each filter are taken.
    runs = [
        run(pipeline="dense", started=i, metadata={"env": "dev" if i % 25 == 0 else "prod"})
        for i in range(400)
    ]
    steps = [
        step(r["id"], input_count=10, output_count=0 if i % 25 == 0 else 5, started=i + 0.5)
        for i, r in enumerate(runs)
    ]
    assert (await client.post("/batch", json={"runs": runs, "steps": steps})).status_code == 200
    newest_first = runs[::-1]

    async def walk(params: dict[str, str]) -> list[str]:
        found: list[str] = []
        cursor = None
        while True:
            page = (
                await client.get("/runs", params=params | ({"cursor": cursor} if cursor else {}))
            ).json()
            found += [item["id"] for item in page["items"]]
            cursor = page["next_cursor"]
            if cursor is None:
                return found

    prod = [r["id"] for r in newest_first if r["metadata"]["env"] == "prod"]
    dev = [r["id"] for r in newest_first if r["metadata"]["env"] == "dev"]
    assert await walk({"metadata.env": "prod"}) == prod
    assert await walk({"metadata.env": "dev"}) == dev
    assert await walk({"metadata.env!": "prod"}) == dev
    assert await walk({"metadata.env!": "dev"}) == prod
    assert await walk({"min_elimination_rate": "0.4"}) == [r["id"] for r in newest_first]
    assert await walk({"min_elimination_rate": "0.9"}) == dev
    steps_of_dev = (await client.get("/steps", params={"metadata.env": "dev"})).json()["items"]
    assert [s["run_id"] for s in steps_of_dev] == dev
    steps_of_prod = (await client.get("/steps", params={"metadata.env": "prod"})).json()["items"]
    assert [s["run_id"] for s in steps_of_prod] == prod[:50]
