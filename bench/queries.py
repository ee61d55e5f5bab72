"""p50/p95 of every query endpoint through HTTP, on a data set from bench/load_dataset.py.

    .venv/bin/python bench/queries.py postgresql://postgres@127.0.0.1:5432/xray_big
    .venv/bin/python bench/queries.py sqlite:///./big.db --requests 200

Starts ``python -m xray.api`` on the database (loopback, one process), sends ``--requests``
requests per endpoint with values sampled from the data (keep-alive, one at a time, after
a warm-up, in rounds over all endpoints), and prints p50/p95 in ms, with ``GET /healthz`` as the floor of the same run
(HTTP and the server, no database). For every endpoint over 10 ms p50 or 25 ms p95 it
prints the EXPLAIN (ANALYZE, BUFFERS) of the SQL the endpoint ran (PostgreSQL), or the
query plan (SQLite).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import socket
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx

Request = tuple[str, dict[str, str]]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(database_url: str) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    env |= {"DATABASE_URL": database_url, "XRAY_WORKERS": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "xray.api", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base_url + "/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("the server did not become ready")
        yield base_url
    finally:
        process.terminate()
        process.wait(30)


def _samples(url: str) -> dict[str, list[Any]]:
    """Values to query for, drawn from the data (a random sample, not the first rows)."""
    if url.startswith("sqlite"):
        # Rows spread over the table by id; SQLite has no TABLESAMPLE.
        queries = {
            "run": "SELECT id FROM runs WHERE rowid % 997 = 0 LIMIT 50",
            "step": "SELECT id FROM steps WHERE rowid % 9973 = 0 LIMIT 50",
            "candidate": "SELECT candidate_key FROM decisions WHERE id % 99991 = 0 LIMIT 50",
            "pipeline": "SELECT pipeline FROM pipelines",
        }
        db = sqlite3.connect(url.split(":///", 1)[1])
        try:
            out = {k: [r[0] for r in db.execute(q)] for k, q in queries.items()}
        finally:
            db.close()
        out["run"] = [_uuid_text(v) for v in out["run"]]
        out["step"] = [_uuid_text(v) for v in out["step"]]
        return out
    # Block samples: a few pages read however large the table, more while none is found.
    tables = {"run": ("id", "runs"), "step": ("id", "steps"),
              "candidate": ("candidate_key", "decisions")}  # fmt: skip

    async def fetch() -> dict[str, list[Any]]:
        conn = await asyncpg.connect(url)
        try:
            out: dict[str, list[Any]] = {}
            for kind, (column, table) in tables.items():
                for percent in (0.01, 0.1, 1, 10, 100):
                    rows = await conn.fetch(
                        f"SELECT {column} FROM {table} "  # noqa: S608 (constants)
                        f"TABLESAMPLE SYSTEM ({percent}) REPEATABLE (1) LIMIT 50"
                    )
                    if rows:
                        break
                out[kind] = [str(r[0]) for r in rows]
            out["pipeline"] = [r[0] for r in await conn.fetch("SELECT pipeline FROM pipelines")]
            return out
        finally:
            await conn.close()

    return asyncio.run(fetch())


def _uuid_text(value: str) -> str:
    import uuid

    return str(uuid.UUID(hex=value))


def _endpoints(samples: dict[str, list[Any]]) -> dict[str, Callable[[random.Random], Request]]:
    def pick(kind: str) -> Callable[[random.Random], str]:
        return lambda rng: str(rng.choice(samples[kind]))

    run, step, candidate, pipeline = pick("run"), pick("step"), pick("candidate"), pick("pipeline")
    return {
        # The floor: HTTP, middleware and the server loop, no database.
        "GET /healthz (floor)": lambda rng: ("/healthz", {}),
        "GET /runs": lambda rng: ("/runs", {}),
        "GET /runs?pipeline=": lambda rng: ("/runs", {"pipeline": pipeline(rng)}),
        "GET /runs?status=error": lambda rng: ("/runs", {"status": "error"}),
        "GET /runs?metadata.customer= (rare)": lambda rng: (
            "/runs",
            {"metadata.customer": f"c{rng.randrange(10_000)}"},
        ),
        "GET /runs?metadata.env=prod (common)": lambda rng: ("/runs", {"metadata.env": "prod"}),
        "GET /runs?step_type=filter&min_elimination_rate=0.9": lambda rng: (
            "/runs",
            {"step_type": "filter", "min_elimination_rate": "0.9"},
        ),
        "GET /runs/{id}": lambda rng: (f"/runs/{run(rng)}", {}),
        "GET /steps": lambda rng: ("/steps", {}),
        "GET /steps?type=filter&min_elimination_rate=0.9": lambda rng: (
            "/steps",
            {"type": "filter", "min_elimination_rate": "0.9"},
        ),
        "GET /steps?name=": lambda rng: ("/steps", {"name": f"filter-{rng.choice([1, 3, 5, 8])}"}),
        "GET /steps?run_id=": lambda rng: ("/steps", {"run_id": run(rng)}),
        "GET /steps/{id}": lambda rng: (f"/steps/{step(rng)}", {}),
        "GET /steps?metadata.customer= (rare)": lambda rng: (
            "/steps",
            {"metadata.customer": f"c{rng.randrange(10_000)}"},
        ),
        "GET /steps/{id}/decisions": lambda rng: (f"/steps/{step(rng)}/decisions", {}),
        "GET /steps/{id}/decisions?decision=accepted": lambda rng: (
            f"/steps/{step(rng)}/decisions",
            {"decision": "accepted"},
        ),
        "GET /candidates/{key}": lambda rng: (f"/candidates/{quote(candidate(rng))}", {}),
        "GET /candidates/{key}?pipeline=": lambda rng: (
            f"/candidates/{quote(candidate(rng))}",
            {"pipeline": pipeline(rng)},
        ),
        "GET /pipelines": lambda rng: ("/pipelines", {}),
    }


def _measure(
    client: httpx.Client, endpoints: dict[str, Callable[[random.Random], Request]], requests: int
) -> dict[str, tuple[float, float, Request]]:
    """p50, p95 and the slowest request of each endpoint, asked in rounds (one request per
    endpoint per round), so a burst of load on the shared machine falls on every endpoint
    alike instead of on whichever was being measured."""
    rngs = {name: random.Random(3) for name in endpoints}
    for name, make in endpoints.items():
        for _ in range(5):  # warm-up: connections, prepared statements, caches
            path, params = make(rngs[name])
            client.get(path, params=params).raise_for_status()
    times: dict[str, list[float]] = {name: [] for name in endpoints}
    slowest: dict[str, tuple[float, Request]] = {name: (0.0, ("", {})) for name in endpoints}
    for _ in range(requests):
        for name, make in endpoints.items():
            path, params = make(rngs[name])
            started = time.perf_counter()
            response = client.get(path, params=params)
            elapsed = (time.perf_counter() - started) * 1000
            response.raise_for_status()
            times[name].append(elapsed)
            slowest[name] = max(slowest[name], (elapsed, (path, params)), key=lambda t: t[0])
    out = {}
    for name, measured in times.items():
        measured.sort()
        p95 = measured[int(0.95 * (len(measured) - 1))]
        out[name] = (statistics.median(measured), p95, slowest[name][1])
    return out


async def _explain(database_url: str, path: str, params: dict[str, str]) -> list[str]:
    """Run the endpoint's service in-process, capturing its SQL, and EXPLAIN each statement."""
    from sqlalchemy import event

    from xray.api._app import create_app
    from xray.shared import APIConfig

    app = create_app(APIConfig(database_url=database_url, run_migrations=False))
    captured: list[tuple[str, Any]] = []
    async with app.router.lifespan_context(app):
        engine = app.state.xray.engine

        def capture(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
            if (
                statement.lstrip().upper().startswith(("SELECT", "WITH"))
                and "api_keys" not in statement
            ):
                captured.append((statement, parameters))

        event.listen(engine.sync_engine, "before_cursor_execute", capture)
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
            await client.get(path, params=params)
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
        plans = []
        sqlite = database_url.startswith("sqlite")
        prefix = "EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN (ANALYZE, BUFFERS) "
        async with engine.connect() as conn:
            for statement, parameters in captured:
                if statement.strip() in ("SELECT 1", ";"):
                    continue
                result = await conn.exec_driver_sql(prefix + statement, parameters)
                plan = "\n".join(" | ".join(str(c) for c in row) for row in result)
                plans.append(f"{statement}\n{plan}")
    return plans


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="postgresql://.../name or sqlite:///path.db (as loaded)")
    parser.add_argument("--requests", type=int, default=40, help="per endpoint")
    parser.add_argument("--only", help="endpoints whose name contains this")
    args = parser.parse_args()
    if args.url.startswith("sqlite"):
        database_url = args.url.replace("sqlite:///", "sqlite+aiosqlite:///")
    else:
        database_url = args.url.replace("postgresql://", "postgresql+asyncpg://")
    endpoints = _endpoints(_samples(args.url))
    slow: list[tuple[str, Request]] = []
    print(f"{'endpoint':58} {'p50 ms':>8} {'p95 ms':>8}")
    with _server(database_url) as base_url, httpx.Client(base_url=base_url, timeout=60) as client:
        chosen = {n: m for n, m in endpoints.items() if not args.only or args.only in n}
        for name, (p50, p95, slowest) in _measure(client, chosen, args.requests).items():
            print(f"{name:58} {p50:8.1f} {p95:8.1f}", flush=True)
            if p50 > 10 or p95 > 25:
                slow.append((name, slowest))
    for name, (path, params) in slow:
        print(f"\n=== {name}: {path} {params}")
        for plan in asyncio.run(_explain(database_url, path, params)):
            print(plan, "\n")


if __name__ == "__main__":
    main()
