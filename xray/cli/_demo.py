"""``xray demo``: start the API on SQLite, load the example pipelines, say where to look.

``run_demos`` is also the function tests and the dashboard's browser tests call to load
demo data into a server they started; its signature is stable.

Example:
    >>> summary = run_demos("http://127.0.0.1:8000", runs_per_pipeline=3)  # doctest: +SKIP
    >>> summary.bad_run_id  # the laptop stand whose competitor came out as a phone case
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, TextIO

from xray.cli._errors import EXIT_ERROR, CLIError

__all__ = [
    "DEMO_DIR",
    "DemoRun",
    "DemoSummary",
    "cmd_demo",
    "find_examples_dir",
    "load_example",
    "run_demos",
]

DEMO_DIR = ".xray-demo"
DEFAULT_PORT = 8000
# A laptop-stand run that picks a laptop stand: the "good" side of the walkthrough's diff.
GOOD_LAPTOP_STAND_SEED = 1

ProgressCallback = Callable[[int, int, str], None]


@dataclass(frozen=True)
class DemoRun:
    """One run the demo recorded: which pipeline, about what, with what outcome."""

    pipeline: str
    run_id: str
    subject: str
    outcome: str
    ok: bool
    seed: int


@dataclass(frozen=True)
class DemoSummary:
    """What ``run_demos`` recorded, with the run ids the walkthrough needs.

    ``bad_run_id`` is the laptop stand whose competitor came out as the phone case
    ``bad_candidate_key``; ``good_run_id`` is a run for the same product that chose a
    laptop stand; ``wrong_competitor_run_ids`` lists every competitor-selection run whose
    choice is from another category (the seeded one and any the random seeds produced).
    """

    base_url: str
    runs: tuple[DemoRun, ...]
    bad_run_id: str
    good_run_id: str
    product_asin: str
    bad_candidate_key: str
    wrong_competitor_run_ids: tuple[str, ...]
    sdk_stats: dict[str, Any] = field(default_factory=dict)

    def run_ids(self, pipeline: str | None = None) -> list[str]:
        """The recorded run ids, optionally of one pipeline, in the order they ran."""
        return [r.run_id for r in self.runs if pipeline is None or r.pipeline == pipeline]

    def counts(self) -> dict[str, int]:
        """Runs per pipeline."""
        return dict(Counter(r.pipeline for r in self.runs))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# --- the examples ---------------------------------------------------------------------


def find_examples_dir() -> Path:
    """Where the example pipelines are: ``examples/`` of the source checkout.

    They are scripts for people to read and copy, so they live next to the package rather
    than inside it; ``xray demo`` therefore runs from a clone (``make run``), or from any
    install whose package directory or its parent holds ``examples/``.
    """
    import xray

    package = Path(xray.__file__).resolve().parent
    for candidate in (package / "examples", package.parent / "examples"):
        if (candidate / "competitor_selection.py").is_file():
            return candidate
    raise CLIError(
        "xray demo runs the example pipelines of the source checkout, and none were found "
        f"(looked in {package / 'examples'} and {package.parent / 'examples'}); "
        "run it from a clone of the repository (make run)"
    )


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>.py`` as a module (they are scripts, not a package)."""
    module_name = f"xray_examples.{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = find_examples_dir() / f"{name}.py"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"cannot load example {path}")
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the file executes.
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module


