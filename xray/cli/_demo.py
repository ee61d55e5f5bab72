"""``xray demo``: start the API on SQLite, record the demo pipelines, say where to look.

The parts live beside it: the pipelines and ``run_demos`` in ``xray.demo``, the server
process in ``_supervisor``, the bar in ``_progress``, the printed walkthrough in
``_walkthrough``. This module turns the command's arguments into those calls.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import signal
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from xray.cli._errors import EXIT_ERROR, CLIError
from xray.cli._progress import ProgressBar
from xray.cli._supervisor import ServerProcess, ServerStartError, start_server_process
from xray.cli._walkthrough import DEFAULT_PORT, print_walkthrough
from xray.demo import DemoSummary, run_demos

__all__ = ["DEFAULT_PORT", "cmd_demo", "start_api_server"]


def port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def start_api_server(host: str, port: int, database_url: str, workdir: Path) -> ServerProcess:
    """``python -m xray.api`` on ``host:port``, its log in ``workdir/api.log``."""
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "XRAY_HOST", "XRAY_PORT")
    }
    env["PYTHONUNBUFFERED"] = "1"
    argv = [sys.executable, "-m", "xray.api", "--host", host, "--port", str(port)]
    argv += ["--database-url", database_url]
    try:
        return start_server_process(
            argv,
            base_url=f"http://{host}:{port}",
            log_path=workdir / "api.log",
            env=env,
            own_session=True,  # Ctrl-C reaches xray demo, which stops the server
        )
    except ServerStartError as exc:
        raise CLIError(f"the API server did not start: {exc}") from None


def _database_url(args: argparse.Namespace, workdir: Path) -> str:
    if args.database_url:
        return str(args.database_url)
    path = (workdir / "xray.db").resolve()
    # A fresh database each time, so the printed commands show exactly this demo's runs.
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").unlink()
    return f"sqlite+aiosqlite:///{path}"


def _describe(database_url: str) -> str:
    """``SQLite: .xray-demo/xray.db`` (relative when under the cwd), or the URL's scheme."""
    if not database_url.startswith("sqlite"):
        return f"database: {database_url.split('://', 1)[0]}"
    path = Path(database_url.split(":///", 1)[-1])
    with contextlib.suppress(ValueError):
        path = path.relative_to(Path.cwd())
    return f"SQLite: {path}"


def _choose_port(args: argparse.Namespace, err: TextIO) -> int:
    if args.port is not None:
        if args.port != 0 and not port_is_free(args.host, args.port):
            raise CLIError(
                f"port {args.port} on {args.host} is already in use; stop what listens there, "
                "or pass another --port (--port 0 picks a free one)"
            )
        return args.port or _free_port(args.host)
    if port_is_free(args.host, DEFAULT_PORT):
        return DEFAULT_PORT
    port = _free_port(args.host)
    err.write(f"port {DEFAULT_PORT} is already in use on {args.host}; using port {port} instead\n")
    return port


@contextlib.contextmanager
def _terminate_on_sigterm() -> Iterator[None]:
    """Turn SIGTERM into KeyboardInterrupt so the server is stopped either way."""

    def handler(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (main() called from a worker): nothing to do
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _load_and_report(
    args: argparse.Namespace,
    base_url: str,
    out: TextIO,
    err: TextIO,
    *,
    api_key: str | None,
    served: bool,
    default_url: bool,
) -> None:
    """Run the demo pipelines into ``base_url``, prove they arrived, print where to look."""
    summary = run_demos(
        base_url,
        api_key=api_key,
        runs_per_pipeline=args.runs,
        seed=args.seed,
        progress=ProgressBar(err),
    )
    _check_loaded(summary, api_key)
    if args.json:
        out.write(json.dumps(summary.to_dict(), indent=2) + "\n")
    else:
        print_walkthrough(summary, out, served=served, default_url=default_url)


def cmd_demo(args: argparse.Namespace, out: TextIO, err: TextIO, *, api_key: str | None) -> int:
    if args.url:
        _check_reachable(args.url, api_key)
        _load_and_report(
            args,
            args.url,
            out,
            err,
            api_key=api_key,
            served=False,
            default_url=args.url.rstrip("/") == f"http://127.0.0.1:{DEFAULT_PORT}",
        )
        return 0

    if importlib.util.find_spec("fastapi") is None or importlib.util.find_spec("uvicorn") is None:
        raise CLIError(
            "xray demo starts the API server, which is not installed: "
            "install the api extra (pip install 'xray[api]')"
        )
    workdir = Path(args.dir)
    workdir.mkdir(parents=True, exist_ok=True)
    port = _choose_port(args, err)
    database_url = _database_url(args, workdir)
    err.write(f"Starting the X-Ray API on http://{args.host}:{port} ({_describe(database_url)})\n")
    with _terminate_on_sigterm():
        server = start_api_server(args.host, port, database_url, workdir)
        try:
            err.write("Running the demo pipelines\n")  # the bar then counts the runs
            _load_and_report(
                args,
                server.base_url,
                out,
                err,
                api_key=api_key,
                served=not args.no_serve,
                default_url=port == DEFAULT_PORT and args.host == "127.0.0.1",
            )
            if args.no_serve:
                return 0
            while server.running():
                time.sleep(0.5)
            raise CLIError(
                f"the API server stopped unexpectedly (exit code {server.process.returncode}); "
                f"its log ({server.log_path}) ends with:\n{server.log_tail()}",
                exit_code=EXIT_ERROR,
            )
        except KeyboardInterrupt:
            err.write("\nStopping the X-Ray API...\n")
            return 0
        finally:
            server.stop()


def _check_reachable(base_url: str, api_key: str | None) -> None:
    """Fail before running anything when the server is down or refuses our key."""
    from xray.cli._http import ApiClient

    with ApiClient(base_url, api_key=api_key) as api:
        api.get("/runs", {"limit": 1})


def _check_loaded(summary: DemoSummary, api_key: str | None) -> None:
    """Prove the demo data reached the server: the SDK fails open, so ask the API."""
    from xray.cli._http import ApiClient

    with ApiClient(summary.base_url, api_key=api_key) as api:
        missing = 0
        for pipeline, count in summary.counts().items():
            # Newest first: this demo's runs are the latest of their pipeline.
            items, _ = api.collect("/runs", {"pipeline": pipeline}, limit=min(500, count + 50))
            stored = {str(item.get("id")) for item in items}
            missing += sum(1 for run_id in summary.run_ids(pipeline) if run_id not in stored)
    if missing:
        raise CLIError(
            f"{missing} of {len(summary.runs)} demo runs did not reach the server at {summary.base_url}; "
            f"SDK stats: {summary.sdk_stats or 'unavailable'}"
        )
