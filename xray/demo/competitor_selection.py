"""Competitor selection: which product is the closest competitor of a seller's product?

The pipeline every marketplace team ends up writing, instrumented with X-Ray:

    generate_keywords (LLM)  ->  search_catalogue (5,000 products)  ->  price / rating /
    review / category filters  ->  relevance check (LLM)  ->  rank  ->  select one

The "LLM" steps are seeded random but plausible, and record their reasoning, so runs
differ the way real ones do. One seed (``BUG_SEED``) reproduces the classic failure: a
phone case chosen as the competitor of a laptop stand. The trace shows why (see
the documentation's debugging walkthrough).

Run it against a running X-Ray API:

    XRAY_BASE_URL=http://127.0.0.1:8000 python -m xray.demo.competitor_selection --runs 5
"""

from __future__ import annotations

import argparse
import math
import random
from dataclasses import dataclass, field
from typing import Any

from xray import XRayClient, current_step, step
from xray.demo._summary import DemoJob, DemoRun

PIPELINE = "competitor-selection"
CATALOGUE_SIZE = 5_000
CATALOGUE_SEED = 2024
# The seed that makes the keyword model drift for the laptop stand (checked by a test).
BUG_SEED = 25
# A laptop-stand run that picks a laptop stand: the good side of the walkthrough's diff.
GOOD_SEED = 1
LAPTOP_STAND_ASIN = "B0LSTAND01"
PHONE_CASE_ASIN = "B0PHCASE77"

Product = dict[str, Any]

# Leaf category -> (title templates, price range, typical review count).
_CATEGORIES: dict[str, tuple[list[str], tuple[float, float], int]] = {
    "Electronics > Computer Accessories > Laptop Stands": (
        [
            "{brand} Adjustable Aluminium Laptop Stand for {size} Laptops",
            "{brand} Ergonomic Laptop Riser Stand, Foldable",
            "{brand} Portable Laptop Stand with Cooling Vents",
            "{brand} Laptop Stand for Desk, Height Adjustable",
        ],
        (15.0, 90.0),
        1_500,
    ),
    "Electronics > Computer Accessories > Monitor Stands": (
        ["{brand} Monitor Stand Riser with Drawer", "{brand} Dual Monitor Arm Stand"],
        (20.0, 140.0),
        900,
    ),
    "Electronics > Computer Accessories > Mice": (
        [
            "{brand} Wireless Ergonomic Mouse, {n} Buttons",
            "{brand} Silent Wireless Mouse for Laptop",
            "{brand} Gaming Mouse RGB {n}00 DPI",
        ],
        (8.0, 80.0),
        3_000,
    ),
    "Electronics > Computer Accessories > Mouse Pads": (
        ["{brand} Large Mouse Pad with Wrist Rest", "{brand} Extended Gaming Mouse Pad"],
        (6.0, 30.0),
        5_000,
    ),
    "Electronics > Computer Accessories > USB Hubs": (
        ["{brand} {n}-in-1 USB-C Hub with 4K HDMI", "{brand} USB 3.0 Hub, {n} Ports, Powered"],
        (12.0, 70.0),
        2_000,
    ),
    "Electronics > Computer Accessories > Keyboards": (
        [
            "{brand} Mechanical Keyboard, Hot-Swappable, RGB",
            "{brand} Wireless Keyboard for Laptop, Slim",
        ],
        (20.0, 160.0),
        1_800,
    ),
    "Electronics > Computer Accessories > Keyboard Covers": (
        ["{brand} Silicone Keyboard Cover for Laptop {size}"],
        (5.0, 18.0),
        700,
    ),
    "Electronics > Cell Phone Accessories > Phone Cases": (
        [
            "{brand} Kickstand Phone Case with Built-in Phone Stand for iPhone {n}",
            "{brand} Slim Phone Case for Galaxy S{n}",
            "{brand} Clear Phone Case with Ring Stand, iPhone {n}",
        ],
        (8.0, 45.0),
        9_000,
    ),
    "Electronics > Cell Phone Accessories > Phone Stands": (
        ["{brand} Adjustable Phone Stand for Desk", "{brand} Foldable Phone and Tablet Stand"],
        (7.0, 35.0),
        4_000,
    ),
    "Electronics > Cell Phone Accessories > Chargers": (
        ["{brand} {n}W USB-C Fast Charger", "{brand} Wireless Charger Stand {n}W"],
        (9.0, 50.0),
        6_000,
    ),
    "Home & Kitchen > Home Office > Desk Organisers": (
        [
            "{brand} Bamboo Desk Organiser with {n} Compartments",
            "{brand} Mesh Desk Organiser with Drawer",
        ],
        (10.0, 60.0),
        1_200,
    ),
    "Home & Kitchen > Home Office > Drawer Organisers": (
        ["{brand} Drawer Organiser Trays, Set of {n}"],
        (8.0, 35.0),
        2_500,
    ),
    "Home & Kitchen > Kitchen Storage > Spice Racks": (
        ["{brand} {n}-Tier Spice Rack Stand", "{brand} Rotating Spice Rack"],
        (12.0, 55.0),
        1_100,
    ),
    "Musical Instruments > Accessories > Music Stands": (
        ["{brand} Folding Sheet Music Stand", "{brand} Heavy Duty Music Stand"],
        (15.0, 70.0),
        800,
    ),
}
_BRANDS = [
    "Nulaxy", "Rain", "Omoton", "Ugreen", "Anker", "Logi", "Vivo", "Amazon Basics", "Satechi",
    "Lamicall", "Spigen", "OtterBox", "ESR", "Keychron", "Huanuo", "Soundance", "Tiita", "Jarlink",
    "Marbrasse", "Simple Houseware",
]  # fmt: skip

