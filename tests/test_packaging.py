"""Installing ``xray[sdk]`` alone gives a working SDK without the server's stack.

This builds a real virtual environment and installs the package into it from this
checkout, as a user would with ``pip install xray[sdk]``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
import zipfile
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


def test_the_sdk_only_environment_runs_the_c_fast_path(sdk_only_env: Path, tmp_path: Path) -> None:
    if shutil.which(sysconfig.get_config_var("CC").split()[0]) is None:
        pytest.skip("no C compiler on this machine: the install is pure Python here")
    result = subprocess.run(
        [str(sdk_only_env), "-c", "from xray.sdk._step import ACCELERATED; print(ACCELERATED)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=60,
    )
    assert result.stdout.strip() == "True", result.stderr


def test_without_a_working_compiler_the_wheel_is_pure_python_and_says_so(tmp_path: Path) -> None:
    # A copy of the sources without any extension built in place, so nothing can be reused.
    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "hatch_build.py", "README.md"):
        shutil.copy(REPO_ROOT / name, source / name)
    for package in ("xray", "sdk", "api"):
        shutil.copytree(
            REPO_ROOT / package,
            source / package,
            ignore=shutil.ignore_patterns("__pycache__", "*.so", "*.pyd"),
        )
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-v", "-w", str(tmp_path), "."],
        capture_output=True,
        text=True,
        cwd=source,
        env={**os.environ, "CC": "/bin/false"},
        timeout=600,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "could not build the C fast path" in result.stdout + result.stderr
    (wheel,) = tmp_path.glob("*.whl")
    assert wheel.name.endswith("-py3-none-any.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert "xray/sdk/_step.py" in names
    assert not [n for n in names if n.endswith((".so", ".pyd"))]
