"""Builders for wire payloads (plain JSON dicts, exactly what the SDK sends)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

BASE = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> str:
    """An ISO timestamp ``seconds`` after a fixed base time."""
    return (BASE + timedelta(seconds=seconds)).isoformat()


def new_id() -> str:
    return str(uuid.uuid4())


def run(
    run_id: str | None = None,
    *,
    pipeline: str = "competitor-selection",
    status: str = "running",
    started: float = 0,
    ended: float | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": run_id or new_id(),
        "pipeline": pipeline,
        "status": status,
        "started_at": at(started),
    }
    if ended is not None:
        body["ended_at"] = at(ended)
    body.update(fields)
    return body


def decision(key: str, verdict: str = "rejected", **fields: Any) -> dict[str, Any]:
    return {"candidate_key": key, "decision": verdict, **fields}


def step(
    run_id: str | None,
    *,
    step_id: str | None = None,
    name: str = "price_filter",
    type: str = "filter",
    seq: int = 0,
    started: float = 1,
    input_count: int | None = None,
    output_count: int | None = None,
    decisions: list[dict[str, Any]] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": step_id or new_id(),
        "name": name,
        "type": type,
        "seq": seq,
        "started_at": at(started),
        "input_count": input_count,
        "output_count": output_count,
        "decisions": decisions or [],
    }
    if run_id is not None:
        body["run_id"] = run_id
    body.update(fields)
    return body


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]
