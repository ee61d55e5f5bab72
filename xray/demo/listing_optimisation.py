"""Listing optimisation: rewrite a product title so shoppers' searches find it.

    mine_search_terms (5,000 search terms -> ~30)  ->  generate_titles (LLM)  ->
    policy_check  ->  score_titles  ->  pick_title

Run it against a running X-Ray API:

    XRAY_BASE_URL=http://127.0.0.1:8000 python -m xray.demo.listing_optimisation --runs 5
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from typing import Any

from xray import XRayClient, current_step, step
from xray.demo._summary import DemoJob, DemoRun

PIPELINE = "listing-optimisation"
SEARCH_LOG_SIZE = 5_000
SEARCH_LOG_SEED = 5

Listing = dict[str, Any]

LISTINGS: list[Listing] = [
    {
        "asin": "B0LSTAND01",
        "title": "Laptop Stand",
        "features": ["aluminium", "height adjustable", "foldable"],
    },
    {
        "asin": "B0WMOUSE02",
        "title": "Wireless Mouse",
        "features": ["ergonomic", "silent click", "rechargeable"],
    },
    {"asin": "B0USBHUB03", "title": "USB-C Hub", "features": ["7-in-1", "4K HDMI", "100W PD"]},
    {
        "asin": "B0DESKOR04",
        "title": "Desk Organiser",
        "features": ["bamboo", "5 compartments", "drawer"],
    },
    {
        "asin": "B0BOTTLE06",
        "title": "Water Bottle",
        "features": ["insulated", "stainless steel", "1L"],
    },
]
# What shoppers type: a product phrase with up to two modifiers.
_PHRASES = [
    "laptop stand",
    "wireless mouse",
    "usb-c hub",
    "desk organiser",
    "water bottle",
    "phone case",
    "desk lamp",
    "yoga mat",
    "office chair",
    "mouse pad",
    "phone stand",
    "monitor arm",
    "lunch box",
    "backpack",
    "keyboard",
]
_MODIFIERS = [
    "adjustable", "aluminium", "portable", "foldable", "ergonomic", "silent", "rechargeable",
    "bamboo", "insulated", "stainless steel", "for desk", "for kids", "for travel", "black",
    "white", "cheap", "best", "4k", "7-in-1", "large", "small", "1l", "for office", "gaming",
]  # fmt: skip
_BANNED = ("best", "#1", "cheap")


def build_search_log(
    size: int = SEARCH_LOG_SIZE, seed: int = SEARCH_LOG_SEED
) -> list[dict[str, Any]]:
    """``size`` distinct shopper search terms with their monthly search volume."""
    rng = random.Random(seed)
    seen: set[str] = set()
    log: list[dict[str, Any]] = []
    while len(log) < size:
        before = [
            m for m in rng.sample(_MODIFIERS, rng.choice([0, 1, 1, 2])) if not m.startswith("for ")
        ]
        after = [m for m in rng.sample(_MODIFIERS, 1) if m.startswith("for ")]
        term = " ".join([*before, rng.choice(_PHRASES), *after])
        if term in seen:
            continue
        seen.add(term)
        log.append({"term": term, "volume": int(rng.paretovariate(1.2) * 200)})
    return log


def _words(text: str) -> set[str]:
    return {w.strip(",.").lower() for w in text.split()} - {""}


@step(type="filter", key="term", detail="sampled")
def mine_search_terms(
    search_log: list[dict[str, Any]], listing: Listing, max_terms: int
) -> list[dict[str, Any]]:
    """Keep the highest-volume searches that mention the product itself."""
    s = current_step()
    product_words = _words(listing["title"])
    s.set_params(max_terms=max_terms, must_contain=listing["title"].lower(), min_volume=300)
    matching = []
    for entry in search_log:
        if not product_words <= _words(entry["term"]):
            s.reject(entry, reason="off_topic")
        elif entry["volume"] < 300:
            s.reject(entry, reason="low_volume", volume=entry["volume"])
        else:
            matching.append(entry)
    matching.sort(key=lambda e: -e["volume"])
    for entry in matching[max_terms:]:
        s.reject(entry, reason="outside_top_terms", volume=entry["volume"])
    return matching[:max_terms]


@step(type="generate")
def generate_titles(
    listing: Listing, terms: list[dict[str, Any]], seed: int
) -> list[dict[str, Any]]:
    """The "LLM" writes candidate titles from the listing and the mined terms."""
    s = current_step()
    rng = random.Random(seed)
    s.input_count = len(terms)
    s.set_params(model="gpt-4o", temperature=0.9, variants=12, prompt_version="title-v7")
    titles = []
    for i in range(12):
        picked = rng.sample(terms, min(len(terms), rng.randint(1, 4)))
        modifiers: list[str] = []
        for term in picked:
            for word in term["term"].replace(listing["title"].lower(), "").split():
                if word not in modifiers and word != "for":
                    modifiers.append(word)
        front = " ".join(m.title() for m in modifiers[:3])
        text = f"{front} {listing['title']}, {', '.join(f[:1].upper() + f[1:] for f in rng.sample(listing['features'], 2))}"
        if rng.random() < 0.2:
            text = f"{rng.choice(['Best', '#1', 'CHEAP'])} {text}"
        if rng.random() < 0.15:
            text += ", for Home, Office, Travel, Gaming, Kids, Students, Gifts, Men, Women" * 3
        titles.append({"id": f"t{i + 1:02d}", "text": text.strip()})
    s.set_reasoning(
        f"Wrote 12 titles for '{listing['title']}' mixing its features "
        f"({', '.join(listing['features'])}) with the top search terms "
        f"({', '.join(t['term'] for t in terms[:3])}...). Some variants lead with a strong claim "
        "to test click-through."
    )
    return titles


@step(type="filter", key="id", detail="full")
def policy_check(titles: list[dict[str, Any]], max_length: int) -> list[dict[str, Any]]:
    """Marketplace rules: no superlative or price claims, at most ``max_length`` characters."""
    s = current_step()
    s.set_params(max_length=max_length, banned_words=list(_BANNED))
    kept = []
    for title in titles:
        words = _words(title["text"])
        if len(title["text"]) > max_length:
            s.reject(title, reason="too_long", length=len(title["text"]))
        elif any(w in _BANNED for w in words):
            s.reject(title, reason="banned_claim", text=title["text"][:60])
        else:
            kept.append(title)
    return kept


@step(type="evaluate", key="id", detail="full")
def score_titles(titles: list[dict[str, Any]], terms: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Search coverage: the share of mined search volume whose words all appear in the title."""
    s = current_step()
    total = sum(t["volume"] for t in terms) or 1
    s.set_params(metric="covered_search_volume_share")
    scored = []
    for title in titles:
        words = _words(title["text"])
        covered = sum(t["volume"] for t in terms if _words(t["term"]) - {"for"} <= words)
        score = round(covered / total, 4)
        s.score(title, score)
        scored.append({**title, "coverage": score})
    return scored


