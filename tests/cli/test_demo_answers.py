"""The CLI's answers about the demo data equal what the example pipelines computed.

One real server (``python -m xray.api`` on SQLite), loaded once by ``run_demos`` exactly
as ``xray demo`` loads it; the commands are the ones the walkthrough prints.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests._servers import RunningServer
from tests.cli._oracle import competitor_funnel, competitor_keywords
from tests.cli.conftest import RUNS_PER_PIPELINE, run_cli
from xray.demo import load_pipeline

pytestmark = pytest.mark.slow


def cli_json(server: RunningServer, *argv: str) -> Any:
    result = run_cli(*argv, "--json", url=server.base_url)
    assert result.code == 0, result.err
    return json.loads(result.out)


def test_demo_records_four_pipelines_and_the_two_laptop_stand_runs(
    demo: Any, demo_server: RunningServer
) -> None:
    assert demo.counts() == {
        "competitor-selection": RUNS_PER_PIPELINE + 2,
        "listing-optimisation": RUNS_PER_PIPELINE,
        "product-categorisation": RUNS_PER_PIPELINE,
        "support-answer": RUNS_PER_PIPELINE,
    }
    pipelines = {p["pipeline"]: p["run_count"] for p in cli_json(demo_server, "pipelines")}
    assert pipelines == demo.counts()
    assert demo.bad_run_id in demo.wrong_competitor_run_ids
    assert demo.good_run_id not in demo.wrong_competitor_run_ids
    assert demo.sdk_stats["dropped"] == 0
    assert demo.sdk_stats["queued"] == 0


def test_walkthrough_query_finds_the_bad_competitor_run(
    demo: Any, demo_server: RunningServer
) -> None:
    argv = (
        "runs",
        "--pipeline",
        "competitor-selection",
        "--metadata",
        f"product_asin={demo.product_asin}",
    )
    runs = cli_json(demo_server, *argv)
    expected = {
        r.run_id
        for r in demo.runs
        if r.pipeline == "competitor-selection" and r.subject == demo.product_asin
    }
    assert {r["id"] for r in runs} == expected
    phone_case_runs = {
        r["id"] for r in runs if r["output"]["competitor"]["asin"] == demo.bad_candidate_key
    }
    assert demo.bad_run_id in phone_case_runs
    assert phone_case_runs <= set(demo.wrong_competitor_run_ids)

    table = run_cli(*argv, url=demo_server.base_url)
    assert table.code == 0
    bad_line = next(line for line in table.out.splitlines() if line.startswith(demo.bad_run_id))
    assert "Kickstand Phone Case" in bad_line
    good_line = next(line for line in table.out.splitlines() if line.startswith(demo.good_run_id))
    assert "Laptop Stand" in good_line


def test_run_funnel_counts_equal_the_pipelines_own_counts(
    demo: Any, demo_server: RunningServer
) -> None:
    cs = load_pipeline("competitor_selection")
    expected = competitor_funnel(cs.PRODUCTS[0], cs.BUG_SEED)
    run = cli_json(demo_server, "run", demo.bad_run_id)
    assert [(s["name"], s["input_count"], s["output_count"]) for s in run["steps"]] == expected
    search = next(s for s in run["steps"] if s["name"] == "search_catalogue")
    assert search["input_count"] == cs.CATALOGUE_SIZE == 5000
    assert (
        search["reason_counts"]["no_keyword_match"]
        == search["input_count"] - search["output_count"]
    )

    table = run_cli("run", demo.bad_run_id, url=demo_server.base_url)
    assert table.code == 0
    for name, n_in, n_out in expected:
        line = next(line for line in table.out.splitlines() if f" {name} " in line)
        assert f"{n_in:,} → {n_out:,}" in line
    # The cause is on screen: the keyword model's reasoning and the loose category match.
    assert "phone stand" in table.out
    assert 'match_level="department"' in table.out


def test_candidate_path_shows_how_the_phone_case_got_through(
    demo: Any, demo_server: RunningServer
) -> None:
    decisions = cli_json(demo_server, "candidate", demo.bad_candidate_key, "--run", demo.bad_run_id)
    path = [(d["step_name"], d["decision"]) for d in decisions]
    assert path == [
        ("search_catalogue", "accepted"),
        ("price_filter", "accepted"),
        ("rating_filter", "accepted"),
        ("review_count_filter", "accepted"),
        ("category_filter", "accepted"),
        ("relevance_check", "accepted"),
        ("rank_candidates", "scored"),
        ("select_competitor", "selected"),
    ]
    by_step = {d["step_name"]: d for d in decisions}
    assert by_step["search_catalogue"]["attributes"]["keyword"] == "phone stand"
    assert by_step["category_filter"]["reason"] == "same_department"
    assert by_step["rank_candidates"]["rank"] == 1

    table = run_cli(
        "candidate", demo.bad_candidate_key, "--run", demo.bad_run_id, url=demo_server.base_url
    )
    assert table.code == 0
    assert f"run {demo.bad_run_id}" in table.out
    assert "keyword=phone stand" in table.out
    assert f"{len(decisions)} decisions about {demo.bad_candidate_key} in 1 run(s)" in table.out


def test_diff_of_good_and_bad_run_points_at_the_keywords(
    demo: Any, demo_server: RunningServer
) -> None:
    cs = load_pipeline("competitor_selection")
    diff = cli_json(demo_server, "diff", demo.good_run_id, demo.bad_run_id)
    assert diff["same_input"] is True
    assert diff["same_output"] is False
    steps = {s["name"]: s for s in diff["steps"]}
    good_kw = competitor_keywords(cs.PRODUCTS[0], 1)
    bad_kw = competitor_keywords(cs.PRODUCTS[0], cs.BUG_SEED)
    assert steps["generate_keywords"]["a"]["output_count"] == len(good_kw)
    assert steps["generate_keywords"]["b"]["output_count"] == len(bad_kw)
    assert steps["generate_keywords"]["reasoning"] is not None
    assert "phone stand" in steps["generate_keywords"]["reasoning"]["b"]
    search_params = {p["key"]: p for p in steps["search_catalogue"]["params"]}
    assert "phone stand" in search_params["keywords"]["b"]
    assert "phone stand" not in search_params["keywords"]["a"]

    table = run_cli("diff", demo.good_run_id, demo.bad_run_id, url=demo_server.base_url)
    assert table.code == 0
    assert "output  DIFFERENT" in table.out
    assert "input   same" in table.out


def test_filters_that_eliminated_over_90_percent_across_pipelines(
    demo: Any, demo_server: RunningServer
) -> None:
    found = cli_json(
        demo_server, "steps", "--type", "filter", "--min-elimination-rate", "0.9", "--limit", "500"
    )
    # The oracle: every filter step of every demo run, read run by run.
    expected = set()
    for run_id in demo.run_ids():
        for s in cli_json(demo_server, "run", run_id)["steps"]:
            if (
                s["type"] == "filter"
                and s["elimination_rate"] is not None
                and s["elimination_rate"] >= 0.9
            ):
                expected.add(s["id"])
    assert {s["id"] for s in found} == expected
    # Every categorisation run shortlists 30 of 5,000 categories; every listing run keeps
    # at most 30 of 5,000 search terms: both are always in the answer.
    prefilters = [s for s in found if s["name"] == "taxonomy_prefilter"]
    assert len(prefilters) == RUNS_PER_PIPELINE
    assert all((s["input_count"], s["output_count"]) == (5000, 30) for s in prefilters)
    mined = [s for s in found if s["name"] == "mine_search_terms"]
    assert len(mined) == RUNS_PER_PIPELINE
    assert all(s["input_count"] == 5000 and s["output_count"] <= 30 for s in mined)

    same_in_percent = cli_json(
        demo_server, "steps", "--type", "filter", "--min-elimination-rate", "90%", "--limit", "500"
    )
    assert {s["id"] for s in same_in_percent} == expected
    runs = cli_json(
        demo_server,
        "runs",
        "--step-type",
        "filter",
        "--min-elimination-rate",
        "0.9",
        "--limit",
        "500",
    )
    assert {r["id"] for r in runs} == {s["run_id"] for s in found}


def test_every_detail_level_is_used_by_the_demo(demo: Any, demo_server: RunningServer) -> None:
    details = set()
    for pipeline in ("competitor-selection", "listing-optimisation", "product-categorisation"):
        run_id = demo.run_ids(pipeline)[0]
        details |= {s["detail"] for s in cli_json(demo_server, "run", run_id)["steps"]}
    assert details == {"summary", "sampled", "full"}


def test_sampled_step_keeps_the_kept_candidates_and_a_sample_of_the_rest(
    demo: Any, demo_server: RunningServer
) -> None:
    run_id = demo.run_ids("product-categorisation")[0]
    step = next(
        s
        for s in cli_json(demo_server, "run", run_id)["steps"]
        if s["name"] == "taxonomy_prefilter"
    )
    accepted = cli_json(
        demo_server, "decisions", step["id"], "--decision", "accepted", "--limit", "1000"
    )
    assert len(accepted) == step["output_count"] == 30
    rejected = cli_json(
        demo_server, "decisions", step["id"], "--decision", "rejected", "--limit", "1000"
    )
    assert 0 < len(rejected) < step["input_count"] - step["output_count"]
    assert sum(step["reason_counts"].values()) == step["input_count"] - step["output_count"]


def test_human_tables_and_json_agree_on_the_runs_listed(
    demo: Any, demo_server: RunningServer
) -> None:
    runs = cli_json(demo_server, "runs", "--pipeline", "listing-optimisation", "--limit", "3")
    assert len(runs) == 3
    table = run_cli(
        "runs", "--pipeline", "listing-optimisation", "--limit", "3", url=demo_server.base_url
    )
    listed = [
        line.split()[0] for line in table.out.splitlines()[1:] if line and not line.startswith("(")
    ]
    assert listed == [r["id"] for r in runs]
    assert "(showing the first 3 runs; pass --limit to see more)" in table.out
