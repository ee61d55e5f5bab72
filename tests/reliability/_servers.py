"""The real API, started and killed on a fixed port (restarts keep the address), and the
rows it stored, read straight from its database."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO_ROOT


class API:
    """``python -m xray.api`` on ``port``: ``start()``, ``kill()`` (SIGKILL), ``stop()``."""

    def __init__(self, database_url: str, port: int, workdir: Path) -> None:
        self.database_url = database_url
        self.port = port
        self.workdir = workdir
        self.base_url = f"http://127.0.0.1:{port}"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60.0) -> API:
        env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
        env.update(
            DATABASE_URL=self.database_url,
            XRAY_HOST="127.0.0.1",
            XRAY_PORT=str(self.port),
            PYTHONUNBUFFERED="1",
        )
        self.workdir.mkdir(parents=True, exist_ok=True)
        with (self.workdir / f"api-{self.port}.log").open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "xray.api"],
                cwd=self.workdir,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.process.poll() is None, "the API exited at start-up"
            try:
                if httpx.get(f"{self.base_url}/readyz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise AssertionError("the API did not become ready")

    def kill(self) -> None:
        """kill -9: no shutdown, no goodbye."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def stored(database_url: str, pipeline: str) -> tuple[int, int, int]:
    """(runs, steps, decisions) of ``pipeline`` in the database, counted there."""
    queries = [
        "SELECT count(*) FROM runs WHERE pipeline = '{p}'",
        "SELECT count(*) FROM steps WHERE pipeline = '{p}'",
        "SELECT count(*) FROM decisions WHERE step_id IN (SELECT id FROM steps WHERE pipeline = '{p}')",
    ]
    sql = [q.format(p=pipeline.replace("'", "''")) for q in queries]
    if database_url.startswith("sqlite"):
        path = database_url.split(":///", 1)[1]
        with sqlite3.connect(path) as conn:
            a, b, c = (conn.execute(q).fetchone()[0] for q in sql)
            return int(a), int(b), int(c)

    async def count() -> tuple[int, int, int]:
        import asyncpg

        dsn = database_url.replace("postgresql+asyncpg://", "postgresql://")
        conn = await asyncpg.connect(dsn)
        try:
            a, b, c = [await conn.fetchval(q) for q in sql]
            return int(a), int(b), int(c)
        finally:
            await conn.close()

    return asyncio.run(count())


def pipeline_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "tests.reliability._pipeline", *args]


def pipeline_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    env.update(extra)
    return env
