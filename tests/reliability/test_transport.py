"""The sender against real HTTP servers on 127.0.0.1: wire format, retries, splitting."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from tests.reliability._fake_api import Reply, Request, fake_api, statuses
from xray.sdk import XRayClient, current_step, step
from xray.shared import BatchIn

FAST = {"flush_interval": 0.05, "request_timeout": 2.0, "shutdown_timeout": 5.0}
# One batch per flush(), so requests can be counted.
ON_FLUSH = {"flush_interval": 60.0, "request_timeout": 2.0, "shutdown_timeout": 5.0}


@step(type="filter", key="id", detail="full")
def keep_small(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for c in items:
        if c["size"] > 2:
            current_step().reject(c, reason="too_big")
    return [c for c in items if c["size"] <= 2]


def run_pipeline(client: XRayClient, steps: int = 3) -> None:
    with client.run("reliability"):
        for _ in range(steps):
            keep_small([{"id": f"c{i}", "size": i} for i in range(5)])


def test_batches_are_gzip_json_posted_to_batch_with_both_auth_headers() -> None:
    with fake_api() as api:
        client = XRayClient(base_url=api.base_url, api_key="k-123", **FAST)
        run_pipeline(client)
        assert client.flush(10)
        request = api.requests[0]
        assert (request.method, request.path) == ("POST", "/batch")
        assert request.headers["authorization"] == "Bearer k-123"
        assert request.headers["x-api-key"] == "k-123"
        assert request.headers["content-encoding"] == "gzip"
        assert request.headers["content-type"] == "application/json"
        for batch in api.batches:
            BatchIn.model_validate(batch)
        assert len(api.steps) == 3
        assert client.stats()["sent"] == 5 and client.stats()["dropped"] == 0


def test_compress_false_sends_plain_json() -> None:
    with fake_api() as api:
        client = XRayClient(base_url=api.base_url, compress=False, **FAST)
        run_pipeline(client, steps=1)
        assert client.flush(10)
        assert "content-encoding" not in api.requests[0].headers
        assert api.batches[0]["steps"][0]["name"] == "keep_small"


def test_5xx_and_connection_errors_are_retried_until_delivered() -> None:
    with fake_api(statuses(500, 503)) as api:
        client = XRayClient(base_url=api.base_url, **ON_FLUSH)
        run_pipeline(client, steps=1)
        assert client.flush(20)
        stats = client.stats()
        # sent counts items: the run's start and end, and the step
        assert stats["retried"] == 2 and stats["dropped"] == 0 and stats["sent"] == 3
        # the same ids every time: the server's upsert makes retries harmless
        ids = [tuple(s["id"] for s in b["steps"]) for b in api.batches]
        assert ids[0] == ids[1] == ids[2]


def test_retry_after_429_waits_for_retry_after() -> None:
    with fake_api(statuses(429, headers={"Retry-After": "1"})) as api:
        client = XRayClient(base_url=api.base_url, **ON_FLUSH)
        run_pipeline(client, steps=1)
        assert client.flush(20)
        first, second = api.requests[0], api.requests[1]
        assert second.received_at - first.received_at >= 1.0
        assert client.stats()["retried"] == 1 and client.stats()["dropped"] == 0


def test_retries_are_bounded_then_the_batch_is_dropped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with fake_api(statuses(then=500)) as api:
        client = XRayClient(base_url=api.base_url, max_retries=2, **ON_FLUSH)
        run_pipeline(client, steps=1)
        assert client.flush(20)
        stats = client.stats()
        assert len(api.requests) == 3
        # counted by item: the run's start and end (sent as one state) and the step
        assert stats["dropped_by_reason"] == {"http_5xx": 3} and stats["failed"] == 1
    assert "after 3 attempts" in caplog.text and "sdk.max_retry_seconds" in caplog.text


def test_401_is_dropped_without_retry_and_warned_once(caplog: pytest.LogCaptureFixture) -> None:
    with fake_api(statuses(then=401)) as api:
        client = XRayClient(base_url=api.base_url, api_key="wrong", **ON_FLUSH)
        run_pipeline(client, steps=1)
        assert client.flush(10)
        run_pipeline(client, steps=1)
        assert client.flush(10)
        stats = client.stats()
        assert stats["retried"] == 0 and stats["dropped_by_reason"] == {"http_4xx": 6}
        assert len(api.requests) == 2
    warnings = [r for r in caplog.records if r.name == "xray" and r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "401" in warnings[0].getMessage()


def test_413_splits_the_batch_and_drops_only_an_item_too_large_alone() -> None:
    def limit(request: Request) -> Reply:
        body = request.body
        huge = any(s["name"] == "huge" for s in body["steps"])
        if len(body["steps"]) + len(body["runs"]) > 2 or huge:
            return Reply(status=413, body=b'{"error":"payload_too_large","message":"too big"}')
        return Reply()

    @step(type="custom")
    def huge() -> None:
        return None

    with fake_api(limit) as api:
        client = XRayClient(base_url=api.base_url, flush_interval=60, request_timeout=2)
        with client.run("split"):
            for i in range(6):
                keep_small([{"id": i, "size": 1}])
            huge()
        assert client.flush(20)
        stats = client.stats()
        assert stats["dropped_by_reason"] == {"too_large": 1}
        assert sorted(s["name"] for s in api.steps) == ["keep_small"] * 6
        # 9 items were recorded (the run's start and end, 7 steps); 1 was dropped
        assert stats["sent"] == 8


def test_422_isolates_the_invalid_item_and_sends_the_rest() -> None:
    def validate(request: Request) -> Reply:
        if any(s["name"] == "poison" for s in request.body["steps"]):
            return Reply(status=422, body=b'{"error":"validation_error","message":"bad"}')
        return Reply()

    @step(type="custom")
    def poison() -> None:
        return None

    with fake_api(validate) as api:
        client = XRayClient(base_url=api.base_url, flush_interval=60, request_timeout=2)
        with client.run("isolate"):
            keep_small([{"id": 1, "size": 1}])
            poison()
            keep_small([{"id": 2, "size": 1}])
        assert client.flush(20)
        assert [s["name"] for s in api.steps] == ["keep_small", "keep_small"]
        assert client.stats()["dropped_by_reason"] == {"invalid": 1}


def test_garbage_answers_count_as_network_errors() -> None:
    with fake_api(lambda r: Reply(garbage=True)) as api:
        client = XRayClient(base_url=api.base_url, max_retries=1, **ON_FLUSH)
        run_pipeline(client, steps=1)
        assert client.flush(20)
        assert client.stats()["dropped_by_reason"] == {"network": 3}  # run start+end, step
        assert len(api.requests) == 2


def test_a_slow_server_delays_nothing_but_the_sender() -> None:
    with fake_api(lambda r: Reply(delay=0.5)) as api:
        client = XRayClient(base_url=api.base_url, **FAST)
        done = threading.Event()

        def pipeline() -> None:
            for _ in range(20):
                run_pipeline(client, steps=2)
            done.set()

        worker = threading.Thread(target=pipeline)
        worker.start()
        # The pipeline finishes while the first request is still being answered.
        assert done.wait(30)
        worker.join()
        assert client.flush(30)
        assert len(api.steps) == 40


def test_a_timeout_after_sending_is_retried_with_more_time_and_never_counted_dropped() -> None:
    answered: list[Request] = []

    def slow_once(request: Request) -> Reply:
        answered.append(request)
        # The first request is received (as if stored) but answered after the timeout.
        return Reply(delay=3.0) if len(answered) == 1 else Reply()

    with fake_api(slow_once) as api:
        client = XRayClient(base_url=api.base_url, **{**ON_FLUSH, "request_timeout": 1.0})
        run_pipeline(client, steps=1)
        assert client.flush(30)
        stats = client.stats()
        assert stats["dropped"] == 0 and stats["retried"] >= 1 and stats["sent"] == 3
        # the same batch both times: the server's upsert stores it once
        first, second = api.batches[0], api.batches[-1]
        assert [s["id"] for s in first["steps"]] == [s["id"] for s in second["steps"]]


def test_a_batch_refused_while_the_client_stops_goes_to_the_spool(tmp_path: Any) -> None:
    # The answer (a 503) arrives after shutdown began: with max_retries=0 it would be the
    # batch's last chance, but at shutdown what is not sent belongs in the spool.
    with fake_api(lambda _: Reply(status=503, delay=0.5)) as api:
        client = XRayClient(
            base_url=api.base_url,
            max_retries=0,
            spool_dir=str(tmp_path),
            flush_interval=0.05,
            request_timeout=2.0,
        )
        run_pipeline(client, steps=1)
        while not api.requests:
            threading.Event().wait(0.01)
        client.shutdown(timeout=2)
        stats = client.stats()
    assert stats["dropped"] == 0, stats
    assert list(tmp_path.glob("**/*.xray")), "nothing was left in the spool"
