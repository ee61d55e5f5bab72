"""OTLP ingest against its floor: the same traces through POST /v1/traces (protobuf, gzip)
and, as the runs and steps they map to, through POST /batch (the SDK's JSON, gzip).

Usage (against a server you started on loopback, e.g. `xray serve` with DATABASE_URL set):

    .venv/bin/python bench/otlp_ingest.py http://127.0.0.1:8000 --traces 600 --decisions 50

Each trace is a root span and five children (retrieval, two filters with --decisions
``xray.decision`` events each, an LLM span with GenAI attributes, a selection). Requests of
--per-request traces alternate between the two endpoints (fresh ids each time, so both
insert), and each side's server time is summed. Bounded: exactly --traces traces per side.
Loopback only.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from xray.api.services.otlp import to_batch


def _attribute(key: str, value: Any) -> KeyValue:
    kv = KeyValue(key=key)
    if isinstance(value, str):
        kv.value.string_value = value
    elif isinstance(value, float):
        kv.value.double_value = value
    else:
        kv.value.int_value = value
    return kv


def _request(traces: int, decisions: int, rng: random.Random) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.append(_attribute("service.name", "bench"))
    spans = resource_spans.scope_spans.add().spans
    now = time.time_ns()
    for _ in range(traces):
        trace_id = os.urandom(16)
        root_id = os.urandom(8)
        root = spans.add(trace_id=trace_id, span_id=root_id, name="select competitor")
        root.start_time_unix_nano, root.end_time_unix_nano = now, now + 50_000_000
        root.attributes.append(_attribute("xray.pipeline", f"pipeline-{rng.randrange(20)}"))
        root.attributes.append(_attribute("xray.metadata.seller", rng.randrange(50)))
        count = 5000
        for offset, (name, kind) in enumerate(
            [
                ("search", "retrieval"),
                ("price_filter", "filter"),
                ("rating_filter", "filter"),
                ("relevance", "llm"),
                ("select", "select"),
            ]
        ):
            out = max(1, int(count * rng.uniform(0.1, 0.9)))
            span = spans.add(
                trace_id=trace_id, span_id=os.urandom(8), parent_span_id=root_id, name=name
            )
            span.start_time_unix_nano = now + (offset + 1) * 1_000_000
            span.end_time_unix_nano = span.start_time_unix_nano + 900_000
            span.attributes.extend(
                [
                    _attribute("xray.step.type", kind),
                    _attribute("xray.input_count", count),
                    _attribute("xray.output_count", out),
                    _attribute("xray.params.threshold", 0.5),
                ]
            )
            if kind == "llm":
                span.attributes.extend(
                    [
                        _attribute("gen_ai.request.model", "gpt-4o-mini"),
                        _attribute("gen_ai.usage.input_tokens", 900),
                        _attribute("gen_ai.usage.output_tokens", 40),
                    ]
                )
            if kind == "filter":
                for _ in range(decisions):
                    event = span.events.add(name="xray.decision")
                    event.attributes.extend(
                        [
                            _attribute("candidate_key", f"cand-{rng.randrange(100_000)}"),
                            _attribute("decision", "rejected"),
                            _attribute("reason", rng.choice(["too_expensive", "low_rating"])),
                            _attribute("price", rng.uniform(5, 500)),
                        ]
                    )
            count = out
    return request


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base_url")
    parser.add_argument("--traces", type=int, default=600)
    parser.add_argument("--per-request", type=int, default=10)
    parser.add_argument("--decisions", type=int, default=50, help="per filter span")
    parser.add_argument("--api-key", default=None)
    args = parser.parse_args()
    if urlparse(args.base_url).hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit("load tests target a server on this machine only (127.0.0.1)")
    key = {"X-API-Key": args.api_key} if args.api_key else {}
    rng = random.Random(1)
    spent = {"otlp": 0.0, "batch": 0.0}
    spans = 0
    with httpx.Client(base_url=args.base_url, timeout=60) as client:
        for _ in range(args.traces // args.per_request):
            otlp = _request(args.per_request, args.decisions, rng)
            body = gzip.compress(otlp.SerializeToString(), compresslevel=1)
            started = time.perf_counter()
            answer = client.post(
                "/v1/traces",
                content=body,
                headers={
                    "Content-Type": "application/x-protobuf",
                    "Content-Encoding": "gzip",
                    **key,
                },
            )
            spent["otlp"] += time.perf_counter() - started
            answer.raise_for_status()
            # The floor: the same rows, as the SDK sends them (other ids, so they insert).
            converted = to_batch(_request(args.per_request, args.decisions, rng))
            batch = {
                "runs": [r.model_dump(mode="json") for r in converted.runs],
                "steps": [s.model_dump(mode="json") for s in converted.steps],
            }
            body = gzip.compress(json.dumps(batch).encode(), compresslevel=1)
            started = time.perf_counter()
            answer = client.post(
                "/batch",
                content=body,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip", **key},
            )
            spent["batch"] += time.perf_counter() - started
            answer.raise_for_status()
            spans += sum(len(s.spans) for r in otlp.resource_spans for s in r.scope_spans)
    decisions = spans // 6 * 2 * args.decisions
    for side in ("otlp", "batch"):
        print(
            f"{side:5s}  {spans} spans/steps, {decisions} decisions: {spent[side]:.2f} s server "
            f"time, {spans / spent[side]:,.0f} steps/s, {decisions / spent[side]:,.0f} decisions/s"
        )
    print(f"OTLP / batch server time: {spent['otlp'] / spent['batch']:.2f}x")


if __name__ == "__main__":
    main()
