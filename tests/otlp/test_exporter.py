"""A pipeline instrumented only with OpenTelemetry, exported by the real OTLP/HTTP exporter
(protobuf, gzip) to a real server, reads back through X-Ray's query API like one recorded
with ``@step``: runs, the funnel, step queries and candidate lookups."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    SimpleSpanProcessor,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.trace import Tracer

from tests._servers import RunningServer
from tests.otlp.conftest import KEY

pytestmark = pytest.mark.slow

OFFERS = [
    ("B0STAND1", 39.0),
    ("B0STAND2", 45.0),
    ("B0DESK", 499.0),
    ("B0LAMP", 89.0),
    ("B0RISER", 120.0),
]


class Recorded(SpanExporter):
    """Passes every export to the real exporter and keeps what it sent and the result."""

    def __init__(self, inner: OTLPSpanExporter) -> None:
        self.inner = inner
        self.exports: list[tuple[list[ReadableSpan], SpanExportResult]] = []

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        result = self.inner.export(spans)
        self.exports.append((list(spans), result))
        return result

    def shutdown(self) -> None:
        self.inner.shutdown()


def _exporter(server: RunningServer) -> Recorded:
    return Recorded(
        OTLPSpanExporter(
            endpoint=f"{server.base_url}/v1/traces",
            headers={"X-API-Key": KEY},
            compression=Compression.Gzip,
        )
    )


def _get(server: RunningServer, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.base_url}{path}", params=params, headers={"X-API-Key": KEY}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def _competitor_selection(tracer: Tracer) -> int:
    """The pipeline, as spans: the attributes and events are X-Ray's conventions."""
    with tracer.start_as_current_span(
        "select competitor",
        attributes={
            "xray.pipeline": "competitor-selection",
            "xray.metadata.product_asin": "B0LSTAND01",
            "xray.metadata.seed": 7,
        },
    ) as root:
        with tracer.start_as_current_span(
            "search_catalogue",
            attributes={
                "xray.step.type": "retrieval",
                "xray.input_count": 1,
                "xray.output_count": len(OFFERS),
                "xray.params.query": "laptop stand",
            },
        ):
            pass
        with tracer.start_as_current_span(
            "price_filter",
            attributes={
                "xray.step.type": "filter",
                "xray.input_count": len(OFFERS),
                "xray.output_count": 2,
                "xray.params.max_price": 60.0,
            },
        ) as price_filter:
            for asin, price in OFFERS:
                if price > 60:
                    price_filter.add_event(
                        "xray.decision",
                        {
                            "candidate_key": asin,
                            "decision": "rejected",
                            "reason": "price_above_max",
                            "price": price,
                        },
                    )
                else:
                    price_filter.add_event(
                        "xray.decision", {"candidate_key": asin, "decision": "accepted"}
                    )
        with tracer.start_as_current_span(
            "relevance_check",
            attributes={
                "gen_ai.operation.name": "chat",
                "gen_ai.system": "openai",
                "gen_ai.request.model": "gpt-4o-mini",
                "gen_ai.request.temperature": 0.2,
                "gen_ai.request.max_tokens": 64,
                "gen_ai.usage.input_tokens": 120,
                "gen_ai.usage.output_tokens": 9,
                "gen_ai.response.finish_reasons": ["stop"],
                "xray.reasoning": "Both stands are laptop stands.",
            },
        ):
            pass
        with tracer.start_as_current_span(
            "select_competitor", attributes={"xray.step.type": "select"}
        ) as select:
            select.add_event(
                "xray.decision",
                {
                    "candidate_key": "B0STAND1",
                    "decision": "selected",
                    "score": 0.93,
                    "rank": 1,
                    "reason": "top_rank",
                },
            )
    return root.get_span_context().trace_id


