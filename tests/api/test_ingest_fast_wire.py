"""The msgspec fast path accepts only what the wire models accept, with the same values.

A corpus of valid and invalid bodies (every field of runs, steps, decisions and decision
columns, mutated one at a time) goes through both decoders: whatever the fast path
accepts, pydantic accepts with equal values, and the routes answer every body exactly as
the pydantic path alone does (same status, message and fields).
"""

from __future__ import annotations

import copy
import enum
import json
from datetime import datetime
from typing import Any

import httpx
import msgspec
import pytest
from pydantic import BaseModel, TypeAdapter, ValidationError

from tests.api._data import decision, run, step
from xray.api._fast_wire import decode_batch, decode_steps
from xray.api._payload import load_body, load_fast
from xray.api.errors import APIError
from xray.shared import BatchIn, StepIn

_BATCH = TypeAdapter(BatchIn)
_STEPS = TypeAdapter(list[StepIn])
RUN_ID = "6f1c0e3a-5b1e-4f0e-9d8e-0a1b2c3d4e5f"
STEP_ID = "0e123456-0000-4000-8000-00000000e999"


def _deep(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels - 1):
        value = [value]
    return [value] if levels else value


def _base() -> dict[str, Any]:
    return {
        "runs": [
            {
                "id": RUN_ID,
                "pipeline": "p",
                "status": "success",
                "started_at": "2026-01-01T00:00:00+00:00",
                "ended_at": "2026-01-01T00:00:03.250000Z",
                "duration_ms": 3250.0,
                "input": {"q": "laptop", "n": [1, 2.5, None, True]},
                "output": "done",
                "metadata": {"customer": "c1", "seller": 7},
                "error": {"type": "ValueError", "message": "m", "traceback": "t"},
                "sdk": {"version": "0.1.0"},
            }
        ],
        "steps": [
            {
                "id": STEP_ID,
                "run_id": RUN_ID,
                "parent_id": None,
                "seq": 2,
                "pipeline": "p",
                "run_started_at": "2026-01-01T00:00:00+00:00",
                "name": "price_filter",
                "type": "filter",
                "status": "success",
                "started_at": "2026-01-01T00:00:01.5+01:00",
                "ended_at": "2026-01-01T00:00:02",
                "duration_ms": 500,
                "input_count": 10,
                "output_count": 3,
                "params": {"max_price": 50, "nested": {"a": [1, {"b": None}]}},
                "reasoning": "kept the cheap ones",
                "reason_counts": {"price_above_max": 7},
                "input": [1, 2, 3],
                "output": None,
                "metadata": {"model": "m1"},
                "error": None,
                "detail": "full",
                "candidates_total": 10,
                "candidates_recorded": 5,
                "decisions": [
                    {
                        "candidate_key": "a",
                        "decision": "accepted",
                        "reason": None,
                        "score": 0.5,
                        "rank": 1,
                        "attributes": {"price": 12.5, "tags": ["x"]},
                    },
                    {"candidate_key": "b", "decision": "rejected", "reason": "price_above_max"},
                ],
                "decision_columns": [
                    {
                        "candidate_key": ["c", "d", "e"],
                        "decision": "rejected",
                        "reason": ["r1", None, "r3"],
                        "score": [1, None, 0.25],
                        "rank": 4,
                        "attributes": {"price": [60, None, {"v": 1}], "w": [None, None, 2]},
                        "shared_attributes": {"price": 0, "src": "bulk"},
                    }
                ],
            }
        ],
    }