def run_demos(
    base_url: str,
    *,
    api_key: str | None = None,
    runs_per_pipeline: int = 12,
    seed: int = 1,
    progress: ProgressCallback | None = None,
    flush_timeout: float = 60.0,
) -> DemoSummary:
    """Run the four example pipelines against the API at ``base_url`` and flush.

    Records ``4 * runs_per_pipeline + 2`` runs: ``runs_per_pipeline`` of each pipeline
    plus two laptop-stand competitor runs, the seeded bug (a phone case chosen) and a good
    one to compare it with. Deterministic for a given ``seed``.
    """
    if runs_per_pipeline < 1:
        raise ValueError("runs_per_pipeline must be at least 1")
    from xray import XRayClient

    competitors = load_example("competitor_selection")
    listings = load_example("listing_optimisation")
    categories = load_example("product_categorisation")
    support = load_example("support_answer")

    client = XRayClient(
        base_url=base_url,
        api_key=api_key,
        enabled=True,
        sample_rate=1.0,
        buffer_size=100_000,
        flush_interval=0.5,
        # Leave the process's default client alone: a test or a notebook calling this
        # keeps its own X-Ray configuration.
        set_default=False,
    )
    rng = random.Random(seed)
    catalogue = competitors.build_catalogue()
    search_log = listings.build_search_log()
    taxonomy = categories.build_taxonomy()
    laptop_stand = competitors.PRODUCTS[0]

    jobs: list[tuple[str, Callable[[], DemoRun]]] = []

    def competitor_job(product: dict[str, Any], run_seed: int) -> Callable[[], DemoRun]:
        def job() -> DemoRun:
            result = competitors.find_competitor(client, product, catalogue, seed=run_seed)
            chosen = result.competitor["title"] if result.competitor else "(none)"
            return DemoRun(
                competitors.PIPELINE,
                result.run_id,
                product["asin"],
                chosen,
                result.same_category,
                run_seed,
            )

        return job

    def listing_job(listing: dict[str, Any], run_seed: int) -> Callable[[], DemoRun]:
        def job() -> DemoRun:
            result = listings.optimise_listing(client, listing, search_log, seed=run_seed)
            return DemoRun(
                listings.PIPELINE,
                result.run_id,
                listing["asin"],
                result.title or "(unchanged)",
                result.title is not None,
                run_seed,
            )

        return job

    def categorisation_job(product: dict[str, Any], run_seed: int) -> Callable[[], DemoRun]:
        def job() -> DemoRun:
            result = categories.categorise(client, product, taxonomy, seed=run_seed)
            where = result.category["path"] if result.category else "(human review)"
            return DemoRun(
                categories.PIPELINE, result.run_id, product["sku"], where, result.correct, run_seed
            )

        return job

    def support_job(index: int) -> Callable[[], DemoRun]:
        ticket = support.ticket(index, rng)

        def job() -> DemoRun:
            result = support.answer_ticket(client, help_centre, **ticket)
            policy = result.answer["policy"]
            return DemoRun(
                support.PIPELINE, result.run_id, ticket["ticket"], policy, result.correct, 0
            )

        return job

    help_centre = support.build_help_centre()
    competitor_jobs = [
        competitor_job(
            competitors.PRODUCTS[i % len(competitors.PRODUCTS)], rng.randrange(1_000_000)
        )
        for i in range(runs_per_pipeline)
    ]
    competitor_jobs.insert(0, competitor_job(laptop_stand, GOOD_LAPTOP_STAND_SEED))
    competitor_jobs.insert(
        len(competitor_jobs) // 2 + 1, competitor_job(laptop_stand, competitors.BUG_SEED)
    )
    jobs += [(competitors.PIPELINE, j) for j in competitor_jobs]
    jobs += [
        (
            listings.PIPELINE,
            listing_job(listings.LISTINGS[i % len(listings.LISTINGS)], rng.randrange(1_000_000)),
        )
        for i in range(runs_per_pipeline)
    ]
    jobs += [
        (
            categories.PIPELINE,
            categorisation_job(categories.make_product(taxonomy, rng), rng.randrange(1_000_000)),
        )
        for _ in range(runs_per_pipeline)
    ]
    jobs += [(support.PIPELINE, support_job(i)) for i in range(runs_per_pipeline)]

    runs: list[DemoRun] = []
    try:
        for done, (label, job) in enumerate(jobs):
            if progress:
                progress(done, len(jobs), label)
            runs.append(job())
        if progress:
            progress(len(jobs), len(jobs), "sending")
        client.flush(timeout=flush_timeout)
        stats = _stats(client)
    finally:
        client.shutdown(timeout=5)
    if progress:
        progress(len(jobs), len(jobs), "done")

    laptop_runs = [
        r for r in runs if r.pipeline == competitors.PIPELINE and r.subject == laptop_stand["asin"]
    ]
    bad = next(r for r in laptop_runs if r.seed == competitors.BUG_SEED)
    good = next(r for r in laptop_runs if r.seed == GOOD_LAPTOP_STAND_SEED)
    return DemoSummary(
        base_url=base_url,
        runs=tuple(runs),
        bad_run_id=bad.run_id,
        good_run_id=good.run_id,
        product_asin=laptop_stand["asin"],
        bad_candidate_key=competitors.PHONE_CASE_ASIN,
        wrong_competitor_run_ids=tuple(
            r.run_id for r in runs if r.pipeline == competitors.PIPELINE and not r.ok
        ),
        sdk_stats=stats,
    )


def _stats(client: Any) -> dict[str, Any]:
    try:
        stats = client.stats()
    except Exception:
        return {}
    if isinstance(stats, dict):
        return stats
    if hasattr(stats, "_asdict"):
        return dict(stats._asdict())
    if hasattr(stats, "__dataclass_fields__"):
        return asdict(stats)
    return {"stats": str(stats)}


def _lost(stats: dict[str, Any]) -> int:
    dropped = stats.get("dropped", 0)
    if isinstance(dropped, dict):
        return sum(int(v) for v in dropped.values())
    try:
        return int(dropped)
    except (TypeError, ValueError):
        return 0


# --- the local server -----------------------------------------------------------------


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


