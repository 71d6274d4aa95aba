"""Benchmark: confident non-neutral emotion on calm natural speech (issue 24, target ≤ 10 %).

Real read speech from the shared data folder (LibriSpeech, LibriVox, the licence reading),
the same texts read by offline TTS voices (espeak-ng, flite, piper), acted neutral clips for
contrast and JFK's inaugural excerpt, all through ``emotivoice.analyze``; prints, per group, the
share of units whose dominant emotion is not neutral at a confidence ≥ 0.5, and the mean
arousal of the units. Usage: ``python benchmarks/natural_speech.py [--json FILE]
[--emotion-model PATH]``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from emotivoice.emotion.dimensions import DimensionHead
from emotivoice.errors import ModelNotFoundError
from emotivoice.evaluation.datasets import data_dir
from emotivoice.evaluation.natural_speech import format_summary, run_natural_speech_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=None, help="shared data folder")
    parser.add_argument("--tts", default="/tmp/emotivoice-natural-tts", help="TTS cache folder")
    parser.add_argument("--emotion-model", default="default", help="default or a head .npz")
    parser.add_argument("--per-corpus", type=int, default=20, help="acted neutral clips each")
    parser.add_argument("--json", default=None, help="write every unit and the summary here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    try:
        dimensions: DimensionHead | None = DimensionHead.load()
    except ModelNotFoundError as error:
        print(f"no arousal: {error.message}", file=sys.stderr)
        dimensions = None
    units, summary = run_natural_speech_benchmark(
        data_dir(Path(args.data) if args.data else None),
        Path(args.tts),
        args.per_corpus,
        args.emotion_model,
        dimensions,
        progress=lambda line: print(line, file=sys.stderr),
    )
    print(format_summary(summary))
    if args.json:
        report = {"summary": summary, "units": [dataclasses.asdict(u) for u in units]}
        Path(args.json).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
