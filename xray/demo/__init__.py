"""The demo: four example pipelines, shipped with the package, that ``xray demo`` runs.

``competitor_selection``, ``listing_optimisation``, ``product_categorisation`` and
``support_answer`` are pipelines written the way a user writes them (``from xray
import ...`` only); each runs on its own (``python -m xray.demo.competitor_selection --runs 5``). ``run_demos`` records
a batch of all four into a server, including a planted bug (a phone case chosen as the
competitor of a laptop stand), a good run to compare it with, and a bug only visible
across runs (German customers answered with the US policy).

Example:
    >>> from xray.demo import run_demos
    >>> summary = run_demos("http://127.0.0.1:8000", runs_per_pipeline=3)  # doctest: +SKIP
    >>> summary.counts()  # doctest: +SKIP
    {'competitor-selection': 5, 'listing-optimisation': 3, 'product-categorisation': 3}
"""

from xray.demo._pipelines import PIPELINES, load_pipeline
from xray.demo._run import RUNS_PER_PIPELINE, ProgressCallback, run_demos
from xray.demo._summary import DemoJob, DemoRun, DemoSummary

__all__ = [
    "PIPELINES",
    "RUNS_PER_PIPELINE",
    "DemoJob",
    "DemoRun",
    "DemoSummary",
    "ProgressCallback",
    "load_pipeline",
    "run_demos",
]
