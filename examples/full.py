"""Full instrumentation: candidate keys, reasons, parameters, reasoning and detail levels.

Compared with minimal.py, each step also says *why*: which candidate was dropped and for
what reason, with which thresholds, and what the model reasoned. That is what lets you
ask "where did the laptop stand drop out?" later.

    XRAY_BASE_URL=http://127.0.0.1:8000 python examples/full.py
"""

from __future__ import annotations

import random
from typing import Any

from xray import XRayClient, current_step, step

client = XRayClient()  # xray.config.yaml, or XRAY_BASE_URL / XRAY_API_KEY

Product = dict[str, Any]


@step(type="llm")
def generate_keywords(product: Product) -> list[str]:
    s = current_step()
    s.set_params(model="gpt-4o-mini", temperature=0.7)
    keywords = ["laptop stand", "laptop riser"]
    s.set_reasoning(f"'{product['title']}' is searched for as {keywords}.")
    return keywords


# key= names each candidate; detail="full" keeps every decision (summary: counts only).
@step(type="filter", key="asin", detail="full")
def price_filter(candidates: list[Product], max_price: float) -> list[Product]:
    s = current_step()
    s.set_params(max_price=max_price)
    kept = []
    for c in candidates:
        if float(c["price"]) > max_price:
            s.reject(c, reason="price_above_max", price=c["price"])
        else:
            kept.append(c)  # accepted: inferred from the return value
    return kept


@step(type="rank", key="asin", detail="sampled")
def rank(candidates: list[Product]) -> list[Product]:
    s = current_step()
    ranked = sorted(candidates, key=lambda c: -float(c["rating"]))
    for position, c in enumerate(ranked, start=1):
        s.score(c, float(c["rating"]), rank=position)
    return ranked


@step(type="select", key="asin")
def select(ranked: list[Product]) -> list[Product]:
    s = current_step()
    if ranked:
        s.select(ranked[0], reason="top_rated")
    return ranked[:1]


def main() -> None:
    product = {"asin": "B0LSTAND01", "title": "Adjustable Laptop Stand", "price": 39.99}
    catalogue = [
        {
            "asin": f"B0{i:08d}",
            "price": round(random.uniform(10, 90), 2),
            "rating": round(random.uniform(3, 5), 1),
        }
        for i in range(200)
    ]
    with client.run("full-example", input=product, metadata={"seller": 7}) as run:
        generate_keywords(product)
        best = select(rank(price_filter(catalogue, max_price=60.0)))
        run.set_output(best[0] if best else None)
    print(f"competitor: {best[0] if best else None}  [run {run.id}]")
    client.shutdown(timeout=5)


if __name__ == "__main__":
    main()
