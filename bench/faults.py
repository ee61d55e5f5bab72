"""How long hostile requests and a partitioned database keep a real server busy.

Starts ``python -m xray.api`` on 127.0.0.1 (as the tests do) and measures:

1. ``POST /batch`` of 600,000 empty steps in a ~1.8 KB gzip body (SQLite): status, time,
   reply size, and the slowest ``/healthz`` answered meanwhile (polled every 50 ms);
2. with PostgreSQL behind a TCP proxy that stops forwarding (a partition): the time each
   route takes to answer, then how long ``/readyz`` takes to be 200 again once the proxy
   resumes. Needs PostgreSQL on 127.0.0.1:5432 (trust auth); a database is created and
   dropped.

    .venv/bin/python bench/faults.py

To compare with another version of the server, put its ``xray`` package first on the
path: ``PYTHONPATH=/path/to/other/checkout .venv/bin/python bench/faults.py``.
"""

from __future__ import annotations

import asyncio
import gzip
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx

sys.path.insert(1, str(Path(__file__).resolve().parents[1]))

from tests._servers import api_server
from tests.api._data import decision, run, step
from tests.conftest import _pg_admin
from tests.reliability._proxy import freezable_proxy


def tiny_gzip_of_many_steps(workdir: Path) -> None:
    body = gzip.compress(b'{"steps": [' + b",".join([b"{}"] * 600_000) + b"]}", 9)
    with (
        api_server(f"sqlite+aiosqlite:///{workdir / 'bomb.db'}", workdir=workdir) as server,
        httpx.Client(base_url=server.base_url, timeout=300) as client,
    ):
        worst = 0.0
        done = threading.Event()

        def probe() -> None:
            nonlocal worst
            while not done.is_set():
                start = time.perf_counter()
                client.get("/healthz")
                worst = max(worst, time.perf_counter() - start)
                time.sleep(0.05)

        prober = threading.Thread(target=probe)
        prober.start()
        start = time.perf_counter()
        response = client.post(
            "/batch",
            content=body,
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
        elapsed = time.perf_counter() - start
        done.set()
        prober.join()
    print(
        f"600,000 empty steps, {len(body):,} B gzip: {response.status_code} in {elapsed:.2f} s, "
        f"reply {len(response.content):,} B, slowest /healthz meanwhile {worst:.2f} s"
    )


def partition(workdir: Path) -> None:
    name = f"xray_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    try:
        with (
            freezable_proxy(("127.0.0.1", 5432)) as proxy,
            api_server(
                f"postgresql+asyncpg://postgres@127.0.0.1:{proxy.port}/{name}", workdir=workdir
            ) as server,
            httpx.Client(base_url=server.base_url, timeout=60) as client,
        ):
            r = run()
            s = step(r["id"], decisions=[decision("k")])
            client.post("/batch", json={"runs": [r], "steps": [s]}).raise_for_status()
            proxy.freeze()
            for method, path, body in [
                ("GET", "/runs", None),
                ("GET", f"/runs/{r['id']}", None),
                ("GET", "/steps", None),
                ("POST", "/batch", {"runs": [run()]}),
                ("GET", "/readyz", None),
                ("GET", "/runs", None),
            ]:
                start = time.perf_counter()
                try:
                    status: object = client.request(method, path, json=body).status_code
                except httpx.TimeoutException:
                    status = "no answer (client gave up)"
                print(
                    f"partitioned {method} {path[:20]}: {status} in {time.perf_counter() - start:.2f} s"
                )
            proxy.thaw()
            start = time.perf_counter()
            while client.get("/readyz").status_code != 200:
                time.sleep(0.1)
            print(f"ready again {time.perf_counter() - start:.2f} s after the partition ended")
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tiny_gzip_of_many_steps(Path(tmp))
        partition(Path(tmp))


if __name__ == "__main__":
    main()
