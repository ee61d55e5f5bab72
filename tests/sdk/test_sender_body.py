"""What the sender posts: one JSON document per batch, gzip'd when configured."""

from __future__ import annotations

import gzip
import json
from typing import Any

import pytest

from xray.sdk import XRayClient, _batches, step
from xray.sdk._batches import Batch, Packer, seal, split
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


def _packer(client: XRayClient) -> Packer:
    return client._make_sender()._packer


def _pack_one(client: XRayClient, items: list[Any]) -> Batch:
    packer = _packer(client)
    assert packer.add(items) == []
    return packer.seal()


def _json(batch: Batch) -> Any:
    assert batch.body is not None
    return json.loads(gzip.decompress(batch.body) if batch.encoding == "gzip" else batch.body)


@pytest.mark.parametrize("steps", [1, 150])
def test_the_gzip_body_is_the_plain_body_compressed(steps: int) -> None:
    plain = XRayClient(transport=InMemoryTransport(), compress=False)
    zipped = XRayClient(transport=InMemoryTransport())
    items = _recorded(plain, steps)
    raw = _pack_one(plain, items)
    packed = _pack_one(zipped, items)
    assert (raw.encoding, packed.encoding) == ("identity", "gzip")
    assert packed.body is not None and gzip.decompress(packed.body) == raw.body
    sent = _json(raw)
    assert len(sent["runs"]) == 1 and len(sent["steps"]) == steps
    assert packed.items == steps + 2  # the run's start and end travel as one entry
    BatchIn.model_validate(sent)
    halves = split(packed)  # a 413's split: same entries, in order, in two documents
    assert halves is not None and len(halves) == 2
    assert sum(h.items for h in halves) == packed.items
    both = [_json(h) for h in halves]
    assert [e for d in both for e in d["runs"]] == sent["runs"]
    assert [e for d in both for e in d["steps"]] == sent["steps"]
    plain.shutdown(1)
    zipped.shutdown(1)


def test_a_batch_of_one_item_cannot_be_split() -> None:
    client = XRayClient(transport=InMemoryTransport())
    batch = seal([b'{"id":"x"}'], [], True, items=1, runs=1)
    assert _json(batch) == {"runs": [{"id": "x"}], "steps": []}
    assert split(batch) is None
    client.shutdown(1)


def test_items_beyond_the_target_size_are_sealed_into_several_batches(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    client = XRayClient(transport=InMemoryTransport(), compress=False)
    items = _recorded(client, 50)
    whole = _json(_pack_one(client, items))
    monkeypatch.setattr(_batches, "TARGET_BYTES", len(json.dumps(whole)) // 3)
    packer = _packer(client)
    batches = packer.add(items)
    batches.append(packer.seal())
    assert len(batches) >= 3
    docs = [_json(b) for b in batches]
    assert [s for d in docs for s in d["steps"]] == whole["steps"]  # order kept
    assert sum(b.items for b in batches) == 52
    for doc in docs:
        BatchIn.model_validate(doc)
    client.shutdown(1)
