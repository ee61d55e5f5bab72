"""Bulk decision calls and DataFrame steps record what the per-item calls record.

The parity tests go through the real API (``python -m xray.api`` on SQLite) and compare the
stored rows; the caps, sampling and bad-input tests read what the SDK sends.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests._servers import RunningServer, api_server
from xray.sdk import XRayClient, current_step, step
from xray.sdk.testing import InMemoryTransport, Recording

np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pl = pytest.importorskip("polars")

KEY = "bulk-key"
MAX_PRICE = 60.0

CATALOGUE = [
    {
        "id": f"B{i:03d}",
        "price": float(10 + (i * 37) % 90),
        "rating": round(1 + (i % 40) / 10, 1),
        "score": round(0.25 + (i % 40) / 80, 4),
    }
    for i in range(120)
]


def _stored(rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What a user compares of stored decisions, in a stable order."""
    return sorted(
        (
            r["candidate_key"],
            r["decision"],
            r["reason"],
            r["score"],
            r["rank"],
            tuple(sorted((r["attributes"] or {}).items())),
        )
        for r in rows
    )


# -- the same filter, written five ways ----------------------------------------------------


def per_item(candidates: list[dict[str, Any]], max_price: float) -> list[dict[str, Any]]:
    s = current_step()
    kept = []
    for c in candidates:
        if c["price"] > max_price:
            s.reject(c, reason="price_above_max", price=c["price"], source="catalogue")
        elif c["rating"] < 2.0:
            s.reject(c, reason="rating_below_min", rating=c["rating"], source="catalogue")
        else:
            s.accept(c, score=c["score"], source="catalogue")
            kept.append(c)
    return kept


def bulk(candidates: list[dict[str, Any]], max_price: float) -> list[dict[str, Any]]:
    # The same decisions in the same order: one bulk call per run of equal decisions.
    s = current_step()
    kept: list[dict[str, Any]] = []
    group: list[dict[str, Any]] = []
    verdict: str | None = None

    def flush() -> None:
        if not group:
            return
        if verdict == "accepted":
            s.accept_many(group, score=[c["score"] for c in group], source="catalogue")
        elif verdict == "price_above_max":
            s.reject_many(
                group, reason=verdict, price=[c["price"] for c in group], source="catalogue"
            )
        else:
            s.reject_many(
                group,
                reason=[verdict] * len(group),
                rating=tuple(c["rating"] for c in group),
                source="catalogue",
            )

    for c in candidates:
        now = (
            "price_above_max"
            if c["price"] > max_price
            else "rating_below_min"
            if c["rating"] < 2.0
            else "accepted"
        )
        if now != verdict:
            flush()
            group, verdict = [], now
        group.append(c)
        if now == "accepted":
            kept.append(c)
    flush()
    return kept


def frame_explicit(frame: Any, max_price: float) -> Any:
    """pandas or polars: the same decisions from frames and series."""
    s = current_step()
    s.set_params(max_price=max_price)
    is_polars = isinstance(frame, pl.DataFrame)
    col: Callable[[str], Any] = (
        (lambda name: pl.col(name)) if is_polars else (lambda name: frame[name])
    )
    where = frame.filter if is_polars else (lambda mask: frame[mask])
    pricey = where(col("price") > max_price)
    poor = where((col("price") <= max_price) & (col("rating") < 2.0))
    good = where((col("price") <= max_price) & (col("rating") >= 2.0))
    s.reject_many(pricey, reason="price_above_max", price=pricey["price"], source="catalogue")
    s.reject_many(poor, reason="rating_below_min", rating=poor["rating"], source="catalogue")
    s.accept_many(good, score=good["score"], source="catalogue")
    return good


def inferred(candidates: Any, max_price: float) -> Any:
    """Nothing explicit: the step's key and its output say what was dropped."""
    if isinstance(candidates, list):
        return [c for c in candidates if c["price"] <= max_price]
    if isinstance(candidates, pl.DataFrame):
        return candidates.filter(pl.col("price") <= max_price)
    if isinstance(candidates, np.ndarray):
        return candidates[candidates["price"] <= max_price]
    return candidates[candidates["price"] <= max_price]


# -- through the real API --------------------------------------------------------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    workdir = tmp_path_factory.mktemp("sdk-bulk")
    url = f"sqlite+aiosqlite:///{workdir / 'xray.db'}"
    # A loaded shared machine can take longer than the default to start Python and migrate.
    with api_server(url, workdir=workdir, api_keys=(KEY,), startup_timeout=120) as running:
        yield running


