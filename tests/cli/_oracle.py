"""What the example pipelines compute, replayed without X-Ray: the tests' expected answers.

Each decorated step keeps the undecorated function as ``__wrapped__``; calling those with
the same seed repeats the run's computation exactly (the examples are deterministic for a
seed), so the counts the CLI shows can be checked against the pipeline's own numbers.
"""

from __future__ import annotations

from typing import Any

from xray.demo import load_pipeline


def competitor_funnel(product: dict[str, Any], seed: int) -> list[tuple[str, int, int]]:
    """``(step name, input count, output count)`` for one competitor-selection run."""
    return _replay(product, seed)[0]


def competitor_choice(product: dict[str, Any], seed: int) -> str | None:
    """The ASIN the run selects as the competitor."""
    chosen = _replay(product, seed)[1]
    return str(chosen[0]["asin"]) if chosen else None


def _replay(
    product: dict[str, Any], seed: int
) -> tuple[list[tuple[str, int, int]], list[dict[str, Any]]]:
    cs = load_pipeline("competitor_selection")
    catalogue = cs.build_catalogue()
    llm = cs.FakeLLM(seed)
    keywords = cs.generate_keywords.__wrapped__(product, llm)
    funnel = [("generate_keywords", 1, len(keywords))]
    hits = cs.search_catalogue.__wrapped__(catalogue, keywords)
    funnel.append(("search_catalogue", len(catalogue), len(hits)))
    price = cs.price_filter.__wrapped__(
        hits, round(product["price"] * 0.5, 2), round(product["price"] * 2, 2)
    )
    funnel.append(("price_filter", len(hits), len(price)))
    rating = cs.rating_filter.__wrapped__(price, 4.3)
    funnel.append(("rating_filter", len(price), len(rating)))
    reviews = cs.review_count_filter.__wrapped__(rating, 500)
    funnel.append(("review_count_filter", len(rating), len(reviews)))
    category = cs.category_filter.__wrapped__(reviews, product["category"], "department")
    funnel.append(("category_filter", len(reviews), len(category)))
    relevant = cs.relevance_check.__wrapped__(category, product, keywords, llm, threshold=0.8)
    funnel.append(("relevance_check", len(category), len(relevant)))
    ranked = cs.rank_candidates.__wrapped__(relevant)
    funnel.append(("rank_candidates", len(relevant), len(ranked)))
    chosen = cs.select_competitor.__wrapped__(ranked)
    funnel.append(("select_competitor", len(ranked), len(chosen)))
    return funnel, chosen


def competitor_keywords(product: dict[str, Any], seed: int) -> list[str]:
    cs = load_pipeline("competitor_selection")
    return list(cs.FakeLLM(seed).keywords(product)[0])
