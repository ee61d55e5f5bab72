"""The C fast path of ``@step`` (``xray/sdk/_speedups.c``) behaves like a decorated function.

The rest of tests/sdk runs against whichever path this process loaded (the C one when it
was built; ``make test`` runs tests/sdk and tests/reliability a second time with
``XRAY_SDK_PURE_PYTHON=1``). These tests cover what only a C callable could get wrong:
being a function to the rest of Python (metadata, binding, pickling, weak references),
and recording exactly what the Python path records.
"""

from __future__ import annotations

import gc
import inspect
import json
import os
import pickle
import shutil
import subprocess
import sys
import sysconfig
import time
import weakref
from typing import Any

import pytest

from tests.conftest import REPO_ROOT
from xray.sdk import XRayClient, _step, current_run, current_step, step
from xray.sdk.testing import InMemoryTransport, Recording
from xray.shared import RunIn, StepIn

# Read at import, as xray.sdk._step does (the autouse fixture clears XRAY_* per test).
PURE_REQUESTED = os.environ.get("XRAY_SDK_PURE_PYTHON", "") not in ("", "0")


@step(type="filter")
def keep_small(items: list[int], limit: int = 10) -> list[int]:
    """Keep the items under ``limit``."""
    return [i for i in items if i < limit]


def test_the_c_path_is_built_and_loaded_where_a_compiler_exists() -> None:
    # Guards every other SDK test: without this, a failed build would quietly leave the
    # C path untested. XRAY_SDK_PURE_PYTHON is the documented way to turn it off.
    if PURE_REQUESTED:
        assert not _step.ACCELERATED
        assert inspect.isfunction(keep_small)
        return
    if shutil.which(sysconfig.get_config_var("CC").split()[0]) is None:
        pytest.skip("no C compiler on this machine: the package is pure Python here")
    assert _step.ACCELERATED
    assert type(keep_small).__name__ == "StepWrapper"


def test_a_decorated_function_keeps_its_name_doc_signature_and_module() -> None:
    assert keep_small.__name__ == "keep_small"
    assert keep_small.__qualname__ == "keep_small"
    assert keep_small.__module__ == __name__
    assert keep_small.__doc__ == "Keep the items under ``limit``."
    assert keep_small.__wrapped__.__name__ == "keep_small"  # type: ignore[attr-defined]
    assert (
        str(inspect.signature(keep_small))
        == "(items: 'list[int]', limit: 'int' = 10) -> 'list[int]'"
    )
    assert not inspect.iscoroutinefunction(keep_small)
    keep_small.owner = "search-team"  # type: ignore[attr-defined]
    assert keep_small.owner == "search-team"  # type: ignore[attr-defined]


def test_a_decorated_function_pickles_by_reference_and_can_be_weakly_referenced() -> None:
    assert pickle.loads(pickle.dumps(keep_small)) is keep_small
    ref = weakref.ref(keep_small)
    assert ref() is keep_small


class Catalogue:
    def __init__(self, floor: int) -> None:
        self.floor = floor

    @step(type="filter")
    def above_floor(self, items: list[int]) -> list[int]:
        return [i for i in items if i >= self.floor]

    @classmethod
    @step(type="transform")
    def doubled(cls, items: list[int]) -> list[int]:
        return [i * 2 for i in items]

    @staticmethod
    @step(type="rank")
    def ordered(items: list[int]) -> list[int]:
        return sorted(items)


def test_methods_classmethods_and_staticmethods_bind_and_count_the_real_argument(
    rec: Recording,
) -> None:
    catalogue = Catalogue(3)
    with rec.client.run("methods"):
        assert catalogue.above_floor([1, 3, 5]) == [3, 5]
        bound = catalogue.above_floor
        assert inspect.ismethod(bound) and bound.__self__ is catalogue
        assert bound([4]) == [4]
        assert Catalogue.above_floor(catalogue, [9]) == [9]
        assert Catalogue.doubled([1, 2]) == [2, 4]
        assert catalogue.ordered([3, 1, 2]) == [1, 2, 3]
    counts = [(s["name"], s["input_count"], s["output_count"]) for s in rec.steps]
    assert counts == [
        ("above_floor", 3, 2),
        ("above_floor", 1, 1),
        ("above_floor", 1, 1),
        ("doubled", 2, 2),
        ("ordered", 3, 3),
    ]
    assert rec.steps[0]["input"] == {"items": [1, 3, 5]}  # not self


