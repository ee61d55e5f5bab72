"""Ingest throughput of a running X-Ray API: runs x 6 steps x decisions through POST /batch.

Usage (against a server you started on loopback, e.g. `xray serve` with DATABASE_URL set):

    .venv/bin/python bench/api_ingest.py http://127.0.0.1:8000 --runs 3000 --decisions 100

Posts gzip'd batches of 60 steps the way the SDK does and reports steps/s and
decisions/s of server time. Bounded: it sends exactly --runs runs and stops. Loopback only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlparse

import httpx

STEP_TYPES = ["retrieval", "filter", "llm", "filter", "rank", "select"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--decisions", type=int, default=100, help="per filter/llm step")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    if urlparse(args.base_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load tests target a server on this machine only (127.0.0.1)")

    rng = random.Random(1)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    if args.api_key:
        headers["X-API-Key"] = args.api_key
    runs: list[dict[str, Any]] = []
    steps: list[dict[str, Any]] = []
    sent_decisions = requests = 0
    server_time = 0.0

    with httpx.Client(base_url=args.base_url, timeout=60) as client:

        def flush() -> None:
            nonlocal runs, steps, requests, server_time
            body = gzip.compress(json.dumps({"runs": runs, "steps": steps}).encode())
            started = time.perf_counter()
            response = client.post("/batch", content=body, headers=headers)
            server_time += time.perf_counter() - started
            response.raise_for_status()
            requests += 1
            runs, steps = [], []

        for i in range(args.runs):
            run_id = str(uuid.uuid4())
            start = t0 + timedelta(seconds=i * 7)
            runs.append(
                {
                    "id": run_id,
                    "pipeline": f"pipeline-{rng.randrange(20)}",
                    "status": "success",
                    "started_at": start.isoformat(),
                    "ended_at": (start + timedelta(seconds=3)).isoformat(),
                    "metadata": {"seller": i % 50},
                }
            )
            count = 5000
            for seq, step_type in enumerate(STEP_TYPES):
                out = max(1, int(count * rng.uniform(0.01, 0.9)))
                n = args.decisions if step_type in ("filter", "llm") else 0
                decisions = [
                    {
                        "candidate_key": f"cand-{rng.randrange(100_000)}",
                        "decision": "rejected",
                        "reason": rng.choice(["price", "rating", "category"]),
                    }
                    for _ in range(n)
                ]
                sent_decisions += n
                steps.append(
                    {
                        "id": str(uuid.uuid4()),
                        "run_id": run_id,
                        "seq": seq,
                        "name": f"{step_type}-{seq}",
                        "type": step_type,
                        "started_at": (start + timedelta(milliseconds=seq * 100)).isoformat(),
                        "input_count": count,
                        "output_count": out,
                        "decisions": decisions,
                    }
                )
                count = out
            if len(steps) >= 60:
                flush()
        if runs or steps:
            flush()

    total_steps = args.runs * len(STEP_TYPES)
    print(
        f"runs={args.runs} steps={total_steps} decisions={sent_decisions} requests={requests} "
        f"server_time={server_time:.1f}s -> {total_steps / server_time:.0f} steps/s, "
        f"{sent_decisions / server_time:.0f} decisions/s"
    )


if __name__ == "__main__":
    main()
