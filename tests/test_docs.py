"""The documentation site's generated pages: the HTTP API reference and the included files.

``make docs`` builds the whole site with ``--strict``; these check what the build cannot:
that the reference covers every endpoint the server has, and that links of the files shown
as pages lead to pages.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from tests.conftest import REPO_ROOT

pytest.importorskip("mkdocs", reason="the docs extra is not installed")


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "docs_hooks", REPO_ROOT / "scripts" / "docs_hooks.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_lists_every_endpoint_and_model_of_the_server() -> None:
    from xray.api import create_app

    schema = create_app().openapi()
    page = _hooks().api_reference()
    for path, operations in schema["paths"].items():
        for method in operations:
            assert f"## `{method.upper()} {path}`" in page
    for name in schema["components"]["schemas"]:
        assert f"### {name}\n" in page
    assert "/docs" not in schema["paths"]  # the docs pages are not endpoints of the API


def test_links_of_included_files_point_at_site_pages() -> None:
    hooks = _hooks()
    text = hooks._rewrite_links(
        "[bench](bench/README.md) [step](xray/sdk/_step.py) [run](docs/screenshots/run.png) "
        "![run](docs/screenshots/run.png) [docs](https://example.org/) [top](#parts)",
        Path("."),
    )
    assert "[bench](benchmarks.md)" in text
    assert "step (`xray/sdk/_step.py`)" in text
    assert "[run](screenshots/run.png)" in text
    assert "![run](screenshots/run.png)" in text
    assert "[docs](https://example.org/)" in text and "[top](#parts)" in text


def test_every_page_in_docs_is_in_the_nav() -> None:
    config = yaml.safe_load((REPO_ROOT / "mkdocs.yml").read_text())

    def pages(node: object) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, list):
            return [p for item in node for p in pages(item)]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        return []

    in_nav = set(pages(config["nav"]))
    on_disk = {p.name for p in (REPO_ROOT / "docs").glob("*.md")}
    generated = set(_hooks().INCLUDED.values()) | {"api-reference.md"}
    assert on_disk | generated == in_nav
    assert not re.search(r"https?://", (REPO_ROOT / "mkdocs.yml").read_text()), (
        "the site config names no remote resource"
    )
