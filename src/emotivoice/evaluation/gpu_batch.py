"""Benchmark: what a GPU buys. The batch path against plain batched faster-whisper on one card.

Four runs over the same decoded recordings, on the same card, with the same Whisper model,
compute type, beam and batch size:

- ``faster-whisper batched``: faster-whisper's own ``BatchedInferencePipeline`` (its VAD, its
  30 s chunks, word timestamps on), file after file: the reference;
- ``transcription``: :class:`~emotivoice.batch.BatchAnalyzer` with emotion, features and
  diarization off;
- ``full analysis``: the batch path with everything on (diarization, features in the process
  pool, emotion and units on the GPU);
- ``explain``: :func:`~emotivoice.explain.explain` of one 10 s segment with ``device`` set
  (the default methods, shapley and counterfactual: 72 model evaluations).

Each run reports its wall time, hours of audio per hour (the speed as a multiple of real time)
and the GPU's mean utilisation (``nvidia-smi`` sampled every 100 ms), and the batch path its
time per stage.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, Audio

__all__ = [
    "GpuRun",
    "explain_seconds",
    "format_runs",
    "gpu_utilisation",
    "load_recordings",
    "run_gpu_benchmark",
]

_SAMPLE_MS = 100


@dataclass(frozen=True)
class GpuRun:
    """One contender's figures over the whole set."""

    name: str
    audio_s: float
    wall_s: float
    gpu_util_pct: float | None
    stages: dict[str, float] = field(default_factory=dict)
    words: int = 0

    @property
    def speed(self) -> float:
        """Hours of audio analysed per hour (multiple of real time)."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0


@contextmanager
def gpu_utilisation() -> Iterator[list[float]]:
    """Sample the GPU's utilisation (percent) into the yielded list while the block runs
    (empty without ``nvidia-smi``)."""
    samples: list[float] = []
    tool = shutil.which("nvidia-smi")
    if tool is None:
        yield samples
        return
    with tempfile.TemporaryFile("w+") as log:
        process = subprocess.Popen(
            [
                tool,
                "--query-gpu=utilization.gpu",
                "--format=csv,noheader,nounits",
                f"--loop-ms={_SAMPLE_MS}",
            ],
            stdout=log,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield samples
        finally:
            process.terminate()
            process.wait()
            log.seek(0)
            samples.extend(float(v) for v in log.read().split() if v.strip().isdigit())


def _timed_run(name: str, audio_s: float, work: Any) -> GpuRun:
    with gpu_utilisation() as util:
        started = time.perf_counter()
        stages, words = work()
        wall = time.perf_counter() - started
    mean = float(np.mean(util)) if util else None
    return GpuRun(name, audio_s, wall, mean, stages, words)


def run_gpu_benchmark(
    recordings: Sequence[Audio],
    batch_size: int = 16,
    device: str = "cuda",
    beam_size: int = 5,
    model: str = "base",
    on_run: Callable[[GpuRun], None] | None = None,
    planners: int = 0,
    feature_workers: int = 0,
) -> list[GpuRun]:
    """The three analysis runs (faster-whisper batched, transcription, full analysis) over
    ``recordings``, after one warm-up of each on the first recording's first minute;
    ``on_run`` is called with each run's figures as soon as it ends; ``planners`` and
    ``feature_workers``: the batch path's planner threads and feature processes (0: its
    defaults)."""
    from faster_whisper import BatchedInferencePipeline

    from emotivoice.batch import BatchAnalyzer
    from emotivoice.pipeline import AnalyzeOptions, Analyzer

    audio_s = sum(r.duration for r in recordings)
    full = Analyzer(
        AnalyzeOptions.from_kwargs(
            model=model, device=device, beam_size=beam_size, emotion_device=device
        )
    )
    bare = Analyzer(
        dataclasses.replace(full.options, features=False, emotion=None, diarization=None)
    )
    plain = BatchedInferencePipeline(full.transcriber.model)
    warm = [Audio(samples=recordings[0].samples[: 60 * SAMPLE_RATE], info=recordings[0].info)]

    def faster_whisper(items: Sequence[Audio]) -> tuple[dict[str, float], int]:
        words = 0
        for r in items:
            segments, _ = plain.transcribe(
                r.samples, batch_size=batch_size, beam_size=beam_size, word_timestamps=True
            )
            words += sum(len(s.words or ()) for s in segments)
        return {}, words

    def batch_path(analyzer: Analyzer, items: Sequence[Audio]) -> tuple[dict[str, float], int]:
        batch = BatchAnalyzer(analyzer, batch_size, feature_workers, planners)
        words = 0
        for result in batch.analyze_many(items):
            if result.analysis is None:
                raise RuntimeError(f"a benchmark recording failed: {result.error}")
            words += sum(len(s.words) for s in result.analysis.segments)
        return {k: round(v, 3) for k, v in batch.seconds.items()}, words

    contenders = [
        ("faster-whisper batched", faster_whisper),
        ("transcription", lambda items: batch_path(bare, items)),
        ("full analysis", lambda items: batch_path(full, items)),
    ]
    runs = []
    for name, work in contenders:
        work(warm)
        runs.append(_timed_run(name, audio_s, lambda work=work: work(recordings)))
        if on_run is not None:
            on_run(runs[-1])
    return runs


def explain_seconds(
    samples: np.ndarray,
    device: str = "cuda",
    repeats: int = 3,
    methods: tuple[str, ...] = ("shapley", "counterfactual"),
) -> GpuRun:
    """Wall time of :func:`~emotivoice.explain.explain` of the longest segment of ``samples``
    (16 kHz) on ``device``: the best of ``repeats`` after a warm-up, through the library's own
    entry point with the segment's analysis given."""
    from emotivoice.explain import ExplainOptions, explain
    from emotivoice.pipeline import AnalyzeOptions, Analyzer

    # the analysis only finds the segment: on the CPU, whatever the explanation's device
    analyzer = Analyzer(AnalyzeOptions.from_kwargs(device="cpu", diarization=False, features=False))
    audio = analyzer.load(samples, sample_rate=SAMPLE_RATE)
    analysis = analyzer.analyze(audio)
    longest = max(analysis.segments, key=lambda s: s.duration)
    options = ExplainOptions(methods=methods, device=device)

    def once() -> Any:
        return explain(audio, analysis, options, segment=longest.id, progress=lambda *_: None)

    once()
    best = float("inf")
    with gpu_utilisation() as util:
        for _ in range(repeats):
            started = time.perf_counter()
            evaluations = once()[0].evaluations
            best = min(best, time.perf_counter() - started)
    mean = float(np.mean(util)) if util else None
    name = f"explain {longest.duration:.1f} s ({'+'.join(methods)}, {evaluations} evals)"
    return GpuRun(name, longest.duration, best, mean)


def format_runs(runs: Sequence[GpuRun], card: str, batch_size: int) -> str:
    """A plain-text table of the runs."""
    lines = [f"card: {card}; batch size {batch_size}"]
    lines.append(f"{'run':<26} {'audio s':>8} {'wall s':>8} {'x real time':>12} {'GPU %':>6}")
    for r in runs:
        util = f"{r.gpu_util_pct:.0f}" if r.gpu_util_pct is not None else "-"
        lines.append(f"{r.name:<26} {r.audio_s:>8.1f} {r.wall_s:>8.2f} {r.speed:>12.1f} {util:>6}")
        if r.stages:
            lines.append(
                "    stages (s): " + ", ".join(f"{k} {v:.2f}" for k, v in r.stages.items())
            )
    return "\n".join(lines)


def load_recordings(folder: Path) -> list[Audio]:
    """The benchmark's recordings (every audio file in ``folder``), sorted by name."""
    from emotivoice.audio import find_audio_files, load_audio

    return [load_audio(p) for p in sorted(find_audio_files(folder))]
