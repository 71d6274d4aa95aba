"""Acoustic features: behaviour on synthetic signals and agreement with Praat on real speech.

The tolerances are the ones documented in :mod:`emotivoice.features`.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from emotivoice import dsp
from emotivoice import features as fx
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


# --- the numpy implementation against librosa (issue 28) -------------------------------------
#
# fx.py reimplements the few librosa functions it used (import cost); the old librosa
# calls live on here only, as the reference.


def _librosa_clips(data_dir: Path) -> list[Path]:
    return [
        data_dir / "speech" / "jfk.flac",
        *sorted((data_dir / "librispeech").glob("*.flac"))[:3],
        *sorted((data_dir / "librivox").glob("*.flac"))[:2],
        *sorted((data_dir / "ravdess").glob("Actor_0[1-4]/03-01-0[3-6]-02-01-01-*.flac")),
        *sorted((data_dir / "nemo" / "samples").glob("*.opus"))[::1500],
    ]


def _librosa_f0_track(y: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    import librosa

    f0, voiced, _ = librosa.pyin(
        y,
        fmin=fx.F0_MIN_HZ,
        fmax=fx.F0_MAX_HZ,
        sr=sr,
        frame_length=fx._F0_FRAME,
        hop_length=fx._F0_HOP,
        resolution=0.1,
        center=True,
    )
    return np.asarray(f0, dtype=np.float64), np.asarray(voiced, dtype=bool)


def _librosa_spectral(y: np.ndarray, sr: int) -> tuple[float, float, float, float, float, tuple]:
    """The librosa version of ``fx._spectral``, verbatim."""
    import librosa

    spectrum = np.abs(librosa.stft(y, n_fft=fx._FRAME, hop_length=fx._HOP))
    power = spectrum**2
    rms = np.sqrt(power.sum(axis=0) * 2 / (np.hanning(fx._FRAME) ** 2).sum() / 512)
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    loud = db[db >= db.max() - fx._ENERGY_FLOOR_DB]
    freqs = librosa.fft_frequencies(sr=sr, n_fft=fx._FRAME)
    weight = spectrum.sum(axis=0)
    centroid = (freqs[:, None] * spectrum).sum(axis=0)[weight > 0] / weight[weight > 0]
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=40, fmax=sr / 2)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=fx._HOP)
    return (
        float(rms.mean()),
        float(loud.mean()),
        float(loud.std()),
        float(centroid.mean()) if centroid.size else 0.0,
        float(zcr.mean()),
        tuple(round(float(v), 3) for v in mfcc.mean(axis=1)),
    )


def _librosa_resample(y: np.ndarray, sr: int, target: int) -> np.ndarray:
    import librosa

    return librosa.resample(y, orig_sr=sr, target_sr=target, res_type="soxr_hq")


def _librosa_lpc(y: np.ndarray, order: int) -> np.ndarray:
    import librosa

    return np.asarray(librosa.lpc(y, order=order, axis=-1))


@pytest.fixture(scope="module")
def librosa_speech(data_dir: Path) -> list[tuple[str, np.ndarray]]:
    pytest.importorskip("librosa")
    return [(path.name, load_audio(path).samples) for path in _librosa_clips(data_dir)]


def test_pyin_matches_librosa(librosa_speech: list[tuple[str, np.ndarray]]) -> None:
    for name, y in librosa_speech:
        f0, voiced = _f0_track(y, SAMPLE_RATE)
        ref_f0, ref_voiced = _librosa_f0_track(y, SAMPLE_RATE)
        assert f0.shape == ref_f0.shape, name
        assert np.mean(voiced == ref_voiced) >= 0.99, name
        both = voiced & ref_voiced
        np.testing.assert_allclose(f0[both], ref_f0[both], rtol=1e-3, err_msg=name)
        # in fact the same track, frame for frame
        assert np.array_equal(voiced, ref_voiced) and np.array_equal(f0[both], ref_f0[both]), name


def test_banded_viterbi_equals_dense_viterbi() -> None:
    """Random observations, sparse like pYIN's, and degenerate ones (ties, all-zero frames)."""
    import librosa

    _, _, n_bins, _, same, switch = fx._pyin_model(SAMPLE_RATE)
    rng = np.random.default_rng(28)
    triangle = librosa.sequence.transition_local(
        n_bins, same.shape[1], window="triangle", wrap=False
    )
    dense = np.kron(librosa.sequence.transition_loop(2, 0.99), triangle)
    # the bands hold librosa's log transition entries exactly
    log_dense = np.log(dense + np.finfo(np.float64).tiny)
    half = same.shape[1] // 2
    target, offset = np.indices(same.shape)
    source = target - half + offset
    inside = (source >= 0) & (source < n_bins)
    src, tgt = source[inside], target[inside]
    assert np.array_equal(same[inside], log_dense[src, tgt])
    assert np.array_equal(same[inside], log_dense[n_bins + src, n_bins + tgt])
    assert np.array_equal(switch[inside], log_dense[src, n_bins + tgt])
    assert np.array_equal(switch[inside], log_dense[n_bins + src, tgt])
    assert np.all(same[~inside] == -np.inf)
    p_init = np.ones(2 * n_bins) / (2 * n_bins)
    cases = []
    for _ in range(3):
        observation = np.zeros((2 * n_bins, 60))
        for t in range(60):  # a few pitch candidates per frame, the rest unvoiced mass
            bins = rng.integers(0, n_bins, size=rng.integers(0, 6))
            observation[bins, t] = rng.dirichlet(np.ones(bins.size + 1))[:-1] if bins.size else 0
        voiced = np.clip(observation[:n_bins].sum(axis=0), 0, 1)
        observation[n_bins:] = (1 - voiced) / n_bins
        cases.append(observation)
    flat = np.zeros((2 * n_bins, 30))
    flat[n_bins:] = 1 / n_bins  # silence: all voiced states impossible, unvoiced all tied
    cases.append(flat)
    jumpy = np.zeros((2 * n_bins, 20))  # certain voicing, far jumps: out-of-band transitions
    jumpy[np.resize([10, n_bins - 5], 20), np.arange(20)] = 1.0
    cases.append(jumpy)
    for observation in cases:
        expected = librosa.sequence.viterbi(observation, dense, p_init=p_init)
        assert np.array_equal(fx._pyin_viterbi(observation, same, switch), expected)