def _get(server: RunningServer, path: str, **params: Any) -> Any:
    response = httpx.get(
        f"{server.base_url}{path}", params=params, headers={"X-API-Key": KEY}, timeout=10
    )
    assert response.status_code == 200, response.text
    return response.json()


def _record(
    server: RunningServer, fn: Callable[..., Any], data: Any, detail: str
) -> dict[str, Any]:
    """Run ``fn`` as a keyed filter step; the stored step and its stored decisions."""
    client = XRayClient(base_url=server.base_url, api_key=KEY, flush_interval=60)
    wrapped = step(fn.__name__, type="filter", key="id", detail=detail)(fn)
    with client.run("bulk-parity") as run:
        wrapped(data, MAX_PRICE)
    assert client.flush(20)
    assert client.stats()["dropped"] == 0
    client.shutdown(5)
    (stored,) = _get(server, f"/runs/{run.id}")["steps"]
    rows = _get(server, f"/steps/{stored['id']}/decisions", limit=1000)
    assert rows["next_cursor"] is None
    return {
        "counts": (stored["input_count"], stored["output_count"]),
        "reason_counts": stored["reason_counts"],
        "total": stored["candidates_total"],
        "recorded": stored["candidates_recorded"],
        "rows": _stored(rows["items"]),
    }


@pytest.mark.slow
@pytest.mark.parametrize("detail", ["full", "summary"])
def test_bulk_and_frame_calls_store_exactly_what_per_item_calls_store(
    server: RunningServer, clean_environment: Path, detail: str
) -> None:
    frame = pd.DataFrame(CATALOGUE)
    expected = _record(server, per_item, CATALOGUE, detail)
    assert expected["reason_counts"] and expected["total"] == len(CATALOGUE)
    assert (len(expected["rows"]) == len(CATALOGUE)) is (detail == "full")
    assert _record(server, bulk, CATALOGUE, detail) == expected
    assert _record(server, frame_explicit, frame, detail) == expected
    assert _record(server, frame_explicit, pl.DataFrame(CATALOGUE), detail) == expected


@pytest.mark.slow
def test_decisions_inferred_from_a_frame_are_those_inferred_from_a_list(
    server: RunningServer, clean_environment: Path
) -> None:
    expected = _record(server, inferred, CATALOGUE, "full")
    kept = sum(c["price"] <= MAX_PRICE for c in CATALOGUE)
    assert expected["counts"] == (len(CATALOGUE), kept)
    assert Counter(r[1] for r in expected["rows"]) == {
        "accepted": kept,
        "rejected": len(CATALOGUE) - kept,
    }
    structured = np.array(
        [(c["id"], c["price"], c["rating"], c["score"]) for c in CATALOGUE],
        dtype=[("id", "U8"), ("price", "f8"), ("rating", "f8"), ("score", "f8")],
    )
    for data in (pd.DataFrame(CATALOGUE), pl.DataFrame(CATALOGUE), structured):
        assert _record(server, inferred, data, "full") == expected, type(data)