# The seller products whose competitors the pipeline looks for.
PRODUCTS: list[Product] = [
    {
        "asin": LAPTOP_STAND_ASIN,
        "title": 'Adjustable Aluminium Laptop Stand for 10-17" Laptops',
        "category": "Electronics > Computer Accessories > Laptop Stands",
        "price": 39.99,
    },
    {
        "asin": "B0WMOUSE02",
        "title": "Wireless Ergonomic Mouse, 6 Buttons, 2.4G",
        "category": "Electronics > Computer Accessories > Mice",
        "price": 24.99,
    },
    {
        "asin": "B0USBHUB03",
        "title": "7-in-1 USB-C Hub with 4K HDMI and 100W PD",
        "category": "Electronics > Computer Accessories > USB Hubs",
        "price": 34.99,
    },
    {
        "asin": "B0DESKOR04",
        "title": "Bamboo Desk Organiser with 5 Compartments",
        "category": "Home & Kitchen > Home Office > Desk Organisers",
        "price": 29.99,
    },
    {
        "asin": "B0KEYBRD05",
        "title": "Mechanical Keyboard, Hot-Swappable, RGB Backlit",
        "category": "Electronics > Computer Accessories > Keyboards",
        "price": 69.99,
    },
]

# What the keyword model says for each product, and what it drifts to when it
# over-generalises ("shoppers who buy X also buy Y").
_KEYWORDS: dict[str, tuple[list[str], list[str], str]] = {
    LAPTOP_STAND_ASIN: (
        ["laptop stand", "laptop riser", "adjustable laptop stand", "aluminium laptop stand"],
        ["phone stand", "tablet stand"],
        "stands for other devices",
    ),
    "B0WMOUSE02": (
        ["wireless mouse", "ergonomic mouse", "silent mouse"],
        ["mouse pad"],
        "mouse accessories",
    ),
    "B0USBHUB03": (["usb-c hub", "usb hub", "4k hdmi hub"], ["usb-c charger"], "other USB-C gear"),
    "B0DESKOR04": (["desk organiser", "bamboo desk organiser"], ["drawer organiser"], "storage"),
    "B0KEYBRD05": (
        ["mechanical keyboard", "rgb keyboard", "hot-swappable keyboard"],
        ["keyboard cover"],
        "keyboard accessories",
    ),
}


