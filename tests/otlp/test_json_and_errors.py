"""OTLP/JSON written by hand per the spec (hex ids, camelCase, enums as integers, 64-bit
integers as strings), GenAI spans in the OpenLLMetry and OpenInference styles, partial
success, and the failure answers of the OTLP/HTTP contract."""

from __future__ import annotations

import gzip
import json
import random
import time
import uuid
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)

from tests._servers import RunningServer
from tests.otlp.conftest import KEY

pytestmark = pytest.mark.slow

TRACE = "5b8efff798038103d269b633813fc60c"
ROOT, LLM, RETRIEVER, BAD_DECISION = (
    "eee19b7ec3c1b174",
    "eee19b7ec3c1b175",
    "eee19b7ec3c1b176",
    "eee19b7ec3c1b177",
)


def _string(key: str, value: str) -> dict[str, Any]:
    return {"key": key, "value": {"stringValue": value}}


def _int(key: str, value: int) -> dict[str, Any]:
    return {"key": key, "value": {"intValue": str(value)}}


def _span(
    span_id: str, name: str, offset_ms: int, parent: str = "", **extra: Any
) -> dict[str, Any]:
    start = time.time_ns() - 60_000_000_000 + offset_ms * 1_000_000
    return {
        "traceId": TRACE,
        "spanId": span_id,
        "parentSpanId": parent,
        "name": name,
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 5_000_000),
        **extra,
    }


def _body() -> dict[str, Any]:
    return {
        "resourceSpans": [
            {
                "resource": {"attributes": [_string("service.name", "support-bot")]},
                "scopeSpans": [
                    {
                        "scope": {"name": "openllmetry"},
                        "spans": [
                            _span(ROOT, "answer ticket", 0, status={"code": 1}),
                            _span(
                                LLM,
                                "openai.chat",
                                10,
                                ROOT,
                                attributes=[
                                    _string("gen_ai.system", "openai"),
                                    _string("gen_ai.request.model", "gpt-4o-mini"),
                                    {
                                        "key": "gen_ai.request.temperature",
                                        "value": {"doubleValue": 0.1},
                                    },
                                    _int("gen_ai.request.max_tokens", 256),
                                    _string("gen_ai.prompt.0.role", "user"),
                                    _string("gen_ai.prompt.0.content", "Where is my order?"),
                                    _string("gen_ai.completion.0.role", "assistant"),
                                    _string("gen_ai.completion.0.content", "It ships today."),
                                    _int("gen_ai.usage.prompt_tokens", 12),
                                    _int("gen_ai.usage.completion_tokens", 5),
                                    _string("llm.request.type", "chat"),
                                ],
                            ),
                            _span(
                                RETRIEVER,
                                "retrieve",
                                20,
                                ROOT,
                                attributes=[
                                    _string("openinference.span.kind", "RETRIEVER"),
                                    _string("input.value", "order status"),
                                    _int("xray.output_count", 4),
                                ],
                            ),
                            _span(
                                BAD_DECISION,
                                "judge",
                                30,
                                ROOT,
                                events=[
                                    {
                                        "timeUnixNano": "1",
                                        "name": "xray.decision",
                                        "attributes": [
                                            _string("candidate_key", "doc-1"),
                                            _string("decision", "maybe"),
                                        ],
                                    }
                                ],
                            ),
                            # Not an OTLP id: rejected, and counted.
                            {**_span("00000000000000zz", "broken", 40, ROOT), "spanId": "zz"},
                        ],
                    }
                ],
            }
        ]
    }


def _post(server: RunningServer, body: bytes, content_type: str, **headers: str) -> httpx.Response:
    return httpx.post(
        f"{server.base_url}/v1/traces",
        content=body,
        headers={"Content-Type": content_type, "X-API-Key": KEY, **headers},
        timeout=10,
    )