def test_score_many_and_select_many_record_what_score_and_select_record(rec: Recording) -> None:
    items = CATALOGUE[:20]

    @step(type="rank", key="id", detail="full")
    def one_by_one(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        s = current_step()
        for at, c in enumerate(items):
            s.score(c, c["score"], rank=at + 1, price=c["price"])
        s.select(items[0], reason="top", score=items[0]["score"])
        return items

    @step(type="rank", key="id", detail="full")
    def at_once(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        s = current_step()
        s.score_many(
            items,
            np.array([c["score"] for c in items]),
            ranks=range(1, len(items) + 1),
            price=pd.Series([c["price"] for c in items]),
        )
        s.select_many(items[:1], reason="top", score=[items[0]["score"]])
        return items

    one_by_one(items)
    at_once(items)
    rec.flush()
    expected = rec.decisions("one_by_one")
    assert len(expected) == len(items) + 1
    assert _stored(rec.decisions("at_once")) == _stored(expected)


# -- caps and sampling -----------------------------------------------------------------------


def _one_step(
    transport: InMemoryTransport, fn: Callable[..., Any], data: Any, **config: Any
) -> Any:
    client = XRayClient(transport=transport, flush_interval=60, **config)
    with client.run("caps"):
        fn(data, MAX_PRICE)
    client.flush(10)
    client.shutdown(5)
    (sent,) = transport.steps
    transport.clear()
    return sent


@pytest.mark.parametrize("detail", ["full", "sampled"])
def test_the_cap_bounds_bulk_calls_as_it_bounds_per_item_calls(detail: str) -> None:
    transport = InMemoryTransport()
    results = []
    for fn in (per_item, bulk):
        wrapped = step(fn.__name__, type="filter", key="id", detail=detail)(fn)
        results.append(_one_step(transport, wrapped, CATALOGUE, max_decisions_per_step=25))
    one, many = results
    assert many["candidates_total"] == one["candidates_total"] == len(CATALOGUE)
    assert many["candidates_recorded"] == one["candidates_recorded"] == 25
    assert many["reason_counts"] == one["reason_counts"]
    if detail == "full":  # the first 25 decisions made, whichever way they were made
        assert _stored(many["decisions"]) == _stored(one["decisions"])


def test_sampling_keeps_the_same_number_per_reason_from_bulk_rejections() -> None:
    transport = InMemoryTransport()
    kept = {}
    for fn in (per_item, bulk):
        wrapped = step(fn.__name__, type="filter", key="id", detail="sampled")(fn)
        sent = _one_step(transport, wrapped, CATALOGUE, rejected_samples_per_reason=4)
        kept[fn.__name__] = sent
    one, many = kept["per_item"], kept["bulk"]
    assert many["reason_counts"] == one["reason_counts"]
    for found in (one, many):
        by = Counter((d["decision"], d["reason"]) for d in found["decisions"])
        assert by[("rejected", "price_above_max")] == 4
        assert by[("rejected", "rating_below_min")] == 4
        assert by[("accepted", None)] == len([c for c in per_item_kept()])
    # A sample of the rejections, not the first ones: each sampled decision is a real one.
    rejected = {c["id"] for c in CATALOGUE} - {c["id"] for c in per_item_kept()}
    assert {
        d["candidate_key"] for d in many["decisions"] if d["decision"] == "rejected"
    } <= rejected


@pytest.mark.parametrize("make", [pd.DataFrame, pl.DataFrame], ids=["pandas", "polars"])
def test_caps_and_sampling_apply_to_frames(make: Callable[[Any], Any]) -> None:
    transport = InMemoryTransport()
    per_reason = Counter(
        "price_above_max" if c["price"] > MAX_PRICE else "rating_below_min"
        for c in CATALOGUE
        if c not in per_item_kept()
    )
    full = step("frames", type="filter", key="id", detail="full")(frame_explicit)
    sent = _one_step(transport, full, make(CATALOGUE), max_decisions_per_step=25)
    assert (sent["candidates_total"], sent["candidates_recorded"]) == (len(CATALOGUE), 25)
    assert sent["reason_counts"] == dict(per_reason)
    sampled = step("frames", type="filter", key="id", detail="sampled")(frame_explicit)
    sent = _one_step(transport, sampled, make(CATALOGUE), rejected_samples_per_reason=3)
    by = Counter((d["decision"], d["reason"]) for d in sent["decisions"])
    assert by == {
        ("rejected", "price_above_max"): 3,
        ("rejected", "rating_below_min"): 3,
        ("accepted", None): len(per_item_kept()),
    }


@pytest.mark.parametrize(
    "make", [list, pd.DataFrame, pl.DataFrame], ids=["list", "pandas", "polars"]
)
def test_inferred_decisions_beyond_the_cap_are_counted_in_input_order(
    make: Callable[[Any], Any],
) -> None:
    transport = InMemoryTransport()
    keyed = step("inferred", type="filter", key="id", detail="full")(inferred)
    sent = _one_step(transport, keyed, make(CATALOGUE), max_decisions_per_step=5)
    assert (sent["candidates_total"], sent["candidates_recorded"]) == (len(CATALOGUE), 5)
    decided = [(d["candidate_key"], d["decision"]) for d in sent["decisions"]]
    kept = [c["id"] for c in CATALOGUE if c["price"] <= MAX_PRICE]
    dropped = [c["id"] for c in CATALOGUE if c["price"] > MAX_PRICE]
    if make is not pl.DataFrame:  # text keys compared as Python values: input order
        expected = [(c["id"], "accepted" if c["id"] in kept else "rejected") for c in CATALOGUE]
    else:  # by the key columns: the kept rows first, then the dropped ones
        expected = [(k, "accepted") for k in kept] + [(k, "rejected") for k in dropped]
    assert decided == expected[:5]


@pytest.mark.parametrize("make", [pd.DataFrame, pl.DataFrame], ids=["pandas", "polars"])
def test_a_frame_step_returning_rows_not_among_its_inputs_infers_nothing(
    rec: Recording, make: Callable[[Any], Any]
) -> None:
    @step(type="filter", key="id", detail="full")
    def renamed(frame: Any) -> Any:
        return make([{**c, "id": c["id"] + "-copy"} for c in CATALOGUE[:3]])

    renamed(make(CATALOGUE))
    rec.flush()
    assert rec.decisions("renamed") == []


def test_non_finite_floats_in_columns_are_sent_as_per_item_calls_send_them(
    rec: Recording,
) -> None:
    @step(type="rank", detail="full")
    def scored(items: list[str]) -> list[str]:
        current_step().score_many(
            items, [1e308, 1e308, float("nan")], weight=[1e308, float("inf"), 1.5]
        )
        return items

    scored(["a", "b", "c"])
    rec.flush()
    got = [(d["score"], (d["attributes"] or {}).get("weight")) for d in rec.decisions("scored")]
    # A score that is not a number is dropped; an attribute is shown as text.
    assert got == [(1e308, 1e308), (1e308, "inf"), (None, 1.5)]


def per_item_kept() -> list[dict[str, Any]]:
    return [c for c in CATALOGUE if c["price"] <= MAX_PRICE and c["rating"] >= 2.0]


# -- bad input never raises ------------------------------------------------------------------


def test_misaligned_columns_warn_are_counted_and_never_raise(
    rec: Recording, caplog: pytest.LogCaptureFixture
) -> None:
    @step(type="filter", key="id", detail="full")
    def odd(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        s = current_step()
        s.reject_many(items[:5], reason="x", price=[1.0, 2.0])  # 2 values for 5 candidates
        s.reject_many(items[5:8], reason=["a", "b"])  # 2 reasons for 3
        s.score_many(items[8:10], [0.5])  # 1 score for 2
        s.reject_many(pd.DataFrame({"sku": ["a", "b"]}), reason="no key column")
        s.reject_many(items[10:12], reason="fine", price=[1.0, 2.0])
        return items[12:]

    with caplog.at_level(logging.WARNING, logger="xray"):
        assert len(odd(CATALOGUE)) == len(CATALOGUE) - 12
    rec.flush()
    sent = rec.step("odd")
    assert [(d["candidate_key"], d["reason"]) for d in sent["decisions"][:2]] == [
        ("B010", "fine"),
        ("B011", "fine"),
    ]
    # Beside the 2 recorded and the inferred rest, the dropped ones are counted (5 + 3 + 2
    # candidates of the list and 2 rows of the frame), never inferred a second time.
    assert sent["candidates_recorded"] == 2 + (len(CATALOGUE) - 12)
    assert sent["candidates_total"] == len(CATALOGUE) + 2
    assert sent["reason_counts"] == {"fine": 2}
    for problem in (
        "2 values of attribute 'price' for 5 candidates",
        "2 values of reason for 3 candidates",
        "1 values of score for 2 candidates",
        "no key column 'id' in its frame",
    ):
        assert problem in caplog.text


def test_unhashable_and_unprintable_keys_never_raise(rec: Recording) -> None:
    class NoRepr:
        __hash__ = None  # type: ignore[assignment]

        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    @step(type="filter", key="id", detail="full")
    def odd_keys(items: list[Any]) -> list[Any]:
        s = current_step()
        s.reject_many(items, reason="odd", note=["x"] * len(items))
        return []

    items = [{"id": ["a", "list"]}, {"id": {"a": "dict"}}, {"id": NoRepr()}, {"no": "id"}]
    assert odd_keys(items) == []
    rec.flush()
    sent = rec.step("odd_keys")
    assert sent["status"] == "success"
    assert [d["candidate_key"] for d in sent["decisions"]] == [
        "['a', 'list']",
        "{'a': 'dict'}",
        "<NoRepr>",
        "None",
    ]


def test_bulk_calls_outside_a_step_do_nothing() -> None:
    s = current_step()
    assert not s.recording
    s.reject_many([{"id": 1}], reason="x", price=[1])
    s.accept_many([1, 2], score=[0.1])  # misaligned too: still nothing, no error
    s.score_many(pd.DataFrame({"id": [1]}), [0.3])


# -- the SDK alone never imports pandas, polars or NumPy -------------------------------------


def test_the_sdk_never_imports_dataframe_libraries(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        from xray.sdk import XRayClient, current_step, step
        from xray.sdk.testing import InMemoryTransport

        @step(type="filter", key="id", detail="full")
        def f(items):
            s = current_step()
            s.reject_many(items[:2], reason="x", price=[1.0, 2.0])
            s.score_many(items[2:3], [0.5], ranks=(1,))
            s.reject(items[3], reason="y")
            return items[3:]

        client = XRayClient(transport=InMemoryTransport(), flush_interval=60)
        with client.run("plain"):
            f([{"id": i} for i in range(10)])
        client.flush(10)
        found = sorted({"numpy", "pandas", "polars", "pyarrow"} & set(sys.modules))
        print("imported:", found)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "imported: []" in done.stdout
