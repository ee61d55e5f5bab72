"""What recording every decision of a filter costs: per item, in bulk, from DataFrames.

Measures, in one process, one step = one call of a price filter (medians of interleaved
repeats):

- a filter of 5,000 candidates (dicts) down to 30 that rejects each dropped one with a
  reason and one attribute (``reject(c, reason="price_above_max", price=c["price"])``):
  alone; inside an OpenTelemetry span with one ``add_event`` per rejection (exported by
  ``BatchSpanProcessor`` over OTLP/HTTP); X-Ray per-item ``reject()`` at ``summary``,
  ``sampled`` and ``full``; X-Ray ``full`` with the decisions inferred from ``key=``;
  X-Ray ``reject_many`` (the bulk call) at each detail;
- a pandas and a polars filter of 100,000 rows down to 1,000: alone, and as an X-Ray
  ``@step(key="id")`` at ``full`` with the decisions inferred from the key column, and with
  an explicit ``reject_many(rejected_frame, reason=..., price=rejected_frame["price"])``.

Costs per step: ``caller`` is the CPU time of the calling thread, ``total`` the CPU time of
the whole process including the background sender's encoding, gzip and HTTP to a sink on
127.0.0.1 (another process, not counted), measured until everything was handed over.
``ns/decision`` is (total - the filter alone's total) / decisions made in the step.

    .venv/bin/python bench/bulk_decisions.py [--steps 20] [--repeats 3]

Needs the ``bench``, ``pandas`` and ``polars`` extras. Not a test: no thresholds.
"""

from __future__ import annotations

import argparse
import multiprocessing
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdk_overhead import _sink  # the same 200 {} sink

MAX_PRICE = 100.0
N, KEPT = 5_000, 30
FRAME_ROWS, FRAME_KEPT = 100_000, 1_000


def candidates() -> list[dict[str, Any]]:
    """5,000 candidates, 30 of them at or under MAX_PRICE, spread through the list."""
    step = N // KEPT
    return [
        {
            "id": f"B{i:07d}",
            "price": 50.0 + (i % 7) if i % step == 0 and i // step < KEPT else 150.0 + i % 97,
        }
        for i in range(N)
    ]


class Variant:
    def __init__(
        self,
        label: str,
        call: Callable[[], Any],
        decisions: int,
        settle: Callable[[], Any] | None = None,
        around: Callable[[], Any] | None = None,
    ) -> None:
        self.label = label
        self.call = call
        self.decisions = decisions
        self.settle = settle
        self.around = around
        self.rows: list[dict[str, float]] = []

    def measure_once(self, steps: int) -> None:
        caller = 0
        p0 = time.process_time_ns()
        for _ in range(steps):
            t0 = time.thread_time_ns()
            self.call()
            caller += time.thread_time_ns() - t0
            if self.settle is not None:
                self.settle()  # the sender catches up: counted in total, not in caller
        p1 = time.process_time_ns()
        self.rows.append({"caller": caller / steps, "total": (p1 - p0) / steps})

    def median(self, column: str) -> float:
        return statistics.median(row[column] for row in self.rows)


def interleaved(variants: list[Variant], steps: int, repeats: int) -> None:
    for variant in variants:  # one warm-up step each, not measured
        if variant.around is not None:
            with variant.around():
                variant.call()
        else:
            variant.call()
        if variant.settle is not None:
            variant.settle()
    for _ in range(repeats):
        for variant in variants:
            if variant.around is not None:
                with variant.around():
                    variant.measure_once(steps)
            else:
                variant.measure_once(steps)


def per_decision(variant: Variant, floor: Variant, column: str) -> float:
    """Median over repeats of (variant - floor) / decisions, each repeat's pair together."""
    return statistics.median(
        (v[column] - f[column]) / variant.decisions
        for v, f in zip(variant.rows, floor.rows, strict=True)
    )