def test_keyword_arguments_parentage_and_current_step_inside(rec: Recording) -> None:
    @step(type="filter")
    def inner(items: list[int], *, limit: int) -> list[int]:
        current_step().set_params(limit=limit)
        return [i for i in items if i < limit]

    @step(type="custom")
    def outer(items: list[int]) -> list[int]:
        assert current_step().name == "outer"
        return inner(items, limit=3)

    with rec.client.run("kw") as run:
        assert outer([1, 2, 3, 4]) == [1, 2]
        assert current_run() is run
        assert not current_step().recording  # the steps are over: back to the run
    by_name = {s["name"]: s for s in rec.steps}
    assert by_name["inner"]["parent_id"] == by_name["outer"]["id"]
    assert by_name["outer"]["parent_id"] is None
    assert by_name["inner"]["input"] == {"items": [1, 2, 3, 4], "limit": 3}
    assert by_name["inner"]["params"] == {"limit": 3}
    assert [by_name["outer"]["seq"], by_name["inner"]["seq"]] == [0, 1]


def test_an_exception_keeps_its_identity_and_traceback_and_restores_the_context(
    rec: Recording,
) -> None:
    original = LookupError("no candidate")

    @step(type="retrieval")
    def search(query: str) -> list[str]:
        raise original

    with rec.client.run("errors") as run:
        with pytest.raises(LookupError) as info:
            search("stand")
        assert current_run() is run and not current_step().recording
    assert info.value is original
    assert [f.function for f in inspect.getinnerframes(info.tb)][-1] == "search"
    s = rec.step("search")
    assert (s["status"], s["error"]["type"], s["error"]["message"]) == (
        "error",
        "LookupError",
        "no candidate",
    )


_PIPELINE = """
import json
from datetime import datetime
from xray.sdk import XRayClient, current_step, step, _step
from xray.sdk.testing import InMemoryTransport

@step(type="retrieval")
def search(query, limit=5):
    return [{"id": f"p{i}", "price": i * 7.5} for i in range(limit * 3)]

@step(type="filter")
def cheap(items):
    s = current_step()
    s.annotate(rule="price < 40")
    s.set_params(max_price=40)
    s.set_reasoning("over budget")
    for c in items:
        if c["price"] >= 40:
            s.reject(c, reason="price_above_max")
    return [c for c in items if c["price"] < 40]

@step(type="filter", key="id", detail="full")
def in_stock(items):
    return items[::2]

@step(type="transform")
def labelled(items, *, label):
    current_step().rename(f"label:{label}")
    return [dict(c, label=label) for c in items]

class Ranker:
    @step(type="rank")
    def rank(self, items):
        return sorted(items, key=lambda c: -c["price"])

@step
def pipeline(query):
    return Ranker().rank(labelled(in_stock(cheap(search(query, limit=4))), label="a"))

@step(type="evaluate")
def nothing():
    return 7

transport = InMemoryTransport()
client = XRayClient(transport=transport, flush_interval=60)
with client.run("parity", input={"q": "stand"}):
    pipeline("stand")
    nothing()
pipeline("implicit")
try:
    with client.run("failing"):
        cheap(None)
except TypeError:
    pass
client.flush(10)

# Every field of every item, so that a field one path gets wrong (or drops) shows: the
# values that differ from run to run become what both paths must agree on.
refs = {}
def ref(value):
    return None if value is None else refs.setdefault(value, len(refs))
def at(text):
    return datetime.fromisoformat(text)
runs = {}
for r in transport.runs:
    runs[r["id"]] = r  # the last state of each run
def clean_run(r):
    out = dict(r, id=ref(r["id"]))
    out["started_at"] = out["ended_at"] = bool(r["ended_at"]) and at(r["started_at"]) <= at(r["ended_at"])
    out["duration_ms"] = r["duration_ms"] is not None and r["duration_ms"] >= 0
    out["sdk"] = sorted(r["sdk"])
    if r["error"]:
        out["error"] = dict(r["error"], traceback=bool(r["error"]["traceback"]))
    return out
def clean_step(s):
    run = runs[s["run_id"]]
    out = dict(s, id=ref(s["id"]), run_id=ref(s["run_id"]), parent_id=ref(s["parent_id"]))
    out["run_started_at"] = s["run_started_at"] == run["started_at"]
    # A step's times lie within its run's (both read from one clock, placed from the
    # run's start), and its duration is its end minus its start.
    start, end = at(s["started_at"]), at(s["ended_at"])
    out["started_at"] = at(run["started_at"]) <= start <= end <= at(run["ended_at"])
    out["ended_at"] = abs((end - start).total_seconds() * 1000 - s["duration_ms"]) < 0.002
    out["duration_ms"] = s["duration_ms"] >= 0
    if s["error"]:  # the traceback's frames differ: the C path has no wrapper frame
        out["error"] = dict(s["error"], traceback=bool(s["error"]["traceback"]))
    return out
steps = [clean_step(s) for s in transport.steps]
print(json.dumps({"accelerated": _step.ACCELERATED,
                  "runs": [clean_run(r) for r in runs.values()],
                  "steps": steps}, sort_keys=True))
"""


