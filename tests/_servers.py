"""A real X-Ray API server for end-to-end tests: uvicorn in a subprocess on 127.0.0.1.

It is started exactly as a user starts it (``python -m xray.api``), configured through
the documented environment variables, and stopped with SIGTERM.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port


@dataclass(frozen=True)
class RunningServer:
    base_url: str
    database_url: str
    api_keys: tuple[str, ...]
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def api_server(
    database_url: str,
    *,
    workdir: Path,
    api_keys: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
    startup_timeout: float = 30.0,
) -> Iterator[RunningServer]:
    """Start ``python -m xray.api`` on a free loopback port; yield once /readyz answers."""
    port = free_port()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("XRAY_") or k.startswith("XRAY_TEST_")
    }
    env.pop("DATABASE_URL", None)
    env.update(
        {
            "DATABASE_URL": database_url,
            "XRAY_HOST": "127.0.0.1",
            "XRAY_PORT": str(port),
            "XRAY_API_KEYS": ",".join(api_keys),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra_env or {})
    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / f"api-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "xray.api"],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    base_url = f"http://127.0.0.1:{port}"
    server = RunningServer(base_url, database_url, api_keys, log_path, process)
    try:
        deadline = time.monotonic() + startup_timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"API server exited with {process.returncode}:\n{server.log()}")
            try:
                if httpx.get(f"{base_url}/readyz", timeout=1.0).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"API server not ready after {startup_timeout}s:\n{server.log()}"
                )
            time.sleep(0.1)
        yield server
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
