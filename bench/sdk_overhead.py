"""How much does instrumenting a call cost? X-Ray's @step against a floor and OpenTelemetry.

Measures, in one process, nanoseconds per call (median of repeats) of:

- ``bare``: the undecorated function;
- ``floor``: the least any recorder can do: two clock reads, a small dict, a
  ``deque.append``;
- ``otel span``: an OpenTelemetry span decorator with ``BatchSpanProcessor`` and the
  OTLP/HTTP exporter pointed at a sink on 127.0.0.1;
- ``xray disabled``: ``@step`` with the SDK disabled;
- ``xray summary``: ``@step`` recording, default detail, no candidate key;
- ``xray summary/sampled/full +key``: ``@step(key="id")`` on a filter of 100 candidates
  (50 kept: decisions inferred; 10 explicit rejections with a reason).

Three costs per call: ``caller`` is the CPU time of the calling thread (what the
instrumented code pays), ``wall`` the elapsed time per call in the loop, and ``total``
the CPU time of the whole process including the background sender's (or exporter's)
serialisation, gzip and HTTP, measured until everything was handed to the sink.

    .venv/bin/python bench/sdk_overhead.py [--calls 20000] [--repeats 7]

Needs the ``bench`` extra (``pip install -e ".[sdk,bench]"``). Not a test: no thresholds.
"""

from __future__ import annotations

import argparse
import gc
import http.server
import multiprocessing
import platform
import statistics
import sys
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _sink(port_queue: Any) -> None:
    """An HTTP server on 127.0.0.1 that reads every request and answers 200 {}."""

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            body = b"{}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port_queue.put(server.server_address[1])
    server.serve_forever()


