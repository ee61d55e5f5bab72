"""What the stored-JSON rule (depth and size of every JSON value) costs at ingest and on reads.

Ingest: the time the rule's validator takes on every JSON value of a realistic SDK batch
(60 steps x 300 decisions with attributes, run and step previews), as a share of
``TypeAdapter(BatchIn).validate_json`` of that batch (which includes it), measured in
turn, median of the per-repeat shares. Reads: ``load_stored_json`` (the engine's JSON
decoder) against plain ``json.loads`` on the values such a batch stores.

    .venv/bin/python bench/json_rule.py
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from xray.api.db._stored_json import load_stored_json
from xray.shared import BatchIn, _wire


def _batch() -> bytes:
    run_id = str(uuid.uuid4())
    preview = {"items": [{"id": f"c{i}", "price": i * 1.5, "tags": ["a", "b"]} for i in range(20)]}
    steps = [
        {
            "id": str(uuid.uuid4()),
            "run_id": run_id,
            "name": f"step-{s}",
            "type": "filter",
            "seq": s,
            "started_at": "2024-05-01T12:00:00+00:00",
            "input_count": 300,
            "output_count": 30,
            "params": {"max_price": 100, "min_rating": 4.0},
            "input": preview,
            "output": preview,
            "metadata": {"model": "m", "tokens": 1200},
            "decisions": [
                {
                    "candidate_key": f"c{d}",
                    "decision": "rejected",
                    "reason": "price",
                    "attributes": {"price": d * 1.5, "rating": 4.2, "seller": "s7"},
                }
                for d in range(300)
            ],
        }
        for s in range(60)
    ]
    runs = [
        {
            "id": run_id,
            "pipeline": "bench",
            "started_at": "2024-05-01T12:00:00+00:00",
            "input": preview,
            "metadata": {"seller": "s7"},
        }
    ]
    return json.dumps({"runs": runs, "steps": steps}).encode()


def _best(fn: Callable[[], Any], number: int = 3) -> float:
    samples = []
    for _ in range(number):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return min(samples)


def _json_values(data: dict[str, Any]) -> list[Any]:
    values: list[Any] = []
    for run in data["runs"]:
        values += [run.get(k) for k in ("input", "output", "metadata", "sdk")]
    for step in data["steps"]:
        values += [step.get(k) for k in ("params", "input", "output", "metadata")]
        values += [d.get("attributes") for d in step["decisions"]]
    return values


def main() -> None:
    body = _batch()
    adapter = TypeAdapter(BatchIn)
    values = _json_values(json.loads(body))
    ratios, ms_total, ms_rule = [], [], []
    for _ in range(7):
        total = _best(lambda: adapter.validate_json(body))
        rule = _best(lambda: [_wire._bounded_json(v) for v in values])
        ratios.append(rule / total)
        ms_total.append(total * 1000)
        ms_rule.append(rule * 1000)
    print(f"batch: {len(body):,} bytes, 60 steps x 300 decisions, {len(values):,} JSON values")
    print(
        f"ingest: validate_json {statistics.median(ms_total):.1f} ms, of which the rule "
        f"{statistics.median(ms_rule):.1f} ms (share {statistics.median(ratios):.1%})"
    )
    data = json.loads(body)
    texts = [json.dumps(d["attributes"]) for d in data["steps"][0]["decisions"]] * 60
    texts += [json.dumps(data["steps"][0]["input"])] * 120
    read_ratios = []
    for _ in range(7):
        a = _best(lambda: [load_stored_json(t) for t in texts])
        b = _best(lambda: [json.loads(t) for t in texts])
        read_ratios.append(a / b)
    print(
        f"reads: {len(texts):,} stored values, load_stored_json / json.loads = "
        f"{statistics.median(read_ratios):.2f}"
    )


if __name__ == "__main__":
    main()
