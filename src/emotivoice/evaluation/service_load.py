"""Load on the service: concurrent clients upload and analyse the reference clips.

For the embedded queue (SQLite) and for Redis + PostgreSQL, with any number of workers:
analyses per minute and the p50/p95 latency of status requests made while the jobs run.
``benchmarks/service_load.py`` is its command line.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emotivoice.client.rest import ServiceClient
from emotivoice.evaluation.processes import service_env, spawn, start_server, stop

__all__ = ["LoadResult", "format_load_report", "run_load", "shared_counters"]

_REDIS_URL = "redis://127.0.0.1:6379/8"  # a database of its own: flushed before each run
_POSTGRES_ADMIN = "postgresql://postgres@127.0.0.1/postgres"
_POLL_S = 0.2
_STATS_LAG_S = 1.0


@dataclass(frozen=True)
class LoadResult:
    """One configuration's throughput and status latency."""

    mode: str
    workers: int
    jobs: int
    seconds: float
    status_latencies_s: tuple[float, ...]
    #: what the shared parts did during the timed run (see :func:`shared_counters`)
    counters: dict[str, float] = field(default_factory=dict)

    @property
    def per_minute(self) -> float:
        return self.jobs / self.seconds * 60

    @property
    def status_p50_ms(self) -> float:
        return statistics.median(self.status_latencies_s) * 1000

    @property
    def status_p95_ms(self) -> float:
        return statistics.quantiles(self.status_latencies_s, n=20)[18] * 1000


def shared_counters(server_pid: int, database: str | None) -> dict[str, float]:
    """What the shared parts of a deployment have done so far: CPU seconds of the API
    process (and its children), Redis commands (the whole server's, all databases) and
    PostgreSQL transactions of ``database`` (``None``: the embedded queue, API CPU only)."""
    import psutil

    api = psutil.Process(server_pid)
    times = [p.cpu_times() for p in [api, *api.children(recursive=True)]]
    out = {"api_cpu_s": sum(t.user + t.system for t in times)}
    if database is not None:
        import psycopg
        import redis

        stats: dict[str, Any] = redis.Redis.from_url(_REDIS_URL).info("stats")  # type: ignore[assignment]
        out["redis_commands"] = float(stats["total_commands_processed"])
        with psycopg.connect(_POSTGRES_ADMIN, autocommit=True) as c:
            time.sleep(_STATS_LAG_S)  # PostgreSQL publishes its statistics every 0.5 s
            row = c.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = %s",
                (database,),
            ).fetchone()
        out["postgres_transactions"] = float(row[0]) if row else 0.0
    return out


@contextmanager
def _scale_out_storage(env: dict[str, str]) -> Iterator[str]:
    """A fresh PostgreSQL database and Redis queue for one run, dropped afterwards."""
    import psycopg
    import redis

    name = f"emotivoice_load_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(_POSTGRES_ADMIN, autocommit=True) as c:
        c.execute(f'CREATE DATABASE "{name}"')
    redis.Redis.from_url(_REDIS_URL).flushdb()
    env.update(
        EMOTIVOICE_BROKER_URL=_REDIS_URL,
        EMOTIVOICE_DATABASE_URL=f"postgresql+psycopg://postgres@127.0.0.1/{name}",
    )
    try:
        yield name
    finally:
        with psycopg.connect(_POSTGRES_ADMIN, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _client(url: str, clips: Sequence[Path], k: int, clients: int, rounds: int) -> list[float]:
    """Client ``k``'s share of the jobs, then status polls until each is done; their latencies."""
    latencies = []
    with ServiceClient(url) as c:
        ids = [
            c.analyze(c.upload(clip)["id"])["id"]
            for r in range(rounds)
            for i, clip in enumerate(clips)
            if (i + r) % clients == k % clients
        ]
        for analysis_id in ids:
            while True:
                started = time.perf_counter()
                body = c.status(analysis_id)
                latencies.append(time.perf_counter() - started)
                if body["status"] in ("completed", "failed"):
                    if body["status"] != "completed":
                        raise RuntimeError(f"analysis {analysis_id} failed: {body}")
                    break
                time.sleep(_POLL_S)
    return latencies


def run_load(
    mode: str,
    workers: int,
    clips: Sequence[Path],
    clients: int,
    rounds: int,
    settings: dict[str, str] | None = None,
) -> LoadResult:
    """Analyse ``clips`` ``rounds`` times over ``clients`` concurrent clients.

    ``mode``: ``embedded`` (SQLite queue and database) or ``redis`` (Redis + PostgreSQL on
    127.0.0.1, which must be running: ``bash scripts/ensure_services.sh``). ``settings``: more
    environment for the server and workers (``{"EMOTIVOICE_WORKER_NICE": "0"}``).
    """
    home = Path(tempfile.mkdtemp(prefix="emotivoice-load-"))
    env = service_env(home, rate_limit_per_minute=0) | dict(settings or {})
    with _scale_out_storage(env) if mode == "redis" else nullcontext() as database:
        server, url = start_server(env, home / "service.log", workers=0)
        procs = [spawn(["worker"], env, home / f"worker{i}.log") for i in range(workers)]
        try:
            with ServiceClient(url) as probe:  # warm-up: a worker loads its models on a first job
                warm = [probe.analyze(probe.upload(clips[0])["id"]) for _ in range(workers)]
                for job in warm:
                    probe.wait(job["id"])
            shares: list[list[float]] = [[] for _ in range(clients)]

            def work(k: int) -> None:
                shares[k] = _client(url, clips, k, clients, rounds)

            before = shared_counters(server.pid, database)
            started = time.perf_counter()
            threads = [threading.Thread(target=work, args=(k,)) for k in range(clients)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - started
            after = shared_counters(server.pid, database)
        finally:
            for p in [*procs, server]:
                stop(p)
    latencies = tuple(x for share in shares for x in share)
    counters = {k: after[k] - before[k] for k in after}
    return LoadResult(mode, workers, len(clips) * rounds, elapsed, latencies, counters)


def format_load_report(results: Sequence[LoadResult], clients: int) -> str:
    """The figures side by side, throughput relative to the first row."""
    base = results[0].per_minute
    lines = [
        f"{results[0].jobs} analyses per run, {clients} concurrent clients, "
        f"{os.cpu_count()} CPU cores",
        f"{'mode':<9} {'workers':>7} {'analyses/min':>12} {'x ref':>6} "
        f"{'status p50':>10} {'status p95':>10}",
    ]
    for r in results:
        lines.append(
            f"{r.mode:<9} {r.workers:>7} {r.per_minute:>12.1f} {r.per_minute / base:>6.2f} "
            f"{r.status_p50_ms:>8.1f}ms {r.status_p95_ms:>8.1f}ms"
        )
    lines.append("(x ref: throughput relative to the first row)")
    return "\n".join(lines)