def keep_half(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return items[:50]


CANDIDATES = [{"id": f"c{i}", "price": i} for i in range(100)]


class Variant:
    """One thing to call, with what to do around a burst of calls (not timed)."""

    def __init__(
        self,
        label: str,
        call: Callable[[], Any],
        settle: Callable[[], Any] | None = None,
        around: Callable[[], Any] | None = None,
    ) -> None:
        self.label = label
        self.call = call
        self.settle = settle
        self.around = around  # a context manager factory, entered for each repeat
        self.rows: list[dict[str, float]] = []

    def measure_once(self, calls: int, burst: int) -> None:
        """ns per call over ``calls`` calls in bursts of ``burst``; after each burst
        ``settle`` lets the background exporter catch up (not counted as caller or wall
        time, counted in total CPU), so the backlog stays bounded as in a pipeline whose
        steps do real work."""
        call, settle = self.call, self.settle
        wall = caller = 0
        p0 = time.process_time_ns()
        done = 0
        while done < calls:
            n = min(burst, calls - done)
            t0, w0 = time.thread_time_ns(), time.perf_counter_ns()
            for _ in range(n):
                call()
            w1, t1 = time.perf_counter_ns(), time.thread_time_ns()
            wall += w1 - w0
            caller += t1 - t0
            done += n
            if settle is not None:
                settle()
        p1 = time.process_time_ns()
        self.rows.append(
            {"caller": caller / calls, "wall": wall / calls, "total": (p1 - p0) / calls}
        )

    def median(self, column: str) -> float:
        return statistics.median(row[column] for row in self.rows)


def interleaved(variants: list[Variant], calls: int, repeats: int, burst: int = 500) -> None:
    """Measure every variant once per repeat, in turn: the machine's drift (it is shared)
    then hits all of them alike instead of whichever ran during a slow minute."""
    for _ in range(repeats):
        for variant in variants:
            if variant.around is not None:
                with variant.around():
                    variant.measure_once(calls, burst)
            else:
                variant.measure_once(calls, burst)


def ratio(a: Variant, b: Variant, column: str = "caller") -> float:
    """Median over repeats of a/b, each repeat's pair measured a moment apart."""
    return statistics.median(x[column] / y[column] for x, y in zip(a.rows, b.rows, strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--gc-freeze",
        action="store_true",
        help="gc.freeze() the imported modules first, for every variant alike (as servers that "
        "preload do): per-call costs without re-scanning the libraries' own objects",
    )
    options = parser.parse_args()
    calls, repeats = options.calls, options.repeats

    ctx = multiprocessing.get_context("spawn")
    ports: Any = ctx.Queue()
    sink = ctx.Process(target=_sink, args=(ports,), daemon=True)
    sink.start()
    port = ports.get(timeout=30)
    sink_url = f"http://127.0.0.1:{port}"

    # Import everything measured below before measuring anything.
    import opentelemetry.sdk.trace  # noqa: F401

    from xray.sdk import _step

    if options.gc_freeze:
        gc.collect()
        gc.freeze()

    # -- bare and floor -------------------------------------------------------------------
    floor_queue: deque[dict[str, Any]] = deque()

    def floor(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter_ns()
            result = fn(*args, **kwargs)
            t1 = time.perf_counter_ns()
            floor_queue.append({"name": name, "start": t0, "end": t1})
            return result

        return wrapper

    floored = floor(keep_half)

    def bare_and_floor() -> list[Variant]:
        return [
            Variant("bare call", lambda: keep_half(CANDIDATES)),
            Variant("floor decorator", lambda: floored(CANDIDATES), settle=floor_queue.clear),
        ]

    # -- phase 1: X-Ray disabled (no enabled client may exist yet) ------------------------
    from xray import XRayClient, current_step, step

    XRayClient(enabled=False)
    plain = step(type="filter")(keep_half)
    disabled = Variant("xray @step disabled", lambda: plain(CANDIDATES))
    phase1 = [*bare_and_floor(), disabled]
    interleaved(phase1, calls, repeats)
    bare1 = phase1[0]

    # -- phase 2: recording, against the floor and OpenTelemetry --------------------------
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider()
    # Defaults (queue 2048, batches of 512): a burst of 500 never fills the queue.
    processor = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"{sink_url}/v1/traces"))
    provider.add_span_processor(processor)
    tracer = provider.get_tracer("bench")

    def otel(fn: Callable[..., Any]) -> Callable[..., Any]:
        name = fn.__name__

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with tracer.start_as_current_span(name):
                return fn(*args, **kwargs)

        return wrapper

    traced = otel(keep_half)

    # Defaults (buffer 1000, flush every 5 s) except batches of 512 like OpenTelemetry's
    # (X-Ray's default is 100); a burst of 500 steps never fills the buffer: no drops.
    client = XRayClient(base_url=sink_url, batch_size=512)

    def keyed(detail: str) -> Callable[..., Any]:
        @step(type="filter", key="id", detail=detail)
        def keep_half_keyed(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
            s = current_step()
            for c in items[90:]:
                s.reject(c, reason="price_above_max", price=c["price"])
            return items[:50]

        return keep_half_keyed

    def xray_variant(label: str, fn: Callable[..., Any]) -> Variant:
        return Variant(
            label,
            lambda: fn(CANDIDATES),
            settle=lambda: client.flush(120),
            around=lambda: client.run("bench"),
        )

    summary = xray_variant("xray @step summary", step(type="filter")(keep_half))
    phase2 = [
        *bare_and_floor(),
        Variant(
            "otel span (BatchSpanProcessor)",
            lambda: traced(CANDIDATES),
            settle=lambda: processor.force_flush(60_000),
        ),
        summary,
        xray_variant("xray @step summary +key (100 cand.)", keyed("summary")),
        xray_variant("xray @step sampled +key (100 cand.)", keyed("sampled")),
        xray_variant("xray @step full +key (100 cand.)", keyed("full")),
    ]
    interleaved(phase2, calls, repeats)
    stats = client.stats()
    client.shutdown(10)
    provider.shutdown()
    sink.terminate()
    bare, floor_v, otel_v = phase2[0], phase2[1], phase2[2]

    # -- report ---------------------------------------------------------------------------
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"X-Ray {'C fast path' if _step.ACCELERATED else 'pure-Python path'}, "
        f"{calls} calls x {repeats} repeats (variants interleaved), median; ns per call"
        + ("; gc.freeze() after imports" if options.gc_freeze else "")
    )
    print()
    print("| variant | caller CPU | wall | total CPU (incl. background) | caller / floor |")
    print("|---|---:|---:|---:|---:|")
    for variant, floor_of in [
        (bare, floor_v),
        (floor_v, floor_v),
        (otel_v, floor_v),
        (disabled, phase1[1]),
        *[(v, floor_v) for v in phase2[3:]],
    ]:
        print(
            f"| {variant.label} | {variant.median('caller'):,.0f} | {variant.median('wall'):,.0f} | "
            f"{variant.median('total'):,.0f} | {ratio(variant, floor_of):.2f}x |"
        )
    print()
    print(
        "Ratios: median over the repeats of each repeat's pair (measured a moment apart); "
        "the disabled row was measured with bare and floor before any recording client "
        "existed, and its ratios are to those."
    )
    print()
    print(f"- summary caller / floor: {ratio(summary, floor_v):.2f}x (goal <= 2x)")
    print(f"- otel span caller / summary caller: {ratio(otel_v, summary):.1f}x (goal >= 10x)")
    print(
        "- summary total CPU (incl. sender) / otel caller: "
        f"{statistics.median(s['total'] / o['caller'] for s, o in zip(summary.rows, otel_v.rows, strict=True)):.2f}x (goal < 1x)"
    )
    print(f"- disabled caller / bare: {ratio(disabled, bare1):.2f}x (goal <= 3x)")
    print(
        f"- X-Ray delivery: sent={stats['sent']} dropped={stats['dropped']} "
        f"retried={stats['retried']}"
    )


if __name__ == "__main__":
    main()
