"""The CLI's public names, the stable ``run_demos`` signature, and the argument parsers."""

from __future__ import annotations

import argparse
import inspect
import io
from datetime import UTC, datetime, timedelta

import pytest

import xray.cli
import xray.demo
from xray.cli._format import Column, brief, rate, render_table, top_reasons
from xray.cli._queries import parse_rate, parse_time


def test_public_surface_is_pinned() -> None:
    assert xray.cli.__all__ == sorted(xray.cli.__all__)
    assert xray.cli.__all__ == ["CLIError", "build_parser", "main"]


def test_run_demos_signature_is_stable_for_the_dashboard_tests() -> None:
    parameters = inspect.signature(xray.demo.run_demos).parameters
    assert list(parameters)[:1] == ["base_url"]
    for name in ("api_key", "runs_per_pipeline", "seed", "progress"):
        assert parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
    fields = {f for f in xray.demo.DemoSummary.__dataclass_fields__}
    assert {
        "base_url",
        "runs",
        "bad_run_id",
        "good_run_id",
        "bad_candidate_key",
        "product_asin",
    } <= fields


@pytest.mark.parametrize(
    ("text", "expected"), [("0.9", 0.9), ("90%", 0.9), ("0", 0.0), ("100%", 1.0)]
)
def test_elimination_rate_accepts_fractions_and_percentages(text: str, expected: float) -> None:
    assert parse_rate(text) == pytest.approx(expected)


@pytest.mark.parametrize("text", ["1.2", "-5%", "ninety", ""])
def test_elimination_rate_rejects_what_is_not_a_share(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError):
        parse_rate(text)


def test_times_accept_ages_and_iso_dates() -> None:
    two_hours_ago = datetime.fromisoformat(parse_time("2h"))
    assert abs(datetime.now(UTC) - timedelta(hours=2) - two_hours_ago) < timedelta(minutes=1)
    assert parse_time("2026-01-31T12:00") == "2026-01-31T12:00:00+00:00"
    assert parse_time("2026-01-31T12:00:00+02:00") == "2026-01-31T12:00:00+02:00"
    with pytest.raises(argparse.ArgumentTypeError):
        parse_time("yesterday")


def test_rates_of_steps_that_grow_their_input_are_not_shown_as_negative() -> None:
    assert rate(-5.0) == "-"
    assert rate(0.994) == "99.4%"
    assert rate(None) == "-"


def test_top_reasons_orders_by_count_and_says_how_many_more() -> None:
    assert top_reasons({"a": 1, "b": 30, "c": 5}) == "b 30, c 5 (+1 more)"
    assert top_reasons({}) == ""


def test_brief_shows_titles_of_nested_objects_and_short_word_lists() -> None:
    value = {"competitor": {"asin": "B0", "title": "Phone Case"}, "keywords": ["a", "b"]}
    assert brief(value) == "competitor=Phone Case keywords=[a, b]"
    assert brief(None) == "-"


def test_table_aligns_columns_and_keeps_full_cells_when_not_a_terminal() -> None:
    text = render_table(
        [Column("A"), Column("N", ">")], [["x" * 200, "1"], ["y", "22"]], stream=io.StringIO()
    )
    lines = text.splitlines()
    assert lines[0].startswith("A ") and lines[0].endswith(" N")
    assert "x" * 200 in lines[1]
    assert lines[2].endswith(" 22")
