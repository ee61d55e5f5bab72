"""End-to-end delivery: a batch job recording as fast as it can, into a real API on PostgreSQL.

Usage (PostgreSQL on 127.0.0.1:5432, trust auth, as in the test set-up):

    .venv/bin/python bench/delivery.py --runs 2000

In one run, on this machine, with the SDK's default settings:

1. **server raw ingest**: the pipeline's own batches, recorded once and posted straight to
   the API (``max_in_flight`` connections, no SDK in the loop): what the server stores
   per second, the ceiling for any client;
2. **pipeline → API → PostgreSQL**: a separate process records ``--runs`` runs of a 6-step
   pipeline (one ``detail="full"`` filter rejecting 100 of 120 candidates with reasons)
   as fast as it can, then ``flush()``es; reported: steps/s and decisions/s recorded,
   delivered (acknowledged by the API) and stored (counted in the database), loss, and
   the pipeline process's peak RSS;
3. **sender vs a local sink** that only reads requests and answers 200: what one
   process's sender moves (encoded, compressed, sent), summary steps and decisions,
   against the goals of 30,000 steps/s and 300,000 decisions/s.

Bounded: fixed counts, loopback only, fresh databases dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PG = "postgres@127.0.0.1:5432"
CANDIDATES, KEPT, STEPS_PER_RUN = 120, 20, 6


# -- the pipeline (also run as a child process) ----------------------------------------


def _pipeline() -> Any:
    from xray import current_step, step

    @step(type="llm")
    def keywords(item: int) -> list[str]:
        return [f"kw{item}", "stand"]

    @step(type="retrieval")
    def search(keywords: list[str]) -> list[dict[str, Any]]:
        return [{"id": f"c{i}", "price": i} for i in range(CANDIDATES)]

    @step(type="filter", detail="full")
    def price_filter(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        s = current_step()
        kept = []
        for c in candidates:
            if c["price"] >= KEPT:
                s.reject(c["id"], reason="price_above_max" if c["price"] % 2 else "out_of_stock")
            else:
                kept.append(c)
        return kept

    @step(type="rank")
    def rank(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return sorted(candidates, key=lambda c: -c["price"])

    @step(type="select")
    def select(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return candidates[:3]

    @step(type="evaluate")
    def judge(candidates: list[dict[str, Any]]) -> list[dict[str, Any]]:
        return candidates[:1]

    def one(client: Any, i: int) -> None:
        with client.run("delivery-bench", input={"i": i}):
            judge(select(rank(price_filter(search(keywords(i))))))

    return one


def child_pipeline(base_url: str, runs: int, mode: str) -> None:
    """Record as fast as possible, flush, print what happened (one JSON line)."""
    from xray import XRayClient, current_step, step

    client = XRayClient(base_url=base_url)
    sender_only = mode.startswith("sender-")
    if sender_only:
        # Record first, without handing anything to the sender; then hand it all over
        # at once and time only the delivery: encode, compress, send.
        held: list[object] = []

        def hold(item: object) -> bool:
            held.append(item)
            return True

        client._submit = hold
        mode = mode.removeprefix("sender-")
    started = time.perf_counter()
    if mode == "pipeline":
        one = _pipeline()
        for i in range(runs):
            one(client, i)
    elif mode == "summary":

        @step(type="transform")
        def trivial(x: int) -> int:
            return x

        with client.run("sink-summary"):
            for i in range(runs):
                trivial(i)
    else:  # decisions: full-detail steps of 100 rejections each

        @step(type="filter", detail="full")
        def reject_all(ids: list[str]) -> list[str]:
            s = current_step()
            for i in ids:
                s.reject(i, reason="below_threshold")
            return []

        ids = [f"c{i}" for i in range(100)]
        with client.run("sink-decisions"):
            for _ in range(runs):
                reject_all(ids)
    recorded = time.perf_counter() - started
    cpu0 = time.process_time()
    if sender_only:
        started = time.perf_counter()
        put = client._buffer.put
        client._submit = put
        for item in held:
            put(item)
        del held
    done = client.flush(600)
    total = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    rss_kib = usage.ru_maxrss
    print(
        json.dumps(
            {
                "recorded_s": recorded,
                "total_s": total,
                "flushed": done,
                "stats": client.stats(),
                "peak_rss_mib": rss_kib / 1024,
                # CPU of the whole process (recording + sender): on a shared machine the
                # wall clock mostly measures the other tenants.
                "cpu_s": usage.ru_utime + usage.ru_stime,
                "delivery_cpu_s": time.process_time() - cpu0,
            }
        )
    )


# -- helpers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def psql(database: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", "-h", "127.0.0.1", "-U", "postgres", "-At", "-d", database, "-c", sql],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


def start_api(database: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    import httpx

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    env.update(
        DATABASE_URL=f"postgresql://{PG}/{database}", XRAY_HOST="127.0.0.1", XRAY_PORT=str(port)
    )
    log = (workdir / f"api-{database}.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "xray.api"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base_url = f"http://127.0.0.1:{port}"
    for _ in range(600):
        try:
            if httpx.get(base_url + "/readyz", timeout=1).status_code == 200:
                return process, base_url
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit("the API did not start")


def stored(database: str) -> tuple[int, int]:
    row = psql(database, "SELECT (SELECT count(*) FROM steps), (SELECT count(*) FROM decisions)")
    steps, decisions = row.split("|")
    return int(steps), int(decisions)


def run_child(base_url: str, runs: int, mode: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("XRAY_")}
    env["XRAY_SPOOL_DIR"] = tempfile.mkdtemp(prefix="xray-bench-spool-")
    out = subprocess.run(
        [sys.executable, __file__, "--child", mode, "--base-url", base_url, "--runs", str(runs)],
        capture_output=True,
        text=True,
        env=env,
        timeout=1200,
    )
    if out.returncode != 0:
        raise SystemExit(out.stderr)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


# -- 1. the server's raw ingest rate ----------------------------------------------------


class _Capture:
    def __init__(self) -> None:
        self.bodies: list[tuple[bytes, dict[str, str]]] = []
        self._lock = threading.Lock()

    def send(self, body: bytes, headers: Mapping[str, str], timeout: float) -> Any:
        from xray.sdk._sender import Response

        with self._lock:
            self.bodies.append((body, dict(headers)))
        return Response(200)

    def close(self) -> None:
        return None


def raw_ingest(base_url: str, runs: int, connections: int) -> float:
    """Seconds the API takes to store the pipeline's own batches, posted directly."""
    import httpx

    from xray import XRayClient

    capture = _Capture()
    client = XRayClient(transport=capture, spool_dir=None, set_default=False)
    one = _pipeline()
    for i in range(runs):
        one(client, i)
    client.shutdown(600)
    queue = list(capture.bodies)
    lock = threading.Lock()

    def post() -> None:
        with httpx.Client(base_url=base_url, timeout=300) as http:
            while True:
                with lock:
                    if not queue:
                        return
                    body, headers = queue.pop(0)
                http.post("/batch", content=body, headers=headers).raise_for_status()

    started = time.perf_counter()
    threads = [threading.Thread(target=post) for _ in range(connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - started


# -- 3. a sink that only reads requests ---------------------------------------------------


def child_sink(port: int) -> None:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                await reader.readexactly(length)
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


# -- the report --------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--sink-steps", type=int, default=100_000)
    parser.add_argument("--sink-decision-steps", type=int, default=5_000)
    parser.add_argument(
        "--child",
        choices=["pipeline", "summary", "decisions", "sender-summary", "sender-decisions", "sink"],
    )
    parser.add_argument("--sink-only", action="store_true", help="only the local-sink part")
    parser.add_argument("--base-url")
    parser.add_argument("--port", type=int)
    args = parser.parse_args()
    if args.child == "sink":
        child_sink(args.port)
        return
    if args.child:
        child_pipeline(args.base_url, args.runs, args.child)
        return

    from xray.shared import SDKConfig

    in_flight = SDKConfig().max_in_flight
    workdir = Path(tempfile.mkdtemp(prefix="xray-bench-delivery-"))
    databases = [f"bench_delivery_{uuid.uuid4().hex[:8]}" for _ in range(2)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for db in databases:
            psql("postgres", f'CREATE DATABASE "{db}"')
        raw_db, pipe_db = databases
        api, raw_url = start_api(raw_db, workdir)
        processes.append(api)
        steps, decisions = args.runs * STEPS_PER_RUN, args.runs * (CANDIDATES - KEPT)
        raw_s = raw_ingest(raw_url, args.runs, in_flight)
        assert stored(raw_db) == (steps, decisions)
        api.terminate()
        api, pipe_url = start_api(pipe_db, workdir)
        processes.append(api)
        result = run_child(pipe_url, args.runs, "pipeline")
        stats = result["stats"]
        got_steps, got_decisions = stored(pipe_db)
        api.terminate()

        port = free_port()
        sink = subprocess.Popen([sys.executable, __file__, "--child", "sink", "--port", str(port)])
        processes.append(sink)
        time.sleep(1.0)
        sink_url = f"http://127.0.0.1:{port}"
        summary = run_child(sink_url, args.sink_steps, "summary")
        full = run_child(sink_url, args.sink_decision_steps, "decisions")
        sender_summary = run_child(sink_url, args.sink_steps, "sender-summary")
        sender_full = run_child(sink_url, args.sink_decision_steps, "sender-decisions")
        sink.terminate()

        record_s, total_s = result["recorded_s"], result["total_s"]
        lost = steps - got_steps, decisions - got_decisions
        print(f"## delivery, {args.runs} runs x {STEPS_PER_RUN} steps, {decisions:,} decisions")
        print(f"max_in_flight={in_flight}; the same machine, the same run\n")
        print("| measure | steps/s | decisions/s | seconds |")
        print("|---|---:|---:|---:|")
        print(
            f"| server raw ingest (its own batches, posted directly) "
            f"| {steps / raw_s:,.0f} | {decisions / raw_s:,.0f} | {raw_s:.1f} |"
        )
        print(
            f"| pipeline: recorded | {steps / record_s:,.0f} "
            f"| {decisions / record_s:,.0f} | {record_s:.1f} |"
        )
        print(
            f"| pipeline: delivered (recorded + flush) | {steps / total_s:,.0f} "
            f"| {decisions / total_s:,.0f} | {total_s:.1f} |"
        )
        print(f"| pipeline: stored in PostgreSQL | {got_steps:,} steps | {got_decisions:,} | — |")
        print()
        print(f"- delivered / server raw ingest: {raw_s / total_s:.2f}")
        print(
            f"- loss: {lost[0]} steps, {lost[1]} decisions; dropped {stats['dropped']} "
            f"({stats['dropped_by_reason']}); flushed: {result['flushed']}"
        )
        print(f"- pipeline peak RSS: {result['peak_rss_mib']:.0f} MiB")
        s_rate = args.sink_steps / summary["total_s"]
        d_rate = args.sink_decision_steps * 100 / full["total_s"]
        s_cpu = args.sink_steps / summary["cpu_s"]
        d_cpu = args.sink_decision_steps * 100 / full["cpu_s"]
        print(
            f"- one process (recording + sender) into a local sink, wall clock: "
            f"{s_rate:,.0f} summary steps/s ({s_rate / 30_000:.2f}x the 30,000 goal), "
            f"{d_rate:,.0f} decisions/s ({d_rate / 300_000:.2f}x the 300,000 goal)"
        )
        print(
            f"- the same per CPU-second of that process: {s_cpu:,.0f} steps/s "
            f"({s_cpu / 30_000:.2f}x), {d_cpu:,.0f} decisions/s ({d_cpu / 300_000:.2f}x); "
            f"dropped {summary['stats']['dropped']} + {full['stats']['dropped']}; peak RSS "
            f"{summary['peak_rss_mib']:.0f} / {full['peak_rss_mib']:.0f} MiB"
        )
        ss, sd = sender_summary, sender_full
        rate_s = args.sink_steps / ss["total_s"]
        rate_d = args.sink_decision_steps * 100 / sd["total_s"]
        cpu_s = args.sink_steps / ss["delivery_cpu_s"]
        cpu_d = args.sink_decision_steps * 100 / sd["delivery_cpu_s"]
        print(
            f"- the sender alone (recorded first, then delivered: encode, gzip, send): "
            f"{rate_s:,.0f} steps/s ({rate_s / 30_000:.2f}x), {rate_d:,.0f} decisions/s "
            f"({rate_d / 300_000:.2f}x) wall clock; per CPU-second {cpu_s:,.0f} steps/s "
            f"({cpu_s / 30_000:.2f}x), {cpu_d:,.0f} decisions/s ({cpu_d / 300_000:.2f}x); "
            f"dropped {ss['stats']['dropped']} + {sd['stats']['dropped']}"
        )
        print(
            f"- pipeline process CPU: {result['cpu_s']:.1f} s; load average "
            f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
        )
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(10)
        for db in databases:
            psql("postgres", f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
