"""The public surface cannot drift silently: a test pins every package's __all__."""

from __future__ import annotations

import importlib
import subprocess
import sys

import pytest

PACKAGES = ["xray", "xray.shared", "xray.sdk", "xray.api", "xray.demo"]


def isort_order(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_every_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=isort_order), f"{name}.__all__ is not sorted"
    for attribute in exported:
        assert getattr(module, attribute) is not None, f"{name}.{attribute} is missing"


def test_documented_top_level_names() -> None:
    import xray

    for name in ("XRayClient", "step", "current_step", "current_run"):
        assert name in xray.__all__


def test_seed_spelling_from_sdk_import_step_and_client() -> None:
    import xray.sdk
    from sdk import XRayClient, step  # the short spelling

    assert step is xray.sdk.step
    assert XRayClient is xray.sdk.XRayClient


def test_importing_the_server_does_not_load_the_sdk() -> None:
    # The server never imports xray.sdk at run time: it must run without the SDK's code.
    code = "import sys, xray.api, xray.shared; print('xray.sdk' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_importing_the_sdk_does_not_load_the_server() -> None:
    code = (
        "import sys, xray.sdk; "
        "print(sorted(m for m in ('xray.api', 'fastapi', 'sqlalchemy') if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[]"


def test_python_dash_m_api_is_the_server_entry_point() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "api", "--help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "--port" in result.stdout
