"""The short spelling, ``python -m api``: a thin alias of ``xray.api``."""

from xray.api import *  # noqa: F403
from xray.api import __all__ as __all__
