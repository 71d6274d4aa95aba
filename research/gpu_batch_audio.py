"""Build the GPU batch benchmark's recordings from ``../shared/data`` (not kept in the repo).

``python research/gpu_batch_audio.py OUT_DIR [--minutes 5.5] [--count 8]``: ``count``
recordings of about ``minutes`` each, half English (RAVDESS clips with LibriSpeech, LibriVox
and JFK utterances among them), half Polish (nEMO clips), real utterances concatenated with
0.4 s gaps, written as 16 kHz mono Opus at 20 kbit/s (small enough to carry to a device
machine; ``benchmarks/gpu_batch.py --decoder soundfile`` reads them there).
"""

from __future__ import annotations

import argparse
import os
import random
from pathlib import Path

import numpy as np
import soundfile

from emotivoice.audio import SAMPLE_RATE, load_audio

DATA = Path(os.environ.get("EMOTIVOICE_DATA", Path(__file__).parents[1] / "../shared/data"))
GAP = np.zeros(int(0.4 * SAMPLE_RATE), dtype=np.float32)


def _pool(english: bool) -> list[Path]:
    if english:
        clips = sorted((DATA / "ravdess").glob("Actor_*/*.flac"))
        extra = sorted((DATA / "librispeech").glob("*.flac"))
        extra += [*sorted((DATA / "librivox").glob("*.flac")), DATA / "speech/jfk.flac"]
        return clips + extra * 4
    return sorted((DATA / "nemo/samples").glob("*.opus"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--minutes", type=float, default=5.5)
    parser.add_argument("--count", type=int, default=8)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(29)
    target = int(args.minutes * 60 * SAMPLE_RATE)
    for n in range(args.count):
        english = n < args.count // 2
        pool = _pool(english)
        rng.shuffle(pool)
        parts: list[np.ndarray] = []
        total = 0
        for path in pool:
            if total >= target:
                break
            samples = load_audio(path).samples
            parts += [samples, GAP]
            total += len(samples) + len(GAP)
        name = f"{'en' if english else 'pl'}-{n:02d}.opus"
        soundfile.write(
            args.out / name,
            np.concatenate(parts)[:target],
            SAMPLE_RATE,
            format="OGG",
            subtype="OPUS",
            compression_level=0.9,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
