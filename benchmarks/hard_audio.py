"""Benchmark: real-time factor on hard audio (noisy Polish speech, multilingual recordings).

Plain faster-whisper, EmotiVoice's transcription and the full analysis side by side, file by
file, with the worst segment. Usage: ``python benchmarks/hard_audio.py [--json]``.
"""

from __future__ import annotations

import argparse
import json

from emotivoice.evaluation.hard_audio import format_hard_audio, run_hard_audio_benchmark


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args()
    report = run_hard_audio_benchmark()
    print(json.dumps(report.to_dict(), indent=2) if args.json else format_hard_audio(report))


if __name__ == "__main__":
    main()
