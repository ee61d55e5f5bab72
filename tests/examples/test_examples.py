"""The example pipelines: standalone scripts that record real runs, and the planted bug.

The demo's four pipelines ship in ``xray.demo``; ``examples/`` runs them by name and
holds the two small instrumentation examples.
"""

from __future__ import annotations

import ast
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests._servers import RunningServer, api_server
from tests.cli._oracle import competitor_choice, competitor_keywords
from tests.conftest import REPO_ROOT
from xray.demo import PIPELINES, load_pipeline

EXAMPLES_DIR = REPO_ROOT / "examples"
EXAMPLES = [
    "competitor_selection",
    "listing_optimisation",
    "product_categorisation",
    "support_answer",
    "minimal",
    "full",
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("examples")
    with api_server(f"sqlite+aiosqlite:///{workdir / 'x.db'}", workdir=workdir) as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize("name", EXAMPLES)
def test_example_runs_standalone_and_its_runs_reach_the_api(
    name: str, server: RunningServer
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    env["XRAY_BASE_URL"] = server.base_url
    args = ["--runs", "2", "--seed", "4"] if name not in ("minimal", "full") else []
    done = subprocess.run(
        [sys.executable, str(EXAMPLES_DIR / f"{name}.py"), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    run_ids = re.findall(r"\[run ([0-9a-f-]{36})\]", done.stdout)
    assert run_ids and len(run_ids) == (2 if args else 1)
    for run_id in run_ids:
        run = httpx.get(f"{server.base_url}/runs/{run_id}", timeout=5).json()
        assert run["status"] == "success"
        assert run["steps"], run


def test_every_demo_pipeline_is_in_the_package_with_what_xray_demo_needs() -> None:
    for name in PIPELINES:
        module = load_pipeline(name)
        assert module.__name__ == f"xray.demo.{name}"
        assert callable(module.main) and callable(module.demo_jobs)
        assert isinstance(module.PIPELINE, str)
        assert (EXAMPLES_DIR / f"{name}.py").is_file(), f"examples/{name}.py is missing"


def test_bug_seed_picks_the_phone_case_for_the_laptop_stand() -> None:
    cs = load_pipeline("competitor_selection")
    keywords = competitor_keywords(cs.PRODUCTS[0], cs.BUG_SEED)
    assert "phone stand" in keywords
    assert competitor_choice(cs.PRODUCTS[0], cs.BUG_SEED) == cs.PHONE_CASE_ASIN
    good = competitor_choice(cs.PRODUCTS[0], cs.GOOD_SEED)
    assert good != cs.PHONE_CASE_ASIN
    assert "Laptop Stand" in next(p["title"] for p in cs.build_catalogue() if p["asin"] == good)
    catalogue = cs.build_catalogue()
    llm = cs.FakeLLM(cs.BUG_SEED)
    kws = cs.generate_keywords.__wrapped__(cs.PRODUCTS[0], llm)
    hits = cs.search_catalogue.__wrapped__(catalogue, kws)
    assert cs.PHONE_CASE_ASIN in {h["asin"] for h in hits}


def test_the_fake_llm_is_seeded_but_varies_between_runs() -> None:
    cs = load_pipeline("competitor_selection")
    product = cs.PRODUCTS[0]
    assert competitor_keywords(product, 5) == competitor_keywords(product, 5)
    variants = {tuple(competitor_keywords(product, seed)) for seed in range(30)}
    assert len(variants) > 3


def test_catalogue_and_taxonomy_are_a_few_thousand_items() -> None:
    assert len(load_pipeline("competitor_selection").build_catalogue()) == 5000
    assert len(load_pipeline("product_categorisation").build_taxonomy()) == 5000
    assert len(load_pipeline("listing_optimisation").build_search_log()) == 5000


def _xray_imports(path: Path) -> list[str]:
    imported = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("xray"):
            imported.append(str(node.module))
        elif isinstance(node, ast.Import):
            imported += [a.name for a in node.names if a.name.startswith("xray")]
    return imported


def test_the_pipelines_are_instrumented_with_the_public_api_only() -> None:
    # What a user can write: ``from xray import ...``; the demo's own record type aside.
    for name in PIPELINES:
        path = REPO_ROOT / "xray" / "demo" / f"{name}.py"
        assert set(_xray_imports(path)) <= {"xray", "xray.demo._summary"}, path
    for name in ("minimal", "full"):
        assert set(_xray_imports(EXAMPLES_DIR / f"{name}.py")) == {"xray"}, name
