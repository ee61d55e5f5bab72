"""``run_demos``: record the demo pipelines' runs into an X-Ray API and flush them."""

from __future__ import annotations

import random
from collections.abc import Callable

from xray.demo._pipelines import PIPELINES, load_pipeline
from xray.demo._summary import DemoJob, DemoRun, DemoSummary

__all__ = ["RUNS_PER_PIPELINE", "ProgressCallback", "run_demos"]

RUNS_PER_PIPELINE = 12

# ``progress(done, total, label)``: before each run (label: its pipeline), then "sending"
# and "done".
ProgressCallback = Callable[[int, int, str], None]


def run_demos(
    base_url: str,
    *,
    api_key: str | None = None,
    runs_per_pipeline: int = RUNS_PER_PIPELINE,
    seed: int = 1,
    progress: ProgressCallback | None = None,
    flush_timeout: float = 60.0,
) -> DemoSummary:
    """Run every demo pipeline against the API at ``base_url`` and flush.

    Records ``runs_per_pipeline`` runs of each pipeline plus two laptop-stand
    competitor-selection runs: the planted bug (a phone case chosen) and a good one to
    compare it with. Deterministic for a given ``seed``.

    Example:
        >>> summary = run_demos("http://127.0.0.1:8000", runs_per_pipeline=3)  # doctest: +SKIP
        >>> summary.bad_run_id  # the laptop stand whose competitor came out as a phone case
    """
    if runs_per_pipeline < 1:
        raise ValueError("runs_per_pipeline must be at least 1")
    from xray import XRayClient

    client = XRayClient(
        base_url=base_url,
        api_key=api_key,
        enabled=True,
        sample_rate=1.0,
        buffer_size=100_000,
        flush_interval=0.5,
        # Leave the process's default client alone: a test or a notebook calling this
        # keeps its own X-Ray configuration.
        set_default=False,
    )
    rng = random.Random(seed)
    jobs: list[tuple[str, DemoJob]] = []
    for name in PIPELINES:
        module = load_pipeline(name)
        jobs += [(module.PIPELINE, job) for job in module.demo_jobs(client, rng, runs_per_pipeline)]

    runs: list[DemoRun] = []
    try:
        for done, (label, job) in enumerate(jobs):
            if progress:
                progress(done, len(jobs), label)
            runs.append(job())
        if progress:
            progress(len(jobs), len(jobs), "sending")
        client.flush(timeout=flush_timeout)
        stats = dict(client.stats())
    finally:
        client.shutdown(timeout=5)
    if progress:
        progress(len(jobs), len(jobs), "done")

    # The walkthrough's story is competitor selection's: its laptop stand and planted bug.
    competitors = load_pipeline("competitor_selection")
    laptop_stand = competitors.PRODUCTS[0]
    laptop_runs = [
        r for r in runs if r.pipeline == competitors.PIPELINE and r.subject == laptop_stand["asin"]
    ]
    bad = next(r for r in laptop_runs if r.seed == competitors.BUG_SEED)
    good = next(r for r in laptop_runs if r.seed == competitors.GOOD_SEED)
    return DemoSummary(
        base_url=base_url,
        runs=tuple(runs),
        bad_run_id=bad.run_id,
        good_run_id=good.run_id,
        product_asin=laptop_stand["asin"],
        bad_candidate_key=competitors.PHONE_CASE_ASIN,
        wrong_competitor_run_ids=tuple(
            r.run_id for r in runs if r.pipeline == competitors.PIPELINE and not r.ok
        ),
        sdk_stats=stats,
    )
