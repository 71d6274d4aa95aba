"""Benchmark of the wake-word detector: what one stream costs, how many fit, and (given a data
set) the streaming accuracy figures of :func:`emotivoice.wakeword.evaluate_model`.

Cost is measured on real speech (the shared JFK recording, looped) fed in 80 ms chunks as a
live stream arrives: CPU seconds per audio second of one stream (as a share of one core), the
memory a stream's state adds (psutil, resident set size, over many streams), and the real-time
factor of many streams served by a thread pool as large as the machine's cores.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.evaluation.datasets import data_dir
from emotivoice.wakeword.detector import WakeWordModel, load_model
from emotivoice.wakeword.features import HOP_SAMPLES

__all__ = ["DetectorCost", "format_cost", "measure_cost"]


@dataclass(frozen=True)
class DetectorCost:
    """What running the detector costs.

    Attributes:
        model: the ONNX file measured.
        core_share_per_stream: CPU seconds per audio second of one stream (0.01 = 1 % of a core).
        ms_per_hop: CPU milliseconds per 80 ms hop of one stream.
        memory_per_stream_kib: resident memory one more stream adds (its state and buffers).
        streams: streams run at once in the concurrency run.
        cores: CPU cores of this machine (threads of the pool).
        concurrent_realtime_factor: wall seconds per audio second for all ``streams`` together
            (below 1: they keep up with real time).
        seconds_per_stream: audio seconds each stream got.
    """

    model: str
    core_share_per_stream: float
    ms_per_hop: float
    memory_per_stream_kib: float
    streams: int
    cores: int
    concurrent_realtime_factor: float
    seconds_per_stream: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures."""
        return asdict(self)


def _speech(seconds: float) -> np.ndarray:
    clip = load_audio(data_dir() / "speech" / "jfk.flac").samples
    return np.tile(clip, int(np.ceil(seconds * SAMPLE_RATE / len(clip))))[
        : int(seconds * SAMPLE_RATE)
    ]


def _run_stream(model: WakeWordModel, audio: np.ndarray) -> None:
    detector = model.detector()
    for start in range(0, len(audio), HOP_SAMPLES):
        detector.feed(audio[start : start + HOP_SAMPLES])


def _rss() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def measure_cost(
    model: str | Path = "hey_jarvis", streams: int = 50, seconds: float = 20.0
) -> DetectorCost:
    """Measure one stream's CPU and memory and ``streams`` streams' real-time factor."""
    loaded = load_model(model)
    audio = _speech(seconds)
    _run_stream(loaded, audio[:SAMPLE_RATE])  # warm-up: onnxruntime's first run allocates
    started = time.process_time()
    _run_stream(loaded, audio)
    cpu = time.process_time() - started
    hops = len(audio) // HOP_SAMPLES
    before = _rss()
    detectors = [loaded.detector() for _ in range(streams)]
    for detector in detectors:  # fill every stream's buffers
        detector.feed(audio[: 3 * SAMPLE_RATE])
    memory = (_rss() - before) / streams / 1024
    cores = os.cpu_count() or 1
    per_stream = audio[: int(min(seconds, 10.0) * SAMPLE_RATE)]

    def serve(index: int) -> None:
        _run_stream(loaded, per_stream)

    wall = time.perf_counter()
    with ThreadPoolExecutor(cores) as pool:
        list(pool.map(serve, range(streams)))
    wall = time.perf_counter() - wall
    return DetectorCost(
        model=str(loaded.path),
        core_share_per_stream=cpu / seconds,
        ms_per_hop=cpu / hops * 1000,
        memory_per_stream_kib=max(memory, 0.0),
        streams=streams,
        cores=cores,
        concurrent_realtime_factor=wall / (len(per_stream) / SAMPLE_RATE),
        seconds_per_stream=len(per_stream) / SAMPLE_RATE,
    )


def format_cost(cost: DetectorCost) -> str:
    """The cost figures as a few lines."""
    return "\n".join(
        [
            f"model {cost.model}",
            f"one stream: {cost.core_share_per_stream:.2%} of a core "
            f"({cost.ms_per_hop:.2f} ms CPU per 80 ms hop)",
            f"memory per stream: {cost.memory_per_stream_kib:.0f} KiB",
            f"{cost.streams} streams on {cost.cores} cores: real-time factor "
            f"{cost.concurrent_realtime_factor:.2f} (below 1 keeps up)",
        ]
    )
