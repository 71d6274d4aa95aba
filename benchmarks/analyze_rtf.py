"""Benchmark: real-time factor of ``emotivoice analyze`` vs plain faster-whisper.

Same as ``emotivoice bench``; prints RTF, WER and the time ratio of each run side by side.
Usage: ``python benchmarks/analyze_rtf.py [--threads 2] [--repeats 1] [--json]``.
"""

from __future__ import annotations

import sys

from emotivoice.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["bench", *sys.argv[1:]]))
