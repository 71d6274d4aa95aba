"""Benchmark: a cold ``emotivoice analyze`` process against a plain faster-whisper script.

Whole processes, alternating, median ratio of the rounds; the 15 reference utterances in one
process and one 3.6 s clip. Usage:
``python benchmarks/cold_start.py [--repeats 3] [--set reference|short] [--json]``.
"""

from __future__ import annotations

import argparse
import json

from emotivoice.evaluation.cold_start import format_cold_start, run_cold_start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="alternating rounds (default 3)")
    parser.add_argument(
        "--set",
        choices=("reference", "short", "both"),
        default="both",
        help="which files: the 15 reference utterances, one short clip, or both",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    sets = {"reference": ("reference",), "short": ("short clip",)}.get(
        args.set, ("reference", "short clip")
    )
    report = run_cold_start(repeats=args.repeats, sets=sets)
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_cold_start(report))


if __name__ == "__main__":
    main()