def test_a_trace_exported_in_one_request_reads_like_a_recorded_run(
    server: RunningServer,
) -> None:
    exporter = _exporter(server)
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-backend"}))
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace_id = _competitor_selection(provider.get_tracer("test"))
    provider.shutdown()
    assert [result for _, result in exporter.exports] == [SpanExportResult.SUCCESS]

    # A trace is a run: its id is the trace id, its pipeline the root's xray.pipeline.
    runs = _get(server, "/runs", pipeline="competitor-selection")["items"]
    assert [r["id"] for r in runs] == [str(uuid.UUID(int=trace_id))]
    run = runs[0]
    assert run["status"] == "success"
    assert run["step_count"] == 5
    assert run["metadata"]["product_asin"] == "B0LSTAND01"
    assert run["metadata"]["seed"] == 7
    assert run["metadata"]["otel.trace_id"] == format(trace_id, "032x")
    assert run["sdk"]["service.name"] == "shop-backend"
    found = _get(server, "/runs", **{"metadata.product_asin": "B0LSTAND01"})["items"]
    assert [r["id"] for r in found] == [run["id"]]
    by_trace = _get(server, "/runs", **{"metadata.otel.trace_id": format(trace_id, "032x")})
    assert [r["id"] for r in by_trace["items"]] == [run["id"]]

    # The funnel: every span a step, in start order, nested under the root.
    detail = _get(server, f"/runs/{run['id']}")
    steps = {s["name"]: s for s in detail["steps"]}
    assert [s["name"] for s in detail["steps"]] == [
        "select competitor",
        "search_catalogue",
        "price_filter",
        "relevance_check",
        "select_competitor",
    ]
    root = steps["select competitor"]
    assert root["type"] == "custom" and root["parent_id"] is None
    assert all(s["parent_id"] == root["id"] for s in detail["steps"][1:])
    price_filter = steps["price_filter"]
    assert price_filter["type"] == "filter"
    assert (price_filter["input_count"], price_filter["output_count"]) == (5, 2)
    assert price_filter["elimination_rate"] == pytest.approx(0.6)
    assert price_filter["params"] == {"max_price": 60.0}
    assert price_filter["reason_counts"] == {"price_above_max": 3}
    assert price_filter["duration_ms"] is not None and price_filter["duration_ms"] >= 0
    llm = steps["relevance_check"]
    assert llm["type"] == "llm"
    assert llm["params"] == {"model": "gpt-4o-mini", "temperature": 0.2, "max_tokens": 64}
    assert llm["metadata"]["input_tokens"] == 120
    assert llm["metadata"]["output_tokens"] == 9
    assert llm["metadata"]["finish_reason"] == "stop"
    assert llm["reasoning"] == "Both stands are laptop stands."
    assert steps["search_catalogue"]["type"] == "retrieval"
    assert steps["search_catalogue"]["params"] == {"query": "laptop stand"}

    # Cross-pipeline step queries and "runs having such a step".
    filters = _get(
        server, "/steps", type="filter", pipeline="competitor-selection", min_elimination_rate=0.5
    )["items"]
    assert [s["id"] for s in filters] == [price_filter["id"]]
    having = _get(server, "/runs", step_type="filter", min_elimination_rate=0.5)["items"]
    assert [r["id"] for r in having] == [run["id"]]

    # Decisions and a candidate's path.
    rejected = _get(server, f"/steps/{price_filter['id']}/decisions", decision="rejected")
    assert sorted(d["candidate_key"] for d in rejected["items"]) == ["B0DESK", "B0LAMP", "B0RISER"]
    assert {d["attributes"]["price"] for d in rejected["items"]} == {499.0, 89.0, 120.0}
    path = _get(server, "/candidates/B0STAND1", run_id=run["id"])["items"]
    assert [(d["step_name"], d["decision"]) for d in path] == [
        ("price_filter", "accepted"),
        ("select_competitor", "selected"),
    ]
    assert (path[1]["score"], path[1]["rank"], path[1]["reason"]) == (0.93, 1, "top_rank")


def _failing_checkout(tracer: Tracer) -> int:
    trace_id = 0
    with (
        pytest.raises(ValueError, match="offer feed timed out"),
        tracer.start_as_current_span(
            "checkout", attributes={"xray.pipeline": "checkout-ranking"}
        ) as root,
    ):
        trace_id = root.get_span_context().trace_id
        with tracer.start_as_current_span(
            "load_offers",
            attributes={"xray.step.type": "retrieval", "xray.output_count": 3},
        ):
            pass
        with tracer.start_as_current_span("fetch_prices"):
            raise ValueError("offer feed timed out")
    return trace_id


def test_spans_arriving_before_their_root_join_the_run_it_completes(
    server: RunningServer,
) -> None:
    # SimpleSpanProcessor exports each span as it ends: children in earlier requests than
    # their root, which ends last.
    exporter = _exporter(server)
    provider = TracerProvider(resource=Resource.create({"service.name": "shop-backend"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace_id = _failing_checkout(provider.get_tracer("test"))
    provider.shutdown()
    assert [len(spans) for spans, _ in exporter.exports] == [1, 1, 1]
    assert [spans[0].name for spans, _ in exporter.exports] == [
        "load_offers",
        "fetch_prices",
        "checkout",
    ]
    assert all(result is SpanExportResult.SUCCESS for _, result in exporter.exports)

    run_id = str(uuid.UUID(int=trace_id))
    run = _get(server, f"/runs/{run_id}")
    # The pipeline is the root's, fixed when the root arrived; its exception failed the run.
    assert run["pipeline"] == "checkout-ranking"
    assert run["status"] == "error"
    assert run["error"]["type"] == "ValueError"
    assert run["error"]["message"] == "offer feed timed out"
    assert [s["name"] for s in run["steps"]] == ["checkout", "load_offers", "fetch_prices"]
    failed = run["steps"][2]
    assert failed["status"] == "error"
    assert failed["error"]["type"] == "ValueError"
    assert "offer feed timed out" in (failed["error"]["traceback"] or "")
    assert run["steps"][1]["status"] == "success"
    assert _get(server, "/runs", pipeline="checkout-ranking")["items"][0]["id"] == run_id

    # A re-sent export upserts: same run, same steps, nothing doubled.
    resend = _exporter(server)
    for spans, _ in exporter.exports:
        assert resend.export(spans) is SpanExportResult.SUCCESS
    again = _get(server, f"/runs/{run_id}")
    assert [s["id"] for s in again["steps"]] == [s["id"] for s in run["steps"]]
    assert again["step_count"] == 3
