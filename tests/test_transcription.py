"""Transcription: fitted encoder windows, and the bounded worst case (token caps, the
fallback budget, low-confidence marks)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotivoice.errors import InvalidConfigError
from emotivoice.evaluation.hard_audio import HardClip, hard_audio_set
from emotivoice.transcription import (
    DECODE_TOKENS_PER_S,
    DECODE_TOKENS_SLACK,
    Transcriber,
    TranscriptionOptions,
    _BudgetSpent,
    _LimitedPasses,
    fitted_window,
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
    cap = int(hallucinated.duration * DECODE_TOKENS_PER_S) + DECODE_TOKENS_SLACK
    # the retries sample (temperature > 0), so what they return differs from run to run: one
    # in three runs a retry's "Мышленный, мышленный, мышленный." passes Whisper's checks;
    # the bound holds for every run
    assert len(transcriber.transcribe(encoded, language, probability, 0.0).tokens) <= cap
    # the first pass is deterministic: it loops ("Не, не, не, ...") and is marked
    first = transcriber.transcribe(encoded, language, probability, 0.0, fallback=False)
    assert first.low_confidence


@pytest.mark.slow
def test_clean_speech_is_not_low_confidence(
    transcriber: Transcriber, jfk_samples: np.ndarray
) -> None:
    encoded = transcriber.encode(jfk_samples)
    result = transcriber.transcribe(encoded, "en", 1.0, 0.0)
    assert "ask not what your country can do for you" in result.text.lower()
    assert not result.low_confidence


def test_fitted_window_holds_the_segment_and_two_seconds_of_silence() -> None:
    assert fitted_window(16000) == 500  # never under 5 s
    assert fitted_window(int(4.9 * 16000)) == 700  # 4.9 s + 2 s, in whole seconds
    assert fitted_window(16000 * 12) == 1400
    assert fitted_window(16000 * 29) == 3000  # never over Whisper's 30 s
    assert fitted_window(int(4.9 * 16000), margin_frames=100) == 600
    with pytest.raises(InvalidConfigError, match="encoder_window must be one of"):
        TranscriptionOptions(encoder_window="short")


@pytest.mark.slow
def test_fitted_window_encodes_less_and_reads_the_same(
    transcriber: Transcriber, jfk_samples: np.ndarray
) -> None:
    fitted = transcriber.encode(jfk_samples)  # the default: an 11 s clip in a 13 s window
    full = transcriber.encode(jfk_samples, window_frames=3000)
    assert fitted.encoder_output.shape[1] == 650 and full.encoder_output.shape[1] == 1500
    assert fitted.n_frames == full.n_frames and fitted.states.shape == full.states.shape
    texts = [transcriber.transcribe(e, "en", 1.0, 0.0).text.lower() for e in (fitted, full)]
    assert all("ask not what your country can do for you" in t for t in texts)


@pytest.mark.slow
def test_fitted_window_ends_where_the_speech_does(data_dir: Path, transcriber: Transcriber) -> None:
    """A 4.9 s sentence (one channel of the stereo call) in a window with only 1 s of silence
    after it made Whisper start the sentence again; the 2 s margin ends it once."""
    from emotivoice.audio import load_audio

    audio = load_audio(data_dir / "speech" / "stereo_diarization.wav", keep_channels=True)
    assert audio.channels is not None
    left = audio.channels[0][int(0.088 * 16000) : 5 * 16000]
    encoded = transcriber.encode(left)
    text = transcriber.transcribe(encoded, "en", 1.0, 0.0).text.lower()
    assert text.count("confused complaint") == 1, text
    assert "curtain on the left" in text
