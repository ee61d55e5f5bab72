"""``xray demo`` as ``make run`` starts it: its own server, the data, the printed commands."""

from __future__ import annotations

import argparse
import io
import json
import os
import signal
import socket
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from tests._servers import api_server
from tests.cli.conftest import run_cli, run_xray_process, xray_command
from tests.conftest import free_port
from xray.cli import _demo

pytestmark = pytest.mark.slow


def printed_commands(out: str) -> list[list[str]]:
    return [line.split()[1:] for line in out.splitlines() if line.startswith("  xray ")]


def test_demo_once_starts_loads_prints_and_stops(tmp_path: Path) -> None:
    port = free_port()
    result = run_xray_process(
        "demo", "--no-serve", "--port", str(port), "--runs", "1", "--dir", str(tmp_path / "d")
    )
    assert result.code == 0, result.err
    assert f"Dashboard        http://127.0.0.1:{port}/" in result.out
    assert f"export XRAY_BASE_URL=http://127.0.0.1:{port}" in result.out
    assert (
        "Recorded 6 runs (competitor-selection 3, listing-optimisation 1, "
        "product-categorisation 1, support-answer 1)" in result.out
    )
    commands = printed_commands(result.out)
    assert [c[0] for c in commands] == ["runs", "run", "candidate", "diff", "steps", "groups"]
    assert "6/6  done" in result.err  # the progress bar, one line per pipeline when piped
    assert (tmp_path / "d" / "xray.db").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)


def test_demo_serves_until_ctrl_c_and_its_printed_commands_answer(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    stderr_path = tmp_path / "demo.err"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            [
                *xray_command(),
                "demo",
                "--port",
                str(port),
                "--runs",
                "1",
                "--dir",
                str(tmp_path / "d"),
            ],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env=env,
        )
    ready = threading.Event()
    lines: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line)
            if "press Ctrl-C" in line:
                ready.set()
        ready.set()  # EOF: the demo ended early; the assertion below says why

    threading.Thread(target=read, daemon=True).start()
    try:
        assert ready.wait(timeout=120), "xray demo printed nothing in 120 s"
        out = "".join(lines)
        assert "press Ctrl-C" in out, (out, stderr_path.read_text())
        url = f"http://127.0.0.1:{port}"
        for command in printed_commands(out):
            answer = run_cli(*command, url=url)
            assert answer.code == 0, (command, answer.err)
            assert answer.out.strip()
        assert f"Dashboard        {url}/" in out
        assert httpx.get(f"{url}/", timeout=5).status_code == 200  # the dashboard it points to
        process.send_signal(signal.SIGINT)
        code = process.wait(timeout=30)
    finally:
        if process.poll() is None:
            # SIGTERM first: xray demo stops its server on it; SIGKILL would orphan the server.
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    assert code == 0
    assert "Stopping the X-Ray API" in stderr_path.read_text()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_demo_on_a_port_in_use_fails_with_a_clear_message(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli("demo", "--no-serve", "--port", str(port), "--dir", str(tmp_path / "d"))
    assert result.code == 1
    assert f"port {port} on 127.0.0.1 is already in use" in result.err
    assert "Traceback" not in result.err


def test_demo_moves_off_the_default_port_when_it_is_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        monkeypatch.setattr(_demo, "DEFAULT_PORT", busy.getsockname()[1])
        err = io.StringIO()
        chosen = _demo._choose_port(argparse.Namespace(host="127.0.0.1", port=None), err)
    assert chosen != _demo.DEFAULT_PORT
    assert (
        f"port {_demo.DEFAULT_PORT} is already in use on 127.0.0.1; using port {chosen} instead"
        in err.getvalue()
    )


def test_demo_into_a_running_server_prints_its_summary_as_json(tmp_path: Path) -> None:
    with api_server(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", workdir=tmp_path) as server:
        result = run_cli("demo", "--runs", "1", "--seed", "3", "--json", url=server.base_url)
        assert result.code == 0, result.err
        summary = json.loads(result.out)
        assert summary["base_url"] == server.base_url
        assert len(summary["runs"]) == 6
        bad = httpx.get(f"{server.base_url}/runs/{summary['bad_run_id']}", timeout=5).json()
        assert bad["output"]["competitor"]["asin"] == summary["bad_candidate_key"]


def test_demo_into_a_server_that_is_down_is_one_line() -> None:
    result = run_cli("demo", "--runs", "1", url=f"http://127.0.0.1:{free_port()}")
    assert result.code != 0
    assert result.err.strip().startswith("xray: ")
    assert "Traceback" not in result.err
