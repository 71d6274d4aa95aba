"""Diarization evaluation on conversations built from the shared emotional-speech corpora.

No recorded multi-speaker conversation with a speaker reference ships with ``../shared/data``,
so conversations are assembled from single-speaker clips: turns of 2-4 RAVDESS actors or nEMO
speakers (each turn one or two clips of one speaker, in whatever emotion the clips have), with
pauses, and optionally with overlapping turn starts. The reference of each clip is its speech
extent (frames within 35 dB of the clip's loudest), so the scoring does not reuse the system's
own voice activity detection.

Speakers are split in two disjoint halves: ``dev`` (RAVDESS actors 01-10, nEMO speakers EB0,
IC0, KD0, KS0), on which the clustering threshold was chosen, and ``test`` (actors 11-20, nEMO
MK0, MP0, SM0, TP0, WR0), on which it is reported. The diarization error rate comes from
``pyannote.metrics`` (collar 0.25 s, overlapping speech not scored), the ``evaluation`` extra.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.diarization import Diarization, DiarizationOptions, diarize
from emotivoice.evaluation.datasets import data_dir
from emotivoice.extras import import_extra
from emotivoice.segmentation import VadOptions, speech_regions

__all__ = [
    "COLLAR_S",
    "Conversation",
    "ConversationScore",
    "build_conversations",
    "der_report",
    "score_conversation",
    "summarise_scores",
]

logger = logging.getLogger(__name__)

Split = Literal["dev", "test"]
COLLAR_S = 0.25
_SPEAKERS: dict[Split, dict[str, tuple[str, ...]]] = {
    "dev": {
        "ravdess": tuple(f"{a:02d}" for a in range(1, 11)),
        "nemo": ("EB0", "IC0", "KD0", "KS0"),
    },
    "test": {
        "ravdess": tuple(f"{a:02d}" for a in range(11, 21)),
        "nemo": ("MK0", "MP0", "SM0", "TP0", "WR0"),
    },
}
_TRIM_DB = 35.0


@dataclass(frozen=True, eq=False)
class Conversation:
    """A built conversation: 16 kHz samples and who speaks when.

    Attributes:
        name: e.g. ``test-ravdess-3spk-overlap-2``.
        samples: the mixed recording.
        reference: ``(start, end, speaker)`` of every stretch of speech, seconds.
        speakers: number of distinct speakers.
        overlap: whether some turns start before the previous one ends.
    """

    name: str
    samples: np.ndarray
    reference: tuple[tuple[float, float, str], ...]
    speakers: int
    overlap: bool

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.samples) / SAMPLE_RATE


@dataclass(frozen=True)
class ConversationScore:
    """Diarization error of one conversation (seconds; ``der`` a fraction of ``total``)."""

    name: str
    der: float
    missed: float
    false_alarm: float
    confusion: float
    total: float
    true_speakers: int
    found_speakers: int
    seconds: float
    duration: float


def _clips(root: Path, corpus: str, speaker: str) -> dict[str, list[Path]]:
    """The speaker's clips by emotion."""
    by_emotion: dict[str, list[Path]] = {}
    if corpus == "ravdess":
        for path in sorted((root / "ravdess" / f"Actor_{speaker}").glob("*.flac")):
            by_emotion.setdefault(path.name.split("-")[2], []).append(path)
        return by_emotion
    with (root / "nemo" / "data.tsv").open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if row["speaker_id"] == speaker:
                path = root / "nemo" / "samples" / row["file_id"]
                by_emotion.setdefault(row["emotion"], []).append(path)
    return by_emotion


def _trimmed(path: Path) -> np.ndarray:
    """The clip from its first to its last frame within 35 dB of its loudest 10 ms frame."""
    samples = load_audio(path).samples
    hop = SAMPLE_RATE // 100
    n = len(samples) // hop
    energy = 10 * np.log10(np.mean(samples[: n * hop].reshape(n, hop) ** 2, axis=1) + 1e-12)
    loud = np.flatnonzero(energy > energy.max() - _TRIM_DB)
    return samples[loud[0] * hop : (loud[-1] + 1) * hop]


