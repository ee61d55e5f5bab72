"""The OTLP → run/step mapping on its own (no server): types, ids, pipeline, warnings."""

from __future__ import annotations

import uuid
from typing import Any

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import KeyValue

from xray.api.services.otlp import to_batch

TRACE = bytes.fromhex("0af7651916cd43dd8448eb211c80319c")


def _request(
    spans: list[dict[str, Any]], resource: dict[str, str] | None = None
) -> ExportTraceServiceRequest:
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    for key, value in (resource or {}).items():
        resource_spans.resource.attributes.add(key=key).value.string_value = value
    scope = resource_spans.scope_spans.add()
    for spec in spans:
        span = scope.spans.add(
            trace_id=TRACE,
            span_id=bytes.fromhex(spec["id"]),
            parent_span_id=bytes.fromhex(spec.get("parent", "")),
            name=spec.get("name", "s"),
            flags=spec.get("flags", 0),
            start_time_unix_nano=1_700_000_000_000_000_000 + spec.get("at", 0),
            end_time_unix_nano=1_700_000_000_000_000_000 + spec.get("at", 0) + 10,
        )
        for key, value in spec.get("attrs", {}).items():
            attribute = KeyValue(key=key)
            if isinstance(value, str):
                attribute.value.string_value = value
            else:
                attribute.value.int_value = value
            span.attributes.append(attribute)
    return request


def test_step_type_precedence() -> None:
    conversion = to_batch(
        _request(
            [
                {
                    "id": "0000000000000001",
                    "attrs": {"xray.step.type": "rank", "gen_ai.system": "x"},
                },
                {"id": "0000000000000002", "attrs": {"gen_ai.request.model": "m"}},
                {"id": "0000000000000003", "attrs": {"openinference.span.kind": "RETRIEVER"}},
                {"id": "0000000000000004", "attrs": {"openinference.span.kind": "LLM"}},
                {"id": "0000000000000005", "attrs": {"http.method": "GET"}},
                {"id": "0000000000000006", "attrs": {"xray.step.type": "ranking"}},
            ]
        )
    )
    assert [s.type.value for s in conversion.steps] == [
        "rank",
        "llm",
        "retrieval",
        "llm",
        "custom",
        "custom",
    ]
    # An unknown type is stored as custom and said so, not rejected.
    assert conversion.rejected == 0
    assert (
        "spans[5].attributes[xray.step.type]: 'ranking' is not one of" in conversion.error_message
    )


def test_ids_come_from_the_trace_and_span_ids() -> None:
    spans = [
        {"id": "00000000000000aa", "name": "root"},
        {"id": "00000000000000bb", "parent": "00000000000000aa", "at": 1},
    ]
    first, again = to_batch(_request(spans)), to_batch(_request(spans))
    assert first.runs[0].id == uuid.UUID(bytes=TRACE)
    assert [s.id for s in first.steps] == [s.id for s in again.steps]
    assert first.steps[1].parent_id == first.steps[0].id
    assert first.steps[0].parent_id is None


def test_pipeline_without_the_root_comes_from_what_every_export_carries() -> None:
    child = [{"id": "00000000000000bb", "parent": "00000000000000aa"}]
    conversion = to_batch(_request(child, {"xray.pipeline": "ranking", "service.name": "svc"}))
    assert conversion.runs == []  # the root completes the run when it arrives
    assert conversion.steps[0].pipeline == "ranking"
    assert to_batch(_request(child, {"service.name": "svc"})).steps[0].pipeline == "svc"


def test_default_service_name_does_not_name_the_pipeline() -> None:
    root = [{"id": "00000000000000aa", "name": "nightly categorisation"}]
    conversion = to_batch(_request(root, {"service.name": "unknown_service:python"}))
    assert conversion.runs[0].pipeline == "nightly categorisation"


def test_a_span_whose_parent_is_remote_is_the_runs_root() -> None:
    # Bits 8 and 9 of the span flags: "whether the parent is remote is known" and "it is".
    spans = [{"id": "00000000000000aa", "parent": "1111111111111111", "flags": 0x300}]
    conversion = to_batch(_request(spans, {"service.name": "downstream"}))
    assert conversion.runs[0].pipeline == "downstream"
    assert conversion.steps[0].parent_id is None


def test_values_json_cannot_hold_are_kept_as_text() -> None:
    request = _request([{"id": "00000000000000aa", "name": "rank"}])
    span = request.resource_spans[0].scope_spans[0].spans[0]
    span.attributes.add(key="xray.params.threshold").value.double_value = float("nan")
    event = span.events.add(name="xray.decision")
    event.attributes.add(key="candidate_key").value.string_value = "B0STAND1"
    event.attributes.add(key="decision").value.string_value = "scored"
    event.attributes.add(key="score").value.double_value = float("inf")
    conversion = to_batch(request)
    assert conversion.rejected == 0
    step = conversion.steps[0]
    assert step.params == {"threshold": "NaN"}
    assert step.decisions[0].score is None
    assert step.decisions[0].attributes == {"score": "Infinity"}
