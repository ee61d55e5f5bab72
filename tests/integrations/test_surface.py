"""The integrations' public names, and that nothing imports a library the user did not ask for."""

from __future__ import annotations

import subprocess
import sys

import xray.integrations
import xray.integrations.openai


def test_public_names() -> None:
    assert xray.integrations.__all__ == []
    assert xray.integrations.openai.__all__ == ["instrument"]
    assert xray.integrations.openai.instrument.__doc__


def test_importing_the_sdk_or_the_package_imports_no_client_library() -> None:
    code = (
        "import sys, xray, xray.sdk, xray.integrations; "
        "print(sorted(m for m in ('openai', 'xray.integrations.openai', 'opentelemetry') "
        "if m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
