"""Ingest throughput of the X-Ray API against the PostgreSQL COPY floor, in one run.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth; the benchmark creates and drops its own
database and starts its own server on loopback):

    .venv/bin/python bench/api_ingest.py --shape decisions --clients 2
    .venv/bin/python bench/api_ingest.py --shape steps --clients 2 --workers 1
    .venv/bin/python bench/api_ingest.py --shape columns --clients 2

For each repeat it (1) starts ``python -m xray.api`` on a fresh database, (2) posts
pre-built gzip'd batches from ``--clients`` processes (the SDK's transport: ``POST
/batch``) and times them end to end, then (3) truncates the tables and COPYs the same rows
(every column, JSON included) into them through one asyncpg connection, once before
and once after the API (their mean is the floor: the machine's load drifts). It prints
items/s for both and the ratio API / floor. Bounded: a fixed amount of data, then
it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gzip
import json
import multiprocessing
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx

PG = os.environ.get("XRAY_BENCH_PG", "postgresql://postgres@127.0.0.1:5432")
STEP_TYPES = ["retrieval", "filter", "llm", "filter", "rank", "select"]
REASONS = ["price_above_max", "rating_below_min", "wrong_category", "out_of_stock"]
# Per shape: decisions per step, steps per request. "columns" sends the decisions of
# "decisions" as one block of columns per step (``decision_columns``).
SHAPES = {"steps": (0, 300), "decisions": (300, 10), "columns": (300, 10)}


def _to_columns(step: dict[str, Any]) -> None:
    """The step's decisions as one block of columns (the rating, the same for all, shared)."""
    decisions = step.pop("decisions")
    step["decision_columns"] = [
        {
            "candidate_key": [d["candidate_key"] for d in decisions],
            "decision": [d["decision"] for d in decisions],
            "reason": [d["reason"] for d in decisions],
            "score": [d["score"] for d in decisions],
            "rank": [d["rank"] for d in decisions],
            "attributes": {"price": [d["attributes"]["price"] for d in decisions]},
            "shared_attributes": {"rating": 4.1},
        }
    ]


def _decisions_of(step: dict[str, Any]) -> list[dict[str, Any]]:
    """The decisions a step's body stores, one by one."""
    decisions = list(step.get("decisions", []))
    for block in step.get("decision_columns", []):
        for i, key in enumerate(block["candidate_key"]):
            attributes = dict(block["shared_attributes"])
            attributes |= {k: v[i] for k, v in block["attributes"].items() if v[i] is not None}
            decisions.append(
                {
                    "candidate_key": key,
                    "decision": block["decision"][i],
                    "reason": block["reason"][i],
                    "score": block["score"][i],
                    "rank": block["rank"][i],
                    "attributes": attributes,
                }
            )
    return decisions


def _runs_and_steps(
    client: int, runs: int, per_step: int
) -> Iterator[tuple[dict[str, Any], list[dict[str, Any]]]]:
    rng = random.Random(client)
    t0 = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(days=client)
    for i in range(runs):
        run_id = str(uuid.uuid4())
        start = t0 + timedelta(seconds=i * 7)
        run = {
            "id": run_id,
            "pipeline": f"pipeline-{rng.randrange(20)}",
            "status": "success",
            "started_at": start.isoformat(),
            "ended_at": (start + timedelta(seconds=3)).isoformat(),
            "duration_ms": 3000.0,
            "input": {"query": "laptop stand", "limit": 10},
            "output": {"selected": f"cand-{rng.randrange(100_000)}"},
            "metadata": {"customer": f"c{rng.randrange(1000)}", "seller": i % 50},
            "sdk": {"version": "0.1.0", "language": "python"},
        }
        steps = []
        count = 5000
        for seq, step_type in enumerate(STEP_TYPES):
            out = max(1, int(count * rng.uniform(0.01, 0.9)))
            steps.append(
                {
                    "id": str(uuid.uuid4()),
                    "run_id": run_id,
                    "seq": seq,
                    "pipeline": run["pipeline"],
                    "run_started_at": run["started_at"],
                    "name": f"{step_type}-{seq}",
                    "type": step_type,
                    "status": "success",
                    "started_at": (start + timedelta(milliseconds=seq * 100)).isoformat(),
                    "ended_at": (start + timedelta(milliseconds=seq * 100 + 90)).isoformat(),
                    "duration_ms": 90.0,
                    "input_count": count,
                    "output_count": out,
                    "params": {"max_price": 50, "min_rating": 4.0},
                    "reasoning": "kept candidates under the price cap",
                    "reason_counts": {"price_above_max": count - out},
                    "input": {"n": count},
                    "output": {"n": out},
                    "metadata": {"model": "m1"},
                    "detail": "full" if per_step else "summary",
                    "candidates_total": count,
                    "candidates_recorded": per_step,
                    "decisions": [
                        {
                            "candidate_key": f"cand-{rng.randrange(100_000)}",
                            "decision": "rejected" if d % 3 else "accepted",
                            "reason": REASONS[d % 4] if d % 3 else None,
                            "score": round(rng.random(), 4),
                            "rank": d,
                            "attributes": {"price": round(rng.uniform(5, 90), 2), "rating": 4.1},
                        }
                        for d in range(per_step)
                    ],
                }
            )
            count = out
        yield run, steps


