"""Product categorisation: file a new product under one of ~5,000 taxonomy categories.

    normalise_title  ->  taxonomy_prefilter (5,000 categories -> 30)  ->
    classify (LLM picks one, with its reasoning)  ->  confidence_gate

The shortlist step is the classic "5,000 in, 30 out" filter; it records a sample of
what it dropped (``detail="sampled"``) and a count of every reason. The classifier
records a decision for each of the 30 candidates it saw (``detail="full"``).

Run it against a running X-Ray API:

    XRAY_BASE_URL=http://127.0.0.1:8000 python -m xray.demo.product_categorisation --runs 5
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from typing import Any

from xray import XRayClient, current_step, step
from xray.demo._summary import DemoJob, DemoRun

PIPELINE = "product-categorisation"
TAXONOMY_SIZE = 5_000
TAXONOMY_SEED = 11

Category = dict[str, Any]

_DEPARTMENTS: dict[str, tuple[list[str], list[str]]] = {
    "Electronics": (
        ["Audio", "Computing", "Mobile", "Cameras", "Wearables", "Smart Home", "Gaming"],
        ["Speakers", "Headphones", "Chargers", "Cables", "Mice", "Keyboards", "Stands",
         "Cases", "Hubs", "Lights", "Adapters", "Batteries", "Trackers", "Earbuds"],
    ),
    "Home & Kitchen": (
        ["Cookware", "Storage", "Furniture", "Decor", "Bedding", "Cleaning", "Home Office"],
        ["Pans", "Racks", "Organisers", "Shelves", "Lamps", "Pillows", "Mats", "Jars",
         "Baskets", "Knives", "Towels", "Hooks", "Desks", "Bins"],
    ),
    "Sports & Outdoors": (
        ["Camping", "Cycling", "Fitness", "Running", "Water Sports", "Climbing"],
        ["Tents", "Bottles", "Backpacks", "Gloves", "Lights", "Mats", "Helmets", "Pumps",
         "Bands", "Shoes", "Jackets", "Stoves", "Chairs", "Locks"],
    ),
    "Toys & Games": (
        ["Building", "Puzzles", "Outdoor Play", "Dolls", "Board Games", "Learning"],
        ["Blocks", "Puzzles", "Kites", "Figures", "Cards", "Kits", "Balls", "Cars",
         "Robots", "Games", "Tents", "Stickers"],
    ),
    "Pet Supplies": (
        ["Dogs", "Cats", "Fish", "Birds", "Small Animals"],
        ["Beds", "Bowls", "Leashes", "Toys", "Brushes", "Collars", "Feeders", "Carriers",
         "Fountains", "Mats", "Lights", "Crates"],
    ),
    "Beauty": (
        ["Skin Care", "Hair Care", "Makeup", "Fragrance", "Tools"],
        ["Brushes", "Serums", "Dryers", "Mirrors", "Cases", "Combs", "Masks", "Oils",
         "Organisers", "Lights", "Sponges", "Clips"],
    ),
    "Office Products": (
        ["Writing", "Paper", "Desk Accessories", "Filing", "Presentation"],
        ["Pens", "Notebooks", "Organisers", "Stands", "Lamps", "Labels", "Folders",
         "Binders", "Boards", "Clips", "Trays", "Chairs"],
    ),
    "Automotive": (
        ["Interior", "Exterior", "Tools", "Electronics", "Care"],
        ["Mounts", "Chargers", "Covers", "Mats", "Lights", "Cameras", "Pumps", "Cleaners",
         "Organisers", "Holders", "Cables", "Brushes"],
    ),
}  # fmt: skip
_MODIFIERS = [
    "Wireless", "Portable", "Kids", "Outdoor", "Electric", "Mini", "Heavy-Duty", "Travel",
    "Smart", "Bamboo", "Stainless Steel", "LED", "Foldable", "Waterproof", "Magnetic",
    "Ergonomic", "Solar", "Silicone", "Leather", "Rechargeable", "Adjustable", "Vintage",
    "Compact", "Insulated", "Cordless",
]  # fmt: skip
_BRANDS = ["Anker", "Ugreen", "Joseph Joseph", "Coleman", "Lego", "Kong", "Revlon", "Bosch"]
_SELLING_POINTS = ["with USB-C", "2-Pack", "for Home and Travel", "Gift Set", "Upgraded 2024"]


def build_taxonomy(size: int = TAXONOMY_SIZE, seed: int = TAXONOMY_SEED) -> list[Category]:
    """``size`` categories: department > group > "<modifier> <noun>" leaves."""
    rng = random.Random(seed)
    seen: set[str] = set()
    taxonomy: list[Category] = []
    while len(taxonomy) < size:
        department = rng.choice(list(_DEPARTMENTS))
        groups, nouns = _DEPARTMENTS[department]
        path = f"{department} > {rng.choice(groups)} > {rng.choice(_MODIFIERS)} {rng.choice(nouns)}"
        if path in seen:
            continue
        seen.add(path)
        taxonomy.append({"id": f"cat-{len(taxonomy) + 1:05d}", "path": path})
    return taxonomy


def make_product(taxonomy: list[Category], rng: random.Random) -> dict[str, Any]:
    """A product title written the way sellers write them, with its true category."""
    truth = rng.choice(taxonomy)
    _, group, leaf = truth["path"].split(" > ")
    modifier, noun = leaf.rsplit(" ", 1)
    title = f"{rng.choice(_BRANDS)} {modifier} {singular(noun)} for {group}, {rng.choice(_SELLING_POINTS)}"
    return {"sku": f"SKU-{rng.randrange(10**6):06d}", "title": title, "true_category": truth["id"]}


_STOP = {"with", "for", "and", "the", "a", "2-pack", "gift", "set", "upgraded", "2024", "&"}


def singular(word: str) -> str:
    """Plural to singular for the words of this taxonomy ("Brushes" -> "Brush")."""
    if word.endswith("lves"):
        return word[:-3] + "f"
    if word.endswith(("shes", "ches", "xes", "sses")):
        return word[:-2]
    return word[:-1] if word.endswith("s") and not word.endswith("ss") else word


def normalise_tokens(text: str) -> list[str]:
    words = (w.strip(",.").lower() for w in text.replace(">", " ").split())
    return [singular(w) for w in words if w and w not in _STOP]


@step(type="transform")
def normalise_title(product: dict[str, Any]) -> list[str]:
    """Lower-case, drop stop words, and singularise: the tokens the shortlist matches on."""
    s = current_step()
    s.input_count = 1
    s.set_params(stop_words=len(_STOP), singularise=True)
    return normalise_tokens(product["title"])


@step(type="filter", key="id", detail="sampled")
def taxonomy_prefilter(taxonomy: list[Category], tokens: list[str], top_k: int) -> list[Category]:
    """Keep the ``top_k`` categories whose leaf shares the most tokens with the title."""
    s = current_step()
    s.set_params(top_k=top_k, min_overlap=1, match_on="group and leaf")
    wanted = set(tokens)
    scored: list[tuple[int, Category]] = []
    for category in taxonomy:
        overlap = len(set(normalise_tokens(category["path"].split(" > ", 1)[1])) & wanted)
        if overlap == 0:
            s.reject(category, reason="no_token_overlap")
        else:
            scored.append((overlap, category))
    scored.sort(key=lambda pair: -pair[0])
    for overlap, category in scored[top_k:]:
        s.reject(category, reason="outside_top_k", overlap=overlap)
    return [category for _, category in scored[:top_k]]


@step(type="classify", key="id", detail="full")
def classify(candidates: list[Category], product: dict[str, Any], seed: int) -> list[Category]:
    """The "LLM" reads the title and the shortlist and picks one category."""
    s = current_step()
    rng = random.Random(seed)
    s.set_params(model="claude-haiku", temperature=0.3, prompt_version="cat-v5")
    words = set(normalise_tokens(product["title"]))
    scored = []
    for category in candidates:
        path = set(normalise_tokens(category["path"].split(" > ", 1)[1]))
        fit = len(path & words) / len(path)
        score = round(max(0.0, min(1.0, 0.2 + 0.7 * fit + rng.gauss(0, 0.12))), 3)
        scored.append((score, category))
    scored.sort(key=lambda pair: -pair[0])
    for rank, (score, category) in enumerate(scored, start=1):
        s.score(category, score, rank=rank)
    if not scored:
        s.set_reasoning("The shortlist was empty; nothing to choose from.")
        return []
    (best_score, best), runner_up = scored[0], scored[1][0] if len(scored) > 1 else 0.0
    margin = round(best_score - runner_up, 3)
    s.set_reasoning(
        f"'{product['title']}' reads as '{best['path'].split(' > ')[-1]}'. "
        f"Best fit {best['path']} ({best_score}); the runner-up scored {runner_up}, "
        f"so the margin is {margin}."
    )
    return [{**best, "confidence": round(min(1.0, best_score * (0.6 + margin * 2)), 3)}]


@step(type="evaluate", key="id", detail="full")
def confidence_gate(choice: list[Category], min_confidence: float) -> list[Category]:
    """Low-confidence answers go to a person instead of the catalogue."""
    s = current_step()
    s.set_params(min_confidence=min_confidence)
    kept = []
    for category in choice:
        if category["confidence"] < min_confidence:
            s.reject(category, reason="needs_human_review", confidence=category["confidence"])
        else:
            s.accept(category, reason="confident", score=category["confidence"])
            kept.append(category)
    return kept


@dataclass
class CategorisationResult:
    """The category chosen for one product (``None``: sent to human review)."""

    run_id: str
    product: dict[str, Any]
    category: Category | None

    @property
    def correct(self) -> bool:
        return self.category is not None and self.category["id"] == self.product["true_category"]


def categorise(
    client: XRayClient, product: dict[str, Any], taxonomy: list[Category], *, seed: int
) -> CategorisationResult:
    """Run the pipeline for one product; one X-Ray run."""
    metadata = {"sku": product["sku"], "taxonomy_size": len(taxonomy), "seed": seed}
    with client.run(PIPELINE, input=product, metadata=metadata) as run:
        tokens = normalise_title(product)
        shortlist = taxonomy_prefilter(taxonomy, tokens, top_k=30)
        choice = classify(shortlist, product, seed)
        final = confidence_gate(choice, min_confidence=0.55)
        category = final[0] if final else None
        run.set_output({"category": category, "needs_review": category is None})
        return CategorisationResult(run.id, product, category)


def demo_jobs(client: XRayClient, rng: random.Random, runs: int) -> list[DemoJob]:
    """``runs`` new products from the taxonomy, for ``xray demo``."""
    taxonomy = build_taxonomy()

    def job(product: dict[str, Any], seed: int) -> DemoJob:
        def record() -> DemoRun:
            result = categorise(client, product, taxonomy, seed=seed)
            where = result.category["path"] if result.category else "(human review)"
            return DemoRun(PIPELINE, result.run_id, product["sku"], where, result.correct, seed)

        return record

    jobs = []
    for _ in range(runs):
        product = make_product(taxonomy, rng)  # draws from rng before the run's seed
        jobs.append(job(product, rng.randrange(1_000_000)))
    return jobs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="how many products to categorise")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible runs")
    args = parser.parse_args(argv)

    client = XRayClient()  # xray.config.yaml or XRAY_BASE_URL / XRAY_API_KEY
    taxonomy = build_taxonomy()
    rng = random.Random(args.seed)
    for _ in range(args.runs):
        product = make_product(taxonomy, rng)
        result = categorise(client, product, taxonomy, seed=rng.randrange(1_000_000))
        where = result.category["path"] if result.category else "(sent to human review)"
        print(f"{product['title'][:50]:<50} -> {where}  [run {result.run_id}]")
    client.shutdown(timeout=10)


if __name__ == "__main__":
    main()
