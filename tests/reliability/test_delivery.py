"""Delivery end to end: every recorded step reaches the database, through bursts, API
outages, API kills, a killed pipeline process and a full or unusable spool.

Real API (``python -m xray.api``) on PostgreSQL and SQLite, real processes and real
``kill -9``, all on 127.0.0.1; each scenario is bounded by timeouts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from tests.reliability._pipeline import DECISIONS_PER_RUN, STEPS_PER_RUN
from tests.reliability._servers import API, pipeline_command, pipeline_env, stored
from xray.sdk import XRayClient

pytestmark = pytest.mark.slow

# The `sdk:` block of the architecture's configuration example, as a user copies it.
EXAMPLE_SDK_BLOCK = """\
sdk:
  base_url: {base_url}
  api_key: ${{XRAY_API_KEY:-}}
  buffer_size: 1000
  flush_interval: 5.0
"""


@pytest.fixture(params=["postgres", "sqlite"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'xray.db'}"
    url: str = request.getfixturevalue("postgres_database")
    return url


@pytest.fixture
def api(database_url: str, tmp_path: Path) -> Iterator[API]:
    server = API(database_url, free_port(), tmp_path / "api").start()
    try:
        yield server
    finally:
        server.stop()


def expected(runs: int) -> tuple[int, int, int]:
    return runs, runs * STEPS_PER_RUN, runs * DECISIONS_PER_RUN


def events(output: str) -> dict[str, dict[str, Any]]:
    found = {}
    for line in output.splitlines():
        if line.startswith("{"):
            data = json.loads(line)
            found[data["event"]] = data
    return found


def run_pipeline(env: dict[str, str], *args: str, timeout: float = 400) -> dict[str, Any]:
    result = subprocess.run(
        pipeline_command(*args), env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    return events(result.stdout)


def wait_stored(api: API, pipeline: str, want: tuple[int, int, int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while stored(api.database_url, pipeline) != want and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stored(api.database_url, pipeline) == want


# -- bursts ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("database_url", "settings"),
    [
        ("postgres", "defaults"),
        ("postgres", "architecture_example"),
        ("sqlite", "architecture_example"),
    ],
    indirect=["database_url"],
)
def test_a_burst_of_2000_runs_stores_every_run_step_and_decision(
    api: API, settings: str, tmp_path: Path
) -> None:
    pipeline = f"burst-{uuid.uuid4().hex[:8]}"
    env = pipeline_env(XRAY_SPOOL_DIR=str(tmp_path / "spool"))
    if settings == "defaults":
        env["XRAY_BASE_URL"] = api.base_url
    else:
        config = tmp_path / "xray.config.yaml"
        config.write_text(EXAMPLE_SDK_BLOCK.format(base_url=api.base_url))
        env["XRAY_CONFIG"] = str(config)
    # SQLite stores one request at a time: on a busy machine this takes minutes.
    out = run_pipeline(
        env, "--runs", "2000", "--pipeline", pipeline, "--flush", "900", timeout=1000
    )
    stats = out["flushed"]["stats"]
    assert out["flushed"]["done"], stats
    assert stats["dropped"] == 0 and stats["sent"] == 2000 * (STEPS_PER_RUN + 2)
    assert stored(api.database_url, pipeline) == expected(2000)


# -- the API goes away -------------------------------------------------------------------


def _stream_with(
    api: API, tmp_path: Path, runs: int, every: float, pipeline: str
) -> subprocess.Popen[str]:
    env = pipeline_env(XRAY_BASE_URL=api.base_url, XRAY_SPOOL_DIR=str(tmp_path / "spool"))
    args = ["--runs", str(runs), "--every", str(every), "--pipeline", pipeline, "--flush", "240"]
    return subprocess.Popen(
        pipeline_command(*args), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def _finish(process: subprocess.Popen[str]) -> dict[str, Any]:
    stdout, stderr = process.communicate(timeout=400)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr, stderr
    return events(stdout)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_60_second_api_outage_mid_stream_loses_nothing(api: API, tmp_path: Path) -> None:
    pipeline = f"outage-{uuid.uuid4().hex[:8]}"
    stream = _stream_with(api, tmp_path, 400, 0.2, pipeline)  # about 80 s of runs
    time.sleep(10)
    api.stop()
    time.sleep(60)
    api.start()
    out = _finish(stream)
    stats = out["flushed"]["stats"]
    assert out["flushed"]["done"] and stats["dropped"] == 0, stats
    assert stats["retried"] > 0  # the outage was seen
    assert stored(api.database_url, pipeline) == expected(400)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_three_kill_9_restarts_of_the_api_lose_nothing(api: API, tmp_path: Path) -> None:
    pipeline = f"kills-{uuid.uuid4().hex[:8]}"
    stream = _stream_with(api, tmp_path, 200, 0.15, pipeline)  # about 35 s of runs
    for down in (3, 6, 11):
        time.sleep(4)
        api.kill()
        time.sleep(down)
        api.start()
    out = _finish(stream)
    stats = out["flushed"]["stats"]
    assert out["flushed"]["done"] and stats["dropped"] == 0, stats
    assert stored(api.database_url, pipeline) == expected(200)


# -- the pipeline process dies ----------------------------------------------------------


def _record_then_kill(env: dict[str, str], runs: int, *extra: str) -> dict[str, Any]:
    """Record with the API away, wait until all of it is spooled, then kill -9."""
    process = subprocess.Popen(
        pipeline_command("--runs", str(runs), "--pipeline", "killed", *extra),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    seen: dict[str, Any] = {}
    wanted = "spooled" if "--wait-spooled" in extra else "recorded"
    timer = threading.Timer(180, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            if line.startswith("{"):
                data = json.loads(line)
                seen[data["event"]] = data
                if data["event"] == wanted:
                    break
    finally:
        timer.cancel()
    process.send_signal(signal.SIGKILL)
    process.wait(10)
    assert wanted in seen, process.stderr.read() if process.stderr else ""
    return seen[wanted]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_pipeline_killed_before_sending_is_delivered_by_the_next_process(
    database_url: str, tmp_path: Path
) -> None:
    api = API(database_url, free_port(), tmp_path / "api")  # not started: away
    spool = tmp_path / "spool"
    env = pipeline_env(XRAY_BASE_URL=api.base_url, XRAY_SPOOL_DIR=str(spool))
    spooled = _record_then_kill(env, 50, "--wait-spooled")
    assert spooled["stats"]["sent"] == 0 and spooled["stats"]["dropped"] == 0
    assert spooled["stats"]["spooled"] == 50 * (STEPS_PER_RUN + 2)
    files = sorted(spool.glob("*.xray"))
    assert files and stat_mode(spool) == 0o700
    assert {stat_mode(f) for f in files} == {0o600}
    api.start()
    try:
        out = run_pipeline(env, "--runs", "0", "--flush", "0", "--linger", "120")
        assert out["lingered"]["stats"]["sent"] == 50 * (STEPS_PER_RUN + 2)
        assert stored(database_url, "killed") == expected(50)
        assert not list(spool.glob("*.xray"))
    finally:
        api.stop()


def stat_mode(path: Path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_xray_upload_sends_a_spool_and_a_second_upload_duplicates_nothing(
    database_url: str, tmp_path: Path
) -> None:
    api = API(database_url, free_port(), tmp_path / "api")
    spool = tmp_path / "spool"
    env = pipeline_env(XRAY_BASE_URL=api.base_url, XRAY_SPOOL_DIR=str(spool))
    _record_then_kill(env, 20, "--wait-spooled")
    copy = tmp_path / "copy"
    shutil.copytree(spool, copy)
    api.start()
    try:
        upload = [*pipeline_command()[:1], "-m", "xray.cli", "upload", "--url", api.base_url]
        for folder in (spool, copy):
            result = subprocess.run(
                [*upload, "--spool", str(folder)], env=env, capture_output=True, text=True
            )
            assert result.returncode == 0, result.stderr
            assert "uploaded" in result.stdout and "0 batch" not in result.stdout
            assert stored(database_url, "killed") == expected(20)  # upserts: one copy
    finally:
        api.stop()


# -- the spool is full or unusable ------------------------------------------------------


def _client(base_url: str, **settings: Any) -> XRayClient:
    return XRayClient(base_url=base_url, flush_interval=0.05, set_default=False, **settings)


def _record(client: XRayClient, runs: int) -> None:
    from tests.reliability._pipeline import one_run

    for i in range(runs):
        one_run(client, "spool", i)


def test_a_full_spool_drops_and_counts(tmp_path: Path) -> None:
    away = f"http://127.0.0.1:{free_port()}"
    client = _client(
        away, spool_dir=str(tmp_path / "spool"), max_spool_bytes=20_000, max_buffer_bytes=65_536
    )
    _record(client, 300)
    client.shutdown(2)
    stats = client.stats()
    recorded = 300 * (STEPS_PER_RUN + 2)
    assert stats["dropped_by_reason"].get("queue_full", 0) > 0
    assert stats["sent"] == 0 and stats["queued"] == 0
    assert stats["dropped"] + stats["spooled"] == recorded
    assert 0 < stats["spool_bytes"] <= 20_000


def test_an_unusable_spool_folder_falls_back_to_memory_and_counts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder would be")
    api = API(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", free_port(), tmp_path / "api")
    client = _client(api.base_url, spool_dir=str(blocker / "spool"))
    _record(client, 20)
    deadline = time.monotonic() + 30
    while client.stats()["spool_errors"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert client.stats()["spool_errors"] > 0
    assert "no usable spool" in caplog.text
    api.start()
    try:
        assert client.flush(60)
        assert client.stats()["dropped"] == 0
        assert stored(api.database_url, "spool") == expected(20)
    finally:
        client.shutdown(2)
        api.stop()


def _no_big_files() -> None:
    import resource

    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails (EFBIG)
    resource.setrlimit(resource.RLIMIT_FSIZE, (2048, 2048))


def test_a_spool_that_cannot_take_a_file_falls_back_to_memory_and_counts(
    tmp_path: Path,
) -> None:
    api = API(f"sqlite+aiosqlite:///{tmp_path / 'x.db'}", free_port(), tmp_path / "api")
    env = pipeline_env(XRAY_BASE_URL=api.base_url, XRAY_SPOOL_DIR=str(tmp_path / "spool"))
    process = subprocess.Popen(
        pipeline_command("--runs", "20", "--pipeline", "spool", "--flush", "120"),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_no_big_files,
    )
    try:
        time.sleep(8)  # recorded, failed to reach the API, failed to spool
        api.start()
        out = _finish(process)
    finally:
        api.stop()
    stats = out["flushed"]["stats"]
    assert out["flushed"]["done"] and stats["dropped"] == 0, stats
    assert stats["spool_errors"] > 0
    assert stored(api.database_url, "spool") == expected(20)


# -- serverless --------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_each_invocation_is_on_the_server_when_it_returns(api: API) -> None:
    from tests.reliability._pipeline import one_run

    client = XRayClient(base_url=api.base_url, flush_interval=60, set_default=False)

    @client.flush_after(timeout=10)
    def handler(event: int) -> str:
        one_run(client, "lambda", event)
        return "ok"

    assert handler(1) == "ok"
    assert stored(api.database_url, "lambda") == expected(1)
    with client.invocation(timeout=10):
        one_run(client, "lambda", 2)
    assert stored(api.database_url, "lambda") == expected(2)
    client.shutdown(2)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_frozen_function_spools_in_the_temporary_folder_and_loses_nothing(
    database_url: str, tmp_path: Path
) -> None:
    # A read-only home, as on AWS Lambda: only the temporary folder is writable.
    home = tmp_path / "readonly-home"
    home.write_text("")
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    api = API(database_url, free_port(), tmp_path / "api")
    env = pipeline_env(
        XRAY_BASE_URL=api.base_url, HOME=str(home), XDG_CACHE_HOME=str(home), TMPDIR=str(tmp)
    )
    recorded = _record_then_kill(env, 5, "--invocation", "1.0", "--flush", "0")
    # Each invocation ended with its batches on disk: nothing only in memory when frozen.
    assert recorded["stats"]["queued"] == 0 and recorded["stats"]["buffer_bytes"] == 0
    uid = os.getuid()
    assert list((tmp / f"xray-spool-{uid}").glob("*/*.xray"))
    api.start()
    try:
        result = subprocess.run(
            [*pipeline_command()[:1], "-m", "xray.cli", "upload"],
            env=env,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, result.stderr
        assert stored(database_url, "killed") == expected(5)
    finally:
        api.stop()