# (where, field, value): where is "run", "step", "decision" (the first one) or "columns".
MUTATIONS: list[tuple[str, str, Any]] = [
    *[
        ("run", "id", v)
        for v in (
            RUN_ID.upper(),
            RUN_ID.replace("-", ""),
            "{" + RUN_ID + "}",
            "urn:uuid:" + RUN_ID,
            "not-a-uuid",
            5,
            None,
        )
    ],
    *[("run", "pipeline", v) for v in ("", "x" * 200, "x" * 201, 5, None, "é" * 200)],
    *[("run", "status", v) for v in ("running", "error", "SUCCESS", "bogus", None, 1)],
    *[
        ("run", "started_at", v)
        for v in (
            "2026-01-01T00:00:00",
            "2026-01-01T00:00:00Z",
            "2026-01-01T00:00:00z",
            "2026-01-01t00:00:00Z",
            "2026-01-01 00:00:00Z",
            "2026-01-01T00:00Z",
            "2026-01-01",
            "2026-01-01T00:00:00.1234567+01:00",
            "2026-01-01T00:00:00.9999995Z",
            "2026-01-01T00:00:00.123456789Z",
            "2026-01-01T00:00:00,5Z",
            "2026-01-01T00:00:00+0100",
            "2026-01-01T00:00:00-00:00",
            "2026-01-01T00:00:00+24:00",
            "2026-01-01T00:00:60Z",
            "2026-01-01T24:00:00Z",
            "2026-02-30T00:00:00Z",
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00Z",
            "1700000000",
            1700000000,
            1700000000.5,
            None,
            "",
        )
    ],
    *[("run", "duration_ms", v) for v in (-1, 0, 1, 2.5, "1", True, None, 10**18)],
    *[
        ("run", "input", v)
        for v in (_deep(32), _deep(33), "x" * 1_100_000, ["y" * 1000] * 1100, -0.0, 2**62)
    ],
    *[
        ("run", "metadata", v)
        for v in (None, [], "s", {"k" * 100_001: 1}, {"d": _deep(31)}, {"d": _deep(32)})
    ],
    *[
        ("run", "error", v)
        for v in (
            {"type": "E"},
            {"type": "E", "message": None},
            {"message": "no type"},
            {"type": "x" * 201},
            {"type": "E", "traceback": "t" * 100_001},
            {"type": "E", "extra": 1},
            "boom",
        )
    ],
    *[("run", "unknown_field", v) for v in (1, {"deep": _deep(40)})],
    *[("step", "seq", v) for v in (-1, 0, 1.0, 1.5, "1", True, 2**62, None)],
    *[("step", "parent_id", v) for v in (RUN_ID, "bad", 1)],
    *[("step", "name", v) for v in ("", "n" * 200, "n" * 201)],
    *[("step", "type", v) for v in ("llm", "FILTER", "other", None)],
    *[("step", "detail", v) for v in ("summary", "debug", "nope")],
    *[("step", "input_count", v) for v in (-1, 0, None, 3.0, "3")],
    *[("step", "candidates_recorded", v) for v in (-1, None, 0)],
    *[
        ("step", "reason_counts", v)
        for v in ({"a": 1.5}, {"a": 1.0}, {"a": "1"}, {"a": True}, {"k" * 100_001: 1}, [])
    ],
    *[("step", "reasoning", v) for v in ("r" * 100_000, "r" * 100_001, 5)],
    *[("step", "params", v) for v in ({"k" * 100_001: 1}, {"d": _deep(40)}, None)],
    *[("step", "decisions", v) for v in (None, {}, [None], [1])],
    *[("decision", "candidate_key", v) for v in ("", "k" * 512, "k" * 513, 5, None)],
    *[("decision", "decision", v) for v in ("selected", "Accepted", "maybe", None)],
    *[("decision", "reason", v) for v in ("r" * 500, "r" * 501, 5)],
    *[("decision", "score", v) for v in (1, "0.5", True, None, -1e300)],
    *[("decision", "rank", v) for v in (1.0, 1.5, "2", -3, 2**62)],
    *[("decision", "attributes", v) for v in (None, [], {"d": _deep(32)}, {"d": _deep(31)})],
    *[("columns", "candidate_key", v) for v in (["c", "d"], "c", ["c", "", "e"], None, [])],
    *[
        ("columns", "decision", v)
        for v in (["accepted", "rejected", "scored"], ["accepted", "nope", "x"], ["accepted"], 3)
    ],
    *[
        ("columns", "reason", v)
        for v in ("one", None, ["a", "b"], ["a", "b", 3], ["a", "b", "r" * 501], 5, "r" * 501)
    ],
    *[("columns", "score", v) for v in (0.5, 1, [1, 2], [1, "x", None], "0.5", [True, 1, 2])],
    *[("columns", "rank", v) for v in ([1, 2, 3.0], [1, 2, 3.5], 2.0, ["1", 2, 3], None)],
    *[
        ("columns", "attributes", v)
        for v in (
            {},
            {"p": [1, 2]},
            {"p": 5},
            {"p": [1, 2, _deep(33)]},
            {"p": [None, None, None]},
            {"k" * 100_001: [1, 2, 3]},
            [],
        )
    ],
    *[("columns", "shared_attributes", v) for v in ({}, None, {"d": _deep(33)}, [1])],
]


def _mutated(where: str, field: str, value: Any) -> dict[str, Any]:
    body = _base()
    target = {
        "run": body["runs"][0],
        "step": body["steps"][0],
        "decision": body["steps"][0]["decisions"][0],
        "columns": body["steps"][0]["decision_columns"][0],
    }[where]
    target[field] = copy.deepcopy(value)
    return body


