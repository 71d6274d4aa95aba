"""The second stage: Whisper (the engine's tiny.en, offline) checks what the small model heard.
Real TTS voices saying the phrase and a confusable, real speech, the shipped model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from emotivoice.errors import InvalidConfigError
from emotivoice.wakeword import load_model
from emotivoice.wakeword.features import HOP_SAMPLES
from emotivoice.wakeword.tts import Voice, synthesize
from emotivoice.wakeword.verify import DEFAULT_VERIFIER, VerifierOptions, load_verifier

# voices of the default data set's test split (never trained on)
RMS = Voice("flite", "rms", "flite-rms")
ROBERT = Voice("espeak-ng", "en-us+robert", "espeak-robert")
DAVID = Voice("espeak-ng", "en-us+david", "espeak-david")
ESPEAK = Voice("espeak-ng", "en-us+f3", "espeak-f3")


def _said(text: str, voice: Voice) -> np.ndarray:
    clip = synthesize(text, voice)
    return np.concatenate([np.zeros(8000, np.float32), clip, np.zeros(1600, np.float32)])


@pytest.fixture(scope="module")
def verifier():  # type: ignore[no-untyped-def]
    return load_verifier("hey jarvis")


@pytest.mark.parametrize("voice", [RMS, ROBERT], ids=["flite-rms", "espeak-robert"])
def test_the_phrase_passes(verifier, voice: Voice) -> None:  # type: ignore[no-untyped-def]
    score = verifier.score(_said("hey jarvis", voice))
    assert score >= DEFAULT_VERIFIER.threshold, score


@pytest.mark.parametrize("text", ["hey marvis", "say jarvis", "hey jervis"])
def test_confusables_score_under_the_phrase(verifier, text: str) -> None:  # type: ignore[no-untyped-def]
    # Whisper's language model pulls near-misses towards the name it knows, so a confusable
    # said alone may pass the verifier's threshold (docs/wakeword.md); it scores lower than
    # the phrase said by the same voice
    probability = verifier.phrase_probability(_said(text, ESPEAK))
    assert probability < verifier.phrase_probability(_said("hey jarvis", ESPEAK)) / 2, text


def test_real_speech_is_rejected(verifier, jfk_samples: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    window = DEFAULT_VERIFIER.window_samples
    scores = [
        verifier.score(jfk_samples[start : start + window])
        for start in range(0, len(jfk_samples) - window, window // 2)
    ]
    assert max(scores) < DEFAULT_VERIFIER.threshold, scores


def test_detections_with_a_verifier_do_not_depend_on_chunking(
    verifier,  # type: ignore[no-untyped-def]
    jfk_samples: np.ndarray,
) -> None:
    model = load_model("hey_jarvis")
    stream = np.concatenate([jfk_samples[: 5 * 16000], 0.7 * _said("hey jarvis", DAVID)])
    reference = None
    for size in (HOP_SAMPLES, 777, 16000, len(stream)):
        detector = model.detector(verifier=verifier)
        found = []
        for start in range(0, len(stream), size):
            found += detector.feed(stream[start : start + size])
        got = ([(d.time_s, round(d.score, 4)) for d in found], detector.verifications)
        reference = reference or got
        assert got == reference
    assert reference is not None
    detections, checks = reference
    assert len(detections) == 1 and detections[0][0] > 5.0  # the phrase, not JFK's speech
    # the first stage alone, at its own threshold, misses this voice's phrase
    assert not [d for d in model.detector().feed(stream) if d.time_s > 5.0]
    assert 1 <= checks <= 2 * DEFAULT_VERIFIER.max_checks
    # the verifier's scores at the hops it checked are those of the same windows scored alone
    detector = model.detector(verifier=verifier)
    times, fused = detector.verified_scores(stream)
    hit = int(np.argmax(fused))
    end = round(times[hit] * 16000)
    alone = verifier.score(stream[end - DEFAULT_VERIFIER.window_samples : end])
    assert fused[hit] == pytest.approx(alone, abs=1e-4)


def test_bad_verifier_options_are_refused() -> None:
    with pytest.raises(InvalidConfigError):
        VerifierOptions(gate=1.5)
    with pytest.raises(InvalidConfigError):
        VerifierOptions(window_s=0.1)
    with pytest.raises(InvalidConfigError):
        VerifierOptions(max_checks=0)


def test_confirm_needs_the_verifier_and_rescue_does_not(verifier, jfk_samples: np.ndarray) -> None:  # type: ignore[no-untyped-def]
    # a low threshold makes the first stage fire on JFK's speech; confirmed by the verifier,
    # nothing is left, and each check is counted
    model = load_model("hey_jarvis")
    alone = model.detector(0.05).feed(jfk_samples)
    assert alone
    confirmed = model.detector(verifier=verifier)
    assert confirmed.feed(jfk_samples) == [] and confirmed.verifications >= 1


def test_listen_with_the_verifier_on_a_file(
    jfk_samples: np.ndarray, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from emotivoice.audio import encode_audio
    from emotivoice.cli import EXIT_OK, main

    stream = np.concatenate([jfk_samples[: 5 * 16000], 0.7 * _said("hey jarvis", DAVID)])
    path = tmp_path / "talk.flac"
    encode_audio(stream.astype(np.float32), "flac", "flac", target=path)
    assert main(["wakeword", "listen", "--file", str(path), "--verify", "--json"]) == EXIT_OK
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert len(events) == 1 and events[0]["time_s"] > 5.0, events


def test_a_verifier_of_another_phrase_is_refused() -> None:
    with pytest.raises(InvalidConfigError, match="okay emoti"):
        load_model("hey_jarvis").detector(verifier=load_verifier("okay emoti"))
