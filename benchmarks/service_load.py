"""Load on the service: N concurrent clients upload and analyse the reference clips.

For the embedded queue (SQLite) and for Redis + PostgreSQL, with one and with two workers, prints
analyses per minute and the p50/p95 latency of status requests made while the jobs run.
Redis and PostgreSQL must be running (``bash scripts/ensure_services.sh``). The measurement is
:mod:`emotivoice.evaluation.service_load`.

    python benchmarks/service_load.py --clients 4 --rounds 1
"""

from __future__ import annotations

import argparse
import sys

from emotivoice.evaluation.datasets import data_dir
from emotivoice.evaluation.service_load import format_load_report, run_load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--modes", default="embedded,redis")
    parser.add_argument("--workers", default="1,2")
    args = parser.parse_args()
    root = data_dir()
    clips = [root / "speech" / "jfk.flac", *sorted((root / "librivox").glob("*.flac"))]
    results = []
    for mode in args.modes.split(","):
        for workers in (int(w) for w in args.workers.split(",")):
            results.append(run_load(mode, workers, clips, args.clients, args.rounds))
            print(f"done: {mode} x{workers}", file=sys.stderr)
    print(format_load_report(results, args.clients))


if __name__ == "__main__":
    main()
