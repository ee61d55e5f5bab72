"""The fixed vocabularies are a public contract: their wire values never change."""

from __future__ import annotations

from xray.shared import Decision, DetailLevel, RunStatus, StepStatus, StepType


def test_step_types_are_the_designed_vocabulary() -> None:
    assert [t.value for t in StepType] == [
        "llm",
        "retrieval",
        "filter",
        "rank",
        "select",
        "transform",
        "classify",
        "generate",
        "evaluate",
        "custom",
    ]


def test_statuses_decisions_and_detail_levels() -> None:
    assert [s.value for s in RunStatus] == ["running", "success", "error"]
    assert StepStatus is RunStatus
    assert [d.value for d in Decision] == ["accepted", "rejected", "selected", "scored"]
    assert [d.value for d in DetailLevel] == ["summary", "sampled", "full"]


def test_members_are_their_wire_strings() -> None:
    assert StepType.FILTER == "filter"
    assert f"{Decision.REJECTED}" == "rejected"
    assert StepType("rank") is StepType.RANK
