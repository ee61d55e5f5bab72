"""What the SDK sends validates against the shared wire schema (the API's own models)."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from xray.sdk import current_step, step
from xray.sdk.testing import Recording
from xray.shared import BatchIn, RunIn, StepIn

Candidate = dict[str, Any]


@step(type="llm")
async def keywords(product: Candidate) -> list[str]:
    current_step().set_params(model="gpt-4o-mini", temperature=0.7)
    current_step().set_reasoning("stand -> stand, riser")
    return ["laptop stand", "laptop riser"]


@step(type="filter", key="asin", detail="full")
def price_filter(candidates: list[Candidate], max_price: float) -> list[Candidate]:
    s = current_step()
    for c in candidates:
        if c["price"] > max_price:
            s.reject(c, reason="price_above_max", price=c["price"])
    return [c for c in candidates if c["price"] <= max_price]


@step(type="rank", key="asin", detail="sampled")
def rank(candidates: list[Candidate]) -> list[Candidate]:
    ranked = sorted(candidates, key=lambda c: c["price"])
    for position, c in enumerate(ranked, start=1):
        current_step().score(c, float(c["price"]), rank=position)
    return ranked


@step(type="select", key="asin")
def select(ranked: list[Candidate]) -> list[Candidate]:
    current_step().select(ranked[0], reason="cheapest")
    return ranked[:1]


@step(type="evaluate")
def explode(x: Any) -> None:
    raise ValueError("nope")


def test_every_run_and_step_the_sdk_sends_validates_as_batch_in(rec: Recording) -> None:
    catalogue = [{"asin": f"B{i:03d}", "price": i * 1.5} for i in range(40)]
    with rec.client.run("competitor-selection", input={"asin": "B0X"}, metadata={"seller": 7}):
        asyncio.run(keywords({"title": "stand"}))
        with step("candidates", type="retrieval") as s:
            s.set_input(["laptop stand"])
            s.set_output(catalogue)
        select(rank(price_filter(catalogue, max_price=30)))
        with contextlib.suppress(ValueError):
            explode(object())
    rec.flush()
    assert rec.transport.batches
    for batch in rec.transport.batches:
        validated = BatchIn.model_validate(batch)
        assert len(validated.runs) == len(batch["runs"])
        assert len(validated.steps) == len(batch["steps"])
    steps = [StepIn.model_validate(s) for s in rec.transport.steps]
    runs = [RunIn.model_validate(r) for r in rec.transport.run_updates]
    assert {s.run_id for s in steps} == {runs[0].id}
    assert all(s.pipeline == "competitor-selection" for s in steps)
    assert all(s.run_started_at == runs[0].started_at for s in steps)
    by_name = {s.name: s for s in steps}
    assert by_name["price_filter"].decisions[0].reason == "price_above_max"
    assert by_name["explode"].error is not None and by_name["explode"].status == "error"
    assert runs[-1].status == "success" and runs[-1].metadata == {"seller": 7}
