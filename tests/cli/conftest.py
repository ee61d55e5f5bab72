"""One real API server on SQLite with the demo data loaded, shared by the CLI tests."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests._servers import RunningServer, api_server

RUNS_PER_PIPELINE = 4


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str


def run_cli(*argv: str, url: str | None = None, api_key: str | None = None) -> Result:
    """``xray`` in-process through ``main(argv)``, capturing both streams."""
    from xray.cli import main

    args = list(argv)
    if url:
        args += ["--url", url]
    if api_key:
        args += ["--api-key", api_key]
    out, err = io.StringIO(), io.StringIO()
    code = main(args, out=out, err=err)
    return Result(code, out.getvalue(), err.getvalue())


def xray_command() -> list[str]:
    """The installed console script, or ``python -m xray.cli`` when it is not on disk."""
    script = Path(sys.executable).with_name("xray")
    return [str(script)] if script.exists() else [sys.executable, "-m", "xray.cli"]


def run_xray_process(*argv: str, env: dict[str, str] | None = None, timeout: float = 120) -> Result:
    """The installed ``xray`` console script in a subprocess, as a user runs it."""
    command = xray_command()
    full_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("XRAY_") or k.startswith("XRAY_TEST_")
    }
    full_env.pop("DATABASE_URL", None)
    full_env.update(env or {})
    done = subprocess.run(
        [*command, *argv],
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        cwd=os.getcwd(),
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture(scope="session")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("cli-demo")
    database = f"sqlite+aiosqlite:///{workdir / 'demo.db'}"
    with api_server(database, workdir=workdir) as server:
        yield server


@pytest.fixture(scope="session")
def demo(demo_server: RunningServer) -> Any:
    """The demo data, loaded once through the same ``run_demos`` that ``xray demo`` uses."""
    from xray.demo import run_demos

    return run_demos(demo_server.base_url, runs_per_pipeline=RUNS_PER_PIPELINE, seed=1)
