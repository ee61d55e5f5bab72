"""A real X-Ray API server for end-to-end tests: uvicorn in a subprocess on 127.0.0.1.

It is started exactly as a user starts it (``python -m xray.api``), configured through
the documented environment variables, and stopped with SIGTERM, by the same supervisor
that ``xray demo`` uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import free_port
from xray.cli._supervisor import ServerStartError, start_server_process


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
    startup_timeout: float = 120.0,
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
    try:
        process = start_server_process(
            [sys.executable, "-m", "xray.api"],
            base_url=f"http://127.0.0.1:{port}",
            log_path=workdir / f"api-{port}.log",
            env=env,
            cwd=workdir,
            timeout=startup_timeout,
        )
    except ServerStartError as exc:
        raise RuntimeError(f"API server did not start: {exc}") from None
    server = RunningServer(
        process.base_url, database_url, api_keys, process.log_path, process.process
    )
    try:
        yield server
    finally:
        process.stop()
