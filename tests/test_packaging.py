"""Installing ``xray[sdk]`` alone gives a working SDK without the server's stack, and the
built wheel runs ``xray demo`` anywhere.

This builds real virtual environments and installs the package into them from this
checkout, as a user would with ``pip install xray[sdk]`` or ``pip install xray-*.whl``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import sqlite3
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


@pytest.fixture(scope="module")
def wheel_env(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The wheel built from this checkout, installed with ``[sdk,api]`` in a fresh venv."""
    root = tmp_path_factory.mktemp("wheel")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(root), str(REPO_ROOT)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    (wheel,) = root.glob("xray-*.whl")
    target = root / "venv"
    venv.EnvBuilder(with_pip=True).create(target)
    installed = subprocess.run(
        [str(target / "bin" / "python"), "-m", "pip", "install", "--quiet", f"{wheel}[sdk,api]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert installed.returncode == 0, installed.stdout + installed.stderr
    return wheel, target


def test_the_wheel_ships_the_demo_pipelines(wheel_env: tuple[Path, Path]) -> None:
    wheel, _ = wheel_env
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for name in ("competitor_selection", "listing_optimisation", "product_categorisation"):
        assert f"xray/demo/{name}.py" in names


def test_xray_demo_from_the_installed_wheel_records_its_runs(
    wheel_env: tuple[Path, Path], tmp_path: Path
) -> None:
    _, target = wheel_env
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("XRAY_") and k not in {"PYTHONPATH", "DATABASE_URL"}
    }
    # Far from the checkout: nothing but the installed package can be found.
    result = subprocess.run(
        [str(target / "bin" / "xray"), "demo", "--no-serve", "--port", str(port), "--runs", "1"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Recorded 6 runs" in result.stdout
    database = tmp_path / ".xray-demo" / "xray.db"
    with contextlib.closing(sqlite3.connect(database)) as connection:
        pipelines = dict(
            connection.execute("SELECT pipeline, count(*) FROM runs GROUP BY pipeline").fetchall()
        )
    assert pipelines == {
        "competitor-selection": 3,
        "listing-optimisation": 1,
        "product-categorisation": 1,
        "support-answer": 1,
    }
