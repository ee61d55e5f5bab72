"""What a decorated function, a step block and a run record."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from xray.sdk import XRayClient, current_run, current_step, step
from xray.sdk.testing import InMemoryTransport, Recording


@step(type="filter")
def keep_even(items: list[int]) -> list[int]:
    return [i for i in items if i % 2 == 0]


def test_a_decorated_call_returns_its_result_and_records_counts_timing_status(
    rec: Recording,
) -> None:
    assert keep_even([1, 2, 3, 4, 5]) == [2, 4]
    s = rec.step("keep_even")
    assert (s["type"], s["status"]) == ("filter", "success")
    assert (s["input_count"], s["output_count"]) == (5, 2)
    assert s["duration_ms"] >= 0
    assert s["started_at"] <= s["ended_at"]
    assert s["input"] == {"items": [1, 2, 3, 4, 5]}
    assert s["output"] == [2, 4]


def test_counts_use_len_of_sized_values_but_not_text_or_unsized(rec: Recording) -> None:
    class Frame:  # anything with __len__, such as a DataFrame
        def __len__(self) -> int:
            return 7

    @step(type="transform")
    def to_rows(frame: Frame) -> dict[str, int]:
        return {"a": 1, "b": 2}

    @step(type="llm")
    def summarise(prompt: str) -> str:
        return "short"

    @step(type="custom")
    def nothing(x: object) -> None:
        return None

    to_rows(Frame())
    summarise("a long prompt")
    nothing(object())
    assert (rec.step("to_rows")["input_count"], rec.step("to_rows")["output_count"]) == (7, 2)
    assert (rec.step("summarise")["input_count"], rec.step("summarise")["output_count"]) == (
        None,
        None,
    )
    assert rec.step("nothing")["input_count"] is None


def test_a_method_counts_its_first_real_argument_not_self(rec: Recording) -> None:
    class Ranker:
        @step(type="rank")
        def rank(self, items: list[int]) -> list[int]:
            return sorted(items)

    assert Ranker().rank([3, 1, 2]) == [1, 2, 3]
    s = rec.step("rank")
    assert (s["input_count"], s["output_count"]) == (3, 3)
    assert "self" not in s["input"]


def test_an_exception_is_reraised_unchanged_and_recorded(rec: Recording) -> None:
    original = ValueError("bad candidate B01")

    @step(type="filter")
    def explode(items: list[int]) -> list[int]:
        raise original

    with pytest.raises(ValueError) as info:
        explode([1])
    assert info.value is original
    innermost = traceback.extract_tb(info.value.__traceback__)[-1]
    assert innermost.name == "explode" and "raise original" in (innermost.line or "")
    s = rec.step("explode")
    assert s["status"] == "error"
    assert s["error"]["type"] == "ValueError"
    assert s["error"]["message"] == "bad candidate B01"
    assert "raise original" in s["error"]["traceback"]
    run = rec.runs[0]
    assert run["status"] == "error" and run["error"]["type"] == "ValueError"


def test_keyboard_interrupt_passes_through_and_is_recorded(rec: Recording) -> None:
    @step(type="custom")
    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted()
    assert rec.step("interrupted")["error"]["type"] == "KeyboardInterrupt"


async def test_async_steps_record_like_sync_ones(rec: Recording) -> None:
    @step(type="llm")
    async def generate(product: dict[str, str]) -> list[str]:
        await asyncio.sleep(0)
        current_step().set_params(model="m1")
        return ["laptop stand", "laptop riser"]

    assert await generate({"title": "stand"}) == ["laptop stand", "laptop riser"]
    s = rec.step("generate")
    assert (s["input_count"], s["output_count"], s["params"]) == (1, 2, {"model": "m1"})


def test_a_generator_step_spans_the_iteration_and_counts_what_it_yielded(
    rec: Recording,
) -> None:
    @step(type="retrieval")
    def search(keywords: list[str]) -> Iterator[str]:
        for k in keywords:
            current_step().annotate(last=k)
            yield k.upper()
        return None

    assert list(search(["a", "b", "c"])) == ["A", "B", "C"]
    s = rec.step("search")
    assert (s["input_count"], s["output_count"], s["status"]) == (3, 3, "success")
    assert s["metadata"] == {"last": "c"}


def test_the_consumer_of_a_generator_step_does_not_see_it_as_current(rec: Recording) -> None:
    @step(type="retrieval")
    def numbers() -> Iterator[int]:
        yield 1
        yield 2

    seen = []
    for _ in numbers():
        seen.append(current_step().recording)
    assert seen == [False, False]


def test_a_generator_step_closed_early_ends_and_send_throw_work(rec: Recording) -> None:
    @step(type="retrieval")
    def echo() -> Iterator[Any]:
        received = None
        while True:
            try:
                received = yield received
            except KeyError:
                received = "caught"

    gen = echo()
    next(gen)
    assert gen.send("x") == "x"
    assert gen.throw(KeyError("k")) == "caught"
    gen.close()
    s = rec.step("echo")
    assert (s["status"], s["output_count"]) == ("success", 3)


async def test_an_async_generator_step_counts_items(rec: Recording) -> None:
    @step(type="retrieval")
    async def pages(n: int) -> AsyncIterator[int]:
        for i in range(n):
            await asyncio.sleep(0)
            yield i

    assert [i async for i in pages(4)] == [0, 1, 2, 3]
    assert rec.step("pages")["output_count"] == 4


def test_a_step_block_records_with_explicit_input_and_output(rec: Recording) -> None:
    with rec.client.run("pipeline") as run, step("rerank", type="rank") as s:
        s.set_input([3, 1, 2])
        s.set_params(model="cross-encoder")
        s.set_reasoning("cheaper first")
        s.set_output([1, 2])
    assert s.recording and run.recording
    recorded = rec.step("rerank")
    assert (recorded["input_count"], recorded["output_count"]) == (3, 2)
    assert recorded["reasoning"] == "cheaper first"
    assert recorded["run_id"] == run.id


async def test_a_step_block_works_with_async_with(rec: Recording) -> None:
    async with step("fetch", type="retrieval") as s:
        s.annotate(source="cache")
    assert rec.step("fetch")["metadata"] == {"source": "cache"}


def test_a_step_block_records_an_error_and_lets_it_propagate(rec: Recording) -> None:
    with pytest.raises(RuntimeError, match="boom"), step("risky", type="custom"):
        raise RuntimeError("boom")
    assert rec.step("risky")["status"] == "error"


def test_nesting_records_parent_and_order_within_the_run(rec: Recording) -> None:
    @step(type="rank")
    def inner(items: list[int]) -> list[int]:
        return items

    @step(type="custom")
    def outer(items: list[int]) -> list[int]:
        return inner(inner(items))

    with rec.client.run("nested"):
        outer([1])
        keep_even([2])
    steps = sorted(rec.steps, key=lambda s: s["seq"])
    assert [s["name"] for s in steps] == ["outer", "inner", "inner", "keep_even"]
    assert [s["seq"] for s in steps] == [0, 1, 2, 3]
    outer_id = steps[0]["id"]
    assert [s["parent_id"] for s in steps] == [None, outer_id, outer_id, None]
    assert len({s["run_id"] for s in steps}) == 1
    assert {s["pipeline"] for s in steps} == {"nested"}


def test_a_step_outside_any_run_opens_an_implicit_run_named_after_it(rec: Recording) -> None:
    keep_even([1, 2])
    run = rec.runs[0]
    assert run["pipeline"] == "keep_even"
    assert (run["status"], run["output"]) == ("success", [2])
    assert run["input"] == {"items": [1, 2]}
    assert rec.step("keep_even")["run_id"] == run["id"]


def test_a_run_is_sent_at_start_and_at_end_with_the_same_id(rec: Recording) -> None:
    with rec.client.run("two-phase", input={"q": 1}, metadata={"seller": 7}) as run:
        rec.flush()
        started = rec.transport.run_updates
        run.set_output("best")
    rec.flush()
    ended = rec.transport.run_updates
    assert [u["status"] for u in started] == ["running"]
    assert ended[-1]["status"] == "success" and ended[-1]["id"] == started[0]["id"] == run.id
    assert ended[-1]["output"] == "best" and ended[-1]["metadata"] == {"seller": 7}
    assert ended[-1]["ended_at"] is not None and ended[-1]["duration_ms"] >= 0
    assert ended[-1]["sdk"]["name"] == "xray-python"


def test_client_run_as_a_decorator_records_arguments_and_return_value(rec: Recording) -> None:
    @rec.client.run("decorated")
    def pipeline(product: str, limit: int = 3) -> list[int]:
        current_run().annotate(product=product)
        return keep_even(list(range(limit)))

    assert pipeline("stand", limit=4) == [0, 2]
    run = rec.runs[0]
    assert run["pipeline"] == "decorated"
    assert run["input"] == {"product": "stand", "limit": 4}
    assert run["output"] == [0, 2] and run["metadata"] == {"product": "stand"}
    assert rec.step("keep_even")["run_id"] == run["id"]


async def test_client_run_decorates_coroutines(rec: Recording) -> None:
    @rec.client.run("async-pipeline")
    async def pipeline() -> int:
        await asyncio.sleep(0)
        return len(keep_even([1, 2]))

    assert await pipeline() == 1
    assert rec.runs[0]["output"] == 1


def test_settable_counts_override_the_automatic_ones(rec: Recording) -> None:
    @step(type="retrieval")
    def search(query: str) -> list[int]:
        s = current_step()
        s.input_count = 5000
        s.output_count = 30
        return [1]

    search("q")
    s = rec.step("search")
    assert (s["input_count"], s["output_count"]) == (5000, 30)


def test_current_step_and_run_are_no_ops_outside_anything(rec: Recording) -> None:
    s, r = current_step(), current_run()
    assert not s.recording and not r.recording
    s.set_params(a=1)
    s.reject({"id": 1}, reason="x")
    r.set_output(1)
    r.annotate(a=1)
    assert r.metadata == {}
    assert rec.steps == [] and rec.runs == []


def test_with_no_config_decorators_call_through_and_record_nothing() -> None:
    transport = InMemoryTransport()
    assert keep_even([1, 2]) == [2]
    with step("block", type="custom") as s:
        assert not s.recording
    assert not current_step().recording
    assert transport.batches == []


def test_step_rename_and_bare_decorator(rec: Recording) -> None:
    @step
    def plain(items: list[int]) -> int:
        current_step().rename("plain:renamed")
        return len(items)

    assert plain([1, 2]) == 2
    s = rec.step("plain:renamed")
    assert s["type"] == "custom"


def test_an_unknown_type_or_detail_warns_and_falls_back(
    rec: Recording, caplog: pytest.LogCaptureFixture
) -> None:
    @step(type="sorting", detail="everything")
    def odd(items: list[int]) -> list[int]:
        return items

    assert odd([1]) == [1]
    s = rec.step("odd")
    assert s["type"] == "custom" and s["detail"] == "summary"
    assert "sorting" in caplog.text and "xray" in {r.name for r in caplog.records}


def test_sample_rate_zero_records_nothing_and_changes_nothing() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, sample_rate=0.0)
    with client.run("unsampled") as run:
        assert keep_even([1, 2, 3, 4]) == [2, 4]
        assert not run.recording and not current_step().recording
    assert keep_even([2]) == [2]
    client.flush(timeout=5)
    assert transport.batches == []


def test_sampling_is_decided_once_per_run() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, sample_rate=0.5, flush_interval=60)
    for _ in range(40):
        with client.run("half"):
            keep_even([1, 2])
            keep_even([3, 4])
    client.flush(timeout=5)
    runs = {r["id"] for r in transport.runs}
    steps_per_run: dict[str, int] = {}
    for s in transport.steps:
        steps_per_run[s["run_id"]] = steps_per_run.get(s["run_id"], 0) + 1
    assert set(steps_per_run) == runs
    assert set(steps_per_run.values()) == {2}  # a run is recorded whole or not at all
    assert 0 < len(runs) < 40


def test_a_long_result_is_previewed_by_its_first_items_and_counted_whole(
    rec: Recording,
) -> None:
    @step(type="retrieval")
    def many(n: int) -> list[int]:
        return list(range(n))

    assert many(25) == list(range(25))
    s = rec.step("many")
    assert s["output_count"] == 25
    assert s["output"] == [*range(10), "... 15 more"]
    assert rec.runs[0]["output"] == [*range(10), "... 15 more"]