def _bodies(client: int, runs: int, shape: str) -> tuple[list[bytes], int, int]:
    per_step, steps_per_request = SHAPES[shape]
    bodies: list[bytes] = []
    batch_runs: list[dict[str, Any]] = []
    batch_steps: list[dict[str, Any]] = []
    steps = decisions = 0
    for run, run_steps in _runs_and_steps(client, runs, per_step):
        if shape == "columns":
            for step in run_steps:
                _to_columns(step)
        batch_runs.append(run)
        batch_steps += run_steps
        steps += len(run_steps)
        decisions += sum(len(_decisions_of(s)) for s in run_steps)
        if len(batch_steps) >= steps_per_request:
            bodies.append(
                gzip.compress(json.dumps({"runs": batch_runs, "steps": batch_steps}).encode(), 1)
            )
            batch_runs, batch_steps = [], []
    if batch_steps:
        bodies.append(
            gzip.compress(json.dumps({"runs": batch_runs, "steps": batch_steps}).encode(), 1)
        )
    return bodies, steps, decisions


def _client(base_url: str, bodies: list[bytes], start: Any, done: Any) -> None:
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    with httpx.Client(base_url=base_url, timeout=120) as client:
        start.wait()
        for body in bodies:
            response = client.post("/batch", content=body, headers=headers)
            if response.status_code != 200:
                raise SystemExit(f"{response.status_code}: {response.text[:300]}")
    done.put(time.perf_counter())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def _server(database_url: str, workers: int, profile: str | None) -> Iterator[str]:
    port = _free_port()
    env = os.environ | {"DATABASE_URL": database_url, "XRAY_WORKERS": str(workers)}
    process = subprocess.Popen(
        [sys.executable, "-m", "xray.api", "--port", str(port), "--host", "127.0.0.1"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(base_url + "/readyz", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        else:
            raise SystemExit("the server did not become ready")
        spy = None
        if profile:
            # py-spy (the bench extra) samples the server while the clients post.
            spy = subprocess.Popen(
                [
                    "py-spy",
                    "record",
                    "--pid",
                    str(process.pid),
                    "--subprocesses",
                    "--format",
                    "raw",
                    "--output",
                    profile,
                    "--rate",
                    "200",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            time.sleep(1)
        yield base_url
        if spy:
            spy.send_signal(2)
            spy.wait(60)
    finally:
        process.terminate()
        process.wait(30)


def _rows(all_bodies: list[list[bytes]]) -> dict[str, list[tuple[Any, ...]]]:
    """The rows the server stores for these bodies, every column (prepared before timing)."""
    from xray.api.services.ingest import elimination_rate

    def ts(text: str | None) -> datetime | None:
        return datetime.fromisoformat(text) if text else None

    runs, steps, decisions = [], [], []
    now = datetime.now(UTC)
    for bodies in all_bodies:
        for body in bodies:
            batch = json.loads(gzip.decompress(body))
            for r in batch["runs"]:
                runs.append(
                    (
                        uuid.UUID(r["id"]),
                        r["pipeline"],
                        r["status"],
                        ts(r["started_at"]),
                        ts(r["ended_at"]),
                        r["duration_ms"],
                        json.dumps(r["input"]),
                        json.dumps(r["output"]),
                        json.dumps(r["metadata"]),
                        None,
                        json.dumps(r["sdk"]),
                        now,
                    )
                )
            for s in batch["steps"]:
                steps.append(
                    (
                        uuid.UUID(s["id"]),
                        uuid.UUID(s["run_id"]),
                        None,
                        s["seq"],
                        s["pipeline"],
                        ts(s["run_started_at"]),
                        s["name"],
                        s["type"],
                        s["status"],
                        ts(s["started_at"]),
                        ts(s["ended_at"]),
                        s["duration_ms"],
                        s["input_count"],
                        s["output_count"],
                        elimination_rate(s["input_count"], s["output_count"]),
                        json.dumps(s["params"]),
                        s["reasoning"],
                        json.dumps(s["reason_counts"]),
                        json.dumps(s["input"]),
                        json.dumps(s["output"]),
                        json.dumps(s["metadata"]),
                        None,
                        s["detail"],
                        s["candidates_total"],
                        s["candidates_recorded"],
                    )
                )
                for seq, d in enumerate(_decisions_of(s)):
                    decisions.append(
                        (
                            uuid.UUID(s["id"]),
                            seq,
                            uuid.UUID(s["run_id"]),
                            s["pipeline"],
                            s["name"],
                            s["type"],
                            s["seq"],
                            ts(s["started_at"]),
                            ts(s["run_started_at"]),
                            d["candidate_key"],
                            d["decision"],
                            d["reason"],
                            d["score"],
                            d["rank"],
                            json.dumps(d["attributes"]),
                        )
                    )
    return {"runs": runs, "steps": steps, "decisions": decisions}


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
DECISION_COLUMNS = [
    "step_id",
    "seq",
    "run_id",
    "pipeline",
    "step_name",
    "step_type",
    "step_seq",
    "started_at",
    "run_started_at",
    "candidate_key",
    "decision",
    "reason",
    "score",
    "rank",
    "attributes",
]


async def _floor(dsn: str, rows: dict[str, list[tuple[Any, ...]]], per_request: int) -> float:
    """COPY the same rows through one connection, one transaction per request's worth."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE runs, steps, decisions, pipelines")
        await conn.execute("CHECKPOINT")
        started = time.perf_counter()
        runs, steps, decisions = rows["runs"], rows["steps"], rows["decisions"]
        # Same transaction sizes as the API's requests: per_request steps at a time.
        s_i = d_i = r_i = 0
        while s_i < len(steps):
            r_end = -(-(s_i + per_request) // len(STEP_TYPES))
            chunk_steps = steps[s_i : s_i + per_request]
            d_n = sum(row[-1] for row in chunk_steps)  # candidates_recorded
            async with conn.transaction():
                await conn.copy_records_to_table(
                    "runs", records=runs[r_i:r_end], columns=RUN_COLUMNS
                )
                await conn.copy_records_to_table("steps", records=chunk_steps, columns=STEP_COLUMNS)
                if d_n:
                    await conn.copy_records_to_table(
                        "decisions", records=decisions[d_i : d_i + d_n], columns=DECISION_COLUMNS
                    )
            s_i += per_request
            d_i += d_n
            r_i = r_end
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _truncate(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("TRUNCATE runs, steps, decisions, pipelines")
    finally:
        await conn.close()


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(PG + "/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


def _one(args: argparse.Namespace, repeat: int) -> tuple[float, float]:
    from xray.api import upgrade_database

    name = f"xray_bench_ingest_{os.getpid()}_{repeat}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    dsn = f"{PG}/{name}"
    try:
        upgrade_database(dsn)
        runs_per_client = args.runs // args.clients
        all_bodies = []
        steps = decisions = 0
        for c in range(args.clients):
            bodies, s, d = _bodies(repeat * 100 + c, runs_per_client, args.shape)
            all_bodies.append(bodies)
            steps += s
            decisions += d
        items = steps if args.shape == "steps" else decisions
        # The floor before and after the API, averaged: the machine's load drifts.
        rows = _rows(all_bodies)
        floor_before = asyncio.run(_floor(dsn, rows, SHAPES[args.shape][1]))
        asyncio.run(_truncate(dsn))
        ctx = multiprocessing.get_context("fork")
        url = dsn.replace("postgresql://", "postgresql+asyncpg://")
        with _server(url, args.workers, args.profile) as base_url:
            start, done = ctx.Event(), ctx.Queue()
            procs = [
                ctx.Process(target=_client, args=(base_url, b, start, done)) for b in all_bodies
            ]
            for p in procs:
                p.start()
            time.sleep(0.5)
            t0 = time.perf_counter()
            start.set()
            ends = [done.get(timeout=600) for _ in procs]
            api_s = max(ends) - t0
            for p in procs:
                p.join()
        floor_after = asyncio.run(_floor(dsn, rows, SHAPES[args.shape][1]))
        floor_s = (floor_before + floor_after) / 2
        api_rate, floor_rate = items / api_s, items / floor_s
        print(
            f"repeat {repeat}: {args.shape}: {steps} steps, {decisions} decisions | "
            f"API {api_rate:,.0f}/s ({api_s:.2f}s) | COPY floor {floor_rate:,.0f}/s "
            f"({floor_s:.2f}s) | ratio {api_rate / floor_rate:.2f}",
            flush=True,
        )
        return api_rate, floor_rate
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="decisions")
    parser.add_argument("--runs", type=int, default=None, help="runs in total (6 steps each)")
    parser.add_argument("--clients", type=int, default=2, help="client processes")
    parser.add_argument("--workers", type=int, default=1, help="API processes (XRAY_WORKERS)")
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--profile", help="write a py-spy profile (raw, collapsed stacks) here")
    args = parser.parse_args()
    if args.runs is None:
        args.runs = 4000 if args.shape == "steps" else 600
    results = [_one(args, r) for r in range(args.repeats)]
    ratios = [a / f for a, f in results]
    print(
        f"{args.shape}: clients={args.clients} workers={args.workers} "
        f"API median {statistics.median(a for a, _ in results):,.0f}/s, floor median "
        f"{statistics.median(f for _, f in results):,.0f}/s, ratio median "
        f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