def build_conversations(
    split: Split = "test",
    count: int = 12,
    seed: int = 0,
    root: Path | None = None,
    turns: int = 10,
    emotions_per_speaker: int | None = 2,
) -> list[Conversation]:
    """``count`` conversations of 2-4 speakers, alternating corpora, half of them with overlaps.

    Each has ``turns`` turns (no speaker twice in a row) of one or two clips, separated by
    pauses of 0.3-1.5 s; in the overlapping ones a third of the turns start 0.3-1.0 s before the
    previous turn ends.
    """
    base = data_dir(root)
    rng = np.random.default_rng(seed)
    cache: dict[Path, np.ndarray] = {}
    conversations = []
    for index in range(count):
        corpus = ("ravdess", "nemo")[index % 2]
        n_speakers = 2 + (index // 2) % 3
        overlap = (index // 6) % 2 == 1
        pool = _SPEAKERS[split][corpus]
        chosen = [str(s) for s in rng.choice(pool, size=n_speakers, replace=False)]
        clips = {}
        for s in chosen:
            by_emotion = _clips(base, corpus, s)
            names = sorted(by_emotion)
            if emotions_per_speaker is not None:
                picked = rng.choice(
                    names, size=min(emotions_per_speaker, len(names)), replace=False
                )
                names = [str(n) for n in picked]
            clips[s] = [p for n in names for p in by_emotion[n]]
        order = list(chosen)  # every speaker speaks at least once
        while len(order) < turns:
            order.append(str(rng.choice([s for s in chosen if s != order[-1]])))
        pieces: list[tuple[int, np.ndarray, str]] = []
        cursor = int(0.5 * SAMPLE_RATE)
        for turn, speaker in enumerate(order):
            if turn > 0:
                if overlap and rng.random() < 1 / 3:
                    cursor -= int(rng.uniform(0.3, 1.0) * SAMPLE_RATE)
                else:
                    cursor += int(rng.uniform(0.3, 1.5) * SAMPLE_RATE)
            for k in range(int(rng.integers(1, 3))):
                path = clips[speaker][int(rng.integers(len(clips[speaker])))]
                clip = cache.setdefault(path, _trimmed(path))
                if k:
                    cursor += int(0.15 * SAMPLE_RATE)
                pieces.append((cursor, clip, speaker))
                cursor += len(clip)
        samples = np.zeros(cursor + SAMPLE_RATE // 2, dtype=np.float32)
        for start, clip, _ in pieces:
            samples[start : start + len(clip)] += clip
        samples += rng.normal(0, 10 ** (-60 / 20), samples.size).astype(np.float32)
        reference = tuple(
            (start / SAMPLE_RATE, (start + len(clip)) / SAMPLE_RATE, f"{corpus}-{speaker}")
            for start, clip, speaker in pieces
        )
        tag = "overlap" if overlap else "clean"
        conversations.append(
            Conversation(
                name=f"{split}-{corpus}-{n_speakers}spk-{tag}-{index}",
                samples=samples,
                reference=reference,
                speakers=n_speakers,
                overlap=overlap,
            )
        )
    return conversations


def _annotation(turns: Sequence[tuple[float, float, str]]) -> Any:
    core = import_extra("pyannote.core", "evaluation", "Diarization scoring")
    annotation = core.Annotation()
    for start, end, label in turns:
        annotation[core.Segment(start, end)] = label
    return annotation


def score_conversation(
    conversation: Conversation, diarization: Diarization, seconds: float
) -> ConversationScore:
    """The diarization error of ``diarization`` against the conversation's reference."""
    metrics = import_extra("pyannote.metrics.diarization", "evaluation", "Diarization scoring")
    metric = metrics.DiarizationErrorRate(collar=COLLAR_S, skip_overlap=True)
    hypothesis = [(t.span.start, t.span.end, t.speaker) for t in diarization.turns]
    core = import_extra("pyannote.core", "evaluation", "Diarization scoring")
    scored = core.Timeline([core.Segment(0.0, conversation.duration)])  # the whole recording
    detail = metric(
        _annotation(conversation.reference), _annotation(hypothesis), uem=scored, detailed=True
    )
    return ConversationScore(
        name=conversation.name,
        der=float(detail["diarization error rate"]),
        missed=float(detail["missed detection"]),
        false_alarm=float(detail["false alarm"]),
        confusion=float(detail["confusion"]),
        total=float(detail["total"]),
        true_speakers=conversation.speakers,
        found_speakers=len(diarization.speakers),
        seconds=seconds,
        duration=conversation.duration,
    )


def diarize_conversation(
    conversation: Conversation, options: DiarizationOptions, vad: VadOptions | None = None
) -> tuple[Diarization, float]:
    """The pipeline's diarization of a conversation (VAD regions, then speakers) and its time."""
    started = time.perf_counter()
    regions = speech_regions(conversation.samples, vad or VadOptions())
    result = diarize(conversation.samples, regions, options)
    return result, time.perf_counter() - started


def summarise_scores(scores: Sequence[ConversationScore]) -> dict[str, float]:
    """Pooled DER and its parts (time-weighted, as NIST scores), count accuracy, real-time
    factor."""
    total = sum(s.total for s in scores) or 1.0
    return {
        "conversations": float(len(scores)),
        "der": sum(s.der * s.total for s in scores) / total,
        "missed": sum(s.missed for s in scores) / total,
        "false_alarm": sum(s.false_alarm for s in scores) / total,
        "confusion": sum(s.confusion for s in scores) / total,
        "count_accuracy": float(np.mean([s.found_speakers == s.true_speakers for s in scores])),
        "rtf": sum(s.seconds for s in scores) / sum(s.duration for s in scores),
    }


def der_report(
    conversations: Sequence[Conversation],
    options: DiarizationOptions,
    progress: Callable[[str], None] | None = None,
) -> list[ConversationScore]:
    """Diarize and score each conversation."""
    scores = []
    for conversation in conversations:
        result, seconds = diarize_conversation(conversation, options)
        score = score_conversation(conversation, result, seconds)
        if progress is not None:
            progress(
                f"{score.name}: DER {score.der:.3f}, speakers {score.found_speakers}/"
                f"{score.true_speakers}"
            )
        scores.append(score)
    return scores


def online_report(conversations: Sequence[Conversation]) -> list[ConversationScore]:
    """Live speaker labels (:class:`~emotivoice.diarization.online.OnlineSpeakers`) scored as
    batch diarization is: each conversation's utterances (VAD speech cut at every pause, as
    a live endpointer cuts it) labelled one after the other."""
    from emotivoice.diarization import SpeakerTurn
    from emotivoice.diarization.online import OnlineSpeakers
    from emotivoice.segmentation import detect_speech

    scores = []
    for conversation in conversations:
        started = time.perf_counter()
        tracker = OnlineSpeakers()
        turns = []
        for span in detect_speech(conversation.samples, VadOptions(merge_gap_s=0.0)):
            samples = conversation.samples[span.start_sample : span.end_sample]
            turns.append(SpeakerTurn(span, tracker.assign(samples) or ""))
        result = Diarization(turns=tuple(turns), speakers=tracker.speakers, method="online")
        scores.append(score_conversation(conversation, result, time.perf_counter() - started))
    return scores


#: The benchmark's conversation sets: how many emotions each speaker's clips span.
STYLE_SETS: dict[str, int | None] = {"steady": 1, "style change": 2, "any emotion": None}


def stereo_check(root: Path | None = None) -> dict[str, object]:
    """The stereo sample: whether its channels are judged to carry two talkers and each
    channel's speech becomes its own speaker."""
    from emotivoice.diarization import channels_differ, diarize_channels

    audio = load_audio(data_dir(root) / "speech" / "stereo_diarization.wav", keep_channels=True)
    if audio.channels is None:
        return {"split": False, "speakers": 0}
    result = diarize_channels(audio.channels, VadOptions())
    by_channel = {t.channel: t.speaker for t in result.turns}
    return {
        "split": channels_differ(audio.channels),
        "speakers": len(set(by_channel.values())),
        "one_speaker_per_channel": by_channel == {0: "SPEAKER_1", 1: "SPEAKER_2"},
    }


def analysis_cost(recordings: Sequence[np.ndarray], repeats: int = 1) -> dict[str, float]:
    """Seconds ``Analyzer.analyze`` takes on ``recordings`` with and without diarization
    (features and emotion on). Both analyzers are warmed up first; the order alternates from
    one recording to the next so that both see the same machine state."""
    from emotivoice.pipeline import AnalyzeOptions, Analyzer

    analyzers = {
        "with": Analyzer(AnalyzeOptions()),
        "without": Analyzer(AnalyzeOptions(diarization=None)),
    }
    for analyzer in analyzers.values():
        analyzer.analyze(recordings[0][: 5 * SAMPLE_RATE], sample_rate=SAMPLE_RATE)
    times = dict.fromkeys(analyzers, 0.0)
    runs = 0
    for _ in range(repeats):
        for samples in recordings:
            order = list(analyzers) if runs % 2 else list(reversed(analyzers))
            for name in order:
                started = time.perf_counter()
                analyzers[name].analyze(samples, sample_rate=SAMPLE_RATE)
                times[name] += time.perf_counter() - started
            runs += 1
    return {
        "seconds_with": times["with"],
        "seconds_without": times["without"],
        "added": times["with"] / times["without"] - 1.0,
    }
