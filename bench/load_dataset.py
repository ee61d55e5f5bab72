"""Build a large X-Ray data set fast, for bench/queries.py (on demand, never in CI).

    .venv/bin/python bench/load_dataset.py postgresql://postgres@127.0.0.1:5432/xray_big --steps 5000000
    .venv/bin/python bench/load_dataset.py sqlite:///./big.db --steps 1000000
    .venv/bin/python bench/load_dataset.py postgresql://postgres@127.0.0.1:5432/xray_big --drop

Creates the database (PostgreSQL) or file (SQLite), migrates it, drops the secondary
indexes, loads ``--steps`` steps (10 per run, ``--decisions`` per step) with COPY
(PostgreSQL) or one executemany transaction (SQLite), recreates the indexes, fills the
pipelines counts (and, on SQLite, the ``run_metadata`` rows ingest keeps) and gathers
statistics. Check free disk first: at the default 10 decisions per step PostgreSQL takes
roughly 3 KB per step with its decisions and indexes, SQLite 3.5 KB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import sqlite3
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson

from xray.api import upgrade_database
from xray.api.db.models import DECISION_CODES

STEP_TYPES = [
    "retrieval",
    "filter",
    "llm",
    "filter",
    "rank",
    "filter",
    "llm",
    "rank",
    "filter",
    "select",
]
REASONS = ["price_above_max", "rating_below_min", "wrong_category", "out_of_stock"]
PIPELINES = [f"pipeline-{i}" for i in range(20)]
T0 = datetime(2026, 1, 1, tzinfo=UTC)
RUN_COLUMNS = [
    "id",
    "pipeline",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "input",
    "output",
    "metadata",
    "error",
    "sdk",
    "received_at",
]
STEP_COLUMNS = [
    "id",
    "run_id",
    "parent_id",
    "seq",
    "pipeline",
    "run_started_at",
    "name",
    "type",
    "status",
    "started_at",
    "ended_at",
    "duration_ms",
    "input_count",
    "output_count",
    "elimination_rate",
    "params",
    "reasoning",
    "reason_counts",
    "input",
    "output",
    "metadata",
    "error",
    "detail",
    "candidates_total",
    "candidates_recorded",
]
DECISION_COLUMNS = ["step_id", "seq", "run_started_at", "candidate_key", "decision", "reason",
                    "score", "rank", "attributes"]  # fmt: skip


def _rows(
    runs: int, per_step: int, seed: int = 7
) -> Iterator[tuple[list[Any], list[Any], list[Any]]]:
    """Runs, steps and decisions in chunks of 1,000 runs (every column filled)."""
    rng = random.Random(seed)
    span = 30 * 86_400  # runs spread over 30 days
    for start in range(0, runs, 1000):
        run_rows, step_rows, decision_rows = [], [], []
        for i in range(start, min(runs, start + 1000)):
            run_id = uuid.UUID(int=rng.getrandbits(128), version=4)
            started = T0 + timedelta(seconds=span * i / runs)
            pipeline = PIPELINES[int(rng.paretovariate(1.2)) % 20]
            metadata = {
                "customer": f"c{rng.randrange(10_000)}",
                "env": "prod" if rng.random() < 0.9 else "dev",
                "seller": rng.randrange(500),
            }
            status = "error" if rng.random() < 0.05 else "success"
            run_rows.append((run_id, pipeline, status, started, started + timedelta(seconds=3),
                             3000.0, '{"query": "laptop stand"}', '{"selected": "cand-1"}',
                             orjson.dumps(metadata).decode(), None, '{"version": "0.1.0"}', started))  # fmt: skip
            count = 5000
            for seq, step_type in enumerate(STEP_TYPES):
                out = (
                    max(1, int(count * rng.uniform(0.05, 0.95)))
                    if step_type in ("filter", "llm")
                    else count
                )
                step_id = uuid.UUID(int=rng.getrandbits(128), version=4)
                step_start = started + timedelta(milliseconds=seq * 100)
                name = f"{step_type}-{seq}"
                rate = (count - out) / count if count else None
                step_rows.append((step_id, run_id, None, seq, pipeline, started, name, step_type,
                                  "success", step_start, step_start + timedelta(milliseconds=90), 90.0,
                                  count, out, rate, '{"max_price": 50}', None,
                                  '{"price_above_max": 3}', None, None, "{}", None, "full",
                                  count, per_step))  # fmt: skip
                for d in range(per_step):
                    rejected = d % 3 != 0
                    decision_rows.append((step_id, d, started, f"cand-{rng.randrange(1_000_000)}",
                                          DECISION_CODES["rejected" if rejected else "accepted"],
                                          REASONS[d % 4] if rejected else None, round(rng.random(), 4),
                                          d, '{"price":42.5}'))  # fmt: skip
                count = out
        yield run_rows, step_rows, decision_rows


async def _secondary_indexes(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """Every index of the three tables but the runs' and steps' primary keys, as the
    statement that drops it and the one that builds it again."""
    rows = await conn.fetch(
        "SELECT i.indexname, i.indexdef, x.indisprimary, i.tablename FROM pg_indexes i "
        "JOIN pg_class c ON c.relname = i.indexname "
        "JOIN pg_index x ON x.indexrelid = c.oid WHERE i.schemaname = 'public' "
        "AND i.tablename IN ('runs', 'steps', 'decisions') "
        "AND (NOT x.indisprimary OR i.tablename = 'decisions')"
    )
    out = []
    for r in rows:
        if r["indisprimary"]:
            table, name = r["tablename"], r["indexname"]
            definition = await conn.fetchval(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = $1", name
            )
            out.append((f'ALTER TABLE {table} DROP CONSTRAINT "{name}"',
                        f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}'))  # fmt: skip
        else:
            out.append((f'DROP INDEX "{r["indexname"]}"', r["indexdef"]))
    return out


async def _load_postgres(dsn: str, runs: int, per_step: int) -> None:
    base, _, name = dsn.rpartition("/")
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    await asyncio.to_thread(upgrade_database, dsn)
    conn = await asyncpg.connect(dsn)
    try:
        indexes = await _secondary_indexes(conn)
        for drop, _ in indexes:
            await conn.execute(drop)
        started = time.perf_counter()
        loaded = [0, 0, 0]
        for run_rows, step_rows, decision_rows in _rows(runs, per_step):
            await conn.copy_records_to_table("runs", records=run_rows, columns=RUN_COLUMNS)
            await conn.copy_records_to_table("steps", records=step_rows, columns=STEP_COLUMNS)
            await conn.copy_records_to_table(
                "decisions", records=decision_rows, columns=DECISION_COLUMNS
            )
            loaded = [
                loaded[0] + len(run_rows),
                loaded[1] + len(step_rows),
                loaded[2] + len(decision_rows),
            ]
            if loaded[0] % 20_000 == 0:
                print(f"  {loaded[0]:,} runs {loaded[1]:,} steps {loaded[2]:,} decisions "
                      f"{time.perf_counter() - started:.0f}s", flush=True)  # fmt: skip
        print(f"copied in {time.perf_counter() - started:.0f}s; indexing", flush=True)
        await conn.execute("SET maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            await conn.execute(definition)
            print(f"  {definition[:70]} {time.perf_counter() - started:.0f}s", flush=True)
        await conn.execute(
            "INSERT INTO pipelines SELECT pipeline, count(*), max(started_at) FROM runs GROUP BY pipeline"
        )
        await conn.execute("VACUUM ANALYZE")
        print(f"done in {time.perf_counter() - started:.0f}s", flush=True)
    finally:
        await conn.close()


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime):
        return (
            value.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
        )
    return value


def _load_sqlite(path: str, runs: int, per_step: int) -> None:
    if os.path.exists(path):
        os.remove(path)
    upgrade_database(f"sqlite+aiosqlite:///{path}")
    db = sqlite3.connect(path)
    indexes = db.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL "
        "AND tbl_name IN ('runs', 'steps', 'decisions')"
    ).fetchall()
    for index, _ in indexes:
        db.execute(f'DROP INDEX "{index}"')
    started = time.perf_counter()
    with db:
        for run_rows, step_rows, decision_rows in _rows(runs, per_step):
            for table, columns, rows in (("runs", RUN_COLUMNS, run_rows), ("steps", STEP_COLUMNS, step_rows),
                                         ("decisions", DECISION_COLUMNS, decision_rows)):  # fmt: skip
                marks = ", ".join("?" for _ in columns)
                db.executemany(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})",  # noqa: S608
                    [tuple(_sqlite_value(v) for v in row) for row in rows],
                )
    for _, definition in indexes:
        db.execute(definition)
    with db:
        db.execute(
            "INSERT INTO pipelines SELECT pipeline, count(*), max(started_at) FROM runs GROUP BY pipeline"
        )
        # What ingest keeps for the metadata filter (xray.api.services._run_metadata).
        db.execute(
            "INSERT INTO run_metadata SELECT runs.id, e.key, e.type, e.atom "
            "FROM runs, json_each(runs.metadata) AS e WHERE e.type NOT IN ('object', 'array')"
        )
    db.execute("ANALYZE")
    db.close()
    print(f"done in {time.perf_counter() - started:.0f}s", flush=True)


async def _drop(dsn: str) -> None:
    base, _, name = dsn.rpartition("/")
    admin = await asyncpg.connect(base + "/postgres")
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="postgresql://.../name or sqlite:///path.db")
    parser.add_argument("--steps", type=int, default=500_000, help="steps in total (10 per run)")
    parser.add_argument("--decisions", type=int, default=10, help="decisions per step")
    parser.add_argument("--drop", action="store_true", help="drop the database and stop")
    args = parser.parse_args()
    runs = max(1, args.steps // len(STEP_TYPES))
    if args.url.startswith("sqlite"):
        path = args.url.split(":///", 1)[1]
        if args.drop:
            os.remove(path)
            return
        _load_sqlite(path, runs, args.decisions)
    elif args.drop:
        asyncio.run(_drop(args.url))
    else:
        asyncio.run(_load_postgres(args.url, runs, args.decisions))


if __name__ == "__main__":
    main()