def _record(pure: bool) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    if pure:
        env["XRAY_SDK_PURE_PYTHON"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", _PIPELINE],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


def test_the_c_and_python_paths_record_the_same_pipeline_identically() -> None:
    fast, pure = _record(pure=False), _record(pure=True)
    assert pure["accelerated"] is False
    if not fast["accelerated"]:
        pytest.skip("the C path is not built here (see the first test)")
    assert len(fast["steps"]) == 14  # 6 per pipeline call, one plain call, the failing one
    for recorded in (fast, pure):
        # Every wire field is there (and compared below); the times nest within the run.
        assert all(set(r) == set(RunIn.model_fields) for r in recorded["runs"])
        assert all(set(s) == set(StepIn.model_fields) for s in recorded["steps"])
        assert all(s["started_at"] and s["ended_at"] for s in recorded["steps"])
        assert all(r["started_at"] and r["duration_ms"] for r in recorded["runs"])
    # The pipeline gives every field a value somewhere, so that none is compared empty.
    for field in StepIn.model_fields:
        assert any(s[field] not in (None, {}, [], 0, False) for s in fast["steps"]), field
    assert fast["runs"] == pure["runs"]
    assert fast["steps"] == pure["steps"]


def test_a_transport_counts_the_same_batches_when_recording_through_the_c_path() -> None:
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, flush_interval=60, batch_size=5, buffer_size=20)
    with client.run("buffered"):
        for _ in range(30):
            keep_small([1, 2, 30])
    client.flush(10)
    stats = client.stats()
    # Past the buffer of 20 the C path hands over to put(), which encodes on this
    # thread: nothing is dropped, and all is accounted for.
    assert stats["sent"] == 32 and stats["dropped"] == 0  # run start, 30 steps, run end
    assert len(transport.steps) == 30
    client.shutdown(5)


def test_recording_holds_no_reference_after_the_step_is_sent() -> None:
    # A reference the C code forgets to release would show here as a count that grows
    # with the number of calls (arguments, result items, the result list, the function).
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, flush_interval=60)
    items = [{"id": i} for i in range(30)]
    kept = items[:20]

    @step(type="filter")
    def first_twenty(candidates: list[dict[str, int]], *, note: str = "") -> list[dict[str, int]]:
        return kept

    def counts() -> list[int]:
        gc.collect()
        return [sys.getrefcount(x) for x in (items, kept, items[0], items[25], first_twenty)]

    with client.run("refs"):
        first_twenty(items)  # warm up: caches, interned names
    client.flush(10)
    before = counts()
    with client.run("refs"):
        for _ in range(200):
            first_twenty(items)
            first_twenty(items, note="kw")
    assert client.flush(10)
    transport.clear()
    assert counts() == before
    assert client.stats()["dropped"] == 0
    client.shutdown(5)


