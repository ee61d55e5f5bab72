"""OTLP traces as X-Ray runs and steps: decoding, the mapping, and the one call into ingest.

A trace is a run and each span a step (the table is in ARCHITECTURE.md and docs/otlp.md).
Everything here is the mapping; storing is ``xray.api.services.ingest.ingest``, called once
per request, so OTLP data is upserted exactly like the SDK's batches.

Ids come from the span's own ids, so a re-sent span upserts instead of duplicating: the
run's id *is* the 128-bit trace id, a step's id is a UUIDv5 of trace id and span id.

Spans of one trace may arrive in several requests, children first (an exporter sends spans
as they end, and the root ends last). Steps are stored as they come; their run is created
from the first of them (status ``running``, a provisional pipeline) and completed when the
root span arrives (pipeline, status, times, metadata). Steps keep the order of their start
times whichever request brought them (every OTLP step has ``seq`` 0; runs list their steps
by ``seq``, then start time).
"""

from __future__ import annotations

import base64
import json
import math
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span, Status
from pydantic import TypeAdapter
from sqlalchemy.ext.asyncio import AsyncSession

from xray.api._payload import Parsed, parse_json, validate_body
from xray.api.errors import APIError
from xray.api.services.ingest import ingest
from xray.shared import Decision, RunIn, StepIn, StepType
from xray.shared._wire import MAX_NAME_LENGTH, MAX_TEXT_LENGTH

__all__ = [
    "PROTOBUF",
    "Conversion",
    "decode_json",
    "decode_protobuf",
    "encode_response",
    "export_traces",
    "to_batch",
]

PROTOBUF = "application/x-protobuf"

#: Namespace of step ids: ``uuid5(STEP_NAMESPACE, trace_id_hex + span_id_hex)``.
STEP_NAMESPACE = uuid.UUID("0f6c5a53-7d3e-4b0e-9a55-6f7470000001")

# How many rejection messages one response quotes (the count is always exact).
_MAX_MESSAGES = 5
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST_NANOS = 253_402_300_799 * 10**9  # 9999-12-31T23:59:59Z
# W3C span flags in OTLP: bit 8 says whether bit 9 ("the parent is remote") is known.
_PARENT_REMOTE_KNOWN = 0x100
_PARENT_REMOTE = 0x200
_STEP_TYPES = frozenset(t.value for t in StepType)
_DECISION_FIELDS = ("candidate_key", "decision", "reason", "score", "rank")
_ID_FIELDS = frozenset(
    {"traceId", "spanId", "parentSpanId", "trace_id", "span_id", "parent_span_id"}
)
_HEX = re.compile(r"[0-9a-fA-F]*")

# GenAI semantic conventions (and their older / OpenInference spellings) -> X-Ray fields.
_GENAI_PARAMS = {
    "gen_ai.request.model": "model",
    "llm.model_name": "model",
    "gen_ai.request.temperature": "temperature",
    "gen_ai.request.max_tokens": "max_tokens",
    "gen_ai.request.top_p": "top_p",
}
_GENAI_METADATA = {
    "gen_ai.usage.input_tokens": "input_tokens",
    "gen_ai.usage.prompt_tokens": "input_tokens",
    "llm.token_count.prompt": "input_tokens",
    "gen_ai.usage.output_tokens": "output_tokens",
    "gen_ai.usage.completion_tokens": "output_tokens",
    "llm.token_count.completion": "output_tokens",
    "gen_ai.usage.total_tokens": "total_tokens",
    "llm.token_count.total": "total_tokens",
    "gen_ai.response.finish_reasons": "finish_reason",
    "gen_ai.response.model": "response_model",
    "gen_ai.response.id": "response_id",
    "gen_ai.system": "provider",
    "gen_ai.provider.name": "provider",
}
# Attributes the mapping consumes; everything else is kept under the step's metadata.
_CONSUMED = frozenset(
    {
        "xray.pipeline",
        "xray.step.type",
        "xray.input_count",
        "xray.output_count",
        "xray.reasoning",
        "xray.input",
        "xray.output",
        "input.value",
        "output.value",
        "openinference.span.kind",
        *_GENAI_PARAMS,
        *_GENAI_METADATA,
    }
)
_PROMPT = re.compile(r"gen_ai\.(prompt|completion)\.(\d{1,6})\.(\w+)")

