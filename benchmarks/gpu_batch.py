"""Benchmark: the batch path on a GPU against plain batched faster-whisper on the same card,
and ``explain(device=...)`` of a 10 s segment.

Usage: ``python benchmarks/gpu_batch.py AUDIO_DIR [--batch-size 16] [--device cuda]
[--explain CLIP] [--json OUT] [--decoder soundfile] [--planners N] [--feature-workers N]``.
``AUDIO_DIR``: the recordings (the figures in docs/benchmarks.md: 44 min of real speech from
../shared/data, see there);
``--decoder soundfile`` reads them with soundfile instead of PyAV (on a machine where PyAV is
not installed).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict
from pathlib import Path

from emotivoice.audio import Audio


def _soundfile_recordings(folder: Path) -> list[Audio]:
    import soundfile

    from emotivoice.audio import SAMPLE_RATE, Audio, AudioInfo

    out = []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        samples, rate = soundfile.read(path, dtype="float32")
        if rate != SAMPLE_RATE or samples.ndim != 1:
            raise SystemExit(f"{path}: --decoder soundfile needs 16 kHz mono files")
        info = AudioInfo(
            format=path.suffix.lstrip("."),
            codec="",
            sample_rate=rate,
            channels=1,
            duration=len(samples) / rate,
            name=path.name,
        )
        out.append(Audio(samples=samples, info=info))
    return out


def main() -> int:
    from emotivoice.evaluation.gpu_batch import (
        explain_seconds,
        format_runs,
        load_recordings,
        run_gpu_benchmark,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", type=Path, help="folder of recordings")
    parser.add_argument("--batch-size", type=int, default=16, help="segments a batch (16)")
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument("--beam-size", type=int, default=5, help="beam width (5)")
    parser.add_argument("--explain", type=Path, default=None, help="a 10 s clip to explain")
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument("--decoder", choices=["pyav", "soundfile"], default="pyav")
    parser.add_argument("--planners", type=int, default=0, help="planner threads (0: default)")
    parser.add_argument("--feature-workers", type=int, default=0, help="(0: default)")
    parser.add_argument("--skip-analysis", action="store_true", help="only the explanation")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    load = _soundfile_recordings if args.decoder == "soundfile" else load_recordings
    runs = []
    if not args.skip_analysis:
        recordings = load(args.audio)
        runs += run_gpu_benchmark(
            recordings,
            args.batch_size,
            args.device,
            args.beam_size,
            on_run=lambda run: print(format_runs([run], args.device, args.batch_size), flush=True),
            planners=args.planners,
            feature_workers=args.feature_workers,
        )
    if args.explain is not None:
        samples = load(args.explain)[0].samples
        try:
            import librosa  # noqa: F401  (the counterfactual transforms need it)
        except ImportError:
            methods: tuple[str, ...] = ("shapley",)
        else:
            methods = ("shapley", "counterfactual")
        runs.append(explain_seconds(samples, args.device, methods=methods))
    card = "cpu"
    if args.device == "cuda":
        import torch

        card = torch.cuda.get_device_name(0)
    print(format_runs(runs, card, args.batch_size))
    if args.json is not None:
        figures = [asdict(r) | {"speed": round(r.speed, 2)} for r in runs]
        data = {"card": card, "batch_size": args.batch_size, "runs": figures}
        args.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