def ratio(variant: Variant, floor: Variant, column: str) -> float:
    return statistics.median(
        v[column] / f[column] for v, f in zip(variant.rows, floor.rows, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="steps per variant per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-otel", action="store_true", help="leave the OpenTelemetry row out")
    parser.add_argument("--no-frames", action="store_true", help="leave pandas and polars out")
    options = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    sink = ctx.Process(target=_sink, args=(ports,), daemon=True)
    sink.start()
    sink_url = f"http://127.0.0.1:{ports.get(timeout=30)}"

    from xray import XRayClient, current_step, step
    from xray.sdk import _step

    client = XRayClient(base_url=sink_url, flush_interval=60)
    data = candidates()
    dropped_count = N - KEPT

    def xray(label: str, fn: Callable[..., Any], decisions: int, arg: Any = data) -> Variant:
        return Variant(
            label,
            lambda: fn(arg, MAX_PRICE),
            decisions,
            settle=lambda: client.flush(120),
            around=lambda: client.run("bench"),
        )

    # -- the 5,000 -> 30 filter -------------------------------------------------------
    def alone(items: list[dict[str, Any]], max_price: float) -> list[dict[str, Any]]:
        kept = []
        for c in items:
            if c["price"] > max_price:
                pass
            else:
                kept.append(c)
        return kept

    def per_item(detail: str) -> Callable[..., Any]:
        @step(type="filter", key="id", detail=detail)
        def price_filter(items: list[dict[str, Any]], max_price: float) -> list[dict[str, Any]]:
            s = current_step()
            kept = []
            for c in items:
                if c["price"] > max_price:
                    s.reject(c, reason="price_above_max", price=c["price"])
                else:
                    kept.append(c)
            return kept

        return price_filter

    def bulk(detail: str) -> Callable[..., Any]:
        @step(type="filter", key="id", detail=detail)
        def price_filter(items: list[dict[str, Any]], max_price: float) -> list[dict[str, Any]]:
            kept, dropped = [], []
            for c in items:
                (dropped if c["price"] > max_price else kept).append(c)
            current_step().reject_many(
                dropped, reason="price_above_max", price=[c["price"] for c in dropped]
            )
            return kept

        return price_filter

    @step(type="filter", key="id", detail="full")
    def inferred(items: list[dict[str, Any]], max_price: float) -> list[dict[str, Any]]:
        return [c for c in items if c["price"] <= max_price]

    floor = Variant("the filter alone", lambda: alone(data, MAX_PRICE), dropped_count)
    variants = [floor]
    otel_provider = None
    if not options.no_otel:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        otel_provider = TracerProvider()
        processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink_url}/v1/traces"))
        otel_provider.add_span_processor(processor)
        tracer = otel_provider.get_tracer("bench")

        def otel_filter(items: list[dict[str, Any]], max_price: float) -> list[dict[str, Any]]:
            with tracer.start_as_current_span("price_filter") as span:
                kept = []
                for c in items:
                    if c["price"] > max_price:
                        span.add_event(
                            "xray.decision",
                            {
                                "candidate": c["id"],
                                "decision": "rejected",
                                "reason": "price_above_max",
                                "price": c["price"],
                            },
                        )
                    else:
                        kept.append(c)
                return kept

        variants.append(
            Variant(
                "OpenTelemetry span + one add_event per rejection",
                lambda: otel_filter(data, MAX_PRICE),
                dropped_count,
                settle=lambda: processor.force_flush(120_000),
            )
        )
    variants += [
        xray("X-Ray per-item reject(), summary", per_item("summary"), dropped_count),
        xray("X-Ray per-item reject(), sampled", per_item("sampled"), dropped_count),
        xray("X-Ray per-item reject(), full", per_item("full"), dropped_count),
        xray("X-Ray full, inferred from key= (no explicit rejects)", inferred, N),
    ]
    # Without the bulk calls (an older checkout, to compare): the per-item rows only.
    has_bulk = hasattr(_step.Step, "reject_many")
    if has_bulk:
        variants += [
            xray("X-Ray reject_many(), summary", bulk("summary"), dropped_count),
            xray("X-Ray reject_many(), sampled", bulk("sampled"), dropped_count),
            xray("X-Ray reject_many(), full", bulk("full"), dropped_count),
        ]

    frame_groups: list[list[Variant]] = []
    if not options.no_frames and has_bulk:
        frame_groups = frame_variants(xray, client, current_step, step)
        for group in frame_groups:
            variants += group

    interleaved(variants, options.steps, options.repeats)
    stats = client.stats()
    client.shutdown(10)
    if otel_provider is not None:
        otel_provider.shutdown()
    sink.terminate()

    print(
        f"python {platform.python_version()} on {platform.machine()}, X-Ray "
        f"{'C fast path' if _step.ACCELERATED else 'pure-Python path'}, {options.steps} steps x "
        f"{options.repeats} repeats (variants interleaved), medians; a step is one filter call"
    )
    print()
    print(
        "| variant | caller µs/step | total CPU µs/step (incl. sender) | "
        "caller ns/decision | total ns/decision | total / filter alone |"
    )
    print("|---|---:|---:|---:|---:|---:|")

    def row(variant: Variant, base: Variant) -> None:
        if variant is base:
            extra = "- | - | 1.00x"
        else:
            extra = (
                f"{per_decision(variant, base, 'caller'):,.0f} | "
                f"{per_decision(variant, base, 'total'):,.0f} | "
                f"{ratio(variant, base, 'total'):.2f}x"
            )
        print(
            f"| {variant.label} | {variant.median('caller') / 1000:,.0f} | "
            f"{variant.median('total') / 1000:,.0f} | {extra} |"
        )

    for variant in variants:
        if not any(variant in group for group in frame_groups):
            row(variant, floor)
    for group in frame_groups:
        for variant in group:
            row(variant, group[0])
    print()
    print(
        f"- X-Ray delivery: sent={stats['sent']} dropped={stats['dropped']} "
        f"retried={stats['retried']}"
    )
    for group in frame_groups:
        base = group[0]
        for variant in group[1:]:
            overhead = ratio(variant, base, "total") - 1
            print(f"- {variant.label}: total overhead {overhead:.0%} of the filter's own time")