def _bodies() -> list[bytes]:
    bodies = [json.dumps(_base()).encode()]
    bodies += [json.dumps(_mutated(*m)).encode() for m in MUTATIONS]
    text = json.dumps(_base())
    bodies += [
        (text[:-1] + ', "steps": []}').encode(),  # a duplicate key: the last one wins
        b"\xef\xbb\xbf" + text.encode(),
        text.encode() + b" x",
        text[:-3].encode(),
        b"[]",
        b'{"runs": null}',
        b"",
        text.replace('"m1"', '"m\\u00e9\\n\\"1"').encode(),
        text.replace('"m1"', '"a\\u0000b"').encode(),
        text.replace('"m1"', '"\\ud800"').encode(),
        text.replace('"m1"', "1e400").encode(),
        text.replace('"m1"', "123456789012345678901").encode(),
        text.replace('"m1"', "NaN").encode(),
        text.replace('"m1"', "1e-400").encode(),
        text.replace('"m1"', "[1e308, 5e-324, -0.0, 1E+2, 12345678901234567]").encode(),
        text.replace('"m1"', "-9223372036854775808").encode(),
        text.replace('"m1"', '"\\ud83d\\ude00 \\u00e9 \\u0001"').encode(),
        text.replace('"m1"', '"\xff"').encode("latin-1"),
    ]
    return bodies


def _plain(value: Any) -> Any:
    """A comparable form: models and structs as dicts, scalars tagged with their type."""
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, msgspec.Struct):
        return {name: _plain(getattr(value, name)) for name in value.__struct_fields__}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, enum.Enum):
        return ("enum", type(value).__name__, value.value)
    if isinstance(value, datetime):
        return ("datetime", value.replace(tzinfo=None), value.utcoffset())
    return (type(value).__name__, value)


def _answer(call: Any) -> tuple[str, Any]:
    try:
        return "ok", _plain(call())
    except APIError as exc:
        return "error", (exc.status_code, exc.message, [f.model_dump() for f in exc.fields])


BODIES = _bodies()


def test_the_corpus_exercises_both_paths() -> None:
    accepted = sum(decode_batch(body) is not None for body in BODIES)
    valid = 0
    for body in BODIES:
        try:
            _BATCH.validate_json(body)
            valid += 1
        except ValidationError:
            pass
    assert decode_batch(BODIES[0]) is not None
    # The fast path takes most valid bodies and leaves the rest (and every invalid one).
    assert 0.5 * valid < accepted < valid < len(BODIES)


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_the_fast_path_accepts_a_subset_with_equal_values(body: bytes) -> None:
    fast = decode_batch(body)
    if fast is None:
        return
    contract = _BATCH.validate_json(body)  # raises if the fast path accepted too much
    assert _plain(fast) == _plain(contract)


@pytest.mark.parametrize("body", BODIES, ids=range(len(BODIES)))
def test_a_route_answers_every_body_as_the_pydantic_path_does(body: bytes) -> None:
    fast = _answer(lambda: load_fast(body, decode_batch, _BATCH))
    contract = _answer(lambda: load_body(body, _BATCH))
    assert fast == contract


def test_a_list_of_steps_decodes_alike() -> None:
    body = json.dumps(_base()["steps"] * 3).encode()
    fast = decode_steps(body)
    assert fast is not None
    assert _plain(fast) == _plain(_STEPS.validate_json(body))


async def test_fast_and_pydantic_paths_store_identical_rows(client: httpx.AsyncClient) -> None:
    """The same body stored through each path (the second re-sends the same ids, and a
    time finer than microseconds in an ignored field sends it down the pydantic path)
    reads back identically."""
    r = run(metadata={"k": "v"}, input={"q": [1, 2.5]}, error={"type": "E", "message": "m"})
    columns = {
        "candidate_key": ["c", "d"],
        "decision": ["accepted", "rejected"],
        "reason": [None, "too_far"],
        "score": 0.5,
        "attributes": {"km": [3, None]},
        "shared_attributes": {"km": 0, "src": "bulk"},
    }
    s = step(
        r["id"],
        input_count=4,
        output_count=1,
        reason_counts={"too_far": 1},
        params={"max_km": 5},
        decisions=[decision("a", score=0.25, rank=1, attributes={"km": 1.5})],
        decision_columns=[columns],
        error={"type": "E", "message": "m", "traceback": "t"},
    )

    async def stored() -> tuple[Any, ...]:
        detail = (await client.get(f"/runs/{r['id']}")).json()
        decisions = (await client.get(f"/steps/{s['id']}/decisions")).json()["items"]
        for d in decisions:
            d.pop("id")
        return detail, decisions

    first = await client.post("/batch", json={"runs": [r], "steps": [s]})
    assert first.status_code == 200, first.text
    assert decode_batch(first.request.content) is not None  # the fast path took it
    fast_rows = await stored()
    slow_body = {"runs": [r], "steps": [s], "ignored": "00:00:00.1234567"}
    second = await client.post("/batch", json=slow_body)
    assert second.status_code == 200, second.text
    assert second.json() == first.json()
    assert await stored() == fast_rows
    assert [d["candidate_key"] for d in fast_rows[1]] == ["a", "c", "d"]
