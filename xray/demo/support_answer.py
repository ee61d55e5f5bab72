"""Support answers: a multilingual support bot answers a customer's question from the
help centre's policy passages.

    retrieve_passages (every passage on the topic)  ->
    locale_filter (keep the customer's locale; fall back to en-US when none is left)  ->
    rank_passages (top 3)  ->  generate_answer (the "LLM" answers from the top passage)

It carries a bug that no single run shows: the German passages were imported with the
locale spelled ``de_DE``, so for a ``de-DE`` customer ``locale_filter`` rejects every
passage (``locale_mismatch``) and the fallback refills it with nine US passages. Every run
goes 40 → 9 at that step, so the counts look alike; German customers are told the US
return policy. Across runs the difference is plain: ``xray groups support-answer --by
metadata.locale`` shows ``locale_filter`` rejecting 100% of the input for ``de-DE``
against 77.5% for everyone else.

Run it against a running X-Ray API:

    XRAY_BASE_URL=http://127.0.0.1:8000 python -m xray.demo.support_answer --runs 8
"""

from __future__ import annotations

import argparse
import random
from dataclasses import dataclass
from typing import Any

from xray import XRayClient, current_step, step
from xray.demo._summary import DemoJob, DemoRun

PIPELINE = "support-answer"
LOCALES = ("en-US", "de-DE", "fr-FR", "en-GB")
FALLBACK_LOCALE = "en-US"
TOPICS = ("returns", "shipping", "warranty")
CHANNELS = ("chat", "email")

Passage = dict[str, Any]

# What each region's policy says; the answer quotes the top passage's region.
_POLICIES = {
    "US": {"returns": "30 days, refund to card", "shipping": "3-5 business days",
           "warranty": "1 year limited"},
    "DE": {"returns": "14 days Widerrufsrecht, refund within 14 days",
           "shipping": "1-2 Werktage", "warranty": "2 Jahre Gewährleistung"},
    "FR": {"returns": "14 jours, remboursement", "shipping": "2-4 jours ouvrés",
           "warranty": "2 ans de garantie légale"},
    "GB": {"returns": "14 days plus 30-day short-term right to reject",
           "shipping": "2-3 working days", "warranty": "1 year"},
    "ES": {"returns": "14 días", "shipping": "3-5 días laborables", "warranty": "3 años"},
}  # fmt: skip
# (locale as stored in the help centre, region, passages per topic). The German passages
# came from a legacy import that spelled the locale with an underscore: the bug.
_SOURCES = (("en-US", "US", 9), ("de_DE", "DE", 9), ("fr-FR", "FR", 9), ("en-GB", "GB", 9),
            ("es-ES", "ES", 4))  # fmt: skip
_QUESTIONS = {
    "returns": "Can I still send back the headphones I bought last week?",
    "shipping": "When will my order arrive?",
    "warranty": "My speaker stopped working after 13 months. Is it covered?",
}


def build_help_centre() -> dict[str, list[Passage]]:
    """Forty passages per topic, in five locales."""
    centre: dict[str, list[Passage]] = {}
    for topic in TOPICS:
        passages = []
        for locale, region, count in _SOURCES:
            for n in range(count):
                passages.append(
                    {
                        "id": f"{topic}-{region.lower()}-{n + 1:02d}",
                        "locale": locale,
                        "region": region,
                        "topic": topic,
                        "text": f"[{region}] {topic}: {_POLICIES[region][topic]} (section {n + 1})",
                    }
                )
        centre[topic] = passages
    return centre


@step(type="retrieval", key="id")
def retrieve_passages(centre: dict[str, list[Passage]], topic: str) -> list[Passage]:
    """Every help-centre passage about the ticket's topic."""
    s = current_step()
    s.set_params(index="help-centre", topic=topic)
    passages = list(centre[topic])
    s.input_count = len(passages)  # what the index held on the topic, not the 3 topics
    return passages


@step(type="filter", key="id", detail="full")
def locale_filter(passages: list[Passage], locale: str) -> list[Passage]:
    """Keep the passages written for the customer's locale; when none is left, answer
    from the fallback locale rather than not at all."""
    s = current_step()
    s.set_params(locale=locale, fallback_locale=FALLBACK_LOCALE, match="exact")
    kept: list[Passage] = []
    for passage in passages:
        if passage["locale"] == locale:
            s.accept(passage, reason="locale_match")
            kept.append(passage)
        else:
            s.reject(passage, reason="locale_mismatch", locale=passage["locale"])
    if not kept:
        for passage in passages:
            if passage["locale"] == FALLBACK_LOCALE:
                s.accept(passage, reason="fallback_locale")
                kept.append(passage)
    return kept