@step(type="select", key="id", detail="full")
def pick_title(scored: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Highest coverage wins; shorter wins a tie (easier to read on mobile)."""
    s = current_step()
    if not scored:
        s.set_reasoning("Every generated title broke a marketplace rule; keeping the old one.")
        return []
    best = max(scored, key=lambda t: (t["coverage"], -len(t["text"])))
    s.select(best, reason="highest_coverage", score=best["coverage"])
    s.set_reasoning(f"'{best['text']}' covers {best['coverage']:.0%} of the mined search volume.")
    return [best]


@dataclass
class ListingResult:
    """The new title for one listing (``None``: keep the current one)."""

    run_id: str
    listing: Listing
    title: str | None


def optimise_listing(
    client: XRayClient, listing: Listing, search_log: list[dict[str, Any]], *, seed: int
) -> ListingResult:
    """Run the pipeline for one listing; one X-Ray run."""
    metadata = {"product_asin": listing["asin"], "seed": seed}
    with client.run(PIPELINE, input=listing, metadata=metadata) as run:
        terms = mine_search_terms(search_log, listing, max_terms=30)
        titles = generate_titles(listing, terms, seed)
        titles = policy_check(titles, max_length=200)
        scored = score_titles(titles, terms)
        best = pick_title(scored)
        title = best[0]["text"] if best else None
        run.set_output({"title": title})
        return ListingResult(run.id, listing, title)


def demo_jobs(client: XRayClient, rng: random.Random, runs: int) -> list[DemoJob]:
    """``runs`` listings in turn, for ``xray demo``."""
    search_log = build_search_log()

    def job(listing: Listing, seed: int) -> DemoJob:
        def record() -> DemoRun:
            result = optimise_listing(client, listing, search_log, seed=seed)
            title = result.title or "(unchanged)"
            return DemoRun(
                PIPELINE, result.run_id, listing["asin"], title, result.title is not None, seed
            )

        return record

    return [job(LISTINGS[i % len(LISTINGS)], rng.randrange(1_000_000)) for i in range(runs)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="how many listings to optimise")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible runs")
    args = parser.parse_args(argv)

    client = XRayClient()  # xray.config.yaml or XRAY_BASE_URL / XRAY_API_KEY
    search_log = build_search_log()
    rng = random.Random(args.seed)
    for _ in range(args.runs):
        listing = rng.choice(LISTINGS)
        result = optimise_listing(client, listing, search_log, seed=rng.randrange(1_000_000))
        print(f"{listing['title']:<16} -> {result.title or '(unchanged)'}  [run {result.run_id}]")
    client.shutdown(timeout=10)


if __name__ == "__main__":
    main()
