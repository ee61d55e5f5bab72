"""Parents and order stay right under threads and asyncio (contextvars)."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from concurrent.futures import ThreadPoolExecutor

from xray.sdk import current_step, step
from xray.sdk.testing import Recording, recording


@step(type="retrieval")
async def fetch(source: str) -> list[str]:
    for _ in range(3):
        await asyncio.sleep(0)  # interleave with the other tasks
        assert current_step().name == "fetch"
    inner_result = await parse(source)
    return [source, *inner_result]


@step(type="transform")
async def parse(source: str) -> list[str]:
    await asyncio.sleep(0)
    return [source.upper()]


@step(type="custom")
def work(i: int) -> int:
    return i * 2


async def test_asyncio_gather_keeps_each_task_under_its_own_parent(rec: Recording) -> None:
    @step(type="custom")
    async def fan_out(sources: list[str]) -> list[list[str]]:
        return list(await asyncio.gather(*(fetch(s) for s in sources)))

    async with rec.client.run("gather"):
        result = await fan_out(["a", "b", "c", "d"])
    assert result == [["a", "A"], ["b", "B"], ["c", "C"], ["d", "D"]]
    steps = rec.steps
    by_id = {s["id"]: s for s in steps}
    root = next(s for s in steps if s["name"] == "fan_out")
    fetches = [s for s in steps if s["name"] == "fetch"]
    parses = [s for s in steps if s["name"] == "parse"]
    assert len(fetches) == len(parses) == 4
    assert all(s["parent_id"] == root["id"] for s in fetches)
    assert all(by_id[p["parent_id"]]["name"] == "fetch" for p in parses)
    # each parse hangs under the fetch of the same source
    for p in parses:
        assert by_id[p["parent_id"]]["input"] == {"source": p["input"]["source"]}
    seqs = sorted(s["seq"] for s in steps)
    assert seqs == list(range(len(steps)))  # unique, gap-free order within the run


def test_threads_with_a_copied_context_join_the_run_and_parent(rec: Recording) -> None:
    @step(type="custom")
    def parallel(n: int) -> list[int]:
        with ThreadPoolExecutor(max_workers=4) as pool:
            futures = [pool.submit(contextvars.copy_context().run, work, i) for i in range(n)]
            return [f.result() for f in futures]

    with rec.client.run("threads") as run:
        assert parallel(20) == [i * 2 for i in range(20)]
    steps = rec.steps
    root = next(s for s in steps if s["name"] == "parallel")
    workers = [s for s in steps if s["name"] == "work"]
    assert len(workers) == 20
    assert {s["parent_id"] for s in workers} == {root["id"]}
    assert {s["run_id"] for s in steps} == {run.id}
    assert sorted(s["seq"] for s in steps) == list(range(21))


def test_a_plain_thread_starts_empty_so_its_steps_open_their_own_runs(rec: Recording) -> None:
    with rec.client.run("outer") as run:
        thread = threading.Thread(target=work, args=(1,))
        thread.start()
        thread.join()
    (s,) = rec.steps
    assert s["run_id"] != run.id and s["pipeline"] == "work"


def test_many_threads_recording_at_once_lose_nothing() -> None:
    with recording(buffer_size=100_000, flush_interval=60) as rec:
        _many_threads(rec)


def _many_threads(rec: Recording) -> None:
    def many() -> None:
        for i in range(200):
            work(i)  # each one an implicit run: 1,600 steps and 3,200 run updates

    threads = [threading.Thread(target=many) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(rec.steps) == 1600
    assert len({s["id"] for s in rec.steps}) == 1600
    stats = rec.client.stats()
    assert stats["dropped"] == 0 and stats["sent"] == 1600 * 3