@dataclass
class LocalServer:
    """``python -m xray.api`` in its own session, so Ctrl-C reaches us and we stop it."""

    process: subprocess.Popen[bytes]
    base_url: str
    log_path: Path

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        if self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_server(
    host: str, port: int, database_url: str, workdir: Path, *, timeout: float = 60.0
) -> LocalServer:
    import httpx

    workdir.mkdir(parents=True, exist_ok=True)
    log_path = workdir / "api.log"
    env = {
        k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "XRAY_HOST", "XRAY_PORT")
    }
    env["PYTHONUNBUFFERED"] = "1"
    command = [
        sys.executable,
        "-m",
        "xray.api",
        "--host",
        host,
        "--port",
        str(port),
        "--database-url",
        database_url,
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    server = LocalServer(process, f"http://{host}:{port}", log_path)
    deadline = time.monotonic() + timeout
    while True:
        if process.poll() is not None:
            raise CLIError(
                f"the API server exited with code {process.returncode} while starting; "
                f"its log ({log_path}) ends with:\n{server.log_tail()}"
            )
        try:
            if httpx.get(f"{server.base_url}/readyz", timeout=1.0).status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            server.stop()
            raise CLIError(f"the API server did not become ready in {timeout:.0f}s; see {log_path}")
        time.sleep(0.1)


# --- progress -------------------------------------------------------------------------


class ProgressBar:
    """A one-line bar on a terminal; a line per pipeline when the output is a file."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.tty = stream.isatty()
        self.last_label = ""

    def __call__(self, done: int, total: int, label: str) -> None:
        if self.tty:
            filled = int(self.width * done / max(total, 1))
            bar = "█" * filled + "·" * (self.width - filled)
            self.stream.write(f"\r  [{bar}] {done:>3}/{total}  {label:<24}")
            if label == "done":
                self.stream.write("\n")
        elif label != self.last_label:
            self.stream.write(f"  {done:>3}/{total}  {label}\n")
        self.last_label = label
        self.stream.flush()


# --- the command ----------------------------------------------------------------------


def _commands(summary: DemoSummary) -> list[tuple[str, str]]:
    """The walkthrough's questions and the commands that answer them, in order."""
    return [
        (
            "1. Which competitor did each run for the laptop stand choose?",
            f"xray runs --pipeline competitor-selection --metadata product_asin={summary.product_asin}",
        ),
        (
            "2. The phone-case run as a funnel: counts, params and the LLM's reasoning per step",
            f"xray run {summary.bad_run_id}",
        ),
        (
            "3. The phone case's path through that run, step by step",
            f"xray candidate {summary.bad_candidate_key} --run {summary.bad_run_id}",
        ),
        (
            "Compare it with a run for the same product that went right",
            f"xray diff {summary.good_run_id} {summary.bad_run_id}",
        ),
        (
            "Across every pipeline: filter steps that eliminated more than 90%",
            "xray steps --type filter --min-elimination-rate 0.9",
        ),
        (
            "German customers get the US return policy: what sets their runs apart?",
            "xray groups support-answer --by metadata.locale",
        ),
    ]


def print_summary(summary: DemoSummary, out: TextIO, *, served: bool, default_url: bool) -> None:
    counts = ", ".join(f"{p} {n}" for p, n in summary.counts().items())
    out.write(f"\nRecorded {len(summary.runs)} runs ({counts}).\n")
    lost = _lost(summary.sdk_stats)
    if lost:
        out.write(f"warning: the SDK dropped {lost} events; see {summary.sdk_stats}\n")
    base = summary.base_url
    out.write(f"\n  Dashboard        {base}/\n")
    out.write(f"  The bad run      {base}/#/runs/{summary.bad_run_id}\n")
    out.write(
        f"  Its phone case   {base}/#/candidates/{summary.bad_candidate_key}?run={summary.bad_run_id}\n"
    )
    out.write(
        f"  Good vs bad      {base}/#/compare?a={summary.good_run_id}&b={summary.bad_run_id}\n"
    )
    out.write(f"  API docs         {base}/docs\n\n")
    out.write("A seller reports that the competitor X-Ray's demo pipeline found for their laptop\n")
    out.write("stand is a phone case. Find out why, from another terminal:\n\n")
    if not default_url:
        out.write(f"  # The CLI talks to port {DEFAULT_PORT} by default; point it at this server\n")
        out.write(f"  export XRAY_BASE_URL={summary.base_url}\n\n")
    commands = _commands(summary)
    for question, command in commands[:3]:
        out.write(f"  # {question}\n  {command}\n\n")
    out.write("Then:\n\n")
    for question, command in commands[3:]:
        out.write(f"  # {question}\n  {command}\n\n")
    if served:
        out.write("The server keeps running; press Ctrl-C to stop it.\n")
    out.flush()


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
        print_summary(summary, out, served=served, default_url=default_url)


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
            "xray demo starts the API server, which is not installed: install the [api] extra (pip install '.[api]' in the X-Ray checkout)"
        )
    workdir = Path(args.dir)
    port = _choose_port(args, err)
    database_url = _database_url(args, workdir)
    err.write(f"Starting the X-Ray API on http://{args.host}:{port} ({_describe(database_url)})\n")
    with _terminate_on_sigterm():
        server = start_server(args.host, port, database_url, workdir)
        try:
            err.write(f"Running the demo pipelines ({4 * args.runs + 2} runs)\n")
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
            while server.process.poll() is None:
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
