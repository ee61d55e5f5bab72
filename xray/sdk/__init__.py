"""X-Ray's SDK: record why each step of a pipeline kept or dropped each candidate.

Minimal instrumentation is one decorator per step; full instrumentation adds candidate
keys, reasons, parameters and reasoning (see README). Nothing here ever raises into the
user's code or blocks it on the network; with no configuration it does nothing.

Example:
    >>> from xray.sdk import XRayClient, current_step, step
    >>> @step(type="filter", key="asin")
    ... def in_stock(candidates):
    ...     return [c for c in candidates if c["stock"] > 0]
"""

from xray.sdk._client import ClientStats, XRayClient, get_client
from xray.sdk._run import Run, RunScope
from xray.sdk._sender import Response, Transport
from xray.sdk._step import Step, StepFactory, current_run, current_step, step

__all__ = [
    "ClientStats",
    "Response",
    "Run",
    "RunScope",
    "Step",
    "StepFactory",
    "Transport",
    "XRayClient",
    "current_run",
    "current_step",
    "get_client",
    "step",
]
