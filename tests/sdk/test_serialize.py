"""Values leave the process JSON-safe, bounded and redacted, whatever the user passed."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel

from xray.sdk import current_run, current_step, step
from xray.sdk._serialize import Redactor, json_safe, preview
from xray.sdk.testing import Recording, recording


class Colour(enum.Enum):
    RED = "red"


@dataclass
class Offer:
    asin: str
    price: decimal.Decimal
    seen: dt.datetime


class Listing(BaseModel):
    title: str
    tags: set[str]


class Opaque:
    def __repr__(self) -> str:
        return "<Opaque " + "x" * 10_000 + ">"


class NumpyScalar:  # stands in for numpy.float64: module "numpy", has .item() and ndim 0
    __module__ = "numpy"
    ndim = 0

    def item(self) -> float:
        return 1.5


def test_common_python_values_become_json() -> None:
    when = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
    value = {
        "offer": Offer("B01", decimal.Decimal("9.99"), when),
        "listing": Listing(title="stand", tags={"b", "a"}),
        "colour": Colour.RED,
        "id": uuid.UUID(int=1),
        "path": Path("reports") / "latest.csv",
        "day": when.date(),
        "wait": dt.timedelta(seconds=90),
        "nan": float("nan"),
        "big": 2**70,
        "blob": b"\x00\x01",
        "np": NumpyScalar(),
        7: "int key",
    }
    safe = json_safe(value)
    json.dumps(safe, allow_nan=False)  # strict JSON
    assert safe["offer"] == {"asin": "B01", "price": 9.99, "seen": "2026-11-27T12:00:00+00:00"}
    assert safe["listing"] == {"title": "stand", "tags": ["a", "b"]}
    assert safe["colour"] == "red" and safe["id"] == str(uuid.UUID(int=1))
    assert (
        safe["path"] == str(Path("reports") / "latest.csv")
        and safe["day"] == "2026-11-27"
        and safe["wait"] == 90.0
    )
    assert safe["nan"] == "nan" and safe["big"] == str(2**70)
    assert safe["blob"] == "<bytes of 2 bytes>" and safe["np"] == 1.5 and safe["7"] == "int key"


def test_arbitrary_objects_become_a_bounded_repr() -> None:
    assert len(json_safe(Opaque(), max_str=100)) == 100
    assert json_safe(Opaque(), max_str=100).endswith("...")


def test_cycles_and_depth_are_bounded() -> None:
    loop: list[Any] = []
    loop.append(loop)
    json.dumps(json_safe(loop))


def test_previews_are_small_and_truncated_to_max_bytes() -> None:
    big = [{"asin": f"B{i}", "title": "t" * 50} for i in range(1000)]
    small = preview(big, max_bytes=4096, redactor=None)
    assert small[-1] == "... 997 more" and len(small) == 4
    cut = preview({"text": "y" * 10_000}, max_bytes=256, redactor=None)
    assert isinstance(cut, str) and len(cut) <= 256 and cut.endswith("...")


def test_secret_keys_are_redacted_but_lookalikes_are_not() -> None:
    redactor = Redactor(["api_key", "token", "password"])
    safe = json_safe(
        {
            "OpenAI-API-Key": "sk-1",
            "nested": {"access_token": "t", "password": "p"},
            "max_tokens": 256,
            "tokenizer": "bpe",
        },
        redactor=redactor,
    )
    assert safe == {
        "OpenAI-API-Key": "[REDACTED]",
        "nested": {"access_token": "[REDACTED]", "password": "[REDACTED]"},
        "max_tokens": 256,
        "tokenizer": "bpe",
    }


def test_default_redact_keys_apply_to_params_inputs_metadata_and_attributes(
    rec: Recording,
) -> None:
    @step(type="llm", detail="full")
    def call_llm(prompt: str, api_key: str) -> str:
        s = current_step()
        s.set_params(model="m", headers={"Authorization": "Bearer sk"})
        s.annotate(client_secret="c")
        s.accept("x", secret="s")
        return "ok"

    with rec.client.run("p", input={"password": "hunter2"}, metadata={"token": "t"}):
        call_llm("hello", api_key="sk-live")
    text = json.dumps(rec.transport.batches)
    for secret in ("sk-live", "hunter2", "Bearer sk", '"c"', '"s"', '"t"'):
        assert secret not in text
    s = rec.step("call_llm")
    assert s["input"] == {"prompt": "hello", "api_key": "[REDACTED]"}
    assert s["params"]["headers"] == {"Authorization": "[REDACTED]"}


def test_a_redact_hook_sees_every_item_before_it_leaves_and_may_drop_it() -> None:
    seen: list[str] = []

    def redact(kind: str, item: dict[str, Any]) -> dict[str, Any] | None:
        seen.append(kind)
        if kind == "step" and item["name"] == "private":
            return None
        item["metadata"] = {**item["metadata"], "scrubbed": True}
        return item

    @step(type="custom")
    def private() -> None:
        return None

    @step(type="custom")
    def public() -> None:
        return None

    with recording(redact=redact, flush_interval=60) as rec:
        with rec.client.run("hooked"):
            private()
            public()
        steps = rec.steps
        stats = rec.client.stats()
    assert [s["name"] for s in steps] == ["public"]
    assert steps[0]["metadata"] == {"scrubbed": True}
    assert rec.transport.runs[0]["metadata"] == {"scrubbed": True}
    assert {"run", "step"} <= set(seen)
    assert stats["dropped_by_reason"] == {"redacted": 1}


def test_a_generator_argument_is_never_consumed_by_a_preview(rec: Recording) -> None:
    @step(type="transform")
    def total(numbers: Iterator[int]) -> int:
        return sum(numbers)

    assert total(i for i in range(5)) == 10
    assert rec.step("total")["input"]["numbers"].startswith("<generator")


def test_unserialisable_and_exploding_values_never_break_the_call(rec: Recording) -> None:
    class Explodes:
        def __repr__(self) -> str:
            raise RuntimeError("repr failed")

        def __len__(self) -> int:
            raise RuntimeError("len failed")

    @step(type="custom")
    def odd(value: Explodes) -> Explodes:
        current_step().set_params(value=value)
        current_run().annotate(value=value)
        return value

    thing = Explodes()
    assert odd(thing) is thing
    s = rec.step("odd")
    assert s["params"] == {"value": "<unrepresentable Explodes>"}
    assert s["input_count"] is None


@pytest.mark.parametrize("text", ["", "é" * 10, "x" * 200_000])
def test_reasoning_of_any_size_is_kept_within_wire_limits(rec: Recording, text: str) -> None:
    @step(type="llm")
    def think() -> None:
        current_step().set_reasoning(text)

    think()
    reasoning = rec.step("think")["reasoning"]
    assert reasoning == (text or None) or len(reasoning) <= 100_000


def test_a_value_that_fails_while_read_loses_only_its_own_preview(rec: Recording) -> None:
    class Model:  # looks like a pydantic model whose dump fails
        def model_dump(self) -> dict[str, Any]:
            raise RuntimeError("cannot dump")

    @step(type="custom")
    def uses(model: Model) -> int:
        current_step().set_params(model=Model())
        return 1

    assert uses(Model()) == 1
    s = rec.step("uses")
    assert s["input"] == {"model": "<unavailable: RuntimeError>"}
    assert s["params"] == {"model": "<unavailable: RuntimeError>"}
