"""The short spelling, ``from sdk import step, XRayClient``: a thin alias of ``xray.sdk``."""

from xray.sdk import *  # noqa: F403
from xray.sdk import __all__ as __all__
