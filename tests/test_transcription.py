"""Transcription's bounded worst case: token caps, the fallback budget, low-confidence marks."""

from __future__ import annotations

import numpy as np
import pytest

from emotivoice.evaluation.hard_audio import HardClip, hard_audio_set
from emotivoice.transcription import (
    DECODE_TOKENS_PER_S,
    DECODE_TOKENS_SLACK,
    Transcriber,
    _BudgetSpent,
    _LimitedPasses,
)

# nEMO speech under four LibriSpeech talkers at 0 dB: Whisper base invents Russian text in a
# loop ("Я в пузы, я в пузы, ...") and, unbounded, decodes three windows of it
HALLUCINATED = "nemo-MK0_fear_4.opus+babble"


def test_limited_passes_cut_retries_and_windows() -> None:
    one = _LimitedPasses(1)
    assert list(one) == [0.0]  # the first pass of the first window always runs
    with pytest.raises(_BudgetSpent):
        iter(one)  # no pass left for a second window
    three = _LimitedPasses(3)
    assert list(three) == [0.0, 0.2, 0.4]  # a failing window retries while passes remain
    with pytest.raises(_BudgetSpent):
        iter(three)
    shared = _LimitedPasses(3)
    assert next(iter(shared)) == 0.0  # a window whose first pass met the checks
    assert list(shared) == [0.0, 0.2]  # the next window gets what is left
    assert shared[0] == 0.0 and len(shared) == 6
    quick = _LimitedPasses(2, retries=False)  # provisional passes: windows, never retries
    assert list(quick) == [0.0] and list(quick) == [0.0]
    with pytest.raises(_BudgetSpent):
        iter(quick)


@pytest.fixture(scope="module")
def transcriber() -> Transcriber:
    return Transcriber()


@pytest.fixture(scope="module")
def hallucinated() -> HardClip:
    return next(c for c in hard_audio_set() if c.name == HALLUCINATED)


@pytest.mark.slow
def test_hallucinating_audio_is_capped_and_marked(
    transcriber: Transcriber, hallucinated: HardClip
) -> None:
    encoded = transcriber.encode(hallucinated.samples)
    language, probability = transcriber.detect_language(encoded)[0]
    result = transcriber.transcribe(encoded, language, probability, 0.0)
    cap = int(hallucinated.duration * DECODE_TOKENS_PER_S) + DECODE_TOKENS_SLACK
    assert len(result.tokens) <= cap
    assert result.low_confidence


@pytest.mark.slow
def test_clean_speech_is_not_low_confidence(
    transcriber: Transcriber, jfk_samples: np.ndarray
) -> None:
    encoded = transcriber.encode(jfk_samples)
    result = transcriber.transcribe(encoded, "en", 1.0, 0.0)
    assert "ask not what your country can do for you" in result.text.lower()
    assert not result.low_confidence
