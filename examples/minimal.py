"""Minimal instrumentation: one decorator per step, nothing else.

X-Ray counts what goes in (``len`` of the first argument) and what comes out (``len`` of
the return value), times each step, records errors, and groups the steps into one run.

    XRAY_BASE_URL=http://127.0.0.1:8000 python examples/minimal.py
"""

from __future__ import annotations

import random

from xray import XRayClient, step

client = XRayClient()  # xray.config.yaml, or XRAY_BASE_URL / XRAY_API_KEY


@step(type="retrieval")
def search(catalogue: list[dict[str, float]]) -> list[dict[str, float]]:
    return [p for p in catalogue if p["relevance"] > 0.5]


@step(type="filter")
def cheap_enough(candidates: list[dict[str, float]]) -> list[dict[str, float]]:
    return [p for p in candidates if p["price"] < 40]


@step(type="rank")
def best_first(candidates: list[dict[str, float]]) -> list[dict[str, float]]:
    return sorted(candidates, key=lambda p: -p["relevance"])


def main() -> None:
    catalogue = [
        {"relevance": random.random(), "price": random.uniform(5, 80)} for _ in range(1000)
    ]
    with client.run("minimal-example", input={"catalogue": len(catalogue)}) as run:
        ranked = best_first(cheap_enough(search(catalogue)))
        run.set_output(ranked[:1])
    print(f"best: {ranked[0] if ranked else None}  [run {run.id}]")
    client.shutdown(timeout=5)


if __name__ == "__main__":
    main()
