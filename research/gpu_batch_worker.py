"""The GPU figure per service worker (issue 29): what one worker's analysis does, on a GPU.

A service worker analyses one recording at a time through the segment-by-segment path
(``Analyzer.analyze``, as ``emotivoice analyze --device cuda`` does). This times that path over
the 6 reference clips of ``benchmarks/service_load.py`` (JFK and the 5 LibriVox utterances),
one after the other, after one warm-up analysis: analyses per minute and the GPU's mean
utilisation. Without the service around it (no upload, queue, result files or report), so it is
the ceiling of one worker on that card.

``python research/gpu_batch_worker.py CLIPS_DIR [--device cuda] [--rounds 3]``: ``CLIPS_DIR``
holds the 6 clips as 16 kHz mono (read with soundfile, so a machine without PyAV can run it;
convert JFK's 44.1 kHz stereo first).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile

from emotivoice.evaluation.gpu_batch import gpu_utilisation
from emotivoice.pipeline import AnalyzeOptions, Analyzer


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clips", type=Path)
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # the options of `emotivoice analyze --device DEVICE` (beam 5, everything on)
    analyzer = Analyzer(
        AnalyzeOptions.from_kwargs(device=args.device, emotion_device=args.device, beam_size=5)
    )
    audios = []
    for path in sorted(args.clips.glob("*.flac")):
        samples, rate = soundfile.read(path, dtype="float32")
        audios.append(analyzer.load(samples, sample_rate=rate))
    analyzer.analyze(audios[0])  # warm-up: models loaded, kernels chosen
    audio_s = sum(a.duration for a in audios) * args.rounds
    with gpu_utilisation() as util:
        started = time.perf_counter()
        for _ in range(args.rounds):
            for audio in audios:
                analyzer.analyze(audio)
        wall = time.perf_counter() - started
    analyses = len(audios) * args.rounds
    busy = f"{np.mean(util):.0f} %" if util else "n/a"
    print(
        f"worker path on {args.device}: {analyses} analyses of {audio_s:.1f} s in {wall:.2f} s: "
        f"{analyses / wall * 60:.1f} analyses/min, {audio_s / wall:.1f}x real time, GPU {busy}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
