"""What ``api.database_pooler: transaction`` costs: the same mixed load (a batch with 30
decisions, then four queries, per round) from 8 concurrent clients against the real server
(``python -m xray.api``), three ways, interleaved in one run:

- ``direct``: straight to PostgreSQL, default settings (prepared-statement caches on);
- ``direct+pooler-settings``: straight to PostgreSQL with the pooler-safe settings;
- ``pgbouncer``: through PgBouncer in transaction mode, with the pooler-safe settings.

    .venv/bin/python bench/pooler_cost.py --repeats 3 --rounds 10

Needs the test PostgreSQL on 127.0.0.1:5432 and /usr/sbin/pgbouncer (as for
tests/deploy/test_pooler.py). Prints requests/s per mode and the ratio to ``direct``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests._servers import api_server
from tests.conftest import _pg_admin, _pg_dsn
from tests.deploy._services import pgbouncer
from tests.deploy.test_pooler import _client_session
from xray.api import upgrade_database

CLIENTS = 8


def _load(base_url: str) -> tuple[float, Counter[int]]:
    started = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        results = list(pool.map(lambda c: _client_session(base_url, c), range(CLIENTS)))
    return time.perf_counter() - started, sum(results, Counter())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=10, help="rounds per client per run")
    args = parser.parse_args()
    import tests.deploy.test_pooler as pooler_test

    pooler_test.ROUNDS = args.rounds  # type: ignore[misc]
    name = f"xray_bench_{uuid.uuid4().hex[:8]}"
    asyncio.run(_pg_admin(f'CREATE DATABASE "{name}"'))
    direct = _pg_dsn(name)
    upgrade_database(direct)
    times: dict[str, list[float]] = {}
    requests = CLIENTS * args.rounds * 5
    try:
        with pgbouncer(pool_size=4) as bouncer:
            modes = {
                "direct": (direct, {}),
                "direct+pooler-settings": (direct, {"XRAY_DATABASE_POOLER": "transaction"}),
                "pgbouncer": (bouncer.url(name), {"XRAY_DATABASE_POOLER": "transaction"}),
            }
            with tempfile.TemporaryDirectory(prefix="xray-bench-") as workdir:
                for _ in range(args.repeats):
                    for mode, (url, env) in modes.items():
                        with api_server(url, workdir=Path(workdir), extra_env=env) as server:
                            _load(server.base_url)  # warm-up: connections, first plans
                            elapsed, statuses = _load(server.base_url)
                        assert statuses == Counter({200: requests}), (mode, statuses)
                        times.setdefault(mode, []).append(elapsed)
    finally:
        asyncio.run(_pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    base = statistics.median(times["direct"])
    print(f"{CLIENTS} clients x {args.rounds} rounds x 5 requests, median of {args.repeats}")
    print(f"{'mode':<24} {'req/s':>8} {'time vs direct':>15}  runs (s)")
    for mode, runs in times.items():
        median = statistics.median(runs)
        each = " ".join(f"{t:.1f}" for t in runs)
        print(f"{mode:<24} {requests / median:>8.0f} {median / base:>14.2f}x  {each}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
