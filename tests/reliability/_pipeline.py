"""A batch job as the delivery tests run it: ``python -m tests.reliability._pipeline``.

It records a 6-step pipeline per item (one ``detail="full"`` filter rejecting 100 of 120
candidates with reasons), as fast as it can, with whatever the environment configures
(``XRAY_CONFIG``, ``XRAY_BASE_URL``, ``XRAY_SPOOL_DIR``), and prints one JSON line per
event on stdout: ``recorded`` (with the counts), then ``flushed`` or ``spooled``.

Arguments: ``--runs N``, ``--every SECONDS`` (a stream: one run per interval),
``--flush SECONDS`` (flush at the end; 0: exit without), ``--wait-spooled`` (wait until
everything is in the spool, say so, then sleep: the test kills the process),
``--invocation SECONDS`` (each run inside ``client.invocation(timeout=...)``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from xray import XRayClient, current_step, step

CANDIDATES = 120
KEPT = 20
STEPS_PER_RUN = 6
DECISIONS_PER_RUN = CANDIDATES - KEPT


@step(type="llm")
def keywords(item: int) -> list[str]:
    return [f"kw{item}", "stand"]


@step(type="retrieval")
def search(keywords: list[str]) -> list[dict[str, Any]]:
    return [{"id": f"c{i}", "price": i} for i in range(CANDIDATES)]


@step(type="filter", detail="full")
def price_filter(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    s = current_step()
    kept = []
    for c in candidates:
        if c["price"] >= KEPT:
            s.reject(c["id"], reason="price_above_max" if c["price"] % 2 else "out_of_stock")
        else:
            kept.append(c)
    return kept


@step(type="rank")
def rank(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(candidates, key=lambda c: -c["price"])


@step(type="select")
def select(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return candidates[:3]


@step(type="evaluate")
def judge(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return candidates[:1]


def one_run(client: XRayClient, pipeline: str, i: int) -> None:
    with client.run(pipeline, input={"i": i}):
        judge(select(rank(price_filter(search(keywords(i))))))


def say(event: str, **data: Any) -> None:
    print(json.dumps({"event": event, **data}), flush=True)


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--pipeline", default="burst")
    parser.add_argument("--every", type=float, default=0.0)
    parser.add_argument("--flush", type=float, default=300.0)
    parser.add_argument("--wait-spooled", action="store_true")
    parser.add_argument("--invocation", type=float, default=0.0)
    parser.add_argument("--linger", type=float, default=0.0)
    args = parser.parse_args(argv)
    client = XRayClient()
    if args.linger:  # the next process: deliver what the spool holds, record nothing
        deadline = time.monotonic() + args.linger
        while time.monotonic() < deadline:
            stats = client.stats()
            idle = stats["spool_bytes"] == 0 and stats["in_flight"] == 0
            if stats["sent"] and idle:
                break
            time.sleep(0.1)
        say("lingered", stats=client.stats())
        return
    started = time.perf_counter()
    for i in range(args.runs):
        if args.invocation:
            with client.invocation(timeout=args.invocation):
                one_run(client, args.pipeline, i)
        else:
            one_run(client, args.pipeline, i)
        if args.every:
            time.sleep(args.every)
    say("recorded", runs=args.runs, seconds=time.perf_counter() - started, stats=client.stats())
    if args.wait_spooled:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            stats = client.stats()
            if stats["queued"] == 0 and stats["buffer_bytes"] == 0 and stats["in_flight"] == 0:
                break
            time.sleep(0.05)
        say("spooled", stats=client.stats())
        time.sleep(600)  # the test kills this process (kill -9) before it sends anything
    if args.flush:
        done = client.flush(args.flush)
        say("flushed", done=done, seconds=time.perf_counter() - started, stats=client.stats())


if __name__ == "__main__":
    main(sys.argv[1:])
