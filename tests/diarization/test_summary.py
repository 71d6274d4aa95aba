"""Per-speaker figures from segments."""

from __future__ import annotations

import dataclasses

import pytest

from emotivoice.diarization.summary import summarise_speakers
from emotivoice.results import AcousticFeatures, Segment, Word


def _features(f0: float, sd: float) -> AcousticFeatures:
    values = {f.name: 0.0 for f in dataclasses.fields(AcousticFeatures)}
    values.update(f0_mean_hz=f0, f0_std_hz=sd, voiced_fraction=1.0, mfcc_means=())
    return AcousticFeatures(**values)  # type: ignore[arg-type]


def _segment(i: int, start: float, end: float, speaker: str, f0: float, words: int) -> Segment:
    step = (end - start) / max(words, 1)
    return Segment(
        id=i,
        start=start,
        end=end,
        text="x",
        language="en",
        language_probability=1.0,
        avg_logprob=0.0,
        no_speech_prob=0.0,
        words=tuple(Word(start + k * step, start + (k + 1) * step, "w", 1.0) for k in range(words)),
        features=_features(f0, 10.0),
        speaker=speaker,
    )


def test_turns_interruptions_overlap_rate_and_pitch() -> None:
    segments = [
        _segment(0, 0.0, 4.0, "SPEAKER_1", 100.0, 8),
        _segment(1, 3.0, 6.0, "SPEAKER_2", 200.0, 6),  # starts 1 s before SPEAKER_1 ends
        _segment(2, 7.0, 9.0, "SPEAKER_2", 220.0, 4),  # same speaker again: same turn
        _segment(3, 9.5, 11.5, "SPEAKER_1", 140.0, 4),
    ]
    one, two = summarise_speakers(segments)
    assert (one.id, two.id) == ("SPEAKER_1", "SPEAKER_2")
    assert (one.turns, two.turns) == (2, 1)
    assert (one.interruptions, two.interruptions) == (0, 1)
    assert one.overlap_s == pytest.approx(1.0) and two.overlap_s == pytest.approx(1.0)
    assert one.talk_time_s == pytest.approx(6.0) and two.talk_time_s == pytest.approx(5.0)
    assert one.share == pytest.approx(6 / 11, abs=1e-4)
    assert one.speaking_rate_wps == pytest.approx(12 / 6)
    # pooled over durations 4 s at 100 Hz and 2 s at 140 Hz, each with a 10 Hz spread
    assert one.f0_mean_hz == pytest.approx((4 * 100 + 2 * 140) / 6, abs=0.01)
    mean = (4 * 100 + 2 * 140) / 6
    expected_sd = ((4 * (10**2 + 100**2) + 2 * (10**2 + 140**2)) / 6 - mean**2) ** 0.5
    assert one.f0_std_hz == pytest.approx(expected_sd, abs=0.01)
    assert one.emotion is None  # no emotion summariser given


def test_segments_without_speakers_give_no_summary() -> None:
    plain = dataclasses.replace(_segment(0, 0.0, 1.0, "x", 100.0, 1), speaker=None)
    assert summarise_speakers([plain]) == ()
