"""Scale-out: analyses per minute with 1, 2 and 4 Celery workers over Redis + PostgreSQL, status
latency under load (with the workers' lowered priority and without it), and a projection for N
machines.

Redis and PostgreSQL must be running (``bash scripts/ensure_services.sh``). The measurement is
:mod:`emotivoice.evaluation.scale_out`.

    python benchmarks/scale_out.py --workers 1,2,4 --clients 4
"""

from __future__ import annotations

import argparse
import os
import sys

from emotivoice.evaluation.datasets import data_dir
from emotivoice.evaluation.scale_out import format_projection, project
from emotivoice.evaluation.service_load import format_load_report, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument(
        "--compare-nice",
        type=int,
        default=2,
        metavar="W",
        help="also run W workers at normal priority (EMOTIVOICE_WORKER_NICE=0, "
        "EMOTIVOICE_WORKER_SCHEDULING=normal; 0: skip)",
    )
    args = parser.parse_args()
    root = data_dir()
    clips = [root / "speech" / "jfk.flac", *sorted((root / "librivox").glob("*.flac"))]
    results = []
    for workers in (int(w) for w in args.workers.split(",")):
        results.append(run_load("redis", workers, clips, args.clients, args.rounds))
        print(f"done: redis x{workers}, load {os.getloadavg()[0]:.2f}", file=sys.stderr)
    if args.compare_nice:
        results.append(
            run_load(
                "redis",
                args.compare_nice,
                clips,
                args.clients,
                args.rounds,
                {"EMOTIVOICE_WORKER_NICE": "0", "EMOTIVOICE_WORKER_SCHEDULING": "normal"},
            )
        )
        print("(last row: workers at normal priority)", file=sys.stderr)
    print(format_load_report(results, args.clients))
    best = max(results[: len(args.workers.split(","))], key=lambda r: r.per_minute)
    print(format_projection(best, project(best)))
    print(f"load average after the runs: {os.getloadavg()}")


if __name__ == "__main__":
    main()
