"""The disk spool: private, atomic files, sent oldest first; bad files skipped, never fatal."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import pytest

from xray.sdk import XRayClient, step
from xray.sdk._batches import seal
from xray.sdk._spool import default_spool_dir, fallback_spool_dir, open_spool
from xray.sdk.testing import InMemoryTransport


@step(type="transform")
def touch(items: list[int]) -> list[int]:
    return items


def _batch_file(folder: Path, created: int, run_id: str) -> str:
    spool = open_spool(folder, 1 << 20)
    batch = seal([f'{{"id":"{run_id}"}}'.encode()], [], True, items=1, runs=1, created=created)
    name = f"{created:020d}-feedbeef-{created:010d}.xray"
    assert batch.body is not None
    spool.write(name, batch.header(), batch.body)
    return name


def _wait(predicate: Any, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert predicate()


def test_the_spool_folder_and_files_are_private_and_written_atomically(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    name = _batch_file(folder, 1, "r1")
    assert folder.stat().st_mode & 0o777 == 0o700
    assert (folder / name).stat().st_mode & 0o777 == 0o600
    assert sorted(p.name for p in folder.iterdir()) == [name]  # no temporary left behind
    os.chmod(folder, 0o755)
    open_spool(folder, 1 << 20)  # reopened: made private again
    assert folder.stat().st_mode & 0o777 == 0o700


def test_spooled_batches_are_sent_oldest_first_and_bad_files_are_skipped_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "spool"
    _batch_file(folder, 2_000, "second")
    _batch_file(folder, 1_000, "first")
    (folder / "00000000000000000500-cafe-0000000001.xray").write_bytes(b"\x00garbage")
    (folder / "notes.txt").write_text("not ours")
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, spool_dir=str(folder), max_in_flight=1)
    touch([1])  # starts the sender
    _wait(lambda: len(transport.batches) >= 3)
    client.flush(10)
    ids = [r["id"] for b in transport.batches for r in b["runs"]]
    assert ids[:2] == ["first", "second"]
    assert transport.step("touch")["output_count"] == 1
    assert (folder / "00000000000000000500-cafe-0000000001.xray.bad").exists()
    assert (folder / "notes.txt").read_text() == "not ours"
    assert not list(folder.glob("*.xray"))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("not a valid spool file" in w for w in warnings)
    assert any("notes.txt is not a spool file" in w for w in warnings)
    assert client.stats()["dropped"] == 0


def test_a_client_starts_sending_a_spool_left_by_an_earlier_process(tmp_path: Path) -> None:
    folder = tmp_path / "spool"
    _batch_file(folder, 1_000, "left-behind")
    transport = InMemoryTransport()
    # With a transport the sender starts on the first step; over HTTP at construction.
    client = XRayClient(transport=transport, spool_dir=str(folder))
    touch([1])
    _wait(lambda: any(r["id"] == "left-behind" for r in transport.runs))
    client.shutdown(5)


def test_the_default_spool_is_per_user_and_per_api(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", "/somewhere/cache")
    a = default_spool_dir("http://127.0.0.1:8000")
    b = default_spool_dir("https://xray.example.com")
    assert a.parent == Path("/somewhere/cache/xray/spool") and a != b
    assert fallback_spool_dir("http://127.0.0.1:8000").name == a.name


def test_spool_dir_null_or_off_turns_the_spool_off(tmp_path: Path) -> None:
    client = XRayClient(transport=InMemoryTransport(), spool_dir="off")
    assert client.config.spool_dir is None
    client.shutdown(1)
