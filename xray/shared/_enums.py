"""The fixed vocabularies shared by the SDK, the API and the dashboard.

They are ``StrEnum`` so that a member *is* its wire value: ``StepType.FILTER == "filter"``,
and JSON, SQL and query strings need no conversion.
"""

from __future__ import annotations

from enum import StrEnum

__all__ = ["Decision", "DetailLevel", "RunStatus", "StepStatus", "StepType"]


class StepType(StrEnum):
    """What kind of decision point a step is (a public contract: the values never change).

    The vocabulary is small on purpose: it is what makes cross-pipeline queries such as
    "every filter step that eliminated more than 90%" work for pipelines nobody has seen.

    Example:
        >>> StepType("filter") is StepType.FILTER
        True
    """

    LLM = "llm"
    RETRIEVAL = "retrieval"
    FILTER = "filter"
    RANK = "rank"
    SELECT = "select"
    TRANSFORM = "transform"
    CLASSIFY = "classify"
    GENERATE = "generate"
    EVALUATE = "evaluate"
    CUSTOM = "custom"


class RunStatus(StrEnum):
    """Lifecycle of a run or a step: ``running`` until it ends in ``success`` or ``error``.

    Example:
        >>> RunStatus.SUCCESS.value
        'success'
    """

    RUNNING = "running"
    SUCCESS = "success"
    ERROR = "error"


# Steps share the run lifecycle; the alias keeps call sites saying what they mean.
StepStatus = RunStatus


class Decision(StrEnum):
    """One candidate's fate in one step.

    Example:
        >>> Decision("rejected") is Decision.REJECTED
        True
    """

    ACCEPTED = "accepted"
    REJECTED = "rejected"
    SELECTED = "selected"
    SCORED = "scored"


class DetailLevel(StrEnum):
    """How much of a step's per-candidate decisions is stored.

    ``summary`` keeps counts, params, reasoning and reason counts (O(1) per step);
    ``sampled`` adds every accepted/selected candidate and up to N rejected per reason;
    ``full`` keeps every decision, up to the hard cap.

    Example:
        >>> DetailLevel("full") is DetailLevel.FULL
        True
    """

    SUMMARY = "summary"
    SAMPLED = "sampled"
    FULL = "full"
