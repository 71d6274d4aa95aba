"""Load on the service: N concurrent clients upload and analyse the reference clips.

For the embedded queue (SQLite) and for Redis + PostgreSQL, with one and with two workers, prints
analyses per minute and the p50/p95 latency of status requests made while the jobs run.
Redis and PostgreSQL must be running (``bash scripts/ensure_services.sh``).

    python benchmarks/service_load.py --clients 4 --rounds 1
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from emotivoice.client.rest import ServiceClient
from emotivoice.evaluation.datasets import data_dir


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "emotivoice", *args],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def _stop(p: subprocess.Popen[bytes]) -> None:
    if p.poll() is None:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            p.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)


def run(mode: str, workers: int, clips: list[Path], clients: int, rounds: int) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="emotivoice-load-"))
    env = dict(os.environ, EMOTIVOICE_HOME=str(home), EMOTIVOICE_RATE_LIMIT_PER_MINUTE="0")
    db_name = None
    if mode == "redis":
        import psycopg
        import redis

        db_name = f"emotivoice_load_{uuid.uuid4().hex[:8]}"
        with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
            c.execute(f'CREATE DATABASE "{db_name}"')
        redis.Redis.from_url("redis://127.0.0.1:6379/8").flushdb()
        env.update(
            EMOTIVOICE_BROKER_URL="redis://127.0.0.1:6379/8",
            EMOTIVOICE_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1/{db_name}",
        )
    port = _port()
    log = home / "service.log"
    server = _spawn(["serve", "--port", str(port), "--workers", "0"], env, log)
    procs = [_spawn(["worker"], env, home / f"worker{i}.log") for i in range(workers)]
    url = f"http://127.0.0.1:{port}"
    latencies: list[float] = []
    try:
        with ServiceClient(url) as probe:
            deadline = time.monotonic() + 60
            while True:
                try:
                    probe.get("/ready")
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.3)
            # Warm-up: each worker loads its models on its first job.
            warm = [probe.analyze(probe.upload(clips[0])["id"]) for _ in range(workers)]
            for job in warm:
                probe.wait(job["id"])

        def client(k: int) -> None:
            with ServiceClient(url) as c:
                ids = []
                for r in range(rounds):
                    for i, clip in enumerate(clips):
                        if (i + r) % clients == k % clients:
                            ids.append(c.analyze(c.upload(clip)["id"])["id"])
                for analysis_id in ids:
                    while True:
                        t = time.perf_counter()
                        body = c.status(analysis_id)
                        latencies.append(time.perf_counter() - t)
                        if body["status"] in ("completed", "failed"):
                            assert body["status"] == "completed", body
                            break
                        time.sleep(0.2)

        started = time.perf_counter()
        threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
    finally:
        for p in procs:
            _stop(p)
        _stop(server)
        if db_name:
            import psycopg

            with psycopg.connect("postgresql://postgres@127.0.0.1/postgres", autocommit=True) as c:
                c.execute(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)')
    jobs = len(clips) * rounds
    q = statistics.quantiles(latencies, n=20)
    return {
        "mode": mode,
        "workers": workers,
        "jobs": jobs,
        "seconds": elapsed,
        "per_minute": jobs / elapsed * 60,
        "status_p50_ms": statistics.median(latencies) * 1000,
        "status_p95_ms": q[18] * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="embedded,redis")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    root = data_dir()
    clips = [root / "speech" / "jfk.flac", *sorted((root / "librivox").glob("*.flac"))]
    rows = []
    for mode in args.modes.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            rows.append(run(mode, workers, clips, args.clients, args.rounds))
            print(f"done: {mode} x{workers}", file=sys.stderr)
    base = rows[0]["per_minute"]
    print(
        f"{len(clips) * args.rounds} analyses per run, {args.clients} concurrent clients, "
        f"{os.cpu_count()} CPU cores"
    )
    print(
        f"{'mode':<9} {'workers':>7} {'analyses/min':>12} {'x ref':>6} "
        f"{'status p50':>10} {'status p95':>10}"
    )
    for r in rows:
        print(
            f"{r['mode']:<9} {r['workers']:>7} {r['per_minute']:>12.1f} "
            f"{r['per_minute'] / base:>6.2f} {r['status_p50_ms']:>8.1f}ms "
            f"{r['status_p95_ms']:>8.1f}ms"
        )
    print("(x ref: throughput relative to the first row)")


if __name__ == "__main__":
    main()
