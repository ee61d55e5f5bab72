"""What a demo run records: one ``DemoRun`` per pipeline run, a ``DemoSummary`` for all."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = ["DemoJob", "DemoRun", "DemoSummary"]


@dataclass(frozen=True)
class DemoRun:
    """One run the demo recorded: which pipeline, about what, with what outcome."""

    pipeline: str
    run_id: str
    subject: str
    outcome: str
    ok: bool
    seed: int


# One pipeline run, ready to go: records it and says what it recorded.
DemoJob = Callable[[], DemoRun]


@dataclass(frozen=True)
class DemoSummary:
    """What ``run_demos`` recorded, with the run ids the walkthrough needs.

    ``bad_run_id`` is the laptop stand whose competitor came out as the phone case
    ``bad_candidate_key``; ``good_run_id`` is a run for the same product that chose a
    laptop stand; ``wrong_competitor_run_ids`` lists every competitor-selection run whose
    choice is from another category (the planted bug and any the random seeds produced).
    ``sdk_stats`` is the client's ``stats()`` after the flush.
    """

    base_url: str
    runs: tuple[DemoRun, ...]
    bad_run_id: str
    good_run_id: str
    product_asin: str
    bad_candidate_key: str
    wrong_competitor_run_ids: tuple[str, ...]
    sdk_stats: dict[str, Any] = field(default_factory=dict)

    def run_ids(self, pipeline: str | None = None) -> list[str]:
        """The recorded run ids, optionally of one pipeline, in the order they ran."""
        return [r.run_id for r in self.runs if pipeline is None or r.pipeline == pipeline]

    def counts(self) -> dict[str, int]:
        """Runs per pipeline."""
        return dict(Counter(r.pipeline for r in self.runs))

    def events_lost(self) -> int:
        """Events the SDK dropped instead of sending (0 when all arrived)."""
        return int(self.sdk_stats.get("dropped", 0))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
