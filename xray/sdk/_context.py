"""Where the active run and step live: one ``ContextVar`` holding the innermost frame.

The frame is the active ``Step`` (whose ``run`` is the run), the active ``Run`` when no
step is open, or ``None``. One variable instead of two halves the hot path's context
reads. ``contextvars`` make nesting correct across asyncio tasks (each task copies the
context at creation) and across threads started with a copied context
(``contextvars.copy_context().run``, ``asyncio.to_thread``); a plain ``threading.Thread``
starts with an empty context, so its steps open their own implicit runs.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

__all__ = ["frame", "resolve_default_client", "runtime"]

# Holds a Step, a Run (either possibly the no-op kind) or None; typed Any to keep this
# module free of imports from the capture modules.
frame: ContextVar[Any] = ContextVar("xray_frame", default=None)


class _Runtime:
    """Process-wide state the hot path reads: the default client and a fast 'off' flag.

    ``recording`` is False until an enabled client exists, so a process where X-Ray is
    disabled pays one attribute read per decorated call. ``resolved`` says whether the
    default client was settled (constructed by the user, or lazily from config once).
    """

    __slots__ = ("client", "recording", "resolved")

    def __init__(self) -> None:
        self.client: Any = None
        self.recording = False
        self.resolved = False


runtime = _Runtime()


def resolve_default_client() -> Any:
    """Build the default client from config the first time a step or run needs one."""
    if not runtime.resolved:
        from xray.sdk._client import get_client

        get_client()
    return runtime.client
