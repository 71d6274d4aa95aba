"""Benchmark: cost of the acoustic features, cold (fresh process) and steady state.

Cold: a fresh interpreter times ``import emotivoice.features`` and then the first
``extract_features`` call on a clip (decoding excluded); steady: the fastest of ``--repeats``
calls in one process; wall and CPU (process) time, the latter less sensitive to other work on
the machine. Run it against another checkout's sources to compare, e.g. the librosa
version: ``git archive <commit> src | tar -x -C /tmp/base`` and ``--sources /tmp/base/src``.
Usage: ``python benchmarks/features_speed.py [--clip PATH] [--rounds 5] [--repeats 5]
[--sources SRC ...]``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from emotivoice.evaluation.datasets import data_dir

CHILD = """
import json, sys, time
from emotivoice.audio import load_audio
samples = load_audio(sys.argv[1]).samples
start, cpu_start = time.perf_counter(), time.process_time()
import emotivoice.features as features
imported = time.perf_counter()
features.extract_features(samples)
first, cpu_first = time.perf_counter(), time.process_time()
steady, steady_cpu = [], []
for _ in range(int(sys.argv[2])):
    t, c = time.perf_counter(), time.process_time()
    features.extract_features(samples)
    steady.append(time.perf_counter() - t)
    steady_cpu.append(time.process_time() - c)
heavy = [m for m in ("librosa", "numba", "scipy.signal", "scipy.stats") if m in sys.modules]
print(json.dumps({"import_s": imported - start, "first_call_s": first - imported,
                  "cold_cpu_s": cpu_first - cpu_start, "steady_s": min(steady),
                  "steady_cpu_s": min(steady_cpu), "heavy_modules": heavy}))
"""


def _run(sources: str, clip: Path, repeats: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": sources}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(clip), str(repeats)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clip", type=Path, default=data_dir() / "speech" / "jfk.flac")
    parser.add_argument("--rounds", type=int, default=5, help="fresh processes per source")
    parser.add_argument("--repeats", type=int, default=5, help="steady-state calls per process")
    parser.add_argument(
        "--sources",
        nargs="+",
        default=[str(Path(__file__).resolve().parents[1] / "src")],
        help="source folders to compare (each put first on PYTHONPATH), alternating rounds",
    )
    args = parser.parse_args()
    runs: dict[str, list[dict[str, object]]] = {s: [] for s in args.sources}
    for _ in range(args.rounds):
        for sources in args.sources:
            runs[sources].append(_run(sources, args.clip, args.repeats))
    for sources, results in runs.items():

        def median(key: str, results: list[dict[str, object]] = results) -> float:
            return statistics.median(float(r[key]) for r in results)  # type: ignore[arg-type]

        cold = median("import_s") + median("first_call_s")
        steady = min(float(r["steady_s"]) for r in results)  # type: ignore[arg-type]
        steady_cpu = min(float(r["steady_cpu_s"]) for r in results)  # type: ignore[arg-type]
        print(
            f"{sources}: import {median('import_s'):.3f} s + first call "
            f"{median('first_call_s'):.3f} s = cold {cold:.3f} s "
            f"(CPU {median('cold_cpu_s'):.3f} s); steady {steady:.3f} s (CPU {steady_cpu:.3f} s); "
            f"heavy modules {results[0]['heavy_modules']}"
        )


if __name__ == "__main__":
    main()
