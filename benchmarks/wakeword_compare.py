"""Benchmark: EmotiVoice's wake-word model against openWakeWord's and microWakeWord's on one
test set (false rejects at 0.5 and 1 false accept per hour, EER, each model's own threshold,
latency, CPU per stream).

The peers run their shipped "hey jarvis" models through their own Python APIs in an isolated
environment that is built from the package index on first use (``emotivoice.wakeword.peers``);
all models score the same streams, built once from the data set's test split (voices and
speakers never trained on).

Usage: ``python benchmarks/wakeword_compare.py --data FOLDER [--models a,b,c]
[--max-negative-hours H] [--json FILE]``; ``--data`` is a folder made by
``emotivoice wakeword generate "hey jarvis"``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

from emotivoice.wakeword import EvaluationOptions, compare_models
from emotivoice.wakeword.peers import format_comparison

DEFAULT_MODELS = "hey_jarvis,openwakeword:hey_jarvis,microwakeword:hey_jarvis"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="a data set made by generate")
    parser.add_argument("--models", default=DEFAULT_MODELS, help="comma-separated")
    parser.add_argument("--max-negative-hours", type=float, default=None)
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reports = compare_models(
        args.models.split(","),
        Path(args.data),
        EvaluationOptions(max_negative_hours=args.max_negative_hours),
        progress=logging.getLogger("wakeword_compare").info,
    )
    print(format_comparison(reports))
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        Path(args.json).write_text(json.dumps([r.to_dict() for r in reports], indent=1))


if __name__ == "__main__":
    main()
