"""What ``xray demo`` prints when the data is in: where to look, and the questions to ask."""

from __future__ import annotations

from typing import TextIO

from xray.demo import DemoSummary
from xray.shared import APIConfig

__all__ = ["DEFAULT_PORT", "print_walkthrough", "walkthrough_commands"]

# Where ``xray serve`` and ``xray demo`` listen unless told otherwise.
DEFAULT_PORT: int = APIConfig.model_fields["port"].default


def walkthrough_commands(summary: DemoSummary) -> list[tuple[str, str]]:
    """The walkthrough's questions and the commands that answer them, in order."""
    return [
        (
            "1. Which competitor did each run for the laptop stand choose?",
            f"xray runs --pipeline competitor-selection --metadata product_asin={summary.product_asin}",
        ),
        (
            "2. The phone-case run as a funnel: counts, params and the LLM's reasoning per step",
            f"xray run {summary.bad_run_id}",
        ),
        (
            "3. The phone case's path through that run, step by step",
            f"xray candidate {summary.bad_candidate_key} --run {summary.bad_run_id}",
        ),
        (
            "Compare it with a run for the same product that went right",
            f"xray diff {summary.good_run_id} {summary.bad_run_id}",
        ),
        (
            "Across every pipeline: filter steps that eliminated more than 90%",
            "xray steps --type filter --min-elimination-rate 0.9",
        ),
        (
            "German customers get the US return policy: what sets their runs apart?",
            "xray groups support-answer --by metadata.locale",
        ),
    ]


def print_walkthrough(
    summary: DemoSummary, out: TextIO, *, served: bool, default_url: bool
) -> None:
    """The runs recorded, the dashboard's links, and the CLI commands of the walkthrough."""
    counts = ", ".join(f"{p} {n}" for p, n in summary.counts().items())
    out.write(f"\nRecorded {len(summary.runs)} runs ({counts}).\n")
    lost = summary.events_lost()
    if lost:
        out.write(f"warning: the SDK dropped {lost} events; see {summary.sdk_stats}\n")
    base = summary.base_url
    out.write(f"\n  Dashboard        {base}/\n")
    out.write(f"  The bad run      {base}/#/runs/{summary.bad_run_id}\n")
    out.write(
        f"  Its phone case   {base}/#/candidates/{summary.bad_candidate_key}?run={summary.bad_run_id}\n"
    )
    out.write(
        f"  Good vs bad      {base}/#/compare?a={summary.good_run_id}&b={summary.bad_run_id}\n"
    )
    out.write(f"  API docs         {base}/docs\n\n")
    out.write("A seller reports that the competitor X-Ray's demo pipeline found for their laptop\n")
    out.write("stand is a phone case. Find out why, from another terminal:\n\n")
    if not default_url:
        out.write(f"  # The CLI talks to port {DEFAULT_PORT} by default; point it at this server\n")
        out.write(f"  export XRAY_BASE_URL={summary.base_url}\n\n")
    commands = walkthrough_commands(summary)
    for question, command in commands[:3]:
        out.write(f"  # {question}\n  {command}\n\n")
    out.write("Then:\n\n")
    for question, command in commands[3:]:
        out.write(f"  # {question}\n  {command}\n\n")
    if served:
        out.write("The server keeps running; press Ctrl-C to stop it.\n")
    out.flush()
