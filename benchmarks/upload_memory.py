"""API-process memory under hostile uploads: N parallel worst-case uploads (peak RSS), a
worker's full decode of that recording (peak RSS), and the time to a 401 for a 30 MB JSON body
with a wrong key. The measurement is
:mod:`emotivoice.evaluation.upload_memory`; ``--sources`` runs another checkout's ``src`` the
same way (the code before a change).

    python benchmarks/upload_memory.py --parallel 10
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from emotivoice.evaluation.upload_memory import (
    format_memory_report,
    measure_decode,
    measure_large_body,
    measure_uploads,
    worst_case_wav,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--parallel", type=int, default=10)
    parser.add_argument("--hours", type=float, default=3.9)
    parser.add_argument("--body-mb", type=float, default=30.0)
    parser.add_argument("--sources", type=Path, default=None, help="another checkout's src/")
    parser.add_argument("--parts", default="uploads,decode,body", help="any of uploads,decode,body")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    uploads = body = decode = None
    with tempfile.TemporaryDirectory(prefix="emotivoice-upload-memory-") as folder:
        root = Path(folder)
        wav = worst_case_wav(root / "worst-case.wav", args.hours)
        if "uploads" in parts:
            uploads = measure_uploads(root / "uploads", wav, args.parallel, args.sources)
            print("uploads measured", file=sys.stderr)
        if "decode" in parts:
            decode = measure_decode(wav, args.sources)
        if "body" in parts:
            body = measure_large_body(root / "body", args.body_mb, args.sources)
    print(format_memory_report(uploads, body, decode))


if __name__ == "__main__":
    main()
