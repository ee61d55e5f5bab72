"""The server supervisor that ``xray demo`` and the tests start servers with."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import free_port
from xray.cli._supervisor import ServerStartError, start_server_process

pytestmark = pytest.mark.slow

# A tiny HTTP server answering 200 everywhere; IGNORE_TERM makes it ignore SIGTERM.
SERVER = """
import http.server, signal, sys
if sys.argv[2] == "IGNORE_TERM":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"ok")
    def log_message(self, *args):
        pass
print("listening", flush=True)
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Ok).serve_forever()
"""


def test_start_waits_for_ready_and_stop_ends_it_with_sigterm(tmp_path: Path) -> None:
    port = free_port()
    server = start_server_process(
        [sys.executable, "-c", SERVER, str(port), "-"],
        base_url=f"http://127.0.0.1:{port}/",
        log_path=tmp_path / "server.log",
    )
    assert httpx.get(f"{server.base_url}/readyz", timeout=5).text == "ok"
    assert server.stop() == -signal.SIGTERM
    assert not server.killed and not server.running()
    assert "listening" in server.log()


def test_a_server_ignoring_sigterm_is_killed_after_the_timeout(tmp_path: Path) -> None:
    port = free_port()
    server = start_server_process(
        [sys.executable, "-c", SERVER, str(port), "IGNORE_TERM"],
        base_url=f"http://127.0.0.1:{port}",
        log_path=tmp_path / "server.log",
    )
    assert server.stop(timeout=1) == -signal.SIGKILL
    assert server.killed


def test_a_server_exiting_while_starting_is_reported_with_its_log(tmp_path: Path) -> None:
    with pytest.raises(ServerStartError) as failure:
        start_server_process(
            [sys.executable, "-c", "print('no database here'); raise SystemExit(3)"],
            base_url=f"http://127.0.0.1:{free_port()}",
            log_path=tmp_path / "server.log",
        )
    message = str(failure.value)
    assert "exited with code 3 while starting" in message
    assert "no database here" in message
    assert str(tmp_path / "server.log") in message


def test_a_server_never_ready_is_stopped_and_reported(tmp_path: Path) -> None:
    # Listens nowhere: never ready within the timeout.
    argv = [sys.executable, "-c", "import time; print('stuck', flush=True); time.sleep(60)"]
    with pytest.raises(ServerStartError, match="was not ready after 1s") as failure:
        start_server_process(
            argv,
            base_url=f"http://127.0.0.1:{free_port()}",
            log_path=tmp_path / "server.log",
            timeout=1,
        )
    assert "stuck" in str(failure.value)