def build_catalogue(size: int = CATALOGUE_SIZE, seed: int = CATALOGUE_SEED) -> list[Product]:
    """A deterministic marketplace catalogue of ``size`` products.

    It includes one very popular kickstand phone case (``PHONE_CASE_ASIN``): 148,000
    reviews, 4.8 stars, the product that wins every ranking it reaches.
    """
    rng = random.Random(seed)
    leaves = list(_CATEGORIES)
    catalogue: list[Product] = [
        {
            "asin": PHONE_CASE_ASIN,
            "title": "Kickstand Phone Case with Built-in Phone Stand for iPhone 15",
            "brand": "Spigen",
            "category": "Electronics > Cell Phone Accessories > Phone Cases",
            "price": 24.99,
            "rating": 4.8,
            "review_count": 148_213,
        }
    ]
    while len(catalogue) < size:
        leaf = rng.choice(leaves)
        templates, (low, high), reviews = _CATEGORIES[leaf]
        title = rng.choice(templates).format(
            brand=rng.choice(_BRANDS), n=rng.randint(2, 15), size=rng.choice(["13", "15", "17"])
        )
        catalogue.append(
            {
                "asin": f"B0{rng.randrange(16**8):08X}",
                "title": title,
                "brand": title.split(" ")[0],
                "category": leaf,
                "price": round(rng.uniform(low, high), 2),
                "rating": round(min(5.0, max(1.0, rng.gauss(4.1, 0.45))), 1),
                "review_count": int(rng.lognormvariate(math.log(reviews), 1.1)),
            }
        )
    return catalogue


def _tokens(text: str) -> set[str]:
    return {t.strip(",.()\"'").lower() for t in text.split()} - {"", "for", "with", "and", "the"}


class FakeLLM:
    """A stand-in for a hosted model: seeded, a little random, and it explains itself."""

    model = "gpt-4o-mini"

    def __init__(self, seed: int, temperature: float = 0.7) -> None:
        self.rng = random.Random(seed)
        self.temperature = temperature

    def keywords(self, product: Product) -> tuple[list[str], str]:
        core, adjacent, why = _KEYWORDS[product["asin"]]
        count = self.rng.randint(max(2, len(core) - 1), len(core))
        chosen = self.rng.sample(core, count)
        reasoning = (
            f"The product is a {product['category'].split(' > ')[-1].lower().rstrip('s')}: "
            f"'{product['title']}'. Shoppers search for it as "
            + ", ".join(f"'{k}'" for k in chosen)
            + "."
        )
        # The failure mode of real keyword models: widening recall with adjacent products.
        if self.rng.random() < 0.12 * self.temperature:
            chosen += adjacent
            reasoning += (
                f" Shoppers who buy it also browse {why}, so I also include "
                + ", ".join(f"'{k}'" for k in adjacent)
                + " to widen recall."
            )
        return chosen, reasoning

    def relevance(self, candidate: Product, keywords: list[str]) -> tuple[float, str]:
        """How well the candidate fits the search intent, and the keyword it fits best.

        The prompt is built from the keywords, not from the product: a title that matches
        any keyword reads as relevant.
        """
        title = _tokens(candidate["title"])
        fit, keyword = max((len(_tokens(k) & title) / len(_tokens(k)), k) for k in keywords)
        noise = self.rng.gauss(0, 0.1) * self.temperature / 0.7
        return round(max(0.0, min(1.0, 0.5 + 0.4 * fit + noise)), 3), keyword


@step(type="llm")
def generate_keywords(product: Product, llm: FakeLLM) -> list[str]:
    """Ask the model for the search keywords a shopper would use for this product."""
    s = current_step()
    s.input_count = 1
    s.set_params(model=llm.model, temperature=llm.temperature, prompt_version="kw-v3")
    keywords, reasoning = llm.keywords(product)
    s.set_reasoning(reasoning)
    return keywords


@step(type="retrieval", key="asin", detail="sampled")
def search_catalogue(catalogue: list[Product], keywords: list[str]) -> list[Product]:
    """Keyword search: a product matches when its title contains every word of a keyword."""
    s = current_step()
    s.set_params(keywords=keywords, match="all_tokens_of_any_keyword")
    phrases = [(k, _tokens(k)) for k in keywords]
    hits = []
    for product in catalogue:
        title = _tokens(product["title"])
        matched = next((k for k, words in phrases if words <= title), None)
        if matched is None:
            s.reject(product, reason="no_keyword_match")
        else:
            s.accept(product, reason="keyword_match", keyword=matched)
            hits.append(product)
    return hits


