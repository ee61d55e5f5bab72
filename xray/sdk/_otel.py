"""Links to the user's own tracing: the active OpenTelemetry span's ids on runs and steps.

When an OpenTelemetry span is active around an X-Ray run or step, its trace and span ids
are stored in the run's or step's metadata (``otel.trace_id``, ``otel.span_id``, lowercase
hex as in W3C trace context), so a user can jump from a trace in their APM to the X-Ray run
and back. The SDK never imports OpenTelemetry: only when the application has imported
``opentelemetry.trace`` itself is the current span read, so without it this costs one
dictionary lookup.
"""

from __future__ import annotations

import sys
from typing import Any

from xray.sdk._guard import internal_error

__all__ = ["TRACE_MODULE", "link_step", "otel_ids"]

#: Imported by every application that starts spans; absent, there is nothing to link.
TRACE_MODULE = "opentelemetry.trace"

_modules = sys.modules


def otel_ids() -> dict[str, str] | None:
    """``{"otel.trace_id": ..., "otel.span_id": ...}`` of the active span, or ``None``.

    Example:
        >>> otel_ids() is None  # no OpenTelemetry span is active here
        True
    """
    trace: Any = _modules.get(TRACE_MODULE)
    if trace is None:
        return None
    try:
        context = trace.get_current_span().get_span_context()
        if not context.is_valid:
            return None
        return {
            "otel.trace_id": format(context.trace_id, "032x"),
            "otel.span_id": format(context.span_id, "016x"),
        }
    except Exception as exc:  # a broken or unexpected opentelemetry must not reach the user
        internal_error(exc)
        return None


def link_step(step: Any) -> None:
    """Store the active span's ids on ``step`` when that span is not its run's (a span
    around the whole run is already on the run)."""
    ids = otel_ids()
    if ids is not None and ids["otel.span_id"] != step.run.metadata.get("otel.span_id"):
        step.annotate(**ids)
