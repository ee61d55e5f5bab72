"""Static guarantees of the dashboard's shipped files (no browser needed).

The browser tests show the pages work; these pin the rules that keep them safe and
offline: user data never goes through an HTML parser, and nothing loads from the internet.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from xray.api.dashboard import INDEX_HTML, STATIC_DIR

SCRIPTS = sorted(STATIC_DIR.glob("*.js"))
TEXT_FILES = sorted(p for p in STATIC_DIR.iterdir() if p.suffix in {".js", ".css", ".html", ".svg"})


def test_the_package_ships_the_dashboard_files() -> None:
    names = {p.name for p in STATIC_DIR.iterdir()}
    assert {"index.html", "app.js", "lib.js", "style.css"} <= names
    assert INDEX_HTML.is_file()


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_scripts_never_parse_strings_as_html_or_code(script: Path) -> None:
    # Comments may name the forbidden APIs (to say why); code may not use them.
    code = re.sub(r"//[^\n]*", "", script.read_text())
    for sink in (
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "new Function",
    ):
        assert sink not in code, f"{script.name} uses {sink}"


@pytest.mark.parametrize("path", TEXT_FILES, ids=lambda p: p.name)
def test_nothing_loads_from_another_origin(path: Path) -> None:
    text = path.read_text()
    # The SVG namespace is an identifier, not a request.
    text = text.replace("http://www.w3.org/2000/svg", "")
    assert not re.search(r"https?://|//cdn|@import", text), f"{path.name} refers to another origin"


def test_local_modules_imported_by_scripts_exist() -> None:
    for script in SCRIPTS:
        for target in re.findall(r'from\s+"\./([^"]+)"', script.read_text()):
            assert (STATIC_DIR / target).is_file(), f"{script.name} imports missing ./{target}"


def test_index_sets_a_content_security_policy_without_inline_script() -> None:
    html = INDEX_HTML.read_text()
    policy = re.search(r'http-equiv="Content-Security-Policy"\s+content="([^"]+)"', html)
    assert policy, "index.html has no Content-Security-Policy"
    directives = dict(d.strip().split(" ", 1) for d in policy.group(1).split(";") if d.strip())
    assert directives["script-src"] == "'self'"
    assert "'unsafe-inline'" not in policy.group(1) and "'unsafe-eval'" not in policy.group(1)
    assert "<script>" not in html, "inline scripts would be blocked by the policy"
