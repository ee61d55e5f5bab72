"""The sender's fast path for plain steps sends exactly what the general path would."""

from __future__ import annotations

import contextlib
import json
import random
from typing import Any

import pytest

from xray.sdk import XRayClient, _payload, current_step, step
from xray.sdk._payload import Encoder
from xray.sdk._serialize import _compact
from xray.sdk._step import Step
from xray.sdk.testing import InMemoryTransport

BIG = 2**70

SHAPES: dict[str, Any] = {
    "flat candidates": [{"id": f"c{i}", "price": i, "ok": True, "w": 0.5} for i in range(100)],
    "few candidates": [{"id": "a"}, {"id": "b"}],
    "scalars": list(range(40)),
    "mixed scalars": ["x", 1, 2.5, None, False] * 5,
    "a secret key": [{"id": "a", "api_key": "sk-123"}] * 5,
    "a secret key later": [{"id": "a"}, {"id": "b", "password": "hunter2"}],
    "nested": [{"id": "a", "tags": ["x"], "meta": {"token": "t"}}] * 4,
    "NaN": [{"id": "a", "score": float("nan")}] * 4,
    "infinity": [1.0, float("inf")],
    "big int": [{"id": "a", "n": BIG}] * 4,
    "big int scalar": [1, -BIG],
    "long string": [{"id": "a", "text": "y" * 10_000}] * 3,
    "too wide": [{f"k{i}": i for i in range(30)}] * 3,
    "unicode and quotes": [{"id": 'é"\\\n\u2028', 'k"ey': "ü"}] * 4,
    "non-str keys": [{1: "a", None: "b"}] * 3,
    "tuple": tuple({"id": i} for i in range(20)),
    "empty": [],
    "subclass": [type("Sub", (dict,), {})(id="a")] * 3,
    "two items": [{"id": "a"}, 4096],
}
SHAPES["contains itself"] = [{"id": "a"}]
SHAPES["contains itself"].append(SHAPES["contains itself"])


def _steps(client: XRayClient, value: Any) -> list[Step]:
    got: list[Any] = []
    client._submit = got.append  # type: ignore[method-assign]

    @step(type="filter")
    def keep(items: Any, limit: int = 5) -> Any:
        return items[:50] if isinstance(items, list | tuple) else items

    @step(type="filter")
    def with_secret(items: Any, api_key: str) -> Any:
        return items

    class Ranker:
        @step(type="rank")
        def rank(self, items: Any) -> Any:
            return list(items)[:3] if items else items

    @step(type="transform")
    def outer(items: Any) -> Any:
        keep(items)
        keep(items, 7)
        with_secret(items, "sk-1")
        Ranker().rank(items)
        return None

    with client.run('pipe "quoted" é'):
        outer(value)
    return [s for s in got if isinstance(s, Step)]


@pytest.mark.parametrize("in_a_batch", [False, True], ids=["one step", "a batch"])
@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_the_fast_path_sends_what_the_general_path_sends(shape: str, in_a_batch: bool) -> None:
    client = XRayClient(base_url="http://127.0.0.1:9", redact_keys=["api_key", "password", "token"])
    encoder = Encoder(client._config)
    steps = _steps(client, SHAPES[shape])
    assert len(steps) == 5
    fast = 0
    # In a batch the five steps (same candidates, previews of different budgets) share
    # what was rendered once; alone, each step renders its own previews.
    with encoder.batch() if in_a_batch else contextlib.nullcontext():
        texts = [encoder._plain_text(s) for s in steps] * 2  # twice: every text from the cache
    assert encoder._seen is None and encoder._held == []  # nothing of the user's kept
    for s, text in zip(steps * 2, texts, strict=True):
        if text is not None:
            fast += 1
            assert json.loads(text) == encoder.step(s)
    assert fast == 10  # plain steps (no params, no decisions, no kwargs) all take it
    client.shutdown(1)


