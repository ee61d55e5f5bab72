"""A server in a child process: start it, wait until it answers, stop it with SIGTERM.

``xray demo`` runs the API this way, and so do the tests that need a real server (the
API as a user starts it, the container image's command).

Example:
    >>> server = start_server_process(
    ...     [sys.executable, "-m", "xray.api", "--port", "8123"],
    ...     base_url="http://127.0.0.1:8123",
    ...     log_path=Path("api.log"),
    ... )  # doctest: +SKIP
    >>> server.stop()  # doctest: +SKIP
    0
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ServerProcess", "ServerStartError", "start_server_process"]


class ServerStartError(RuntimeError):
    """The server exited or did not become ready; the message ends with its log."""


@dataclass
class ServerProcess:
    """A started server: its process, where it listens and where its output goes."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path
    killed: bool = False  # set by ``stop`` when SIGTERM was not enough

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 15) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM (as Docker, Kubernetes and Ctrl-C stop a server), SIGKILL after
        ``timeout`` seconds; the exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.killed = True
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def kill(self) -> None:
        if self.process.poll() is None:
            self.killed = True
            self.process.kill()
            self.process.wait()


def start_server_process(
    argv: Sequence[str],
    *,
    base_url: str,
    log_path: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    ready_path: str = "/readyz",
    timeout: float = 60.0,
    own_session: bool = False,
) -> ServerProcess:
    """Start ``argv`` with its output in ``log_path``; return once ``ready_path`` answers 200.

    ``own_session`` puts the child in its own session, so a Ctrl-C in the terminal reaches
    only the parent, which then stops the server itself. Raises ``ServerStartError`` (with
    the server stopped) when it exits first or is not ready within ``timeout`` seconds.
    """
    import httpx

    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv),
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=own_session,
        )
    server = ServerProcess(process, base_url.rstrip("/"), log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise ServerStartError(
                f"{_name(argv)} exited with code {process.returncode} while starting; "
                f"its log ({log_path}) ends with:\n{server.log_tail(40)}"
            )
        try:
            if httpx.get(f"{server.base_url}{ready_path}", timeout=2.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise ServerStartError(
                f"{_name(argv)} was not ready after {timeout:.0f}s; "
                f"its log ({log_path}) ends with:\n{server.log_tail(40)}"
            )
        time.sleep(0.1)


def _name(argv: Sequence[str]) -> str:
    """``python -m xray.api`` rather than the interpreter's full path."""
    words = list(argv)
    if words and words[0] == sys.executable:
        words[0] = "python"
    return " ".join(words[:3]) if words else "the server"
