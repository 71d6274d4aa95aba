"""Runs a peer's wake-word model over audio streams, inside the peers' own environment.

This file is executed by the interpreter of the isolated environment that
:func:`emotivoice.wakeword.peers.ensure_peers` builds (their pins, numpy < 2 and tflite-runtime,
clash with EmotiVoice's), so it imports nothing from EmotiVoice: numpy and the peer's own
package only. Each peer runs as its maintainers ship it, through its own Python API and its own
front end, one stream at a time, on one thread:

- ``openwakeword``: ``openwakeword.model.Model`` with the TFLite melspectrogram, embedding and
  phrase models of the ``wyoming-openwakeword`` wheel; a score per 80 ms chunk (its hop).
- ``microwakeword``: ``pymicro_wakeword.MicroWakeWord`` with its bundled model and
  ``MicroWakeWordFeatures`` (its 10 ms front end); the probability after each frame (its own
  sliding-window mean), and per 80 ms chunk the highest of them, so that detections are read
  at the same 80 ms hops as every other model.

Usage: ``python peer_runner.py PEER MODEL IN.npz OUT.npz``; ``IN.npz`` holds 16 kHz int16
streams ``s0``, ``s1``, ...; ``OUT.npz`` receives ``t<i>``/``p<i>`` (hop end times, scores)
and ``cpu_s`` (process CPU seconds spent scoring, model loading excluded).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

HOP = 1280  # samples: 80 ms at 16 kHz
RATE = 16000


Scores = tuple[list[float], list[float], float]  # hop end times, scores, CPU seconds


def _openwakeword(model: str, stream: np.ndarray) -> Scores:
    import wyoming_openwakeword
    from openwakeword.model import Model

    folder = Path(wyoming_openwakeword.__file__).parent / "models"
    detector = Model(
        wakeword_models=[str(folder / f"{model}_v0.1.tflite")],
        inference_framework="tflite",
        melspec_model_path=str(folder / "melspectrogram.tflite"),
        embedding_model_path=str(folder / "embedding_model.tflite"),
        ncpu=1,
    )
    key = next(iter(detector.models))
    times, scores = [], []
    started = time.process_time()
    for start in range(0, len(stream) - HOP + 1, HOP):
        score = detector.predict(stream[start : start + HOP])[key]
        times.append((start + HOP) / RATE)
        scores.append(float(score))
    return times, scores, time.process_time() - started


def _microwakeword(model: str, stream: np.ndarray) -> Scores:
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    detector = MicroWakeWord.from_builtin(Model(model))
    features = MicroWakeWordFeatures()
    times, scores = [], []
    started = time.process_time()
    for start in range(0, len(stream) - HOP + 1, HOP):
        best = 0.0
        for frame in features.process_streaming(stream[start : start + HOP].tobytes()):
            probability = detector.process_streaming_prob(frame)
            best = max(best, probability or 0.0)
        times.append((start + HOP) / RATE)
        scores.append(best)
    return times, scores, time.process_time() - started


_PEERS = {"openwakeword": _openwakeword, "microwakeword": _microwakeword}


def main(argv: list[str]) -> int:
    peer, model, source, target = argv
    run = _PEERS[peer]
    with np.load(source) as data:
        streams = [data[f"s{i}"] for i in range(len(data.files))]
    out: dict[str, np.ndarray] = {}
    cpu = 0.0
    for i, stream in enumerate(streams):
        times, scores, seconds = run(model, np.ascontiguousarray(stream, dtype=np.int16))
        out[f"t{i}"] = np.asarray(times, np.float64)
        out[f"p{i}"] = np.asarray(scores, np.float32)
        cpu += seconds
    out["cpu_s"] = np.asarray(cpu)
    np.savez(target, **out)  # type: ignore[arg-type]
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
