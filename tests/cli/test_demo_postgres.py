"""The walkthrough's queries give the same answers on PostgreSQL (production's database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests._servers import api_server
from tests.cli.conftest import run_cli
from xray.demo import run_demos

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_walkthrough_queries_on_postgresql(postgres_database: str, tmp_path: Path) -> None:
    with api_server(postgres_database, workdir=tmp_path) as server:
        demo = run_demos(server.base_url, runs_per_pipeline=1, seed=2)

        def cli_json(*argv: str) -> list[dict[str, object]]:
            result = run_cli(*argv, "--json", url=server.base_url)
            assert result.code == 0, result.err
            return json.loads(result.out)  # type: ignore[no-any-return]

        runs = cli_json(
            "runs",
            "--pipeline",
            "competitor-selection",
            "--metadata",
            f"product_asin={demo.product_asin}",
        )
        expected = {
            r.run_id
            for r in demo.runs
            if r.pipeline == "competitor-selection" and r.subject == demo.product_asin
        }
        assert {str(r["id"]) for r in runs} == expected
        path = cli_json("candidate", demo.bad_candidate_key, "--run", demo.bad_run_id)
        assert [d["decision"] for d in path][-1] == "selected"
        steps = cli_json(
            "steps", "--type", "filter", "--min-elimination-rate", "0.9", "--limit", "500"
        )
        names = sorted(str(s["name"]) for s in steps if s["pipeline"] != "competitor-selection")
        assert names == ["mine_search_terms", "taxonomy_prefilter"]
