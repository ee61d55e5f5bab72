"""Installing ``xray[sdk]`` alone gives a working SDK without the server's stack.

This builds a real virtual environment and installs the package into it from this
checkout, as a user would with ``pip install xray[sdk]``.
"""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT

SERVER_ONLY = ("fastapi", "sqlalchemy", "asyncpg", "aiosqlite", "uvicorn", "alembic", "starlette")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def sdk_only_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("sdk-only") / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    python = target / "bin" / "python"
    result = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", f"{REPO_ROOT}[sdk]"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return python


def test_sdk_extra_does_not_install_the_server_stack(sdk_only_env: Path) -> None:
    listing = subprocess.run(
        [str(sdk_only_env), "-m", "pip", "list", "--format=freeze"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.lower()
    installed = {line.split("==")[0] for line in listing.splitlines()}
    assert "httpx" in installed
    assert "pydantic" in installed and "pyyaml" in installed
    assert not installed & set(SERVER_ONLY), installed & set(SERVER_ONLY)


def test_sdk_works_in_the_sdk_only_environment(sdk_only_env: Path, tmp_path: Path) -> None:
    script = (
        "from sdk import step, XRayClient\n"
        "from xray import current_step\n"
        "@step(type='filter')\n"
        "def keep_even(items):\n"
        "    current_step().set_params(rule='even')\n"
        "    return [i for i in items if i % 2 == 0]\n"
        "print(keep_even([1, 2, 3, 4]))\n"
    )
    # No config anywhere: the SDK is disabled and the function returns what it always did.
    result = subprocess.run(
        [str(sdk_only_env), "-c", script],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[2, 4]"
    assert "Traceback" not in result.stderr


def test_the_server_is_not_importable_without_the_api_extra(sdk_only_env: Path) -> None:
    result = subprocess.run(
        [str(sdk_only_env), "-c", "import xray.api"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode != 0
    assert "fastapi" in result.stderr.lower() or "sqlalchemy" in result.stderr.lower()


def test_running_python_is_not_the_sdk_only_env(sdk_only_env: Path) -> None:
    # Guards the tests above against silently using the development environment.
    assert Path(sys.executable).resolve() != sdk_only_env.resolve()
