"""From a symptom about a group of users to the step and reason, with the CLI, on the demo
data: German support customers get the US return policy (``support-answer``)."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests._servers import RunningServer
from tests.cli.conftest import RUNS_PER_PIPELINE, run_cli

PIPELINE = "support-answer"


def _support_runs(server: RunningServer) -> list[dict[str, Any]]:
    """The oracle: every support run, read one by one from the API."""
    listed = httpx.get(
        f"{server.base_url}/runs", params={"pipeline": PIPELINE, "limit": 500}, timeout=10
    ).json()["items"]
    return [httpx.get(f"{server.base_url}/runs/{r['id']}", timeout=10).json() for r in listed]


def _german(runs: list[dict[str, Any]]) -> set[str]:
    return {r["id"] for r in runs if r["metadata"]["locale"] == "de-DE"}


def test_groups_by_locale_names_the_german_group_the_step_and_the_reason(
    demo: Any, demo_server: RunningServer
) -> None:
    result = run_cli("groups", PIPELINE, "--by", "metadata.locale", url=demo_server.base_url)
    assert result.code == 0, result.err
    assert f"{RUNS_PER_PIPELINE} runs of {PIPELINE} by metadata.locale" in result.out
    assert (
        "outlier: metadata.locale=de-DE at locale_filter: locale_mismatch 100% of its input "
        "vs 77.5% in the other runs"
    ) in result.out
    outlier_rows = [line for line in result.out.splitlines() if "◀ outlier" in line]
    assert len(outlier_rows) == 1 and outlier_rows[0].startswith("de-DE")
    assert "us" in outlier_rows[0]  # the German group's answers quote the US policy
    funnel = next(line for line in result.out.splitlines() if " locale_filter " in line)
    assert "100% locale_mismatch 100% +refill" in funnel
    assert "77.5% locale_mismatch 77.5%" in funnel
    assert f"xray contrast {PIPELINE} --metadata locale=de-DE" in result.out

    body = json.loads(
        run_cli(
            "groups", PIPELINE, "--by", "metadata.locale", "--json", url=demo_server.base_url
        ).out
    )
    assert sum(item["runs"] for item in body["items"]) == RUNS_PER_PIPELINE


def test_contrast_puts_the_locale_first(demo: Any, demo_server: RunningServer) -> None:
    runs = _support_runs(demo_server)
    german = _german(runs)
    result = run_cli("contrast", PIPELINE, "--metadata", "locale=de-DE", url=demo_server.base_url)
    assert result.code == 0, result.err
    assert f"{len(german)} runs selected vs {len(runs) - len(german)} other runs" in result.out
    lines = result.out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("FIELD"))
    first = lines[header + 1].split()
    assert first[0] in ("metadata.locale", "step.locale_filter.params.locale")
    assert first[1:4] == ["de-DE", f"{len(german)}/{len(german)}", f"0/{len(runs) - len(german)}"]
    reasons = lines[lines.index(next(x for x in lines if x.startswith("Rejection shares"))) + 2]
    assert reasons.split() == ["locale_filter", "locale_mismatch", "100%", "77.5%"]


def test_runs_by_reason_share_find_exactly_the_german_runs(
    demo: Any, demo_server: RunningServer
) -> None:
    runs = _support_runs(demo_server)
    found = run_cli(
        "runs",
        "--pipeline",
        PIPELINE,
        "--reason",
        "locale_mismatch",
        "--min-reason-rate",
        "100%",
        "--json",
        url=demo_server.base_url,
    )
    assert found.code == 0, found.err
    assert {r["id"] for r in json.loads(found.out)} == _german(runs)
    rejected = run_cli("runs", "--min-rejected-rate", "1", "--json", url=demo_server.base_url)
    assert {r["id"] for r in json.loads(rejected.out)} >= _german(runs)
    others = run_cli(
        "runs",
        "--pipeline",
        PIPELINE,
        "--metadata",
        "locale!=de-DE",
        "--columns",
        "locale,channel",
        url=demo_server.base_url,
    )
    assert others.code == 0, others.err
    header = others.out.splitlines()[0].split()
    assert header[7:9] == ["LOCALE", "CHANNEL"]  # after RUN ID ... DURATION
    rows = [line for line in others.out.splitlines()[1:] if line.strip() and line[0] != "("]
    assert len(rows) == len(runs) - len(_german(runs))
    assert f"({len(rows)} of {len(rows)} matching runs shown)" in others.out
    assert not any("de-DE" in row for row in rows)


def test_run_funnel_flags_the_refill_and_decisions_by_step_name(
    demo: Any, demo_server: RunningServer
) -> None:
    runs = _support_runs(demo_server)
    german = next(r for r in runs if r["metadata"]["locale"] == "de-DE")
    funnel = run_cli("run", german["id"], url=demo_server.base_url)
    row = next(line for line in funnel.out.splitlines() if "locale_filter" in line)
    assert "40 → 9" in row and "77.5%" in row and "100% (refilled)" in row
    decisions = run_cli(
        "decisions",
        german["id"],
        "--step",
        "locale_filter",
        "--reason",
        "locale_mismatch",
        "--limit",
        "100",
        "--json",
        url=demo_server.base_url,
    )
    assert decisions.code == 0, decisions.err
    assert len(json.loads(decisions.out)) == 40
    missing = run_cli("decisions", german["id"], "--step", "nope", url=demo_server.base_url)
    assert missing.code == 2
    assert "has no step 'nope'" in missing.err and "locale_filter" in missing.err


def test_diff_of_an_english_and_a_german_run_shows_reason_counts(
    demo: Any, demo_server: RunningServer
) -> None:
    runs = _support_runs(demo_server)
    english = next(r for r in runs if r["metadata"]["locale"] == "en-US")
    german = next(r for r in runs if r["metadata"]["locale"] == "de-DE")
    result = run_cli("diff", english["id"], german["id"], url=demo_server.base_url)
    assert result.code == 0, result.err
    assert "first difference: locale_filter.params.locale" in result.out
    assert "locale_mismatch: A 31 vs B 40" in result.out
    assert "metadata.locale" in result.out


def test_fields_and_trends_answer(demo: Any, demo_server: RunningServer) -> None:
    keys = run_cli("fields", PIPELINE, url=demo_server.base_url)
    assert keys.code == 0, keys.err
    row = next(line for line in keys.out.splitlines() if line.startswith("metadata.locale "))
    assert "de-DE (1)" in row
    trends = run_cli(
        "trends", PIPELINE, "--step", "locale_filter", "--since", "1d", url=demo_server.base_url
    )
    assert trends.code == 0, trends.err
    assert "locale_mismatch" in trends.out
    bad = run_cli("trends", PIPELINE, "--bucket", "1x", url=demo_server.base_url)
    assert bad.code == 2 and "bucket" in bad.err


def test_cohorts_compare_the_german_group_with_the_rest(
    demo: Any, demo_server: RunningServer
) -> None:
    runs = _support_runs(demo_server)
    german = _german(runs)
    result = run_cli("cohorts", PIPELINE, "metadata.locale:de-DE", url=demo_server.base_url)
    assert result.code == 0, result.err
    assert f"A  metadata.locale=de-DE  {len(german)} runs" in result.out
    assert f"B  rest  {len(runs) - len(german)} runs" in result.out
    assert (
        "first divergence: locale_filter: locale_mismatch 100% of its input in A vs 77.5% in B"
        in result.out
    )
    bad = run_cli("cohorts", PIPELINE, "locale", url=demo_server.base_url)
    assert bad.code == 2 and "metadata.locale:de-DE" in bad.err


def test_steps_says_how_many_steps_match_in_all(demo: Any, demo_server: RunningServer) -> None:
    german = _german(_support_runs(demo_server))
    result = run_cli(
        "steps",
        "--pipeline",
        PIPELINE,
        "--name",
        "locale_filter",
        "--limit",
        "2",
        url=demo_server.base_url,
    )
    assert result.code == 0, result.err
    assert f"2 of {RUNS_PER_PIPELINE} matching steps shown" in result.out
    total = httpx.get(
        f"{demo_server.base_url}/steps/count",
        params={"name": "locale_filter", "reason": "locale_mismatch", "min_reason_rate": 1},
        timeout=10,
    ).json()
    assert total == {"total": len(german), "exact": True}
