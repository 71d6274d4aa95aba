"""Transcription's bounded worst case: token caps, the fallback budget, low-confidence marks."""

from __future__ import annotations

import time

import numpy as np
import pytest

from emotivoice.evaluation.hard_audio import HardClip, hard_audio_set
from emotivoice.transcription import (
    DECODE_TOKENS_PER_S,
    DECODE_TOKENS_SLACK,
    Transcriber,
    _BudgetedTemperatures,
    _BudgetSpent,
)

# nEMO speech under four LibriSpeech talkers at 0 dB: Whisper base invents Russian text in a
# loop ("Я в пузы, я в пузы, ...") and, unbounded, decodes three windows of it
HALLUCINATED = "nemo-MK0_fear_4.opus+babble"


def test_budgeted_temperatures_cut_retries_and_windows() -> None:
    spent = _BudgetedTemperatures(time.perf_counter() - 1, time.perf_counter() - 1)
    assert list(spent) == [0.0]  # the first pass of the first window always runs
    with pytest.raises(_BudgetSpent):
        iter(spent)  # a second window after the deadline
    open_ended = _BudgetedTemperatures(time.perf_counter() + 60, time.perf_counter() + 60)
    assert list(open_ended) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert list(open_ended) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]  # every window gets its own
    assert open_ended[0] == 0.0 and len(open_ended) == 6


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