def _get(server: RunningServer, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.base_url}{path}", params=params, headers={"X-API-Key": KEY}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def test_json_export_maps_genai_spans_and_reports_what_it_rejected(server: RunningServer) -> None:
    response = _post(
        server,
        gzip.compress(json.dumps(_body()).encode()),
        "application/json",
        **{"Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    partial = response.json()["partialSuccess"]
    assert int(partial["rejectedSpans"]) == 2
    message = partial["errorMessage"]
    assert "resource_spans[0].scope_spans[0].spans[3].events[0].attributes[decision]" in message
    assert "spans[4].span_id" in message

    run = _get(server, f"/runs/{uuid.UUID(TRACE)}")
    # No xray.pipeline anywhere: the resource's service.name names the pipeline.
    assert run["pipeline"] == "support-bot"
    assert run["status"] == "success"
    steps = {s["name"]: s for s in run["steps"]}
    assert set(steps) == {"answer ticket", "openai.chat", "retrieve"}
    llm = steps["openai.chat"]
    assert llm["type"] == "llm"
    assert llm["params"] == {"model": "gpt-4o-mini", "temperature": 0.1, "max_tokens": 256}
    assert (llm["metadata"]["input_tokens"], llm["metadata"]["output_tokens"]) == (12, 5)
    assert llm["metadata"]["attributes"] == {"llm.request.type": "chat"}
    assert llm["metadata"]["otel.span_id"] == LLM
    assert llm["input"] == [{"role": "user", "content": "Where is my order?"}]
    assert llm["output"] == [{"role": "assistant", "content": "It ships today."}]
    retriever = steps["retrieve"]
    assert retriever["type"] == "retrieval"
    assert retriever["output_count"] == 4
    assert retriever["input"] == "order status"
    llm_steps = _get(server, "/steps", type="llm", pipeline="support-bot")["items"]
    assert [s["id"] for s in llm_steps] == [llm["id"]]


def test_protobuf_partial_success_counts_rejected_spans(server: RunningServer) -> None:
    request = ExportTraceServiceRequest()
    spans = request.resource_spans.add().scope_spans.add().spans
    good = spans.add(
        trace_id=bytes.fromhex(TRACE), span_id=bytes.fromhex(ROOT), name="only", kind=1
    )
    good.start_time_unix_nano = time.time_ns()
    good.end_time_unix_nano = good.start_time_unix_nano + 1000
    spans.add(trace_id=b"\0" * 16, span_id=bytes.fromhex(LLM), name="zero trace id")
    response = _post(server, request.SerializeToString(), "application/x-protobuf")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-protobuf"
    answer = ExportTraceServiceResponse.FromString(response.content)
    assert answer.partial_success.rejected_spans == 1
    assert "spans[1].trace_id" in answer.partial_success.error_message
    assert _get(server, f"/runs/{uuid.UUID(TRACE)}")["pipeline"] == "only"


def test_failures_follow_the_otlp_http_contract(server: RunningServer) -> None:
    body = ExportTraceServiceRequest().SerializeToString()
    unauthenticated = httpx.post(
        f"{server.base_url}/v1/traces",
        content=body,
        headers={"Content-Type": "application/x-protobuf"},
        timeout=10,
    )
    assert unauthenticated.status_code == 401

    wrong_type = _post(server, b"hello", "text/plain")
    assert wrong_type.status_code == 415
    assert "application/x-protobuf" in wrong_type.json()["message"]

    # Not protobuf: 400 with a google.rpc.Status (field 2 is the message).
    garbage = _post(server, b"\xff\xff\xff\xff", "application/x-protobuf")
    assert garbage.status_code == 400
    assert garbage.headers["content-type"] == "application/x-protobuf"
    assert b"not an OTLP ExportTraceServiceRequest" in garbage.content

    not_json = _post(server, b"{", "application/json")
    assert not_json.status_code == 400
    assert "not valid JSON" in not_json.json()["message"]

    # An empty export is a valid one: 200 and an empty response.
    empty = _post(server, body, "application/x-protobuf")
    assert empty.status_code == 200
    assert ExportTraceServiceResponse.FromString(empty.content).HasField("partial_success") is False


def test_mutated_and_hostile_exports_never_get_a_server_error(server: RunningServer) -> None:
    rng = random.Random(16)
    valid = bytearray(_protobuf_of(_body()))
    for _ in range(40):
        mutated = bytearray(valid)
        for _ in range(rng.randrange(1, 6)):
            mutated[rng.randrange(len(mutated))] = rng.randrange(256)
        answer = _post(server, bytes(mutated), "application/x-protobuf")
        assert answer.status_code in (200, 400), (answer.status_code, answer.content[:200])
    hostile = _body()
    spans = hostile["resourceSpans"][0]["scopeSpans"][0]["spans"]
    spans[1]["attributes"] += [
        _string("xray.reasoning", "nul \u0000 and more"),
        _string("gen_ai.prompt.99999999999999999999.content", "long index"),
        {"key": "xray.input_count", "value": {"stringValue": "-3"}},
        {"key": "xray.params.nested", "value": {"kvlistValue": {"values": [_int("a", 2**62)]}}},
    ]
    spans[2]["events"] = [
        {"name": "exception", "attributes": [_string("exception.type", "x" * 5000)]}
    ]
    spans[2]["status"] = {"code": 2, "message": "m" * 200_000}
    for body in (
        json.dumps(hostile).encode(),
        b'{"resourceSpans": 7}',
        b"[]",
        b'{"resourceSpans": [{"scopeSpans": [{"spans": [{"traceId": 5}]}]}]}',
    ):
        answer = _post(server, body, "application/json")
        assert answer.status_code in (200, 400), (answer.status_code, answer.text[:300])
    stored = _get(server, f"/runs/{uuid.UUID(TRACE)}")
    failed = next(s for s in stored["steps"] if s["metadata"]["otel.span_id"] == RETRIEVER)
    assert failed["status"] == "error" and len(failed["error"]["type"]) <= 200


def _protobuf_of(body: dict[str, Any]) -> bytes:
    from xray.api.services.otlp import decode_json

    return bytes(decode_json(json.dumps(body).encode()).SerializeToString())
