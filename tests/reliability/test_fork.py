"""After fork() the child records with a fresh buffer, thread and id prefix."""

from __future__ import annotations

import os

import pytest

from tests.reliability._fake_api import fake_api
from xray.sdk import XRayClient, step

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork (POSIX only)")


@step(type="custom")
def before() -> None:
    return None


@step(type="custom")
def in_child() -> None:
    return None


@step(type="custom")
def after() -> None:
    return None


def test_a_forked_child_sends_its_own_steps_and_never_the_parents_queue() -> None:
    with fake_api() as api:
        client = XRayClient(base_url=api.base_url, flush_interval=60, request_timeout=5)
        with client.run("forking") as run:
            before()  # queued in the parent; its sender thread is running, not yet sent
            pid = os.fork()
            if pid == 0:  # the child: record, flush, leave without running pytest's teardown
                code = 1
                try:
                    in_child()
                    code = 0 if client.flush(10) else 2
                finally:
                    os._exit(code)
            _, status = os.waitpid(pid, 0)
            assert os.waitstatus_to_exitcode(status) == 0
            after()
        assert client.flush(10)
        steps = api.steps
        assert sorted(s["name"] for s in steps) == ["after", "before", "in_child"]
        assert len({s["id"] for s in steps}) == 3
        by_name = {s["name"]: s for s in steps}
        # the child inherited the run it was forked in
        assert by_name["in_child"]["run_id"] == run.id
        # and drew its own id prefix: no collision with the parent, ever
        assert by_name["in_child"]["id"][:18] != by_name["after"]["id"][:18]
        assert by_name["before"]["id"][:18] == by_name["after"]["id"][:18]
