"""Acoustic features: behaviour on synthetic signals and agreement with Praat on real speech.

The tolerances are the ones documented in :mod:`emotivoice.features`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from emotivoice.audio import SAMPLE_RATE, load_audio
from emotivoice.errors import InvalidConfigError
from emotivoice.features import (
    N_MFCC,
    AcousticFeatures,
    _f0_track,
    count_syllables,
    extract_features,
)

parselmouth = pytest.importorskip("parselmouth")
from parselmouth.praat import call  # noqa: E402


def _voice(f0: float, seconds: float = 1.5, jitter: float = 0.0, seed: int = 0) -> np.ndarray:
    """A glottal-pulse-like harmonic signal at ``f0`` (optionally with random period jitter)."""
    rng = np.random.default_rng(seed)
    phase_step = 2 * np.pi * f0 / SAMPLE_RATE
    n = int(seconds * SAMPLE_RATE)
    steps = phase_step * (1 + jitter * rng.standard_normal(n // 80).repeat(80)[:n])
    phase = np.cumsum(np.pad(steps, (0, n - steps.size), mode="edge"))
    signal = sum(np.sin(k * phase) / k for k in range(1, 12))
    return (0.2 * signal / np.abs(signal).max()).astype(np.float32)


def test_harmonic_signal_pitch_and_voice_quality() -> None:
    features = extract_features(_voice(180.0))
    assert features.f0_mean_hz == pytest.approx(180.0, rel=0.02)
    assert features.voiced_fraction > 0.9
    assert features.jitter_local is not None and features.jitter_local < 0.005
    assert features.shimmer_local is not None and features.shimmer_local < 0.02
    assert features.hnr_db is not None and features.hnr_db > 20
    assert len(features.mfcc_means) == N_MFCC


def test_jitter_grows_with_period_perturbation() -> None:
    steady = extract_features(_voice(150.0)).jitter_local
    shaky = extract_features(_voice(150.0, jitter=0.03)).jitter_local
    assert steady is not None and shaky is not None and shaky > 3 * steady


def test_noise_is_unvoiced_with_undefined_pitch() -> None:
    noise = np.random.default_rng(1).normal(0, 0.05, SAMPLE_RATE).astype(np.float32)
    features = extract_features(noise)
    assert features.voiced_fraction < 0.1
    assert features.zero_crossing_rate > 0.3
    assert features.speaking_rate_wps is None


def test_silence_and_tiny_input_do_not_fail() -> None:
    features = extract_features(np.zeros(100, dtype=np.float32), words=[])
    assert features.f0_mean_hz is None and features.hnr_db is None and features.f1_hz is None
    assert features.speaking_rate_wps == 0.0


def test_speaking_rate_uses_word_span() -> None:
    words = ["And", " so,", " my", " fellow", " Americans."]
    features = extract_features(_voice(120.0, seconds=2.0), words=words, speech_time=1.25)
    assert features.speaking_rate_wps == pytest.approx(4.0)
    assert features.syllable_rate_sps == pytest.approx(sum(map(count_syllables, words)) / 1.25)


def test_syllable_counting() -> None:
    assert [count_syllables(w) for w in ("so", "fellow", "Americans", "—", "rhythm")] == [
        1,
        2,
        4,
        0,
        1,
    ]


def test_invalid_sample_rate() -> None:
    with pytest.raises(InvalidConfigError):
        extract_features(np.zeros(16000, dtype=np.float32), 0)


def test_table_row_matches_column_names() -> None:
    features = extract_features(_voice(200.0))
    row = features.to_row()
    assert list(row) == AcousticFeatures.column_names()
    assert "mfcc_means_13" in row and "mfcc_means" not in row
    assert dataclasses.is_dataclass(features)
    with pytest.raises(dataclasses.FrozenInstanceError):
        features.f0_mean_hz = 1.0  # type: ignore[misc]


# --- agreement with Praat on real speech -------------------------------------------------


def _clips(data_dir: Path) -> list[Path]:
    ravdess = [
        data_dir / "ravdess" / f"Actor_{actor}" / f"03-01-{emotion}-02-01-01-{actor}.flac"
        for actor, emotion in (("01", "05"), ("02", "06"), ("05", "03"), ("08", "04"))
    ]
    return [
        data_dir / "speech" / "jfk.flac",
        *sorted((data_dir / "librivox").glob("*.flac"))[:2],
        *sorted((data_dir / "librispeech").glob("*.flac"))[:3],
        *ravdess,
    ]


def _praat(samples: np.ndarray) -> dict[str, float]:
    sound = parselmouth.Sound(samples.astype(np.float64), SAMPLE_RATE)
    pitch = sound.to_pitch()
    f0 = pitch.selected_array["frequency"]
    times = pitch.xs()[f0 > 0]
    harmonicity = sound.to_harmonicity_cc().values
    pulses = call(sound, "To PointProcess (periodic, cc)", 75, 600)
    formant = sound.to_formant_burg()
    return {
        "f0_median": float(np.median(f0[f0 > 0])),
        "hnr": float(harmonicity[harmonicity > -200].mean()),
        "jitter": call(pulses, "Get jitter (local)", 0, 0, 0.0001, 0.02, 1.3),
        "shimmer": call([sound, pulses], "Get shimmer (local)", 0, 0, 0.0001, 0.02, 1.3, 1.6),
        "f1": float(np.nanmedian([formant.get_value_at_time(1, t) for t in times])),
        "f2": float(np.nanmedian([formant.get_value_at_time(2, t) for t in times])),
    }


@pytest.fixture(scope="module")
def comparisons(data_dir: Path) -> list[tuple[str, AcousticFeatures, float, dict[str, float]]]:
    rows = []
    for path in _clips(data_dir):
        samples = load_audio(path).samples
        f0, voiced = _f0_track(samples, SAMPLE_RATE)
        ours_median = float(np.median(f0[voiced & np.isfinite(f0)]))
        rows.append((path.name, extract_features(samples), ours_median, _praat(samples)))
    return rows


def test_f0_agrees_with_praat(comparisons: list) -> None:
    for name, _, ours, praat in comparisons:
        assert ours == pytest.approx(praat["f0_median"], rel=0.15), name
    errors = [abs(ours / praat["f0_median"] - 1) for _, _, ours, praat in comparisons]
    assert np.median(errors) < 0.05


def test_formants_agree_with_praat(comparisons: list) -> None:
    for key in ("f1", "f2"):
        errors = [abs(getattr(f, f"{key}_hz") / praat[key] - 1) for _, f, _, praat in comparisons]
        assert np.median(errors) < 0.12, (key, errors)
        assert max(errors) < 0.7, (key, errors)


def test_voice_quality_agrees_with_praat(comparisons: list) -> None:
    hnr_gap = [praat["hnr"] - f.hnr_db for _, f, _, praat in comparisons]
    assert np.median(np.abs(hnr_gap)) < 5.0, hnr_gap
    for name, features, _, praat in comparisons:
        assert 0.5 < features.jitter_local / praat["jitter"] < 2.6, name
        assert 0.5 < features.shimmer_local / praat["shimmer"] < 2.0, name
