"""The rejection-based rate of a step, computed once at ingest and stored beside the
count-based ``elimination_rate``.

``elimination_rate`` compares counts in and out, so a filter that rejects its whole input
and then refills from a fallback looks like an ordinary filter. ``rejected_rate`` counts
what the step said it rejected (``reason_counts`` holds rejections only, at every detail
level), so that step reads 100%.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["readmitted", "rejected_rate"]


def rejected_rate(input_count: int | None, reason_counts: Mapping[str, int] | None) -> float | None:
    """``rejected / input`` from ``reason_counts``; ``None`` without input or reasons.

    Capped at 1: a step may reject a candidate it also counted in another way.

    Example:
        >>> rejected_rate(40, {"locale_mismatch": 40})
        1.0
        >>> rejected_rate(40, {"locale_mismatch": 31})
        0.775
    """
    if not input_count or input_count < 0 or not reason_counts:
        return None
    rejected = sum(n for n in reason_counts.values() if n > 0)
    return min(1.0, rejected / input_count)


def readmitted(
    input_count: int | None, output_count: int | None, reason_counts: Mapping[str, int] | None
) -> bool:
    """Whether a step kept more than its input minus what it rejected (a refill).

    Example:
        >>> readmitted(40, 9, {"locale_mismatch": 40})
        True
        >>> readmitted(40, 9, {"locale_mismatch": 31})
        False
    """
    if input_count is None or output_count is None or not reason_counts:
        return False
    rejected = sum(n for n in reason_counts.values() if n > 0)
    return output_count > max(0, input_count - rejected)
