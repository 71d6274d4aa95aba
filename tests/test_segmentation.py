"""Voice activity detection and segment splitting on real speech."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import InvalidConfigError
from emotivoice.segmentation import SpeechSpan, VadOptions, detect_speech, merge_spans


def test_silence_has_no_speech() -> None:
    assert detect_speech(np.zeros(SAMPLE_RATE * 3, dtype=np.float32)) == []
    rng = np.random.default_rng(0)
    hiss = (rng.standard_normal(SAMPLE_RATE * 3) * 1e-3).astype(np.float32)
    assert detect_speech(hiss) == []


def test_speech_found_and_padded_silence_excluded(jfk_samples: np.ndarray) -> None:
    silence = np.zeros(SAMPLE_RATE * 3, dtype=np.float32)
    padded = np.concatenate([silence, jfk_samples, silence])
    spans = detect_speech(padded)
    assert spans
    assert spans[0].start >= 2.5  # speech does not start in the leading 3 s of silence
    assert spans[-1].end <= 3.0 + 11.0 + 0.5


def test_long_speech_is_split_at_most_max_segment(data_dir) -> None:  # type: ignore[no-untyped-def]
    samples = load_audio(data_dir / "speech" / "multilingual.mp3").samples  # ~60 s of speech
    for limit in (15.0, 8.0):
        spans = detect_speech(samples, VadOptions(max_segment_s=limit))
        assert len(spans) >= 60 / limit - 1
        assert all(s.end - s.start <= limit + 0.05 for s in spans)
        assert all(a.end <= b.start for a, b in itertools.pairwise(spans))


def test_short_pauses_merge_long_ones_split(jfk_samples: np.ndarray) -> None:
    merged = detect_speech(jfk_samples)
    unmerged = detect_speech(jfk_samples, VadOptions(merge_gap_s=0))
    assert len(merged) == 1 and len(unmerged) >= 3  # JFK pauses ~1 s between phrases
    spans = [SpeechSpan(0, 16000), SpeechSpan(20000, 30000), SpeechSpan(100000, 110000)]
    out = merge_spans(spans, max_segment_s=15, max_gap_s=1.0)
    assert out == [SpeechSpan(0, 30000), SpeechSpan(100000, 110000)]
    assert merge_spans(spans, max_segment_s=1.5, max_gap_s=1.0) == spans


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 1.5}, {"max_segment_s": 45}, {"speech_pad_ms": -1}, {"merge_gap_s": -1}],
)
def test_invalid_options(kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidConfigError):
        VadOptions(**kwargs)  # type: ignore[arg-type]