_STEP = TypeAdapter(StepIn)
_RUN = TypeAdapter(RunIn)


@dataclass
class Conversion:
    """What one OTLP request becomes: the wire batch, and the spans it could not take."""

    runs: list[RunIn] = field(default_factory=list)
    steps: list[StepIn] = field(default_factory=list)
    rejected: int = 0
    messages: list[str] = field(default_factory=list)
    _message_count: int = 0

    def note(self, message: str) -> None:
        self._message_count += 1
        if len(self.messages) < _MAX_MESSAGES:
            self.messages.append(message)

    @property
    def error_message(self) -> str:
        more = self._message_count - len(self.messages)
        return "; ".join(self.messages) + (f" (and {more} more)" if more > 0 else "")


# -- decoding ---------------------------------------------------------------------------


def decode_protobuf(body: bytes) -> ExportTraceServiceRequest:
    """A binary ``ExportTraceServiceRequest``; 400 when the bytes are not one."""
    request = ExportTraceServiceRequest()
    try:
        request.ParseFromString(body)
    except (DecodeError, RecursionError, ValueError) as exc:
        raise APIError(
            400, f"the request body is not an OTLP ExportTraceServiceRequest: {exc}"
        ) from None
    return request


def _hex_ids_to_base64(value: Any) -> Any:
    # OTLP/JSON writes trace and span ids as hex, where protobuf's JSON mapping expects
    # base64. Text that is not hex becomes empty bytes, which the span check then names.
    if isinstance(value, list):
        return [_hex_ids_to_base64(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key in _ID_FIELDS and isinstance(item, str):
            text = item if len(item) % 2 == 0 and _HEX.fullmatch(item) else ""
            out[key] = base64.b64encode(bytes.fromhex(text)).decode("ascii")
        else:
            out[key] = _hex_ids_to_base64(item)
    return out


def decode_json(body: bytes) -> ExportTraceServiceRequest:
    """An OTLP/JSON ``ExportTraceServiceRequest`` (hex ids, camelCase or proto names)."""
    data = parse_json(body).data
    if not isinstance(data, dict):
        raise APIError(400, "the request body must be a JSON object (ExportTraceServiceRequest)")
    request = ExportTraceServiceRequest()
    try:
        json_format.ParseDict(_hex_ids_to_base64(data), request, ignore_unknown_fields=True)
    except (json_format.ParseError, RecursionError, ValueError, TypeError) as exc:
        raise APIError(
            400, f"the request body is not an OTLP ExportTraceServiceRequest: {exc}"
        ) from None
    return request


def encode_response(conversion: Conversion, *, as_json: bool) -> bytes:
    """The ``ExportTraceServiceResponse``, with ``partial_success`` when spans were
    rejected or something about them deserves a warning."""
    response = ExportTraceServiceResponse()
    if conversion.rejected or conversion.messages:
        response.partial_success.rejected_spans = conversion.rejected
        response.partial_success.error_message = conversion.error_message
    if as_json:
        return json.dumps(json_format.MessageToDict(response)).encode()
    return bytes(response.SerializeToString())


# -- values -----------------------------------------------------------------------------


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind is None:
        return None
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    if kind == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "double_value" and not math.isfinite(value.double_value):
        # Not JSON, and not storable in JSONB: kept as the text OTLP/JSON uses for it.
        return json_format.MessageToDict(value)["doubleValue"]
    return getattr(value, kind)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _time(nanos: int) -> datetime:
    return _EPOCH + timedelta(microseconds=nanos // 1000)


def _with_prefix(attrs: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    return {k[len(prefix) :]: v for k, v in attrs.items() if k.startswith(prefix) and k != prefix}


def _service_name(resource: Mapping[str, Any]) -> str | None:
    name = resource.get("service.name")
    # "unknown_service[:process]" is the OpenTelemetry SDKs' default: nothing was chosen.
    if isinstance(name, str) and name and not name.startswith("unknown_service"):
        return name
    return None


def _name(value: Any, fallback: str) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = str(value)
    text = value if isinstance(value, str) and value.strip() else fallback
    return text[:MAX_NAME_LENGTH]


# -- one span ---------------------------------------------------------------------------


@dataclass
class _Span:
    """A span with its resource's attributes and its position in the request."""

    span: Span
    attrs: dict[str, Any]
    resource: dict[str, Any]
    path: str

    @property
    def trace_id(self) -> bytes:
        return bytes(self.span.trace_id)

    @property
    def is_root(self) -> bool:
        parent = bytes(self.span.parent_span_id)
        if not parent.strip(b"\0"):
            return True
        flags = self.span.flags
        return bool(flags & _PARENT_REMOTE_KNOWN and flags & _PARENT_REMOTE)


def _step_id(trace_id: bytes, span_id: bytes) -> uuid.UUID:
    return uuid.uuid5(STEP_NAMESPACE, trace_id.hex() + span_id.hex())


def _id_problem(span: Span) -> str | None:
    if len(span.trace_id) != 16 or not bytes(span.trace_id).strip(b"\0"):
        return "trace_id: must be 16 bytes, not all zero (32 hex digits in JSON)"
    if len(span.span_id) != 8 or not bytes(span.span_id).strip(b"\0"):
        return "span_id: must be 8 bytes, not all zero (16 hex digits in JSON)"
    if len(span.parent_span_id) not in (0, 8):
        return "parent_span_id: must be empty or 8 bytes (16 hex digits in JSON)"
    if max(span.start_time_unix_nano, span.end_time_unix_nano) >= _LATEST_NANOS:
        return "start_time_unix_nano: out of range (after the year 9999)"
    return None


def _step_type(attrs: Mapping[str, Any], warn: list[str]) -> str:
    declared = attrs.get("xray.step.type")
    if declared is not None:
        if isinstance(declared, str) and declared in _STEP_TYPES:
            return declared
        warn.append(
            f"attributes[xray.step.type]: {str(declared)[:80]!r} is not one of "
            f"{', '.join(sorted(_STEP_TYPES))}; stored as 'custom'"
        )
        return StepType.CUSTOM.value
    kind = str(attrs.get("openinference.span.kind", "")).upper()
    if kind == "LLM" or any(key.startswith("gen_ai.") for key in attrs):
        return StepType.LLM.value
    if kind == "RETRIEVER":
        return StepType.RETRIEVAL.value
    return StepType.CUSTOM.value


def _messages(attrs: Mapping[str, Any], kind: str) -> list[dict[str, Any]] | None:
    # OpenLLMetry's flattened messages: gen_ai.prompt.0.role, gen_ai.prompt.0.content...
    found: dict[int, dict[str, Any]] = {}
    for key, value in attrs.items():
        match = _PROMPT.fullmatch(key)
        if match and match.group(1) == kind:
            found.setdefault(int(match.group(2)), {})[match.group(3)] = value
    return [found[i] for i in sorted(found)] or None


def _first(attrs: Mapping[str, Any], *keys: str) -> Any:
    return next((attrs[k] for k in keys if attrs.get(k) is not None), None)


def _error(span: Span) -> dict[str, Any] | None:
    if span.status.code != Status.STATUS_CODE_ERROR:
        return None
    error: dict[str, Any] = {"type": "Error", "message": span.status.message}
    for event in span.events:
        if event.name == "exception":
            attrs = _attributes(event.attributes)
            trace = attrs.get("exception.stacktrace")
            error = {
                "type": str(attrs.get("exception.type") or "Error")[:MAX_NAME_LENGTH],
                "message": str(attrs.get("exception.message") or span.status.message),
                "traceback": str(trace)[-MAX_TEXT_LENGTH:] if trace is not None else None,
            }
    error["message"] = error["message"][:MAX_TEXT_LENGTH]
    return error


def _decisions(span: Span) -> list[dict[str, Any]]:
    decisions = []
    for index, event in enumerate(span.events):
        if event.name != "xray.decision":
            continue
        attrs = _attributes(event.attributes)
        key = attrs.get("candidate_key")
        score = attrs.get("score")
        if not isinstance(score, int | float) or isinstance(score, bool):
            score = None  # "NaN", "Infinity" or text: kept in the attributes only
        decisions.append(
            {
                "candidate_key": key if isinstance(key, str) or key is None else str(key),
                "decision": attrs.get("decision"),
                "reason": attrs.get("reason"),
                "score": score,
                "rank": attrs.get("rank"),
                "attributes": {
                    k: v
                    for k, v in attrs.items()
                    if k not in _DECISION_FIELDS or (k == "score" and score is None)
                },
                "_event": index,
            }
        )
    return decisions


def _step(item: _Span, run_id: uuid.UUID, pipeline: str, warn: list[str]) -> dict[str, Any]:
    span, attrs = item.span, item.attrs
    params = {
        target: attrs[source]
        for source, target in _GENAI_PARAMS.items()
        if attrs.get(source) is not None
    }
    params.update(_with_prefix(attrs, "xray.params."))
    metadata: dict[str, Any] = {
        target: attrs[source]
        for source, target in _GENAI_METADATA.items()
        if attrs.get(source) is not None
    }
    if isinstance(metadata.get("finish_reason"), list) and len(metadata["finish_reason"]) == 1:
        metadata["finish_reason"] = metadata["finish_reason"][0]
    metadata.update(_with_prefix(attrs, "xray.metadata."))
    rest = {
        k: v
        for k, v in attrs.items()
        if k not in _CONSUMED
        and not k.startswith(("xray.params.", "xray.metadata."))
        and not _PROMPT.fullmatch(k)
    }
    if rest:
        metadata["attributes"] = rest
    metadata["otel.trace_id"] = item.trace_id.hex()
    metadata["otel.span_id"] = bytes(span.span_id).hex()

    decisions = _decisions(span)
    reason_counts: dict[str, int] = {}
    for d in decisions:
        if d["decision"] == Decision.REJECTED.value and isinstance(d["reason"], str):
            reason_counts[d["reason"]] = reason_counts.get(d["reason"], 0) + 1
    started, ended = span.start_time_unix_nano, span.end_time_unix_nano
    parent = bytes(span.parent_span_id)
    return {
        "id": _step_id(item.trace_id, bytes(span.span_id)),
        "run_id": run_id,
        "parent_id": None if item.is_root else _step_id(item.trace_id, parent),
        "seq": 0,
        "pipeline": pipeline,
        "name": _name(span.name, "span"),
        "type": _step_type(attrs, warn),
        "status": "error" if span.status.code == Status.STATUS_CODE_ERROR else "success",
        "started_at": _time(started),
        "ended_at": _time(ended) if ended else None,
        "duration_ms": (ended - started) / 1e6 if ended >= started and ended else None,
        "input_count": attrs.get("xray.input_count"),
        "output_count": attrs.get("xray.output_count"),
        "params": params,
        "reasoning": attrs.get("xray.reasoning"),
        "reason_counts": reason_counts,
        "input": _first(attrs, "xray.input", "input.value") or _messages(attrs, "prompt"),
        "output": _first(attrs, "xray.output", "output.value") or _messages(attrs, "completion"),
        "metadata": metadata,
        "error": _error(span),
        "detail": "full" if decisions else "summary",
        "candidates_total": len(decisions) if decisions else None,
        "candidates_recorded": len(decisions),
        "decisions": decisions,
    }


def _field_source(field_path: str, step: Mapping[str, Any]) -> str:
    """Name an invalid wire field by what the sender wrote (attribute or event)."""
    head, _, rest = field_path.partition(".")
    match = re.fullmatch(r"decisions\[(\d+)\]", head)
    if match:
        event = step["decisions"][int(match.group(1))]["_event"]
        return f"events[{event}].attributes[{rest or 'xray.decision'}]"
    source = {
        "input_count": "xray.input_count",
        "output_count": "xray.output_count",
        "reasoning": "xray.reasoning",
    }.get(head)
    return f"attributes[{source}]" if source else field_path


def _validated(
    adapter: TypeAdapter[Any], data: dict[str, Any], path: str, conversion: Conversion
) -> Any:
    """The wire model, or ``None`` after noting which field of which span was refused."""
    try:
        return validate_body(Parsed(data), adapter)
    except APIError as exc:
        where = [f"{path}.{_field_source(f.field, data)}: {f.message}" for f in exc.fields]
        conversion.note("; ".join(where) or f"{path}: {exc.message}")
        return None


# -- the request ------------------------------------------------------------------------


def _resource_pipeline(resource: Mapping[str, Any]) -> Any:
    return resource.get("xray.pipeline") or _service_name(resource)


def _pipeline(root: _Span | None, spans: list[_Span]) -> str:
    if root is not None:
        return _name(
            root.attrs.get("xray.pipeline") or _resource_pipeline(root.resource),
            _name(root.span.name, "trace"),
        )
    # No root in this request: a provisional name (the run is completed when the root
    # arrives). What every export carries (the resource) gives the same name both times.
    declared = next((s.attrs["xray.pipeline"] for s in spans if s.attrs.get("xray.pipeline")), None)
    resource = next((p for s in spans if (p := _resource_pipeline(s.resource))), None)
    return _name(declared or resource, "unknown_service")


def _run(root: _Span, run_id: uuid.UUID, pipeline: str, step: StepIn) -> dict[str, Any]:
    metadata = _with_prefix(root.attrs, "xray.metadata.")
    metadata["otel.trace_id"] = root.trace_id.hex()
    resource = root.resource
    return {
        "id": run_id,
        "pipeline": pipeline,
        "status": step.status.value,
        "started_at": step.started_at,
        "ended_at": step.ended_at,
        "duration_ms": step.duration_ms,
        "input": step.input,
        "output": step.output,
        "metadata": metadata,
        "error": step.error.model_dump() if step.error else None,
        "sdk": {
            "source": "otlp",
            **{
                k: resource[k]
                for k in ("service.name", "telemetry.sdk.language", "telemetry.sdk.version")
                if k in resource
            },
        },
    }


def to_batch(request: ExportTraceServiceRequest) -> Conversion:
    """Map an OTLP request to runs and steps; spans that cannot be stored are counted."""
    conversion = Conversion()
    traces: dict[bytes, list[_Span]] = {}
    for r, resource_spans in enumerate(request.resource_spans):
        resource = _attributes(resource_spans.resource.attributes)
        for s, scope_spans in enumerate(resource_spans.scope_spans):
            for p, span in enumerate(scope_spans.spans):
                path = f"resource_spans[{r}].scope_spans[{s}].spans[{p}]"
                problem = _id_problem(span)
                if problem is not None:
                    conversion.rejected += 1
                    conversion.note(f"{path}.{problem}")
                    continue
                item = _Span(span, _attributes(span.attributes), resource, path)
                traces.setdefault(item.trace_id, []).append(item)

    for trace_id, spans in traces.items():
        run_id = uuid.UUID(bytes=trace_id)
        roots = [s for s in spans if s.is_root]
        root = min(roots, key=lambda s: s.span.start_time_unix_nano) if roots else None
        pipeline = _pipeline(root, spans)
        for item in sorted(spans, key=lambda s: s.span.start_time_unix_nano):
            warn: list[str] = []
            data = _step(item, run_id, pipeline, warn)
            step = _validated(_STEP, data, item.path, conversion)
            if step is None:
                conversion.rejected += 1
                continue
            for message in warn:
                conversion.note(f"{item.path}.{message}")
            conversion.steps.append(step)
            if item is root:
                run = _validated(_RUN, _run(root, run_id, pipeline, step), item.path, conversion)
                if run is not None:
                    conversion.runs.append(run)
    return conversion


async def export_traces(session: AsyncSession, request: ExportTraceServiceRequest) -> Conversion:
    """Map ``request`` and store it in the session's transaction (the caller commits)."""
    conversion = to_batch(request)
    if conversion.runs or conversion.steps:
        await ingest(session, runs=conversion.runs, steps=conversion.steps)
    return conversion