def test_a_filters_output_and_the_next_steps_input_reuse_one_rendering() -> None:
    client = XRayClient(base_url="http://127.0.0.1:9")
    encoder = Encoder(client._config)
    got: list[Any] = []
    client._submit = got.append  # type: ignore[method-assign]

    @step(type="filter")
    def cheap(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return [c for c in items if c["price"] < 80]

    @step(type="rank")
    def rank(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return items[:20]

    with client.run("p"):
        for _ in range(3):
            rank(cheap([{"id": f"c{i}", "price": i} for i in range(100)]))
    steps = [s for s in got if isinstance(s, Step)]
    calls = 0
    encode = _payload._encode_flat

    def counting(value: Any) -> str:
        nonlocal calls
        calls += isinstance(value, list)  # previews (not argument names)
        return encode(value)

    _payload._encode_flat = counting  # type: ignore[assignment]
    try:
        with encoder.batch():
            texts = [encoder._plain_text(s) for s in steps]
    finally:
        _payload._encode_flat = encode  # type: ignore[assignment]
    assert calls == 3  # the first three candidates of each pipeline run, rendered once
    for s, text in zip(steps, texts, strict=True):
        assert text is not None and json.loads(text) == encoder.step(s)
    assert encoder._seen is None and encoder._held == []  # nothing of the user's kept
    client.shutdown(1)


def test_in_one_batch_a_candidate_is_read_once() -> None:
    # Every step of a batch has ended before the batch is encoded, so one reading of a
    # candidate shows it as it was after each of these steps, like a reading per step.
    client = XRayClient(base_url="http://127.0.0.1:9")
    encoder = Encoder(client._config)
    candidates = [{"id": "a", "price": 1}, {"id": "b", "price": 2}]
    first, second = _steps(client, candidates)[:2]
    with encoder.batch():
        before = json.loads(encoder._plain_text(first) or "null")
        candidates[0]["price"] = 99
        during = json.loads(encoder._plain_text(second) or "null")
    with encoder.batch():
        after = json.loads(encoder._plain_text(second) or "null")
    assert before["input"]["items"][0]["price"] == during["input"]["items"][0]["price"] == 1
    assert after["input"]["items"][0]["price"] == after["output"][0]["price"] == 99
    client.shutdown(1)


def test_ids_and_times_match_the_general_path_across_a_second_and_a_new_prefix() -> None:
    client = XRayClient(base_url="http://127.0.0.1:9")
    encoder = Encoder(client._config)
    steps = _steps(client, [1, 2, 3])
    for n, s in enumerate(steps):
        s._t0 = s.run._t0 + 999_999_000 + n * 1_000_000_000
        s._t1 = s._t0 + 1_500 + n * 1_000_000_000  # ends in the next second(s)
        s._id = random.getrandbits(128) if n % 2 else s._id
        text = encoder._plain_text(s)
        assert text is not None and json.loads(text) == encoder.step(s)
    client.shutdown(1)


def test_the_fast_path_redacts_and_bounds_previews() -> None:
    client = XRayClient(base_url="http://127.0.0.1:9", max_preview_bytes=256)
    encoder = Encoder(client._config)
    for s in _steps(client, SHAPES["a secret key"] + SHAPES["long string"]):
        sent = json.loads(encoder._plain_text(s) or "null")
        assert "sk-123" not in json.dumps(sent)
        assert len(json.dumps(sent["output"], ensure_ascii=False)) <= 256 + 2
    client.shutdown(1)


def test_steps_with_extras_or_a_hook_take_the_general_path() -> None:
    client = XRayClient(base_url="http://127.0.0.1:9")
    got: list[Any] = []
    client._submit = got.append  # type: ignore[method-assign]

    @step(type="filter")
    def noted(items: list[int]) -> list[int]:
        from xray.sdk import current_step

        current_step().set_params(limit=1)
        return items

    with client.run("p"):
        noted([1, 2])
    (s,) = [s for s in got if isinstance(s, Step)]
    encoder = Encoder(client._config)
    made = encoder.step_text(s)
    assert made is not None and json.loads(made[0]) == encoder.step(s)
    assert json.loads(made[0])["params"] == {"limit": 1}
    assert encoder._tails == {}  # the plain path's shared text was never made
    hooked = Encoder(client._config, redact=lambda kind, item: item)
    assert hooked.step_text(s) is None  # the hook must see the dict
    client.shutdown(1)


def test_a_candidate_changed_between_two_steps_is_sent_as_it_is_now() -> None:
    client = XRayClient(base_url="http://127.0.0.1:9")
    encoder = Encoder(client._config)
    candidates = [{"id": "a", "price": 1}, {"id": "b", "price": 2}]
    first, second = _steps(client, candidates)[:2]
    before = json.loads(encoder._plain_text(first) or "null")
    candidates[0]["price"] = 99
    after = json.loads(encoder._plain_text(second) or "null")
    assert before["input"]["items"][0]["price"] == 1
    assert after["input"]["items"][0]["price"] == 99
    assert after["output"][0]["price"] == 99
    client.shutdown(1)


def test_decisions_written_as_text_are_what_the_dict_path_sends() -> None:
    @step(type="filter", detail="full")
    def decide(keys: list[Any]) -> list[Any]:
        s = current_step()
        s.reject(keys[0], reason="price_above_max")
        s.reject(keys[1], reason=None)
        s.reject(keys[2], reason="x" * 900)  # cut to the wire's limit
        s.reject(keys[3], reason='quote " and \\ and é')
        s.reject(keys[4], reason="price_above_max", price=12)
        s.accept(keys[5], score=0.25)
        s.score(keys[6], 0.5, rank=2)
        return []

    client = XRayClient(transport=InMemoryTransport(), set_default=False)
    held: list[Any] = []
    client._submit = held.append  # type: ignore[method-assign]
    with client.run("text"):
        decide(["a", 'b"q', "c", "ü-key", 42, "f", "g"])
    (item,) = [h for h in held if type(h).__name__ == "Step"]
    encoder = client._make_sender()._packer._encoder
    made = encoder.step_text(item)
    assert made is not None
    text, count = made
    assert count == 7
    assert json.loads(text) == json.loads(_compact.encode(encoder.step(item)))
    client.shutdown(1)


def test_a_step_no_path_can_encode_is_dropped_and_counted_and_the_rest_is_sent() -> None:
    # A lone surrogate is not UTF-8: the plain text fails to encode, the step falls back
    # to the dict path, which reports and counts the drop; its neighbours are sent.
    transport = InMemoryTransport()
    client = XRayClient(transport=transport, flush_interval=60, set_default=False)

    @step(type="filter")
    def keep(items: list[dict[str, str]]) -> list[dict[str, str]]:
        return items

    with client.run("surrogate"):
        keep([{"id": "a\ud800b"}])
        keep([{"id": "ok"}])
    assert client.flush(10)
    assert [s["input"] for s in transport.steps] == [{"items": [{"id": "ok"}]}]
    assert client.stats()["dropped"] == 1
    client.shutdown(1)