def test_a_step_in_a_reference_cycle_through_its_result_is_collected(rec: Recording) -> None:
    @step(type="custom")
    def self_referencing(n: int) -> list[Any]:
        out: list[Any] = list(range(n))
        out.append(current_step())  # past the preview's head when n > 10
        out.insert(0, current_step())  # inside it
        return out

    step_class = _step.Step

    def alive() -> int:
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is step_class)

    before = alive()  # steps other tests still hold
    with rec.client.run("cycles"):
        self_referencing(30)
        self_referencing(3)
    rec.flush()  # sent: the sender has read the result back into a list
    assert sorted(s["output_count"] for s in rec.steps) == [5, 32]
    assert alive() == before
    with rec.client.run("cycles"):
        self_referencing(30)
        self_referencing(3)
        assert alive() == before + 2  # in the buffer, the result's head still inline
        rec.client._buffer.clear()  # dropped unsent (as at a shutdown deadline)
    assert alive() == before


def test_fields_kept_inline_read_back_as_the_python_path_stores_them(rec: Recording) -> None:
    seen: list[Any] = []
    original_submit = rec.client._submit
    rec.client._submit = lambda item: (seen.append(item), original_submit(item))  # type: ignore[method-assign]
    items = list(range(25))

    @step(type="filter")
    def head(values: list[int]) -> list[int]:
        return values[:15]

    with rec.client.run("fields"):
        head(items)
        kept = current_run()
    s = next(x for x in seen if isinstance(x, _step.Step))
    assert s._args == (items,) and s._args[0] is items
    assert s._result == (_step.CUT, items[:10], 15)
    assert (s._in, s._out, s.seq, s.run) == (25, 15, 0, kept)
    assert isinstance(s._t0, int) and s._t1 >= s._t0
    sent = rec.step("head")
    assert sent["id"] == s.id and s._id == int(s.id.replace("-", ""), 16)
    assert sent["output"] == [*range(10), "... 5 more"]
    s._result = [1]  # what set_output does: a plain value replaces the head
    assert s._result == [1]


def test_a_stale_build_of_the_extension_is_ignored_with_a_warning() -> None:
    # An editable install whose extension was built from older sources: the SDK must not
    # call into it with arguments it does not know, and must say why it is slower.
    script = (
        "import sys, types, logging\n"
        "logging.basicConfig(level=logging.WARNING, format='%(message)s')\n"
        "stale = types.ModuleType('xray.sdk._speedups')\n"
        "stale.INTERFACE = 1\n"
        "sys.modules['xray.sdk._speedups'] = stale\n"
        "from xray.sdk import _step, step\n"
        "print(_step.ACCELERATED, step(type='filter')(lambda xs: xs)([1]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    result = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False [1]"
    assert "built from other sources" in result.stderr


def test_step_times_are_read_from_the_clock_the_run_is_timed_by(rec: Recording) -> None:
    # A step's times are placed on the wire relative to its run's start, read by
    # _run.py from time.perf_counter_ns(): the C path must read that same clock (on macOS
    # another monotonic clock would drift apart from it across a sleep).
    seen: list[Any] = []
    original_submit = rec.client._submit
    rec.client._submit = lambda item: (seen.append(item), original_submit(item))  # type: ignore[method-assign]
    with rec.client.run("clock") as run:
        before = time.perf_counter_ns()
        keep_small([1, 2, 30])
        after = time.perf_counter_ns()
    (s,) = [x for x in seen if isinstance(x, _step.Step)]
    assert run._t0 <= before <= s._t0 <= s._t1 <= after <= run._t1
    if _step.ACCELERATED:
        first = time.perf_counter_ns()
        c_reading = _step._speedups.perf_counter_ns()
        assert first <= c_reading <= time.perf_counter_ns()
    sent = rec.step("keep_small")
    (ended,) = [r for r in rec.runs if r["status"] == "success"]
    assert ended["started_at"] <= sent["started_at"] <= sent["ended_at"] <= ended["ended_at"]
