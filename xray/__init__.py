"""X-Ray: see why a multi-step, non-deterministic decision pipeline produced its output.

The SDK's public names are re-exported here lazily, so that importing ``xray.shared`` or
``xray.api`` (the server) never loads the SDK.

Example:
    >>> from xray import XRayClient, step, current_step
    >>> @step(type="filter")
    ... def keep_cheap(items):
    ...     return [i for i in items if i["price"] < 10]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_SDK_NAMES = (
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
)

__all__ = sorted([*_SDK_NAMES, "__version__"])

if TYPE_CHECKING:
    from xray.sdk import ClientStats as ClientStats
    from xray.sdk import Response as Response
    from xray.sdk import Run as Run
    from xray.sdk import RunScope as RunScope
    from xray.sdk import Step as Step
    from xray.sdk import StepFactory as StepFactory
    from xray.sdk import Transport as Transport
    from xray.sdk import XRayClient as XRayClient
    from xray.sdk import current_run as current_run
    from xray.sdk import current_step as current_step
    from xray.sdk import get_client as get_client
    from xray.sdk import step as step


def __getattr__(name: str) -> Any:
    if name in _SDK_NAMES:
        import xray.sdk

        return getattr(xray.sdk, name)
    raise AttributeError(f"module 'xray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_SDK_NAMES])
