"""Scale-out: analyses per minute with 1, 2 and 4 Celery workers over Redis and PostgreSQL,
status latency under that load, and a projection for N machines sharing Redis and PostgreSQL.

Each configuration is a :func:`~emotivoice.evaluation.service_load.run_load` run against the
real services. Beside throughput, the run counts what the shared parts did per analysis
(:func:`~emotivoice.evaluation.service_load.shared_counters`): CPU seconds of the API process,
Redis commands and PostgreSQL transactions. :func:`project` scales those per-analysis costs by
the throughput of N worker machines and names the part that runs out first, against stated
capacities (:data:`CAPACITY`): one API process is one core; the Redis and PostgreSQL figures
are conservative round numbers for one modest server, not measured here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from emotivoice.evaluation.service_load import LoadResult

__all__ = ["CAPACITY", "Projection", "format_projection", "project"]

#: what one of each shared part is assumed to sustain per second (see the module doc)
CAPACITY = {
    "api_cpu_s": 1.0,  # one API process: one core
    "redis_commands": 50_000.0,  # one Redis server: small commands (it does ~100k/s on a core)
    "postgres_transactions": 2_000.0,  # one PostgreSQL: small write transactions, fsync on
}


@dataclass(frozen=True)
class Projection:
    """N machines like the measured one, sharing one API process, Redis and PostgreSQL."""

    machines: int
    analyses_per_min: float
    load: dict[str, float]  # share of each shared part's capacity (1.0 = saturated)

    @property
    def first_to_saturate(self) -> str:
        return max(self.load, key=lambda k: self.load[k])


def project(
    measured: LoadResult, machines: Sequence[int] = (1, 2, 4, 8, 16, 32, 64)
) -> list[Projection]:
    """Scale ``measured`` (one machine's run with its counters) to ``machines`` machines."""
    per_analysis = {k: v / measured.jobs for k, v in measured.counters.items() if k in CAPACITY}
    out = []
    for n in machines:
        rate = measured.per_minute * n  # analyses a minute, if nothing shared saturates
        load = {k: per_analysis[k] * rate / 60 / CAPACITY[k] for k in per_analysis}
        out.append(Projection(n, rate, load))
    return out


def format_projection(measured: LoadResult, projections: Sequence[Projection]) -> str:
    """The per-analysis costs and the projection as plain text."""
    costs = ", ".join(f"{k} {v / measured.jobs:.3g}" for k, v in measured.counters.items())
    lines = [
        f"per analysis ({measured.workers} workers, {measured.jobs} jobs): {costs}",
        f"{'machines':>8} {'analyses/min':>12} "
        + " ".join(f"{k:>22}" for k in CAPACITY)
        + "  first to saturate",
    ]
    for p in projections:
        shares = " ".join(f"{p.load.get(k, 0.0):>21.1%} " for k in CAPACITY)
        lines.append(f"{p.machines:>8} {p.analyses_per_min:>12.0f} {shares} {p.first_to_saturate}")
    return "\n".join(lines)
