"""Benchmark: the local voice assistant's latency per turn (end of speech → final transcript →
first token → first sentence → first audio: voice-to-voice), whether streaming loses first
words (streamed against batch WER), and barge-in (playback stop and generation cancel after the
user starts speaking).

Usage: ``python benchmarks/assistant_latency.py [--questions 30] [--interruptions 20]
[--max-tokens 60] [--voice auto|piper|espeak-ng] [--model FILE.gguf] [--json]``; everything runs
at the pace of speech (about 4 minutes with the defaults on 2 CPU cores).
"""

from __future__ import annotations

import argparse
import json

from emotivoice.assistant.llm import LocalModel
from emotivoice.assistant.speech import default_speaker
from emotivoice.evaluation.assistant import (
    QUESTIONS,
    format_assistant_report,
    run_assistant_benchmark,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=len(QUESTIONS), help="spoken questions")
    parser.add_argument("--interruptions", type=int, default=20, help="barge-in trials")
    parser.add_argument("--max-tokens", type=int, default=60, help="longest reply in tokens")
    parser.add_argument("--voice", default="auto", choices=("auto", "piper", "espeak-ng"))
    parser.add_argument("--model", default=None, help="a GGUF file (default: SmolLM2-135M)")
    parser.add_argument("--threads", type=int, default=None, help="llama.cpp threads")
    parser.add_argument(
        "--no-prefill",
        action="store_true",
        help="do not read the next prompt's beginning ahead (the reference run)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    args = parser.parse_args()
    report = run_assistant_benchmark(
        LocalModel(args.model, threads=args.threads),
        default_speaker(args.voice),
        n_questions=args.questions,
        interruptions=args.interruptions,
        max_reply_tokens=args.max_tokens,
        prefill=not args.no_prefill,
    )
    print(json.dumps(report.to_dict(), indent=1) if args.json else format_assistant_report(report))


if __name__ == "__main__":
    main()
