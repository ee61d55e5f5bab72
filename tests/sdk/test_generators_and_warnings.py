"""``@client.run`` on generators, disabled async-generator steps, and the fallback warnings."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator

import pytest

from xray.sdk import XRayClient, current_run, current_step, step
from xray.sdk.testing import Recording


@step(type="filter")
def keep_even(items: list[int]) -> list[int]:
    return [i for i in items if i % 2 == 0]


def test_a_run_decorating_a_generator_spans_its_iteration(rec: Recording) -> None:
    @rec.client.run("stream-pages")
    def pages(batches: list[list[int]]) -> Iterator[list[int]]:
        for batch in batches:
            current_run().annotate(last_batch=len(batch))
            yield keep_even(batch)
        return None

    stream = pages([[1, 2], [3, 4, 6]])
    assert rec.runs == []  # nothing starts before the first next()
    assert not current_run().recording
    first = next(stream)
    assert first == [2]
    assert not current_run().recording  # the consumer is not inside the run
    assert list(stream) == [[4, 6]]
    run = rec.runs[-1]
    assert (run["pipeline"], run["status"]) == ("stream-pages", "success")
    assert run["input"] == {"batches": [[1, 2], [3, 4, 6]]}
    assert run["metadata"] == {"last_batch": 3}
    steps = rec.steps
    assert [s["name"] for s in steps] == ["keep_even", "keep_even"]
    assert {s["run_id"] for s in steps} == {run["id"]}


def test_a_run_over_a_generator_records_its_return_value_and_errors(rec: Recording) -> None:
    @rec.client.run("counted")
    def counted(n: int) -> Iterator[int]:
        yield from range(n)
        return n

    @rec.client.run("broken")
    def broken() -> Iterator[int]:
        yield 1
        raise RuntimeError("page 2 failed")

    assert list(counted(3)) == [0, 1, 2]
    with pytest.raises(RuntimeError, match="page 2 failed"):
        list(broken())
    by_pipeline = {r["pipeline"]: r for r in rec.runs}
    assert by_pipeline["counted"]["status"] == "success"
    assert by_pipeline["counted"]["output"] == 3
    assert by_pipeline["broken"]["status"] == "error"
    assert by_pipeline["broken"]["error"]["message"] == "page 2 failed"


def test_a_run_over_a_generator_closed_early_ends_and_forwards_send(rec: Recording) -> None:
    received: list[object] = []

    @rec.client.run("echo")
    def echo() -> Iterator[int]:
        n = 0
        while True:
            received.append((yield n))
            n += 1

    gen = echo()
    assert next(gen) == 0
    assert gen.send("a") == 1
    gen.close()
    assert received == ["a"]
    assert rec.runs[-1]["status"] == "success"


async def test_a_run_over_an_async_generator_spans_its_iteration(rec: Recording) -> None:
    @rec.client.run("async-pages")
    async def pages(n: int) -> AsyncIterator[list[int]]:
        for i in range(n):
            await asyncio.sleep(0)
            yield keep_even([i, i + 1])

    assert [page async for page in pages(2)] == [[0], [2]]
    run = rec.runs[-1]
    assert (run["pipeline"], run["status"]) == ("async-pages", "success")
    assert {s["run_id"] for s in rec.steps} == {run["id"]}


async def test_a_disabled_async_generator_step_forwards_asend_and_athrow() -> None:
    XRayClient(enabled=False)
    log: list[object] = []

    @step(type="retrieval")
    async def conversation() -> AsyncIterator[int]:
        n = 0
        while True:
            try:
                log.append((yield n))
            except ValueError as exc:
                log.append(f"caught {exc}")
            n += 1

    agen = conversation()
    assert await agen.asend(None) == 0
    assert await agen.asend("hello") == 1
    assert await agen.athrow(ValueError("stop")) == 2
    await agen.aclose()
    assert log == ["hello", "caught stop"]
    assert not current_step().recording


def test_an_unknown_detail_warns_naming_the_default_it_falls_back_to(
    rec: Recording, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="xray"):

        @step(type="filter", detail="everything-please")
        def odd(items: list[int]) -> list[int]:
            return items

    assert odd([1]) == [1]
    assert rec.step("odd")["detail"] == "summary"
    warning = next(r.getMessage() for r in caplog.records if "everything-please" in r.getMessage())
    assert "using the configured default_detail" in warning
    assert "None" not in warning