def test_spectral_features_match_librosa(librosa_speech: list[tuple[str, np.ndarray]]) -> None:
    import librosa

    for name, y in librosa_speech:
        ours, ref = fx._spectral(y, SAMPLE_RATE), _librosa_spectral(y, SAMPLE_RATE)
        np.testing.assert_allclose(ours[:5], ref[:5], rtol=1e-4, err_msg=name)  # RMS .. ZCR
        np.testing.assert_allclose(ours[5], ref[5], rtol=1e-4, atol=1e-3, err_msg=name)
        # per frame too, before the means
        spectrum = np.abs(librosa.stft(y, n_fft=512, hop_length=160))
        np.testing.assert_allclose(np.abs(fx._stft(y)), spectrum, rtol=1e-4, atol=1e-7)
        mel = librosa.feature.melspectrogram(S=spectrum**2, sr=SAMPLE_RATE, n_mels=40)
        log_mel = librosa.power_to_db(mel)
        ref_mfcc = librosa.feature.mfcc(S=log_mel, n_mfcc=N_MFCC)
        # float32 rounding of SciPy's FFT-based DCT against our float64 product (~3e-5 in 385)
        np.testing.assert_allclose(
            fx._mfcc(log_mel), ref_mfcc, rtol=1e-4, atol=1e-4 * np.abs(ref_mfcc).max()
        )
        np.testing.assert_allclose(
            fx._zero_crossing_rate(y),
            librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=160)[0],
            rtol=1e-4,
        )


def test_mel_filters_and_window_equal_librosa() -> None:
    import librosa

    for sr, n_fft, n_mels in ((16000, 512, 40), (16000, 400, 80), (16000, 400, 40)):
        assert np.array_equal(
            dsp.slaney_mel_filters(sr, n_fft, n_mels),
            librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels),
        )
    assert np.array_equal(dsp.periodic_hann(512), librosa.filters.get_window("hann", 512))


def test_lpc_and_resampling_match_librosa(librosa_speech: list[tuple[str, np.ndarray]]) -> None:
    rng = np.random.default_rng(0)
    for name, y in librosa_speech[:4]:
        resampled = fx._resample(y, SAMPLE_RATE, fx._FORMANT_SR)
        assert np.array_equal(resampled, _librosa_resample(y, SAMPLE_RATE, fx._FORMANT_SR)), name
        starts = rng.integers(0, resampled.size - 550, size=20)
        frames = np.array([resampled[s : s + 550] for s in starts], dtype=np.float64)
        frames *= np.hanning(550)
        ours = fx._lpc(frames, order=10)
        for row, frame in zip(ours, frames, strict=True):
            np.testing.assert_allclose(row, _librosa_lpc(frame, 10), rtol=1e-6, atol=1e-9)


def test_extract_features_equals_librosa_version(
    librosa_speech: list[tuple[str, np.ndarray]], monkeypatch: pytest.MonkeyPatch
) -> None:
    ours = [extract_features(y) for _, y in librosa_speech]
    monkeypatch.setattr(fx, "_f0_track", _librosa_f0_track)
    monkeypatch.setattr(fx, "_spectral", _librosa_spectral)
    monkeypatch.setattr(fx, "_resample", _librosa_resample)
    monkeypatch.setattr(fx, "_lpc", _librosa_lpc)
    for (name, y), mine in zip(librosa_speech, ours, strict=True):
        ref = extract_features(y)
        # MFCC means may differ in their last rounded digit (0.001): librosa's DCT is SciPy's
        # float32 FFT-based one, ours a float64 product (3 of 77 clips checked, one value each)
        assert dataclasses.replace(mine, mfcc_means=ref.mfcc_means) == ref, name
        np.testing.assert_allclose(mine.mfcc_means, ref.mfcc_means, rtol=0, atol=1.001e-3)


def test_features_import_no_heavy_modules(data_dir: Path) -> None:
    """Issue 28: a cold run must not pay for librosa, numba, scipy.signal or scipy.stats."""
    script = (
        "import sys\n"
        "from emotivoice.audio import load_audio\n"
        "import emotivoice.features\n"
        f"samples = load_audio({str(data_dir / 'speech' / 'jfk.flac')!r}).samples[:16000]\n"
        "emotivoice.features.extract_features(samples, words=['ask', 'not'])\n"
        "heavy = ('librosa', 'numba', 'scipy.signal', 'scipy.stats')\n"
        "print(sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True
    )
    assert out.stdout.strip() == "[]", out.stdout
