"""Decisions: explicit calls, inference from input minus output, detail levels and caps."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Any

from xray.sdk import XRayClient, current_step, step
from xray.sdk.testing import InMemoryTransport, Recording

Candidate = dict[str, Any]


def catalogue(n: int) -> list[Candidate]:
    return [{"asin": f"B{i:03d}", "price": i} for i in range(n)]


def by_key(decisions: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["candidate_key"]: d for d in decisions}


@step(type="filter", key="asin", detail="full")
def price_filter(candidates: list[Candidate], max_price: float) -> list[Candidate]:
    s = current_step()
    s.set_params(max_price=max_price)
    kept = []
    for c in candidates:
        if c["price"] > max_price:
            s.reject(c, reason="price_above_max", price=c["price"])
        else:
            kept.append(c)
    return kept


def test_explicit_rejections_carry_reasons_and_kept_candidates_are_inferred_accepted(
    rec: Recording,
) -> None:
    price_filter(catalogue(10), max_price=6)
    s = rec.step("price_filter")
    decisions = by_key(s["decisions"])
    assert decisions["B009"] == {
        "candidate_key": "B009",
        "decision": "rejected",
        "reason": "price_above_max",
        "score": None,
        "rank": None,
        "attributes": {"price": 9},
    }
    assert {k for k, d in decisions.items() if d["decision"] == "accepted"} == {
        f"B{i:03d}" for i in range(7)
    }
    assert s["reason_counts"] == {"price_above_max": 3}
    assert (s["candidates_total"], s["candidates_recorded"]) == (10, 10)
    assert s["params"] == {"max_price": 6}


def test_a_filter_with_a_key_and_no_calls_gets_every_decision_inferred(rec: Recording) -> None:
    @step(type="filter", key="asin", detail="full")
    def in_budget(candidates: list[Candidate]) -> list[Candidate]:
        return [c for c in candidates if c["price"] < 3]

    in_budget(catalogue(5))
    decisions = rec.decisions("in_budget")
    assert [(d["candidate_key"], d["decision"], d["reason"]) for d in decisions] == [
        ("B000", "accepted", None),
        ("B001", "accepted", None),
        ("B002", "accepted", None),
        ("B003", "rejected", None),
        ("B004", "rejected", None),
    ]


def test_a_select_step_infers_selected_and_a_rank_step_infers_ranks(rec: Recording) -> None:
    @step(type="select", key="asin", detail="full")
    def pick(candidates: list[Candidate]) -> list[Candidate]:
        current_step().select(candidates[1], reason="top_rated", score=4.9)
        return candidates[1:3]

    @step(type="rank", key="asin", detail="full")
    def order(candidates: list[Candidate]) -> list[Candidate]:
        return sorted(candidates, key=lambda c: -c["price"])

    pick(catalogue(4))
    order(catalogue(3))
    picked = by_key(rec.decisions("pick"))
    assert picked["B001"]["reason"] == "top_rated" and picked["B001"]["score"] == 4.9
    assert picked["B002"]["decision"] == "selected" and picked["B002"]["reason"] is None
    assert picked["B000"]["decision"] == picked["B003"]["decision"] == "rejected"
    ranked = by_key(rec.decisions("order"))
    assert {k: d["rank"] for k, d in ranked.items()} == {"B002": 1, "B001": 2, "B000": 3}


def test_a_step_that_transforms_candidates_gets_no_inferred_decisions(rec: Recording) -> None:
    @step(type="transform", key="asin", detail="full")
    def relabel(candidates: list[Candidate]) -> list[Candidate]:
        return [{**c, "asin": c["asin"].lower()} for c in candidates]

    relabel(catalogue(3))
    s = rec.step("relabel")
    assert s["decisions"] == []
    assert s["candidates_total"] is None


def test_inference_uses_the_lists_as_they_were_when_the_step_returned(rec: Recording) -> None:
    @step(type="filter", key="asin", detail="full")
    def cheap(candidates: list[Candidate]) -> list[Candidate]:
        return [c for c in candidates if c["price"] < 2]

    items = catalogue(4)
    kept = cheap(items)
    items.clear()  # the caller reuses its lists before the sender runs
    kept.clear()
    assert Counter(d["decision"] for d in rec.decisions("cheap")) == {
        "accepted": 2,
        "rejected": 2,
    }


def test_key_as_attribute_name_and_as_callable(rec: Recording) -> None:
    @dataclass
    class Product:
        sku: str
        price: float

    @step(type="filter", key="sku", detail="full")
    def by_attribute(items: list[Product]) -> list[Product]:
        return items[:1]

    @step(type="filter", key=lambda p: f"sku:{p.sku}", detail="full")
    def by_callable(items: list[Product]) -> list[Product]:
        return items[1:]

    products = [Product("a", 1.0), Product("b", 2.0)]
    by_attribute(products)
    by_callable(products)
    assert {d["candidate_key"] for d in rec.decisions("by_attribute")} == {"a", "b"}
    assert by_key(rec.decisions("by_callable"))["sku:a"]["decision"] == "rejected"


def test_summary_keeps_reason_counts_and_totals_but_no_decisions(rec: Recording) -> None:
    @step(type="filter", key="asin")  # default detail: summary
    def cheap(candidates: list[Candidate]) -> list[Candidate]:
        s = current_step()
        for c in candidates[5:]:
            s.reject(c, reason="too_expensive")
        return candidates[:5]

    cheap(catalogue(50))
    s = rec.step("cheap")
    assert s["detail"] == "summary"
    assert s["decisions"] == []
    assert s["reason_counts"] == {"too_expensive": 45}
    assert (s["candidates_total"], s["candidates_recorded"]) == (50, 0)


def test_sampled_keeps_every_accepted_and_a_bounded_sample_of_rejections_per_reason() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, rejected_samples_per_reason=3, flush_interval=60)

    @step(type="filter", key="asin", detail="sampled")
    def triage(candidates: list[Candidate]) -> list[Candidate]:
        s = current_step()
        for c in candidates[10:]:
            s.reject(c, reason="odd" if c["price"] % 2 else "even")
        return candidates[:10]

    with client.run("sampled"):
        triage(catalogue(200))
    client.flush(timeout=5)
    (s,) = transport.steps
    counts = Counter((d["decision"], d["reason"]) for d in s["decisions"])
    assert counts == {("accepted", None): 10, ("rejected", "odd"): 3, ("rejected", "even"): 3}
    assert s["reason_counts"] == {"odd": 95, "even": 95}
    assert (s["candidates_total"], s["candidates_recorded"]) == (200, 16)


def test_the_hard_cap_bounds_recorded_decisions_and_says_so() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, max_decisions_per_step=25, flush_interval=60)

    @step(type="filter", key="asin", detail="full")
    def everything(candidates: list[Candidate]) -> list[Candidate]:
        for c in candidates:
            current_step().reject(c, reason="no")
        return []

    with client.run("capped"):
        everything(catalogue(1000))
    client.flush(timeout=5)
    (s,) = transport.steps
    assert (s["candidates_total"], s["candidates_recorded"]) == (1000, 25)
    assert len(s["decisions"]) == 25
    assert s["reason_counts"] == {"no": 1000}


def test_the_config_default_detail_applies_to_steps_without_one() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, default_detail="full", flush_interval=60)

    @step(type="filter", key="asin")
    def half(candidates: list[Candidate]) -> list[Candidate]:
        return candidates[:2]

    with client.run("p"):
        half(catalogue(4))
    client.flush(timeout=5)
    (s,) = transport.steps
    assert s["detail"] == "full" and s["candidates_recorded"] == 4


def test_decisions_without_a_key_use_scalars_or_an_id_field(rec: Recording) -> None:
    @step(type="classify", detail="full")
    def label(items: list[Any]) -> list[Any]:
        s = current_step()
        s.accept("plain-string")
        s.accept({"id": 42, "x": 1})
        s.score({"no": "id"}, 0.5, rank=1)
        s.reject(None, reason=123)  # type: ignore[arg-type]
        return items

    label([])
    decisions = rec.decisions("label")
    assert [d["candidate_key"] for d in decisions[:2]] == ["plain-string", "42"]
    assert decisions[2]["candidate_key"] == "{'no': 'id'}" and decisions[2]["rank"] == 1
    assert decisions[3]["reason"] == "123"


def test_decision_calls_never_raise_even_with_odd_input(rec: Recording) -> None:
    class Unhashable:
        __hash__ = None  # type: ignore[assignment]

        def __repr__(self) -> str:
            raise RuntimeError("no repr either")

    @step(type="filter", key=lambda item: 1 / 0, detail="full")
    def broken_key(items: list[Any]) -> list[Any]:
        s = current_step()
        s.reject(items[0], reason="x")
        s.score(Unhashable(), float("nan"))
        return items

    assert broken_key([1, 2]) == [1, 2]
    assert rec.step("broken_key")["status"] == "success"
