"""The wire schema validates what the SDK sends and says which field is wrong."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from xray.shared import BatchIn, RunIn, StepIn, StepType

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def step_payload(**overrides: object) -> dict[str, object]:
    payload: dict[str, object] = {
        "id": str(uuid.uuid4()),
        "run_id": str(uuid.uuid4()),
        "pipeline": "competitor-selection",
        "name": "price_filter",
        "type": "filter",
        "started_at": NOW.isoformat(),
        "input_count": 5000,
        "output_count": 30,
        "reason_counts": {"price_above_max": 4970},
        "decisions": [
            {"candidate_key": "B0LAPTOP", "decision": "rejected", "reason": "price_above_max"}
        ],
    }
    payload.update(overrides)
    return payload


def test_a_step_with_nested_decisions_validates() -> None:
    step = StepIn.model_validate(step_payload())
    assert step.type is StepType.FILTER
    assert step.decisions[0].candidate_key == "B0LAPTOP"


def test_unknown_step_type_names_the_field() -> None:
    with pytest.raises(ValidationError) as info:
        BatchIn.model_validate({"steps": [step_payload(), step_payload(type="sorting")]})
    locations = [error["loc"] for error in info.value.errors()]
    assert ("steps", 1, "type") in locations


def test_negative_counts_are_rejected() -> None:
    with pytest.raises(ValidationError) as info:
        StepIn.model_validate(step_payload(input_count=-1))
    assert info.value.errors()[0]["loc"] == ("input_count",)


def test_unknown_fields_are_ignored_for_forward_compatibility() -> None:
    run = RunIn.model_validate(
        {"id": str(uuid.uuid4()), "pipeline": "p", "started_at": NOW.isoformat(), "future_field": 1}
    )
    assert not hasattr(run, "future_field")


def test_a_run_needs_a_pipeline_name() -> None:
    with pytest.raises(ValidationError) as info:
        RunIn.model_validate(
            {"id": str(uuid.uuid4()), "pipeline": "", "started_at": NOW.isoformat()}
        )
    assert info.value.errors()[0]["loc"] == ("pipeline",)