def frame_variants(
    xray: Callable[..., Variant], client: Any, current_step: Any, step: Any
) -> list[list[Variant]]:
    """pandas and polars: 100,000 rows -> 1,000, alone and recorded at full."""
    import numpy as np
    import pandas as pd
    import polars as pl

    rng = np.random.default_rng(7)
    prices = np.where(rng.random(FRAME_ROWS) < FRAME_KEPT / FRAME_ROWS, 50.0, 150.0)
    prices[: FRAME_KEPT - int((prices <= MAX_PRICE).sum())] = 50.0  # exactly FRAME_KEPT kept
    ids = [f"B{i:07d}" for i in range(FRAME_ROWS)]
    frame = pd.DataFrame({"id": ids, "price": prices, "rating": rng.random(FRAME_ROWS) * 5})
    polars_frame = pl.DataFrame({"id": ids, "price": prices, "rating": frame["rating"].to_numpy()})
    dropped = FRAME_ROWS - int((prices <= MAX_PRICE).sum())
    groups = []
    for name, data, alone, explicit in (
        (
            "pandas",
            frame,
            lambda df, mx: df[df["price"] <= mx],
            lambda df, mx: df[df["price"] > mx],
        ),
        (
            "polars",
            polars_frame,
            lambda df, mx: df.filter(pl.col("price") <= mx),
            lambda df, mx: df.filter(pl.col("price") > mx),
        ),
    ):
        keep_fn = step(type="filter", key="id", detail="full")(alone)

        def bulk_fn(df: Any, mx: float, keep: Any = alone, drop: Any = explicit) -> Any:
            gone = drop(df, mx)
            current_step().reject_many(gone, reason="price_above_max", price=gone["price"])
            return keep(df, mx)

        bulk_step = step(type="filter", key="id", detail="full")(bulk_fn)
        groups.append(
            [
                Variant(
                    f"{name} filter alone, 100,000 -> 1,000 rows",
                    lambda data=data, alone=alone: alone(data, MAX_PRICE),
                    dropped,
                ),
                xray(f"X-Ray {name} @step(key=), full, inferred", keep_fn, FRAME_ROWS, data),
                xray(f"X-Ray {name} reject_many(frame), full", bulk_step, dropped, data),
            ]
        )
    return groups


if __name__ == "__main__":
    main()
