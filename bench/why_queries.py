"""Latency of the population queries (groups, contrast, trends, keys, compare, counts and the
reason filters) on a real server, next to the plain runs list as the floor.

Usage (PostgreSQL on 127.0.0.1; a scratch database is created and dropped):

    .venv/bin/python bench/why_queries.py --runs 20000
    .venv/bin/python bench/why_queries.py --runs 20000 --database sqlite

Loads ``--runs`` support-bot runs (4 steps each, a quarter of them with the cohort bug)
through ``POST /batch``, then times each query ``--repeats`` times over HTTP on loopback
and prints p50/p90 in ms and the p50 ratio to ``GET /runs?pipeline=P&limit=50``.
Bounded: fixed data, fixed repeats, loopback only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

PIPELINE = "support-answer"
LOCALES = ["en-US", "de-DE", "fr-FR", "en-GB"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect("postgresql://postgres@127.0.0.1:5432/postgres")
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@contextmanager
def _database(kind: str) -> Iterator[str]:
    if kind == "sqlite":
        with tempfile.TemporaryDirectory() as tmp:
            yield f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        return
    name = f"xray_bench_why_{uuid.uuid4().hex[:8]}"
    asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    try:
        yield f"postgresql+asyncpg://postgres@127.0.0.1:5432/{name}"
    finally:
        asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def _server(database_url: str) -> Iterator[str]:
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "XRAY_PORT")}
    command = [sys.executable, "-m", "xray.api", "--host", "127.0.0.1", "--port", str(port)]
    process = subprocess.Popen(
        [*command, "--database-url", database_url],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline or process.poll() is not None:
                raise SystemExit("the API server did not start")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)


def _step(
    run_id: str, seq: int, name: str, kind: str, started: datetime, **fields: Any
) -> dict[str, Any]:
    return {
        "id": str(uuid.uuid4()),
        "run_id": run_id,
        "name": name,
        "type": kind,
        "seq": seq,
        "started_at": started.isoformat(),
        **fields,
    }


def _load(client: httpx.Client, runs: int) -> tuple[str, str]:
    rng = random.Random(1)
    start = datetime.now(UTC) - timedelta(days=7)
    batch_runs: list[dict[str, Any]] = []
    batch_steps: list[dict[str, Any]] = []
    ids: dict[str, str] = {}
    for i in range(runs):
        locale = LOCALES[i % 4]
        german = locale == "de-DE"
        started = start + timedelta(seconds=i * 7 * 86400 / runs)
        run_id = str(uuid.uuid4())
        ids.setdefault(locale, run_id)
        batch_runs.append(
            {
                "id": run_id,
                "pipeline": PIPELINE,
                "status": "success",
                "started_at": started.isoformat(),
                "ended_at": (started + timedelta(seconds=2)).isoformat(),
                "metadata": {
                    "locale": locale,
                    "channel": rng.choice(["chat", "email"]),
                    "ticket": f"T-{i:07d}",
                },
                "output": {"policy": "returns-us" if german else f"returns-{locale[-2:]}"},
            }
        )
        batch_steps += [
            _step(run_id, 0, "retrieve_passages", "retrieval", started, input_count=40,
                  output_count=40, params={"index": "help-centre"}),
            _step(run_id, 1, "locale_filter", "filter", started, input_count=40, output_count=9,
                  reason_counts={"locale_mismatch": 40 if german else 31},
                  params={"locale": locale, "fallback_locale": "en-US"}),
            _step(run_id, 2, "rank_passages", "rank", started, input_count=9, output_count=3,
                  params={"top_k": 3}),
            _step(run_id, 3, "generate_answer", "generate", started, input_count=3,
                  output_count=1, params={"model": "claude-haiku"}),
        ]  # fmt: skip
        if len(batch_runs) == 250:
            client.post(
                "/batch", json={"runs": batch_runs, "steps": batch_steps}
            ).raise_for_status()
            batch_runs, batch_steps = [], []
    if batch_runs:
        client.post("/batch", json={"runs": batch_runs, "steps": batch_steps}).raise_for_status()
    return ids["en-US"], ids["de-DE"]


def _time(client: httpx.Client, path: str, params: dict[str, Any], repeats: int) -> list[float]:
    client.get(path, params=params).raise_for_status()  # warm
    samples = []
    for _ in range(repeats):
        started = time.perf_counter()
        client.get(path, params=params).raise_for_status()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    args = parser.parse_args()
    with (
        _database(args.database) as url,
        _server(url) as base,
        httpx.Client(base_url=base, timeout=120) as client,
    ):
        began = time.perf_counter()
        english, german = _load(client, args.runs)
        print(f"loaded {args.runs} runs ({args.database}) in {time.perf_counter() - began:.0f} s")
        queries: list[tuple[str, str, dict[str, Any]]] = [
            ("floor: GET /runs (pipeline, 50)", "/runs", {"pipeline": PIPELINE, "limit": 50}),
            ("GET /runs metadata.locale=de-DE", "/runs",
             {"pipeline": PIPELINE, "metadata.locale": "de-DE", "limit": 50}),
            ("GET /runs metadata.locale!=de-DE", "/runs",
             {"pipeline": PIPELINE, "metadata.locale!": "de-DE", "limit": 50}),
            ("GET /runs reason + min_reason_rate=1", "/runs",
             {"pipeline": PIPELINE, "reason": "locale_mismatch", "min_reason_rate": 1,
              "limit": 50}),
            ("GET /runs min_rejected_rate=1", "/runs",
             {"pipeline": PIPELINE, "min_rejected_rate": 1, "limit": 50}),
            ("GET /steps reason (type filter)", "/steps",
             {"type": "filter", "reason": "locale_mismatch", "limit": 50}),
            ("GET /runs/count (pipeline)", "/runs/count", {"pipeline": PIPELINE}),
            ("GET /groups by locale (default sample 1000)", "/groups",
             {"pipeline": PIPELINE, "by": "metadata.locale"}),
            ("GET /groups by locale (sample 500)", "/groups",
             {"pipeline": PIPELINE, "by": "metadata.locale", "sample": 500}),
            ("GET /contrast locale=de-DE (default sample 1000)", "/contrast",
             {"pipeline": PIPELINE, "metadata.locale": "de-DE"}),
            ("GET /trends step, 1h buckets, 2 days", "/trends",
             {"pipeline": PIPELINE, "step": "locale_filter", "bucket": "1h"}),
            ("GET /pipelines/P/keys (sample 1000)", f"/pipelines/{PIPELINE}/keys", {}),
            ("GET /compare two runs", "/compare", {"a": english, "b": german}),
        ]  # fmt: skip
        rows = []
        floor = 0.0
        for label, path, params in queries:
            samples = sorted(_time(client, path, params, args.repeats))
            p50 = statistics.median(samples)
            p90 = samples[int(len(samples) * 0.9) - 1]
            floor = floor or p50
            rows.append((label, p50, p90, p50 / floor))
    print(f"\n| query ({args.runs:,} runs, {args.database}) | p50 ms | p90 ms | p50 / floor |")
    print("|---|---:|---:|---:|")
    for label, p50, p90, ratio in rows:
        print(f"| {label} | {p50:.1f} | {p90:.1f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