@step(type="rank", key="id", detail="full")
def rank_passages(passages: list[Passage], question: str, seed: int) -> list[Passage]:
    """Score each passage against the question; keep the best three."""
    s = current_step()
    s.set_params(model="bge-reranker", top_k=3)
    rng = random.Random(seed)
    scored = sorted(
        ((round(0.5 + 0.4 * rng.random(), 3), p) for p in passages), key=lambda pair: -pair[0]
    )
    for rank, (score, passage) in enumerate(scored, start=1):
        s.score(passage, score, rank=rank)
    return [p for _, p in scored[:3]]


@step(type="generate")
def generate_answer(passages: list[Passage], question: str, locale: str) -> dict[str, Any]:
    """The "LLM" answers in the customer's language from the top passage."""
    s = current_step()
    s.input_count = len(passages)
    s.set_params(model="claude-haiku", prompt_version="support-v3", language=locale[:2])
    top = passages[0] if passages else None
    policy = f"{top['topic']}-{top['region'].lower()}" if top else "none"
    answer = _POLICIES[top["region"]][top["topic"]] if top else "Let me connect you to a person."
    s.set_reasoning(f"Answered '{question}' from {top['id'] if top else 'nothing'}.")
    return {"policy": policy, "region": top["region"] if top else None, "answer": answer}


@dataclass
class SupportResult:
    """The answer one customer got."""

    run_id: str
    locale: str
    answer: dict[str, Any]

    @property
    def correct(self) -> bool:
        """Whether the policy quoted is the customer's own region's."""
        return self.answer.get("region") == self.locale.split("-")[1]


def answer_ticket(
    client: XRayClient,
    centre: dict[str, list[Passage]],
    *,
    locale: str,
    topic: str,
    channel: str,
    ticket: str,
    seed: int,
) -> SupportResult:
    """Run the pipeline for one ticket; one X-Ray run."""
    question = _QUESTIONS[topic]
    metadata = {"locale": locale, "channel": channel, "topic": topic, "ticket": ticket}
    ticket_input = {"question": question, "locale": locale}
    with client.run(PIPELINE, input=ticket_input, metadata=metadata) as run:
        passages = retrieve_passages(centre, topic)
        local = locale_filter(passages, locale)
        best = rank_passages(local, question, seed)
        answer = generate_answer(best, question, locale)
        run.set_output(answer)
        return SupportResult(str(run.id), locale, answer)


def ticket(index: int, rng: random.Random) -> dict[str, Any]:
    """The ``index``-th ticket: locales in turn (a quarter are ``de-DE``), varied topics."""
    return {
        "locale": LOCALES[index % len(LOCALES)],
        "topic": TOPICS[(index // len(LOCALES)) % len(TOPICS)],
        "channel": CHANNELS[rng.randrange(len(CHANNELS))],
        "ticket": f"T-{rng.randrange(10**6):06d}",
        "seed": rng.randrange(1_000_000),
    }


def demo_jobs(client: XRayClient, rng: random.Random, runs: int) -> list[DemoJob]:
    """``runs`` tickets in turn, for ``xray demo``."""
    centre = build_help_centre()

    def job(fields: dict[str, Any]) -> DemoJob:
        def record() -> DemoRun:
            result = answer_ticket(client, centre, **fields)
            policy = result.answer["policy"]
            return DemoRun(PIPELINE, result.run_id, fields["ticket"], policy, result.correct, 0)

        return record

    return [job(ticket(index, rng)) for index in range(runs)]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=8, help="how many tickets to answer")
    parser.add_argument("--seed", type=int, default=None, help="seed for reproducible runs")
    args = parser.parse_args(argv)

    client = XRayClient()  # xray.config.yaml or XRAY_BASE_URL / XRAY_API_KEY
    centre = build_help_centre()
    rng = random.Random(args.seed)
    for index in range(args.runs):
        result = answer_ticket(client, centre, **ticket(index, rng))
        verdict = "ok" if result.correct else "WRONG POLICY"
        print(f"{result.locale:<6} {result.answer['policy']:<14} {verdict}  [run {result.run_id}]")
    client.shutdown(timeout=10)


if __name__ == "__main__":
    main()
