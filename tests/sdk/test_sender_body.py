"""What the sender posts: one JSON document per batch, gzip'd when configured."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from xray.sdk import XRayClient, _sender, step
from xray.sdk.testing import InMemoryTransport
from xray.shared import BatchIn


def _recorded(client: XRayClient, steps: int) -> list[Any]:
    @step(type="filter")
    def keep(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return items[:5]

    got: list[Any] = []
    client._submit = got.append  # type: ignore[method-assign]
    candidates = [{"id": f"c{i}", "price": i} for i in range(20)]
    with client.run("body"):
        for _ in range(steps):
            keep(candidates)
    return got


@pytest.mark.parametrize("steps", [0, 1, 700])
def test_the_gzip_body_is_the_plain_body_compressed(steps: int) -> None:
    plain = XRayClient(transport=InMemoryTransport(), compress=False)
    zipped = XRayClient(transport=InMemoryTransport())
    items = _recorded(plain, steps)
    plain_sender, zipped_sender = plain._make_sender(), zipped._make_sender()
    (batch,) = plain_sender._encode(items)
    raw = plain_sender._body(batch)
    assert gzip.decompress(zipped_sender._body(batch)) == raw
    sent = json.loads(raw)
    assert len(sent["runs"]) == 1 and len(sent["steps"]) == steps
    BatchIn.model_validate(sent)
    for half in (batch[: len(batch) // 2], batch[len(batch) // 2 :]):  # a 413's split
        assert json.loads(gzip.decompress(zipped_sender._body(half))) == json.loads(
            plain_sender._body(half)
        )
    plain.shutdown(1)
    zipped.shutdown(1)


def test_an_empty_batch_is_still_a_document() -> None:
    client = XRayClient(transport=InMemoryTransport())
    body = client._make_sender()._body([])
    assert json.loads(gzip.decompress(body)) == {"runs": [], "steps": []}
    client.shutdown(1)


def test_parts_beyond_the_batch_byte_limit_are_packed_into_several_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = XRayClient(transport=InMemoryTransport(), compress=False)
    items = _recorded(client, 50)
    sender = client._make_sender()
    (whole,) = sender._encode(items)
    sizes = [len(p.body) for p in whole]
    limit = sum(sizes) // 3  # about three batches' worth
    monkeypatch.setattr(_sender, "MAX_BATCH_BYTES", limit)
    batches = sender._encode(items)
    assert len(batches) >= 3
    assert [p.body for b in batches for p in b] == [p.body for p in whole]  # order kept
    for batch in batches:
        assert len(batch) == 1 or sum(len(p.body) + 1 for p in batch) <= limit + 1
        BatchIn.model_validate(json.loads(sender._body(batch)))
    assert sender._encode([]) == []
    client.shutdown(1)