@step(type="filter", key="asin", detail="sampled")
def price_filter(candidates: list[Product], low: float, high: float) -> list[Product]:
    """Keep candidates in the same price band as the product."""
    s = current_step()
    s.set_params(min_price=low, max_price=high)
    kept = []
    for c in candidates:
        if c["price"] < low:
            s.reject(c, reason="price_below_min", price=c["price"])
        elif c["price"] > high:
            s.reject(c, reason="price_above_max", price=c["price"])
        else:
            kept.append(c)
    return kept


@step(type="filter", key="asin", detail="sampled")
def rating_filter(candidates: list[Product], min_rating: float) -> list[Product]:
    """Drop poorly rated products: they are not the competition."""
    s = current_step()
    s.set_params(min_rating=min_rating)
    kept = []
    for c in candidates:
        if c["rating"] < min_rating:
            s.reject(c, reason="rating_below_min", rating=c["rating"])
        else:
            kept.append(c)
    return kept


@step(type="filter", key="asin", detail="sampled")
def review_count_filter(candidates: list[Product], min_reviews: int) -> list[Product]:
    """Drop products too new to have a track record."""
    s = current_step()
    s.set_params(min_reviews=min_reviews)
    kept = []
    for c in candidates:
        if c["review_count"] < min_reviews:
            s.reject(c, reason="too_few_reviews", review_count=c["review_count"])
        else:
            kept.append(c)
    return kept


@step(type="filter", key="asin", detail="full")
def category_filter(candidates: list[Product], category: str, match_level: str) -> list[Product]:
    """Keep candidates from the product's category, compared at ``match_level``.

    ``department`` compares only the first level of the path ("Electronics"), which is
    what the team configured to avoid losing competitors filed under a sibling leaf.
    """
    s = current_step()
    depth = {"department": 1, "group": 2, "leaf": 3}[match_level]
    wanted = category.split(" > ")[:depth]
    s.set_params(category=category, match_level=match_level)
    kept = []
    for c in candidates:
        if c["category"].split(" > ")[:depth] == wanted:
            s.accept(c, reason=f"same_{match_level}", category=c["category"])
            kept.append(c)
        else:
            s.reject(c, reason="category_mismatch", category=c["category"])
    return kept


@step(type="llm", key="asin", detail="full")
def relevance_check(
    candidates: list[Product], product: Product, keywords: list[str], llm: FakeLLM, threshold: float
) -> list[Product]:
    """Ask the model whether each candidate is a real alternative to the product."""
    s = current_step()
    s.set_params(
        model=llm.model, threshold=threshold, prompt_version="rel-v2", judged_against="keywords"
    )
    kept = []
    for c in candidates:
        score, keyword = llm.relevance(c, keywords)
        c = {**c, "relevance": score}
        if score >= threshold:
            s.accept(c, reason="relevant", score=score, best_keyword=keyword)
            kept.append(c)
        else:
            s.reject(c, reason="not_relevant", relevance=score, best_keyword=keyword)
    s.set_reasoning(
        f"Judged {len(candidates)} candidates against the keywords "
        f"{', '.join(repr(k) for k in keywords)}; {len(kept)} read as the same kind of "
        f"product as '{product['title']}' (relevance >= {threshold})."
    )
    return kept


@step(type="rank", key="asin", detail="full")
def rank_candidates(candidates: list[Product]) -> list[Product]:
    """Order by relevance x rating x log(reviews): popular, well-rated, relevant first."""
    s = current_step()
    s.set_params(formula="relevance * rating * log10(1 + review_count)")
    ranked = sorted(
        candidates,
        key=lambda c: c["relevance"] * c["rating"] * math.log10(1 + c["review_count"]),
        reverse=True,
    )
    for position, c in enumerate(ranked, start=1):
        score = c["relevance"] * c["rating"] * math.log10(1 + c["review_count"])
        s.score(c, round(score, 3), rank=position, reviews=c["review_count"], rating=c["rating"])
    return ranked


