"""The phrase check, confusables, TTS voices, augmentation and atomic data sets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from emotivoice.errors import InvalidConfigError, InvalidPhraseError, NoTrainingDataError
from emotivoice.wakeword.augment import AugmentOptions, augment_window, codec_round_trip
from emotivoice.wakeword.data import GenerateOptions, generate_dataset, load_dataset
from emotivoice.wakeword.phrase import WakePhrase, confusable_phrases
from emotivoice.wakeword.tts import available_voices, synthesize


@pytest.mark.parametrize("text", ["", "123", "!!! ?", "  -- "])
def test_a_phrase_without_letters_is_refused(text: str) -> None:
    with pytest.raises(InvalidPhraseError, match="no letters"):
        WakePhrase.parse(text)


@pytest.mark.parametrize(
    ("text", "problem"),
    [("привет мир", "cannot say"), ("hey jarvis 2", "spell numbers"), ("a " * 7, "too long")],
)
def test_phrases_the_voices_cannot_say_are_refused(text: str, problem: str) -> None:
    with pytest.raises(InvalidPhraseError, match=problem) as raised:
        WakePhrase.parse(text)
    assert raised.value.code == "INVALID_PHRASE"


def test_a_typed_phrase_is_normalised() -> None:
    phrase = WakePhrase.parse("  Hey   Jarvis! ")
    assert phrase.text == "hey jarvis" and phrase.slug == "hey_jarvis"
    assert "Hey, jarvis." in phrase.spoken_variants()


def test_confusables_are_near_but_never_the_phrase() -> None:
    confusables = confusable_phrases(WakePhrase("hey jarvis"))
    assert {"hey", "jarvis", "hey marvis"} <= set(confusables)
    assert "hey jarvis" not in confusables
    # a respelling that espeak-ng pronounces like the phrase is no negative
    assert "hay jarvis" not in confusables
    assert not any(c.startswith("hey jarvis ") for c in confusables)


def test_every_engine_speaks() -> None:
    voices = available_voices()
    engines = {v.engine for v in voices}
    assert {"espeak-ng", "flite"} <= engines, "install espeak-ng and flite (make install)"
    for engine in engines:
        voice = next(v for v in voices if v.engine == engine)
        samples = synthesize("hey jarvis", voice, rate=1.1, pitch=0.9)
        assert samples.dtype == np.float32 and 0.3 < len(samples) / 16000 < 3.0
        assert np.abs(samples).max() > 0.05


def test_augmentation_keeps_length_and_range(jfk_samples: np.ndarray) -> None:
    window = jfk_samples[:24240]
    rng = np.random.default_rng(0)
    everything = AugmentOptions(room=1, background=1, band_limit=1, codec=1)
    for _ in range(5):
        out = augment_window(window, rng, [jfk_samples], everything)
        assert out.shape == window.shape and out.dtype == np.float32
        assert np.abs(out).max() <= 1.0 and np.isfinite(out).all()
    trip = codec_round_trip(window, "ogg", "libopus", 16000)
    assert trip.shape == window.shape
    assert np.corrcoef(window[2000:-2000], trip[2000:-2000])[0, 1] > 0.9


def test_generate_refuses_bad_options_before_any_work(tmp_path: Path) -> None:
    with pytest.raises(NoTrainingDataError):
        GenerateOptions(positives=0)
    with pytest.raises(InvalidConfigError):
        GenerateOptions(engines=("festival",))
    with pytest.raises(InvalidPhraseError):
        generate_dataset("1 2 3", tmp_path / "data", None)
    assert list(tmp_path.iterdir()) == []


def test_a_failed_generate_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import emotivoice.wakeword.data as data

    def broken(*args: object, **kwargs: object) -> object:
        raise OSError("disk full")

    monkeypatch.setattr(data.np, "savez", broken)  # fails inside the output folder
    options = GenerateOptions(
        positives=2,
        confusables=0,
        sentences=0,
        val_positives=0,
        test_positives=0,
        engines=("espeak-ng",),
    )
    with pytest.raises(OSError, match="disk full"):
        generate_dataset("hey jarvis", tmp_path / "data", None, options)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_no_data_set_is_named(tmp_path: Path) -> None:
    with pytest.raises(NoTrainingDataError, match="not a wake-word data set"):
        load_dataset(tmp_path)
