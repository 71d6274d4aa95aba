"""Per-speaker figures of an analysis: talk time, turns, interruptions, prosody, emotion."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from emotivoice.results import FileEmotion, Segment, SpeakerSummary

__all__ = ["INTERRUPTION_MIN_OVERLAP_S", "summarise_speakers"]

#: A turn that starts while another speaker still talks for at least this long interrupts them
#: (shorter overlaps are back-channel noise or end-of-turn timing).
INTERRUPTION_MIN_OVERLAP_S = 0.3
_DECIMALS = 3


def _overlap(a: Segment, b: Segment) -> float:
    return max(0.0, min(a.end, b.end) - max(a.start, b.start))


def _pitch(segments: Sequence[Segment]) -> tuple[float | None, float | None]:
    """Pooled F0 mean and standard deviation, weighting each segment by its duration."""
    voiced = [
        (
            s.duration * s.features.voiced_fraction,
            s.features.f0_mean_hz,
            s.features.f0_std_hz or 0.0,
        )
        for s in segments
        if s.features is not None and s.features.f0_mean_hz is not None
    ]
    weight = sum(w for w, _, _ in voiced)
    if weight <= 0:
        return None, None
    mean = sum(w * m for w, m, _ in voiced) / weight
    second = sum(w * (sd**2 + m**2) for w, m, sd in voiced) / weight
    return round(mean, 2), round(math.sqrt(max(0.0, second - mean**2)), 2)


def summarise_speakers(
    segments: Sequence[Segment],
    emotion_of: Callable[[list[Segment]], FileEmotion | None] | None = None,
) -> tuple[SpeakerSummary, ...]:
    """A :class:`SpeakerSummary` per speaker found on ``segments``, in order of first appearance.

    Args:
        segments: the analysis' segments in time order (those without a speaker are skipped).
        emotion_of: the file-level emotion summary of a list of segments (the emotion
            analyzer's), applied to each speaker's segments.
    """
    spoken = sorted((s for s in segments if s.speaker is not None), key=lambda s: s.start)
    ids = list(dict.fromkeys(s.speaker for s in spoken if s.speaker is not None))
    total = sum(s.duration for s in spoken) or 1.0
    turns = {speaker: 0 for speaker in ids}
    previous: str | None = None
    for segment in spoken:
        if segment.speaker != previous and segment.speaker is not None:
            turns[segment.speaker] += 1
        previous = segment.speaker
    summaries = []
    for speaker in ids:
        own = [s for s in spoken if s.speaker == speaker]
        others = [s for s in spoken if s.speaker != speaker]
        talk = sum(s.duration for s in own)
        interruptions = sum(
            1
            for s in own
            if any(
                o.start < s.start < o.end and _overlap(s, o) >= INTERRUPTION_MIN_OVERLAP_S
                for o in others
            )
        )
        overlap = sum(_overlap(s, o) for s in own for o in others)
        words = sum(len(s.words) for s in own)
        timed = sum(s.words[-1].end - s.words[0].start for s in own if s.words)
        f0_mean, f0_std = _pitch(own)
        channels = {s.channel for s in own}
        summaries.append(
            SpeakerSummary(
                id=speaker,
                channel=channels.pop() if len(channels) == 1 else None,
                talk_time_s=round(talk, _DECIMALS),
                share=round(talk / total, 4),
                turns=turns[speaker],
                interruptions=interruptions,
                overlap_s=round(overlap, _DECIMALS),
                words=words,
                speaking_rate_wps=round(words / timed, 3) if timed > 0 else None,
                f0_mean_hz=f0_mean,
                f0_std_hz=f0_std,
                emotion=emotion_of(own) if emotion_of is not None else None,
            )
        )
    return tuple(summaries)
