"""Which pipelines ``xray demo`` runs, and loading them.

Each name is a module of ``xray.demo`` with a ``PIPELINE`` name and
``demo_jobs(client, rng, runs) -> list[DemoJob]``: that many runs, ready to go. The jobs
draw their seeds from ``rng`` when they are made, in the order of this list, so a given
demo seed records the same runs every time.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["PIPELINES", "load_pipeline"]

PIPELINES: list[str] = [
    "competitor_selection",
    "listing_optimisation",
    "product_categorisation",
    "support_answer",
]


def load_pipeline(name: str) -> ModuleType:
    """The module ``xray.demo.<name>`` (shipped in the package, so any install has it)."""
    return importlib.import_module(f"xray.demo.{name}")
