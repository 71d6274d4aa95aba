"""The batch path's CPU-side stages on a device machine, without Whisper: what they cost on
its cores and what moving them to the GPU buys (docs/benchmarks.md, "GPU batch path").

``python research/gpu_batch_cpu_side.py AUDIO_DIR EXTRACTOR_PY [--workers 12]``: the
recordings (16 kHz mono, read with soundfile) cut into pieces of 2-12 s (seeded), then

- acoustic features of every piece in a spawned process pool of ``--workers`` (niced, one BLAS
  thread each, as :class:`~emotivoice.batch.BatchAnalyzer`'s pool);
- Whisper's log-mel frames of every piece: faster-whisper's extractor one piece at a time
  (``EXTRACTOR_PY``: its ``feature_extractor.py``, which needs only numpy) against
  :func:`~emotivoice.transcription.log_mel_batch` on ``cuda``, 32 pieces a call;
- the GE2E speaker embeddings of each recording (its pieces as the speech regions): numpy on
  one core against the PyTorch twin on ``cuda``.

Wall seconds and the multiple of real time of each, as JSON on stdout.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import numpy as np

SAMPLE_RATE = 16000


def _init_worker() -> None:
    from threadpoolctl import threadpool_limits

    os.nice(5)
    threadpool_limits(1)


def _features(samples: np.ndarray) -> float:
    from emotivoice.features import extract_features

    return extract_features(samples).rms_mean


def main() -> int:
    import soundfile

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("audio", type=Path)
    parser.add_argument("extractor", type=Path)
    parser.add_argument("--workers", type=int, default=12)
    parser.add_argument("--numpy-recordings", type=int, default=2)
    parser.add_argument("--device", default="cuda", help="cuda (default); cpu to try it here")
    args = parser.parse_args()
    rng = np.random.default_rng(29)
    recordings = [
        soundfile.read(p, dtype="float32")[0] for p in sorted(args.audio.iterdir()) if p.is_file()
    ]
    audio_s = sum(len(r) for r in recordings) / SAMPLE_RATE
    pieces, spans = [], []
    for samples in recordings:
        start, own = 0, []
        while start < len(samples) - SAMPLE_RATE:
            end = min(len(samples), start + int(rng.uniform(2, 12) * SAMPLE_RATE))
            pieces.append(samples[start:end])
            own.append((start, end))
            start = end
        spans.append(own)
    out: dict[str, float] = {"audio_s": round(audio_s, 1), "pieces": len(pieces)}

    with ProcessPoolExecutor(
        args.workers, mp_context=get_context("spawn"), initializer=_init_worker
    ) as pool:
        list(pool.map(_features, pieces[: args.workers * 2]))  # workers started and warm
        started = time.perf_counter()
        list(pool.map(_features, pieces, chunksize=4))
        out["features_s"] = time.perf_counter() - started

    spec = importlib.util.spec_from_file_location("fw_feature_extractor", args.extractor)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    extractor = module.FeatureExtractor()
    from emotivoice.transcription import log_mel_batch

    started = time.perf_counter()
    reference = [extractor(p) for p in pieces]
    out["log_mel_numpy_s"] = time.perf_counter() - started
    log_mel_batch(pieces[:32], extractor, args.device)  # warm-up
    started = time.perf_counter()
    batched = []
    for i in range(0, len(pieces), 32):
        batched += log_mel_batch(pieces[i : i + 32], extractor, args.device)
    out["log_mel_batched_s"] = time.perf_counter() - started
    out["log_mel_max_abs_diff"] = float(
        max(np.abs(a - b).max() for a, b in zip(reference, batched, strict=True))
    )

    from emotivoice.diarization.core import embed_speech
    from emotivoice.diarization.embedding import load_voice_encoder
    from emotivoice.segmentation import SpeechSpan

    encoder = load_voice_encoder()
    numpy_embeddings: list[np.ndarray] = []
    regions = [[SpeechSpan(a, b) for a, b in own] for own in spans]
    embed_speech(recordings[0][: 60 * SAMPLE_RATE], regions[0][:5], 0.75, encoder, args.device)
    # numpy on the first --numpy-recordings recordings only (one core: the slow side)
    few = args.numpy_recordings
    seconds = {"numpy": sum(len(r) for r in recordings[:few]) / SAMPLE_RATE, "gpu": audio_s}
    for name, device, count in (("numpy", "cpu", few), ("gpu", args.device, len(recordings))):
        started = time.perf_counter()
        embedded = [
            embed_speech(samples, own, 0.75, encoder, device)[0]
            for samples, own in zip(recordings[:count], regions[:count], strict=True)
        ]
        out[f"ge2e_{name}_s"] = time.perf_counter() - started
        out[f"ge2e_{name}_x_real_time"] = round(seconds[name] / out[f"ge2e_{name}_s"], 1)
        numpy_embeddings = numpy_embeddings or embedded
    out["ge2e_max_abs_diff"] = float(
        max(np.abs(a - b).max() for a, b in zip(numpy_embeddings, embedded, strict=False))
    )
    for key in [k for k in out if k.endswith("_s") and k != "audio_s"]:
        if not key.startswith("ge2e"):
            out[key.replace("_s", "_x_real_time")] = round(audio_s / out[key], 1)
        out[key] = round(out[key], 3)
    print(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
