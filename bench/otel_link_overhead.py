"""What linking steps to the active OpenTelemetry span costs a ``@step`` call.

Three modes, each in a fresh interpreter (whether ``opentelemetry.trace`` was ever
imported is process-wide), on the pure-Python path (``XRAY_SDK_PURE_PYTHON=1``, where
steps are linked), recording into the SDK's in-memory transport:

- ``no otel``: the application never imported OpenTelemetry (one ``sys.modules`` lookup);
- ``otel, no span``: ``opentelemetry.trace`` imported, no span active;
- ``otel, span``: each call inside its own active span: the step stores the span's ids.

    .venv/bin/python bench/otel_link_overhead.py [--calls 20000] [--repeats 5]

Reports the median caller CPU ns per call. Not a test: no thresholds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys, time
sys.path.insert(0, {root!r})
mode, calls = {mode!r}, {calls}
if mode != "no otel":
    from opentelemetry.sdk.trace import TracerProvider
    tracer = TracerProvider().get_tracer("bench")
from xray import step
from xray.sdk.testing import recording

@step(type="filter")
def keep(items):
    return items

items = [1, 2, 3]
with recording(buffer_size=calls * 2 + 10) as rec:
    with rec.client.run("bench"):
        if mode == "otel, span":
            spans = [tracer.start_span("s") for _ in range(calls)]
            from opentelemetry.trace import use_span
            t0 = time.thread_time_ns()
            for span in spans:
                with use_span(span):
                    keep(items)
            with_span = time.thread_time_ns() - t0
            t0 = time.thread_time_ns()
            for span in spans:
                with use_span(span):
                    pass
            print((with_span - (time.thread_time_ns() - t0)) / calls)
        else:
            t0 = time.thread_time_ns()
            for _ in range(calls):
                keep(items)
            print((time.thread_time_ns() - t0) / calls)
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    env = {**os.environ, "XRAY_SDK_PURE_PYTHON": "1"}
    modes = ["no otel", "otel, no span", "otel, span"]
    results: dict[str, list[float]] = {m: [] for m in modes}
    for _ in range(args.repeats):  # interleaved, so drift hits every mode alike
        for mode in modes:
            code = CHILD.format(root=str(ROOT), mode=mode, calls=args.calls)
            out = subprocess.run(
                [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
            )
            results[mode].append(float(out.stdout.strip()))
    base = statistics.median(results["no otel"])
    for mode in modes:
        value = statistics.median(results[mode])
        print(f"{mode:14s} {value:8.0f} ns per call   {value / base:.2f}x")


if __name__ == "__main__":
    main()
