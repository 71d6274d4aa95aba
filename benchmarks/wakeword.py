"""Benchmark: the wake-word detector's cost per stream and, given a data set, its streaming
accuracy (false rejects at 0.5 and 1 false accept per hour, EER, latency, DET curve).

Usage: ``python benchmarks/wakeword.py [--model hey_jarvis] [--streams 50] [--seconds 20]
[--data FOLDER] [--output FOLDER] [--json]``; ``--data`` is a folder made by
``emotivoice wakeword generate`` (its test split: voices and speakers never trained on).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emotivoice.evaluation.wakeword import format_cost, measure_cost


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="hey_jarvis", help="shipped name or ONNX file")
    parser.add_argument("--streams", type=int, default=50, help="streams run at once")
    parser.add_argument("--seconds", type=float, default=20.0, help="audio per stream")
    parser.add_argument("--data", default=None, help="a generated data set: accuracy too")
    parser.add_argument("--output", default="wakeword-benchmark", help="JSON/PNG folder")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()
    cost = measure_cost(args.model, args.streams, args.seconds)
    result: dict[str, object] = {"cost": cost.to_dict()}
    text = [format_cost(cost)]
    if args.data:
        from emotivoice.wakeword import evaluate_model, write_report

        report = evaluate_model(args.model, Path(args.data))
        write_report(report, Path(args.output))
        result["accuracy"] = {k: v for k, v in report.to_dict().items() if k != "det"}
        text.append(report.summary())
    print(json.dumps(result, indent=1) if args.json else "\n".join(text))


if __name__ == "__main__":
    main()
