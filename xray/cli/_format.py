"""Plain-text rendering for people: tables, counts, rates, durations and short summaries.

Tables fit the terminal when stdout is one (shrinking the columns marked shrinkable) and
are printed in full when piped, so ``grep`` and ``less -S`` see everything.
"""

from __future__ import annotations

import json
import shutil
import sys
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TextIO

__all__ = [
    "Column",
    "brief",
    "count",
    "duration",
    "flow",
    "rate",
    "rejected",
    "render_table",
    "timestamp",
    "top_reasons",
    "value_text",
    "wrap",
]


@dataclass(frozen=True)
class Column:
    """One table column: its header, alignment, and whether it may be cut to fit."""

    header: str
    align: str = "<"
    shrink: bool = False


def _width(stream: TextIO) -> int | None:
    if not stream.isatty():
        return None
    return shutil.get_terminal_size((120, 24)).columns


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def render_table(
    columns: Sequence[Column], rows: Sequence[Sequence[str]], *, stream: TextIO | None = None
) -> str:
    """Align ``rows`` under ``columns``; return the text (no trailing newline)."""
    out = stream or sys.stdout
    widths = [len(c.header) for c in columns]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    limit = _width(out)
    if limit is not None:
        excess = sum(widths) + 2 * (len(widths) - 1) - limit
        for i in reversed(range(len(columns))):
            if excess <= 0:
                break
            if columns[i].shrink:
                floor = max(len(columns[i].header), 12)
                cut = min(excess, widths[i] - floor)
                if cut > 0:
                    widths[i] -= cut
                    excess -= cut
    lines = []
    for row in [[c.header for c in columns], *rows]:
        cells = []
        for i, cell in enumerate(row):
            text = _cut(cell, widths[i])
            last = i == len(row) - 1
            cells.append(
                text
                if last and columns[i].align == "<"
                else f"{text:{columns[i].align}{widths[i]}}"
            )
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def count(value: Any) -> str:
    return "-" if value is None else f"{int(value):,}"


def flow(step: dict[str, Any]) -> str:
    """``5,000 → 312`` for a step's input and output counts."""
    return f"{count(step.get('input_count'))} → {count(step.get('output_count'))}"


def rate(value: Any) -> str:
    """A rate as a percentage, precise enough never to round to 0% or 100% when it is not.

    A step that grew its input has no elimination rate.

    Example:
        >>> rate(0.775), rate(1.0), rate(1 - 1 / 12_345_678)
        ('77.5%', '100%', '99.99999%')
    """
    if value is None or float(value) < 0:
        return "-"
    share = float(value)
    if share in (0.0, 1.0):
        return f"{share * 100:.0f}%"
    for digits in range(1, 10):
        text = f"{share * 100:.{digits}f}"
        if float(text) not in (0.0, 100.0):
            return f"{text}%"
    return f"{share * 100:.2e}%"


def duration(ms: Any) -> str:
    """A duration in the units that suit its size: ``0.42 ms``, ``1.20 s``, ``27 h 25 min``.

    Example:
        >>> duration(98_765_000)
        '27 h 26 min'
    """
    if ms is None:
        return "-"
    ms = float(ms)
    if ms < 1:
        return f"{ms:.2f} ms"
    if ms < 1000:
        return f"{ms:.1f} ms"
    if ms < 60_000:
        return f"{ms / 1000:.2f} s"
    minutes = round(ms / 60_000)
    if minutes < 60:
        seconds = round(ms / 1000) - 60 * (round(ms / 1000) // 60)
        return f"{round(ms / 1000) // 60} min {seconds} s"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    hours = round(ms / 3_600_000)
    return f"{hours // 24} d {hours % 24} h"


def timestamp(value: Any) -> str:
    """An ISO timestamp from the API as ``YYYY-MM-DD HH:MM:SS`` (UTC as sent)."""
    if not value:
        return "-"
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return str(value)
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def top_reasons(reason_counts: Any, n: int = 2) -> str:
    """The ``n`` most frequent reasons: ``no_keyword_match 4,688, price_above_max 12``."""
    if not isinstance(reason_counts, dict) or not reason_counts:
        return ""
    ranked = sorted(reason_counts.items(), key=lambda kv: (-int(kv[1]), str(kv[0])))
    shown = ", ".join(f"{reason} {int(n_):,}" for reason, n_ in ranked[:n])
    more = len(ranked) - n
    return f"{shown} (+{more} more)" if more > 0 else shown


_LABEL_KEYS = ("title", "name", "path", "text", "term", "asin", "id")


def brief(value: Any, width: int = 80) -> str:
    """A one-line, human summary of a JSON value (a dict shows its title or name)."""
    return _cut(_brief(value, depth=0), width)


def _brief(value: Any, *, depth: int) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return json.dumps(value)
    if isinstance(value, list):
        if depth <= 1 and all(isinstance(v, str | int | float) for v in value):
            text = "[" + ", ".join(str(v) for v in value) + "]"
            if len(text) <= 120:  # a short list of words says more than its length
                return text
        if len(value) > 3 or depth > 1:
            return f"[{len(value)} items]"
        return "[" + ", ".join(_brief(v, depth=depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        for key in _LABEL_KEYS:
            if isinstance(value.get(key), str) and depth > 0:
                return str(value[key])
        if depth > 1:
            return "{…}"
        return " ".join(f"{k}={_brief(v, depth=depth + 1)}" for k, v in value.items())
    return str(value)


def wrap(text: str, *, indent: str, width: int | None = None) -> str:
    """Wrap prose (reasoning text) under a label, to the terminal's width."""
    columns = width or min(shutil.get_terminal_size((100, 24)).columns, 110)
    return textwrap.fill(
        " ".join(text.split()), width=columns, initial_indent=indent, subsequent_indent=indent
    )


def value_text(value: Any) -> str:
    """A JSON value in one line: strings bare, anything else as JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def rejected(step: dict[str, Any] | None) -> str:
    """A step's rejection-based rate, flagged when it refilled after rejecting."""
    if not step:
        return ""
    text = rate(step.get("rejected_rate"))
    return f"{text} (refilled)" if step.get("readmitted") else text
