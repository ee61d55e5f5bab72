"""Runs and steps opened inside an OpenTelemetry span carry its ids (``otel.trace_id``,
``otel.span_id``), with the real OpenTelemetry SDK; without OpenTelemetry nothing of it
is imported or stored."""

from __future__ import annotations

import asyncio
import subprocess
import sys

from opentelemetry.sdk.trace import TracerProvider

from xray import step
from xray.sdk.testing import recording


def _ids(span: object) -> dict[str, str]:
    context = span.get_span_context()  # type: ignore[attr-defined]
    return {
        "otel.trace_id": format(context.trace_id, "032x"),
        "otel.span_id": format(context.span_id, "016x"),
    }


def test_a_run_and_its_steps_carry_the_active_spans_ids() -> None:
    tracer = TracerProvider().get_tracer("test")

    @step(type="llm")
    async def generate_keywords(product: str) -> list[str]:
        return [product, f"{product} riser"]

    with recording() as rec:
        with (
            tracer.start_as_current_span("handle request") as outer,
            rec.client.run("competitor-selection", metadata={"seller": 7}),
        ):
            with step("rank", type="rank") as s:
                s.set_params(formula="rating")  # same span as the run: no link of its own
            with tracer.start_as_current_span("keywords") as inner:
                asyncio.run(generate_keywords("laptop stand"))
        run = rec.runs[0]
        assert run["metadata"] == {"seller": 7, **_ids(outer)}
        assert "otel.span_id" not in (rec.step("rank").get("metadata") or {})
        assert rec.step("generate_keywords")["metadata"] == _ids(inner)


def test_a_run_outside_any_span_has_no_link() -> None:
    with recording() as rec:
        with rec.client.run("competitor-selection"):
            pass
        assert rec.runs[0]["metadata"] == {}


def test_the_sdk_never_imports_opentelemetry_itself() -> None:
    code = (
        "import sys\n"
        "from xray.sdk.testing import recording\n"
        "from xray import step\n"
        "@step(type='filter')\n"
        "def keep(items): return items[:1]\n"
        "with recording() as rec:\n"
        "    with rec.client.run('p'):\n"
        "        keep([1, 2])\n"
        "    print(rec.runs[0]['metadata'], rec.step('keep').get('metadata'))\n"
        "print(sorted(m for m in sys.modules if m.startswith('opentelemetry')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.splitlines() == ["{} {}", "[]"]
