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


def measure(
    call: Callable[[], Any],
    calls: int,
    repeats: int,
    settle: Callable[[], Any] | None = None,
    burst: int = 500,
) -> dict[str, float]:
    """Median ns per call. Calls come in bursts of ``burst``; after each burst ``settle``
    lets the background exporter catch up (not counted as caller or wall time, counted in
    total CPU), so the backlog stays bounded as in a pipeline whose steps do real work."""
    walls, callers, totals = [], [], []
    for _ in range(repeats):
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
        walls.append(wall / calls)
        callers.append(caller / calls)
        totals.append((p1 - p0) / calls)
    return {
        "caller": statistics.median(callers),
        "wall": statistics.median(walls),
        "total": statistics.median(totals),
    }


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

    results: dict[str, dict[str, float]] = {}

    # Import everything measured below before measuring anything.
    import opentelemetry.sdk.trace  # noqa: F401

    import xray.sdk  # noqa: F401

    if options.gc_freeze:
        gc.collect()
        gc.freeze()

    # -- bare and floor -------------------------------------------------------------------
    results["bare call"] = measure(lambda: keep_half(CANDIDATES), calls, repeats)

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
    results["floor decorator"] = measure(
        lambda: floored(CANDIDATES), calls, repeats, settle=floor_queue.clear
    )

    # -- OpenTelemetry --------------------------------------------------------------------
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
    results["otel span (BatchSpanProcessor)"] = measure(
        lambda: traced(CANDIDATES), calls, repeats, settle=lambda: processor.force_flush(60_000)
    )
    provider.shutdown()

    # -- X-Ray --------------------------------------------------------------------------
    from xray import XRayClient, current_step, step

    XRayClient(enabled=False)
    plain = step(type="filter")(keep_half)
    results["xray @step disabled"] = measure(lambda: plain(CANDIDATES), calls, repeats)

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

    variants: list[tuple[str, Callable[..., Any]]] = [
        ("xray @step summary", step(type="filter")(keep_half)),
        ("xray @step summary +key (100 cand.)", keyed("summary")),
        ("xray @step sampled +key (100 cand.)", keyed("sampled")),
        ("xray @step full +key (100 cand.)", keyed("full")),
    ]
    for label, fn in variants:
        with client.run("bench"):
            results[label] = measure(
                lambda fn=fn: fn(CANDIDATES),  # type: ignore[misc]
                calls,
                repeats,
                settle=lambda: client.flush(120),
            )
    stats = client.stats()
    client.shutdown(10)
    sink.terminate()

    # -- report ---------------------------------------------------------------------------
    floor_ns = results["floor decorator"]["caller"]
    bare_ns = results["bare call"]["caller"]
    otel_ns = results["otel span (BatchSpanProcessor)"]["caller"]
    print(
        f"python {platform.python_version()} on {platform.machine()}, "
        f"{calls} calls x {repeats} repeats, median; ns per call"
        + ("; gc.freeze() after imports" if options.gc_freeze else "")
    )
    print()
    print("| variant | caller CPU | wall | total CPU (incl. background) | caller / floor |")
    print("|---|---:|---:|---:|---:|")
    for label, row in results.items():
        print(
            f"| {label} | {row['caller']:,.0f} | {row['wall']:,.0f} | {row['total']:,.0f} | "
            f"{row['caller'] / floor_ns:.2f}x |"
        )
    summary = results["xray @step summary"]
    disabled = results["xray @step disabled"]
    print()
    print(f"- summary caller / floor: {summary['caller'] / floor_ns:.2f}x (goal <= 2x)")
    print(f"- otel span caller / summary caller: {otel_ns / summary['caller']:.1f}x (goal >= 10x)")
    print(
        f"- summary total CPU (incl. sender) / otel caller: "
        f"{summary['total'] / otel_ns:.2f}x (goal < 1x)"
    )
    print(f"- disabled caller / bare: {disabled['caller'] / bare_ns:.2f}x (goal <= 3x)")
    print(
        f"- X-Ray delivery: sent={stats['sent']} dropped={stats['dropped']} "
        f"retried={stats['retried']}"
    )


if __name__ == "__main__":
    main()