@step(type="select", key="asin", detail="full")
def select_competitor(ranked: list[Product]) -> list[Product]:
    """The top-ranked candidate is the competitor."""
    s = current_step()
    if not ranked:
        s.set_reasoning("No candidate survived the filters; no competitor selected.")
        return []
    best = ranked[0]
    s.select(best, reason="top_rank", score=best["relevance"])
    s.set_reasoning(f"Selected {best['asin']} '{best['title']}', ranked first of {len(ranked)}.")
    return [best]


@dataclass
class CompetitorResult:
    """What one run chose; ``run_id`` links to its trace in X-Ray."""

    run_id: str
    product: Product
    competitor: Product | None
    keywords: list[str] = field(default_factory=list)

    @property
    def same_category(self) -> bool:
        return (
            self.competitor is not None and self.competitor["category"] == self.product["category"]
        )


def find_competitor(
    client: XRayClient,
    product: Product,
    catalogue: list[Product],
    *,
    seed: int,
    category_match_level: str = "department",
) -> CompetitorResult:
    """Run the whole pipeline for one product; one X-Ray run."""
    llm = FakeLLM(seed)
    metadata = {"product_asin": product["asin"], "seed": seed, "catalogue_size": len(catalogue)}
    with client.run(PIPELINE, input=product, metadata=metadata) as run:
        keywords = generate_keywords(product, llm)
        candidates = search_catalogue(catalogue, keywords)
        candidates = price_filter(
            candidates, round(product["price"] * 0.5, 2), round(product["price"] * 2, 2)
        )
        candidates = rating_filter(candidates, 4.3)
        candidates = review_count_filter(candidates, 500)
        candidates = category_filter(candidates, product["category"], category_match_level)
        candidates = relevance_check(candidates, product, keywords, llm, threshold=0.8)
        ranked = rank_candidates(candidates)
        chosen = select_competitor(ranked)
        competitor = chosen[0] if chosen else None
        run.set_output(
            {"competitor": competitor, "keywords": keywords}
            if competitor
            else {"competitor": None, "keywords": keywords}
        )
        return CompetitorResult(run.id, product, competitor, keywords)


def demo_jobs(client: XRayClient, rng: random.Random, runs: int) -> list[DemoJob]:
    """``runs`` products in turn, plus the laptop stand's good run first and its bad run
    (``BUG_SEED``) in the middle, for ``xray demo``."""
    catalogue = build_catalogue()

    def job(product: Product, seed: int) -> DemoJob:
        def record() -> DemoRun:
            result = find_competitor(client, product, catalogue, seed=seed)
            chosen = result.competitor["title"] if result.competitor else "(none)"
            return DemoRun(
                PIPELINE, result.run_id, product["asin"], chosen, result.same_category, seed
            )

        return record

    jobs = [job(PRODUCTS[i % len(PRODUCTS)], rng.randrange(1_000_000)) for i in range(runs)]
    jobs.insert(0, job(PRODUCTS[0], GOOD_SEED))
    jobs.insert(len(jobs) // 2 + 1, job(PRODUCTS[0], BUG_SEED))
    return jobs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="how many products to run (default 5)")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible runs")
    parser.add_argument("--bug", action="store_true", help="run the laptop-stand bug scenario")
    parser.add_argument(
        "--category-match-level",
        choices=["department", "group", "leaf"],
        default="department",
        help="how strictly the category filter compares categories (default: department)",
    )
    args = parser.parse_args(argv)

    client = XRayClient()  # xray.config.yaml or XRAY_BASE_URL / XRAY_API_KEY
    catalogue = build_catalogue()
    rng = random.Random(args.seed)
    jobs = [(PRODUCTS[0], BUG_SEED)] if args.bug else []
    jobs += [(rng.choice(PRODUCTS), rng.randrange(1_000_000)) for _ in range(args.runs)]
    for product, seed in jobs:
        result = find_competitor(
            client, product, catalogue, seed=seed, category_match_level=args.category_match_level
        )
        chosen = result.competitor["title"] if result.competitor else "(none)"
        flag = "" if result.same_category else "   <-- different category!"
        print(f"{product['title'][:45]:<45} -> {chosen[:60]}{flag}  [run {result.run_id}]")
    client.shutdown(timeout=10)


if __name__ == "__main__":
    main()
