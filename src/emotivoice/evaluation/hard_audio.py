"""Benchmark: the worst case - noisy, non-English speech - next to plain faster-whisper.

Hard audio is where Whisper's decoder falls back through temperatures and loops on hallucinated
text; a user waits, and a service worker is blocked, for as long as that takes. The set is built
from ``../shared/data`` on the fly, the same every run (fixed seed):

- nEMO (Polish, acted) clips under three kinds of noise at 0 dB SNR: babble (four LibriSpeech
  talkers at once), pink noise, and music-like noise (synthesised chords over a beat);
- ``multilingual.mp3`` (a licence read in several languages) and ``hotwords.mp3``, whole.

Every file is analysed in process with warm models (loading is the cold-start benchmark's
business); contenders alternate file by file. Per file: seconds / audio seconds (real-time
factor); per segment of the full analysis: its own compute time / its duration.
"""

from __future__ import annotations

import csv
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.evaluation.datasets import data_dir

__all__ = [
    "HardAudioReport",
    "HardClip",
    "format_hard_audio",
    "hard_audio_set",
    "run_hard_audio_benchmark",
]

_CLIPS_PER_NOISE = 6
_NOISES = ("babble", "pink", "music")
_SNR_DB = 0.0
_BABBLE_TALKERS = 4


@dataclass(frozen=True)
class HardClip:
    """One file of the hard set."""

    name: str
    kind: str
    samples: np.ndarray

    @property
    def duration(self) -> float:
        """Seconds of audio."""
        return self.samples.size / SAMPLE_RATE


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) or 1e-9


