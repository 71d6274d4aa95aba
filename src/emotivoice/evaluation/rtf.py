"""Benchmark: real-time factor of ``analyze`` next to plain faster-whisper, measured together.

Both runs use the same loaded model object, compute type, beam and threads, and both start from
the encoded file on disk, so the ratio isolates what EmotiVoice adds (VAD, per-segment encoding
shared with later stages, word alignment, acoustic features). Files are processed alternately
(plain, then EmotiVoice) so drifts in machine load hit both sides alike.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emotivoice.emotion.backends import EmotionOptions
from emotivoice.evaluation.datasets import reference_utterances
from emotivoice.metrics import word_error_rate
from emotivoice.pipeline import AnalyzeOptions, Analyzer
from emotivoice.transcription import TranscriptionOptions

__all__ = ["BenchReport", "RunFigures", "format_report", "run_benchmark"]


@dataclass(frozen=True)
class RunFigures:
    """Totals of one contender over the whole set."""

    name: str
    seconds: float
    rtf: float
    wer: float


@dataclass(frozen=True)
class BenchReport:
    """The benchmark's figures."""

    files: int
    audio_seconds: float
    model: str
    compute_type: str
    beam_size: int
    cpu_threads: int
    runs: tuple[RunFigures, ...]

    def ratio(self, name: str, reference: str = "faster-whisper") -> float:
        """Time of run ``name`` divided by the reference run's."""
        by_name = {r.name: r for r in self.runs}
        return by_name[name].seconds / by_name[reference].seconds

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures, ratios included."""
        data = asdict(self)
        data["ratios"] = {r.name: round(self.ratio(r.name), 3) for r in self.runs}
        return data


def run_benchmark(
    data_dir: Path | None = None,
    model: str = "base",
    beam_size: int = 5,
    cpu_threads: int = 2,
    repeats: int = 1,
) -> BenchReport:
    """Time plain faster-whisper, ``analyze`` without features, without emotion, with emotion
    per segment only (no sentence-level units or windows), and full ``analyze``."""
    items = reference_utterances(data_dir)
    transcription = TranscriptionOptions(
        model=model, beam_size=beam_size, device="cpu", compute_type="int8", cpu_threads=cpu_threads
    )
    full = Analyzer(AnalyzeOptions(transcription=transcription))
    no_features = Analyzer(
        AnalyzeOptions(transcription=transcription, features=False, emotion=None)
    )
    no_emotion = Analyzer(AnalyzeOptions(transcription=transcription, emotion=None))
    # emotion per segment only: one unit and one window per segment (what sentence-level units
    # and the window timeline add is the difference to the full run)
    whole = EmotionOptions(unit_min_s=30, unit_max_s=30, window_s=30, window_hop_s=30)
    segments_only = Analyzer(AnalyzeOptions(transcription=transcription, emotion=whole))
    whisper = full.transcriber.model  # the very same CTranslate2 model object

    def plain(path: Path) -> str:
        segments, _ = whisper.transcribe(str(path), beam_size=beam_size)
        return "".join(s.text for s in segments)

    contenders = {
        "faster-whisper": plain,
        "emotivoice (no features, no emotion)": lambda p: no_features.analyze(p).text,
        "emotivoice (no emotion)": lambda p: no_emotion.analyze(p).text,
        "emotivoice (emotion per segment only)": lambda p: segments_only.analyze(p).text,
        "emotivoice analyze": lambda p: full.analyze(p).text,
    }
    for run in contenders.values():  # warm-up: lazy initialisation and JIT compilation
        run(items[0].path)
    seconds = dict.fromkeys(contenders, 0.0)
    texts: dict[str, list[str]] = {name: [] for name in contenders}
    for repeat in range(repeats):
        for item in items:
            for name, run in contenders.items():
                started = time.perf_counter()
                text = run(item.path)
                seconds[name] += time.perf_counter() - started
                if repeat == 0:
                    texts[name].append(text)
    audio_seconds = sum(full.load(i.path).duration for i in items)
    references = [i.text for i in items]
    runs = tuple(
        RunFigures(
            name=name,
            seconds=round(seconds[name] / repeats, 3),
            rtf=round(seconds[name] / repeats / audio_seconds, 4),
            wer=round(word_error_rate(references, texts[name]), 4),
        )
        for name in contenders
    )
    return BenchReport(
        files=len(items),
        audio_seconds=round(audio_seconds, 2),
        model=model,
        compute_type="int8",
        beam_size=beam_size,
        cpu_threads=cpu_threads,
        runs=runs,
    )


def format_report(report: BenchReport) -> str:
    """A plain-text table of the figures."""
    lines = [
        f"{report.files} reference utterances, {report.audio_seconds:.1f} s of audio; "
        f"Whisper {report.model}, {report.compute_type}, beam {report.beam_size}, "
        f"{report.cpu_threads} threads",
        f"{'run':<38} {'seconds':>8} {'RTF':>7} {'WER':>7} {'× plain':>8}",
    ]
    for r in report.runs:
        lines.append(
            f"{r.name:<38} {r.seconds:>8.2f} {r.rtf:>7.3f} {r.wer * 100:>6.2f}% "
            f"{report.ratio(r.name):>7.3f}×"
        )
    return "\n".join(lines)
