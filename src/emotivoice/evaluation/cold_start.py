"""Benchmark: a cold ``emotivoice analyze`` process next to a plain faster-whisper script.

What a user who analyses one file or a handful waits for: the whole process, from the
interpreter's start to the last result written - imports, model loading, per-file work. Each
run is a fresh process; the contenders alternate run by run (plain, then EmotiVoice, ...) so
that drifts in machine load hit both alike, and the figure is the median of the runs' ratios.

The plain script is what a faster-whisper user writes: the same CTranslate2 Whisper weights,
int8, beam 5, faster-whisper's own VAD filter, text out. Both sides use CTranslate2's default
thread count.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emotivoice.evaluation.datasets import data_dir, reference_utterances
from emotivoice.evaluation.processes import service_env
from emotivoice.models.registry import resolve_whisper_model

__all__ = [
    "PLAIN_SCRIPT",
    "ColdStartReport",
    "ColdStartSet",
    "format_cold_start",
    "run_cold_start",
]

# The plain faster-whisper script; argv: model directory, then the files.
PLAIN_SCRIPT = """
import sys
from faster_whisper import WhisperModel
model = WhisperModel(sys.argv[1], device="cpu", compute_type="int8")
for path in sys.argv[2:]:
    segments, _ = model.transcribe(path, beam_size=5, vad_filter=True)
    print("".join(s.text for s in segments))
"""

# EmotiVoice's contenders: the full default analysis and the transcript-only one.
CONTENDERS: dict[str, tuple[str, ...]] = {
    "emotivoice analyze": (),
    "emotivoice analyze --no-features --no-emotion --no-diarization": (
        "--no-features",
        "--no-emotion",
        "--no-diarization",
    ),
}


@dataclass(frozen=True)
class ColdStartSet:
    """One set of files: every contender's wall-clock seconds per run, and the ratios."""

    name: str
    files: int
    audio_seconds: float
    plain_s: tuple[float, ...]
    runs_s: dict[str, tuple[float, ...]]

    def median_ratio(self, name: str) -> float:
        """Median over runs of (contender's seconds / plain's seconds in the same round)."""
        return statistics.median(
            a / b for a, b in zip(self.runs_s[name], self.plain_s, strict=True)
        )


@dataclass(frozen=True)
class ColdStartReport:
    """The benchmark's figures, one entry per set of files."""

    model: str
    repeats: int
    sets: tuple[ColdStartSet, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready figures, median ratios included."""
        data = asdict(self)
        for entry, cold in zip(data["sets"], self.sets, strict=True):
            entry["median_ratios"] = {n: round(cold.median_ratio(n), 3) for n in cold.runs_s}
        return data


def _timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def run_cold_start(
    root: Path | None = None,
    repeats: int = 3,
    sets: Sequence[str] = ("reference", "short clip"),
) -> ColdStartReport:
    """Time fresh processes of plain faster-whisper and ``emotivoice analyze``, alternately.

    Args:
        root: the shared data folder (default: ``../shared/data``).
        repeats: rounds per set; each round runs every contender once.
        sets: ``reference`` (the 15 reference utterances in one process) and/or ``short
            clip`` (JFK's first 3.6 s, as a new user tries one file).
    """
    from emotivoice.audio import load_audio

    model_dir = str(resolve_whisper_model("base"))
    items = [i.path for i in reference_utterances(root)]
    reports = []
    with tempfile.TemporaryDirectory(prefix="emotivoice-cold-") as tmp:
        clip = Path(tmp) / "short.wav"
        _write_short_clip(data_dir(root) / "speech" / "jfk.flac", clip, seconds=3.6)
        env = service_env(Path(tmp) / "home")
        choices = {"reference": items, "short clip": [clip]}
        for set_name in sets:
            files = [str(p) for p in choices[set_name]]
            plain: list[float] = []
            runs: dict[str, list[float]] = {name: [] for name in CONTENDERS}
            for _ in range(repeats):
                plain_cmd = [sys.executable, "-c", PLAIN_SCRIPT, model_dir]
                plain.append(_timed([*plain_cmd, *files], env))
                for name, flags in CONTENDERS.items():
                    command = [sys.executable, "-m", "emotivoice", "analyze", *files]
                    command += ["-o", str(Path(tmp) / "out"), "--format", "json", *flags]
                    runs[name].append(_timed(command, env))
            audio = sum(load_audio(f).duration for f in files)
            reports.append(
                ColdStartSet(
                    name=set_name,
                    files=len(files),
                    audio_seconds=round(audio, 2),
                    plain_s=tuple(round(s, 3) for s in plain),
                    runs_s={n: tuple(round(s, 3) for s in v) for n, v in runs.items()},
                )
            )
    return ColdStartReport(model="base", repeats=repeats, sets=tuple(reports))


def _write_short_clip(source: Path, target: Path, seconds: float) -> None:
    import wave

    import numpy as np

    from emotivoice.audio import SAMPLE_RATE, load_audio

    samples = load_audio(source).samples[: int(seconds * SAMPLE_RATE)]
    with wave.open(str(target), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(SAMPLE_RATE)
        wav.writeframes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())


def format_cold_start(report: ColdStartReport) -> str:
    """A plain-text table: seconds per run and the median ratio against plain faster-whisper."""
    lines = [
        f"Whole process, cold: Whisper {report.model} int8, beam 5, VAD on, "
        f"{report.repeats} alternating rounds",
    ]
    for cold in report.sets:
        lines.append(f"\n{cold.name}: {cold.files} file(s), {cold.audio_seconds:.1f} s of audio")
        lines.append(f"{'run':<66} {'seconds (each round)':>24} {'median × plain':>15}")
        plain = " ".join(f"{s:.2f}" for s in cold.plain_s)
        lines.append(f"{'plain faster-whisper script':<66} {plain:>24} {'1.000×':>15}")
        for name, seconds in cold.runs_s.items():
            each = " ".join(f"{s:.2f}" for s in seconds)
            lines.append(f"{name:<66} {each:>24} {cold.median_ratio(name):>14.3f}×")
    return "\n".join(lines)