def _fit(noise: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    reps = -(-n // noise.size)
    tiled = np.tile(noise, reps + 1)
    start = int(rng.integers(0, noise.size))
    return tiled[start : start + n]


def _pink(n: int, rng: np.random.Generator) -> np.ndarray:
    spectrum = np.fft.rfft(rng.standard_normal(n))
    freqs = np.fft.rfftfreq(n)
    spectrum[1:] /= np.sqrt(freqs[1:])
    spectrum[0] = 0
    return np.fft.irfft(spectrum, n).astype(np.float32)


def _music(n: int, rng: np.random.Generator) -> np.ndarray:
    """Chords of harmonic tones (0.5 s each, decaying) over a kick-and-hat beat."""
    t = np.arange(n) / SAMPLE_RATE
    out = np.zeros(n)
    chord_len = SAMPLE_RATE // 2
    roots = 110.0 * 2 ** (rng.integers(0, 12, size=n // chord_len + 1) / 12)
    for k, root in enumerate(roots):
        a, b = k * chord_len, min(n, (k + 1) * chord_len)
        if a >= n:
            break
        seg = t[a:b] - t[a]
        env = np.exp(-3 * seg)
        for ratio in (1.0, 1.26, 1.5, 2.0):  # root, major third, fifth, octave
            for h in range(1, 5):
                out[a:b] += env * np.sin(2 * np.pi * root * ratio * h * seg) / h
    beat = SAMPLE_RATE // 4
    for k in range(0, n, beat):
        m = min(n - k, 2000)
        out[k : k + m] += 2 * np.exp(-np.arange(m) / 300) * rng.standard_normal(m) * 0.3
    return out.astype(np.float32)


def hard_audio_set(root: Path | None = None, seed: int = 0) -> list[HardClip]:
    """The hard set: noisy Polish speech (18 clips) and two whole multilingual recordings."""
    base = data_dir(root)
    rng = np.random.default_rng(seed)
    with (base / "nemo" / "data.tsv").open(newline="", encoding="utf-8") as fh:
        rows = sorted(csv.DictReader(fh, delimiter="\t"), key=lambda r: r["file_id"])
    picks = [rows[i] for i in rng.choice(len(rows), _CLIPS_PER_NOISE * len(_NOISES), False)]
    talkers = sorted((base / "librispeech").rglob("*.flac"))[: _BABBLE_TALKERS * 2]
    babble_parts = [load_audio(p).samples for p in talkers[::2]]
    length = min(p.size for p in babble_parts)
    babble = np.sum([p[:length] / _rms(p[:length]) for p in babble_parts], axis=0)
    clips: list[HardClip] = []
    for i, row in enumerate(picks):
        kind = _NOISES[i // _CLIPS_PER_NOISE]
        speech = load_audio(base / "nemo" / "samples" / row["file_id"]).samples
        if kind == "babble":
            noise = _fit(babble.astype(np.float32), speech.size, rng)
        elif kind == "pink":
            noise = _pink(speech.size, rng)
        else:
            noise = _music(speech.size, rng)
        gain = _rms(speech) / _rms(noise) / 10 ** (_SNR_DB / 20)
        mixed = speech + gain * noise
        mixed = mixed / max(1.0, float(np.abs(mixed).max()) / 0.99)
        clips.append(HardClip(f"nemo-{row['file_id']}+{kind}", kind, mixed.astype(np.float32)))
    for name in ("multilingual.mp3", "hotwords.mp3"):
        samples = load_audio(base / "speech" / name).samples
        clips.append(HardClip(name, "whole recording", samples))
    return clips


@dataclass(frozen=True)
class HardAudioReport:
    """Per-file seconds of each contender, the worst segment, and low-confidence counts."""

    files: tuple[str, ...]
    audio_seconds: tuple[float, ...]
    seconds: dict[str, tuple[float, ...]]
    worst_segment_ratio: float
    worst_segment: str
    segments: int
    low_confidence_segments: int

    def rtfs(self, name: str) -> list[float]:
        """Real-time factor of each file for contender ``name``."""
        return [s / a for s, a in zip(self.seconds[name], self.audio_seconds, strict=True)]

    def summary(self, name: str) -> dict[str, float]:
        """Median and worst real-time factor, and the total time against plain's."""
        rtf = self.rtfs(name)
        return {
            "median_rtf": round(statistics.median(rtf), 3),
            "worst_rtf": round(max(rtf), 3),
            "total_vs_plain": round(
                sum(self.seconds[name]) / sum(self.seconds["faster-whisper"]), 3
            ),
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures with the summaries."""
        data = asdict(self)
        data["summary"] = {name: self.summary(name) for name in self.seconds}
        return data


def run_hard_audio_benchmark(root: Path | None = None) -> HardAudioReport:
    """Analyse the hard set with plain faster-whisper, transcription only and full analysis."""
    from emotivoice.pipeline import AnalyzeOptions, Analyzer
    from emotivoice.transcription import TranscriptionOptions

    clips = hard_audio_set(root)
    transcription = TranscriptionOptions(model="base", beam_size=5, device="cpu")
    full = Analyzer(AnalyzeOptions(transcription=transcription))
    text_only = Analyzer(
        AnalyzeOptions(transcription=transcription, features=False, emotion=None, diarization=None)
    )
    whisper = full.transcriber.model

    def plain(clip: HardClip) -> None:
        segments, _ = whisper.transcribe(clip.samples, beam_size=5, vad_filter=True)
        for _ in segments:
            pass

    worst = (0.0, "")
    n_segments = n_low = 0

    def analysed(analyzer: Analyzer, clip: HardClip, track: bool) -> None:
        nonlocal worst, n_segments, n_low
        audio = analyzer.load(clip.samples, sample_rate=SAMPLE_RATE)
        started = time.perf_counter()
        for result in analyzer.iter_segments(audio):
            now = time.perf_counter()
            if track:
                segment = result.segment
                n_segments += 1
                n_low += segment.low_confidence
                ratio = (now - started) / max(segment.duration, 0.1)
                if ratio > worst[0]:
                    worst = (ratio, f"{clip.name} {segment.start:.1f}-{segment.end:.1f} s")
            started = now

    contenders = {
        "faster-whisper": plain,
        "emotivoice (transcription only)": lambda c: analysed(text_only, c, False),
        "emotivoice analyze": lambda c: analysed(full, c, True),
    }
    for run in contenders.values():  # warm-up
        run(clips[0])
    n_segments = n_low = 0
    worst = (0.0, "")
    seconds: dict[str, list[float]] = {name: [] for name in contenders}
    for clip in clips:
        for name, run in contenders.items():
            started = time.perf_counter()
            run(clip)
            seconds[name].append(round(time.perf_counter() - started, 3))
    return HardAudioReport(
        files=tuple(c.name for c in clips),
        audio_seconds=tuple(round(c.duration, 3) for c in clips),
        seconds={n: tuple(v) for n, v in seconds.items()},
        worst_segment_ratio=round(worst[0], 3),
        worst_segment=worst[1],
        segments=n_segments,
        low_confidence_segments=n_low,
    )


def format_hard_audio(report: HardAudioReport) -> str:
    """Per-file RTF of each contender, then the summary rows."""
    names = list(report.seconds)
    lines = [
        f"{len(report.files)} hard files, {sum(report.audio_seconds):.1f} s of audio "
        "(Whisper base int8, beam 5); real-time factor per file",
        f"{'file':<34} {'s':>6}" + "".join(f" {n[:24]:>25}" for n in names),
    ]
    for i, name in enumerate(report.files):
        audio = report.audio_seconds[i]
        cells = "".join(f" {report.seconds[n][i] / audio:>25.2f}" for n in names)
        lines.append(f"{name[:34]:<34} {audio:>6.1f}{cells}")
    for key in ("median_rtf", "worst_rtf", "total_vs_plain"):
        cells = "".join(f" {report.summary(n)[key]:>25.3f}" for n in names)
        lines.append(f"{key:<41}{cells}")
    lines.append(
        f"worst segment of the full analysis: {report.worst_segment_ratio:.2f}× its duration "
        f"({report.worst_segment}); {report.low_confidence_segments} of {report.segments} "
        "segments marked low_confidence"
    )
    return "\n".join(lines)
