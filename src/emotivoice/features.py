"""Acoustic and voice-quality features of a speech segment.

Everything is computed from the 16 kHz mono samples of one segment, in one pass per method:

========================  ===============================================================
feature                   method
========================  ===============================================================
F0 mean/std/min/max       pYIN (``librosa.pyin``, 65–500 Hz, 64 ms frames, 20 ms hop) over
                          voiced frames; min/max are the 2nd/98th percentiles so that one
                          octave error does not set the range; range in semitones.
voiced fraction           share of pYIN frames judged voiced.
energy                    frame RMS (32 ms, 10 ms hop); mean RMS, mean/std of RMS in dBFS
                          over frames within 50 dB of the loudest one (pauses excluded).
speaking rate             words and syllables per second of the time the words span
                          (Whisper word timestamps); syllables counted from vowel groups.
spectral centroid, ZCR    mean over frames of the magnitude spectrum's centroid / the zero
                          crossing rate.
MFCC                      means of 13 MFCC (40 mel bands, 32 ms frames).
jitter, shimmer (local)   Praat's definitions over glottal periods: periods found by peak
                          picking guided by the pYIN track; jitter = mean |T(i)-T(i-1)| /
                          mean T, shimmer = mean |A(i)-A(i-1)| / mean A, with Praat's period
                          limits (0.1–20 ms, factor 1.3 between neighbours).
HNR                       Boersma (1993) normalised autocorrelation at the period lag per
                          voiced frame, 10·log10(r / (1 − r)), mean over voiced frames.
F1, F2                    Burg LPC (order 10) on speech resampled to 11 kHz, pre-emphasised
                          from 50 Hz, 50 ms Gaussian windows; lowest two roots between
                          50 Hz and 5450 Hz; medians over voiced frames.
========================  ===============================================================

Agreement with Praat (praat-parselmouth, default settings) is tested on real speech from
``../shared/data`` (``tests/test_features.py``), over a set of clips. What the tests assert, and
why the bounds are that wide:

- F0 median: within 15 % on every clip, median error under 5 % (both trackers; Praat's mean
  is pulled by octave jumps, medians agree);
- F1 and F2 medians: median error under 12 %, none over 70 % (different LPC frames and order;
  a clip with few vowels can land on another formant);
- HNR: median gap under 5 dB (frame placement and Praat's sinc interpolation of the
  autocorrelation);
- local jitter within a factor 0.5–2.6 and local shimmer within 0.5–2 of Praat's (both
  depend on the exact pulse positions; they are for comparing segments of one recording, not
  absolute clinical values).

Values that a segment does not define (no voiced frame, no words) are ``None``.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emotivoice.audio import SAMPLE_RATE
from emotivoice.errors import InvalidConfigError
from emotivoice.results import N_MFCC, AcousticFeatures

logger = logging.getLogger(__name__)

F0_MIN_HZ = 65.0
F0_MAX_HZ = 500.0
_F0_FRAME = 1024
_F0_HOP = 320
_FRAME = 512
_HOP = 160
_ENERGY_FLOOR_DB = 50.0
_FORMANT_SR = 11000
_VOWELS = re.compile(r"[aeiouyàáâãäåæèéêëìíîïòóôõöøùúûüýÿąęóаеёиоуыэюяάέήίόύώ]+", re.IGNORECASE)


def count_syllables(word: str) -> int:
    """Vowel groups in a word (at least one for a word with letters); a language-light estimate."""
    if not any(ch.isalpha() for ch in word):
        return 0
    return max(1, len(_VOWELS.findall(word)))


def extract_features(
    samples: NDArray[np.float32],
    sample_rate: int = SAMPLE_RATE,
    *,
    words: Sequence[str] | None = None,
    speech_time: float | None = None,
) -> AcousticFeatures:
    """Compute :class:`AcousticFeatures` for one segment of mono audio.

    Args:
        samples: mono float samples in [-1, 1].
        sample_rate: their rate (16 kHz in the pipeline).
        words: the segment's words, for the speaking rate (``None``: rate not computed).
        speech_time: seconds the words span; defaults to the segment's duration.
    """
    if sample_rate <= 0:
        raise InvalidConfigError(f"sample_rate must be positive, got {sample_rate}")
    y = np.ascontiguousarray(samples, dtype=np.float32).reshape(-1)
    if y.size < _F0_FRAME:
        y = np.pad(y, (0, _F0_FRAME - y.size))

    f0, voiced = _f0_track(y, sample_rate)
    voiced_f0 = f0[voiced & np.isfinite(f0)]
    periods = _glottal_periods(y, sample_rate, f0, voiced)
    f1, f2 = _formants(y, sample_rate, f0, voiced)

    f0_mean, f0_std, f0_low, f0_high, f0_range = _f0_stats(voiced_f0)
    rms, db_mean, db_std, centroid, zcr, mfcc = _spectral(y, sample_rate)
    features = AcousticFeatures(
        f0_mean_hz=f0_mean,
        f0_std_hz=f0_std,
        f0_min_hz=f0_low,
        f0_max_hz=f0_high,
        f0_range_semitones=f0_range,
        voiced_fraction=round(float(voiced.mean()) if voiced.size else 0.0, 3),
        rms_mean=round(rms, 6),
        energy_db_mean=round(db_mean, 3),
        energy_db_std=round(db_std, 3),
        speaking_rate_wps=None,
        syllable_rate_sps=None,
        spectral_centroid_hz=round(centroid, 1),
        zero_crossing_rate=round(zcr, 5),
        mfcc_means=mfcc,
        jitter_local=_r(_jitter(periods), 5),
        shimmer_local=_r(_shimmer(y, periods), 5),
        hnr_db=_r(_hnr(y, sample_rate, f0, voiced)),
        f1_hz=_r(f1),
        f2_hz=_r(f2),
        f2_f1_ratio=_r(f2 / f1) if f1 and f2 else None,
    )
    if words is None:
        return features
    return with_speaking_rate(features, words, speech_time, y.size / sample_rate)


def with_speaking_rate(
    features: AcousticFeatures,
    words: Sequence[str],
    speech_time: float | None,
    duration: float,
) -> AcousticFeatures:
    """``features`` with the speaking rates of ``words``.

    The acoustic measures need only the audio, the rates the transcript: the pipeline computes
    the former while Whisper decodes and adds the rates from the words afterwards.

    Args:
        features: the segment's acoustic features.
        words: its words.
        speech_time: seconds the words span; ``None`` or not positive: ``duration``.
        duration: the segment's duration in seconds.
    """
    rate_time = speech_time if speech_time and speech_time > 0 else duration
    if rate_time <= 0:
        raise InvalidConfigError(f"A speaking rate needs a positive duration, got {rate_time}")
    n_words = sum(1 for w in words if any(ch.isalnum() for ch in w))
    n_syllables = sum(count_syllables(w) for w in words)
    return dataclasses.replace(
        features,
        speaking_rate_wps=_r(n_words / rate_time),
        syllable_rate_sps=_r(n_syllables / rate_time),
    )


def _r(value: float | None, digits: int = 3) -> float | None:
    if value is None or not np.isfinite(value):
        return None
    return round(float(value), digits)


def _f0_track(y: NDArray[np.float32], sr: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    import librosa

    f0, voiced, _ = librosa.pyin(
        y,
        fmin=F0_MIN_HZ,
        fmax=F0_MAX_HZ,
        sr=sr,
        frame_length=_F0_FRAME,
        hop_length=_F0_HOP,
        resolution=0.1,
        center=True,
    )
    return np.asarray(f0, dtype=np.float64), np.asarray(voiced, dtype=bool)


def _f0_stats(voiced_f0: NDArray[np.float64]) -> tuple[float | None, ...]:
    """Mean, std, 2nd and 98th percentile (Hz) and that range in semitones; Nones if unvoiced."""
    if voiced_f0.size == 0:
        return (None,) * 5
    low, high = np.percentile(voiced_f0, [2, 98])
    return (
        _r(voiced_f0.mean()),
        _r(voiced_f0.std()),
        _r(low),
        _r(high),
        _r(12 * np.log2(high / low)),
    )


def _spectral(
    y: NDArray[np.float32], sr: int
) -> tuple[float, float, float, float, float, tuple[float, ...]]:
    """Mean RMS, dB mean/std over non-pause frames, spectral centroid, ZCR and MFCC means."""
    import librosa

    spectrum = np.abs(librosa.stft(y, n_fft=_FRAME, hop_length=_HOP, window="hann"))
    power = spectrum**2
    rms = np.sqrt(power.sum(axis=0) * 2 / (np.hanning(_FRAME) ** 2).sum() / _FRAME)
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    loud = db[db >= db.max() - _ENERGY_FLOOR_DB]
    freqs = librosa.fft_frequencies(sr=sr, n_fft=_FRAME)
    weight = spectrum.sum(axis=0)
    centroid = (freqs[:, None] * spectrum).sum(axis=0)[weight > 0] / weight[weight > 0]
    mel = librosa.feature.melspectrogram(S=power, sr=sr, n_mels=40, fmax=sr / 2)
    mfcc = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=N_MFCC)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=_FRAME, hop_length=_HOP)
    return (
        float(rms.mean()),
        float(loud.mean()),
        float(loud.std()),
        float(centroid.mean()) if centroid.size else 0.0,
        float(zcr.mean()),
        tuple(round(float(v), 3) for v in mfcc.mean(axis=1)),
    )


def _frame_f0(f0: NDArray[np.float64], voiced: NDArray[np.bool_], t: float) -> float:
    """The voiced F0 at time ``t`` (NaN where the frame is unvoiced)."""
    index = round(t * 50)  # pYIN frames are centred every 20 ms
    if 0 <= index < f0.size and voiced[index] and np.isfinite(f0[index]):
        return float(f0[index])
    return float("nan")


@dataclass(frozen=True)
class _Period:
    start: int  # sample index of the opening pulse
    end: int  # sample index of the closing pulse
    length: float  # sub-sample length in samples, from the correlation peak


def _glottal_periods(
    y: NDArray[np.float32], sr: int, f0: NDArray[np.float64], voiced: NDArray[np.bool_]
) -> list[_Period]:
    """Consecutive glottal periods inside voiced stretches.

    Like Praat's "To PointProcess (periodic, cc)": the first pulse of a voiced stretch is the
    absolute peak of its first period; each next one is where the waveform around the previous
    pulse correlates best within 0.8–1.2 local periods (pYIN F0), the lag refined to a fraction
    of a sample by parabolic interpolation of the correlation.
    """
    periods: list[_Period] = []
    position = 0
    while position < y.size:
        frequency = _frame_f0(f0, voiced, position / sr)
        if not np.isfinite(frequency):
            position += int(0.01 * sr)
            continue
        window_end = min(y.size, position + int(sr / frequency) + 1)
        pulse = position + int(np.argmax(np.abs(y[position:window_end])))
        while (period := _next_period(y, sr, f0, voiced, pulse)) is not None:
            periods.append(period)
            pulse = period.end
        position = pulse + int(0.01 * sr)
    return periods


def _next_period(
    y: NDArray[np.float32], sr: int, f0: NDArray[np.float64], voiced: NDArray[np.bool_], pulse: int
) -> _Period | None:
    frequency = _frame_f0(f0, voiced, pulse / sr)
    if not np.isfinite(frequency):
        return None
    expected = sr / frequency
    half = int(expected / 2)
    lo, hi = int(0.8 * expected), int(1.2 * expected) + 1
    if pulse - half < 0 or pulse + hi + half + 2 > y.size:
        return None
    template = y[pulse - half : pulse + half + 1]
    region = y[pulse + lo - half - 1 : pulse + hi + half + 2]
    windows = np.lib.stride_tricks.sliding_window_view(region, template.size)
    norms = np.sqrt((windows**2).sum(axis=1) * (template**2).sum()) + 1e-12
    correlation = windows @ template / norms
    best = int(np.argmax(correlation[1:-1])) + 1
    a, b, c = correlation[best - 1], correlation[best], correlation[best + 1]
    denominator = a - 2 * b + c
    offset = float(np.clip(0.5 * (a - c) / denominator, -0.5, 0.5)) if denominator else 0.0
    lag = lo - 1 + best
    return _Period(start=pulse, end=pulse + lag, length=lag + offset)


def _contiguous_pairs(periods: list[_Period]) -> list[tuple[_Period, _Period]]:
    """Neighbouring periods that share a pulse and obey Praat's limits (0.1–20 ms, factor 1.3)."""
    return [
        (a, b)
        for a, b in itertools.pairwise(periods)
        if a.end == b.start and max(a.length, b.length) / min(a.length, b.length) <= 1.3
    ]


def _jitter(periods: list[_Period]) -> float | None:
    pairs = _contiguous_pairs(periods)
    if len(pairs) < 3:
        return None
    differences = [abs(b.length - a.length) for a, b in pairs]
    return float(np.mean(differences) / np.mean([p.length for p in periods]))


def _shimmer(y: NDArray[np.float32], periods: list[_Period]) -> float | None:
    pairs = _contiguous_pairs(periods)
    if len(pairs) < 3:
        return None
    amplitude = {p.start: float(np.ptp(y[p.start : p.end + 1])) for p in periods}
    differences = [abs(amplitude[b.start] - amplitude[a.start]) for a, b in pairs]
    mean = float(np.mean(list(amplitude.values())))
    return float(np.mean(differences) / mean) if mean > 0 else None


def _voiced_frames(
    y: NDArray[Any],
    f0: NDArray[np.float64],
    voiced: NDArray[np.bool_],
    width: int,
    scale: float = 1.0,
) -> list[NDArray[Any]]:
    """``width`` samples centred on each voiced pYIN frame that fits inside the signal.

    ``scale`` maps 16 kHz frame positions onto a signal at another rate.
    """
    frames = []
    for index in np.flatnonzero(voiced & np.isfinite(f0)):
        start = int(index * _F0_HOP * scale) - width // 2
        if start >= 0 and start + width <= y.size:
            frames.append(y[start : start + width])
    return frames


def _hnr(
    y: NDArray[np.float32], sr: int, f0: NDArray[np.float64], voiced: NDArray[np.bool_]
) -> float | None:
    """Mean harmonics-to-noise ratio (dB) over voiced frames (Boersma 1993).

    The normalised autocorrelation of each Hann-windowed frame, divided by the window's own
    autocorrelation, peaks at r at the best period lag (65–500 Hz); HNR = 10·log10(r / (1 − r)).
    """
    width = int(4.5 * sr / 75)  # 4.5 periods of 75 Hz, as Praat's To Harmonicity (ac)
    window = np.hanning(width)
    window_ac = _autocorrelation(window)
    values = []
    lo, hi = int(sr / F0_MAX_HZ), int(sr / 75)
    for frame in _voiced_frames(y, f0, voiced, width):
        ac = _autocorrelation((frame - frame.mean()) * window)
        if ac[0] <= 0:
            continue
        r = float(np.clip((ac[lo:hi] / window_ac[lo:hi]).max(), 1e-6, 1 - 1e-6))
        values.append(10 * np.log10(r / (1 - r)))
    return float(np.mean(values)) if values else None


def _autocorrelation(x: NDArray[Any]) -> NDArray[np.float64]:
    n = x.size
    spectrum = np.fft.rfft(x, 2 * n)
    ac = np.fft.irfft(spectrum * np.conj(spectrum))[:n]
    return np.asarray(ac / ac[0] if ac[0] else ac, dtype=np.float64)


def _formants(
    y: NDArray[np.float32], sr: int, f0: NDArray[np.float64], voiced: NDArray[np.bool_]
) -> tuple[float | None, float | None]:
    """Median F1 and F2 over voiced frames from Burg LPC roots (Praat's "To Formant (burg)")."""
    import librosa

    if not voiced.any():
        return None, None
    resampled = librosa.resample(y, orig_sr=sr, target_sr=_FORMANT_SR, res_type="soxr_hq")
    alpha = np.exp(-2 * np.pi * 50 / _FORMANT_SR)
    emphasised = np.append(resampled[0], resampled[1:] - alpha * resampled[:-1])
    width = int(0.05 * _FORMANT_SR)  # Praat's 25 ms "window length" is half a Gaussian window
    position = np.linspace(0, 1, width)
    window = (np.exp(-12 * (position - 0.5) ** 2) - np.exp(-12)) / (1 - np.exp(-12))
    scale = _FORMANT_SR / sr
    f1s, f2s = [], []
    for frame in _voiced_frames(emphasised, f0, voiced, width, scale):
        frame = frame * window
        if not np.any(frame):
            continue
        roots = np.roots(librosa.lpc(frame.astype(np.float64), order=10))
        frequencies = np.sort(np.angle(roots[np.imag(roots) > 0]) * _FORMANT_SR / (2 * np.pi))
        keep = frequencies[(frequencies > 50) & (frequencies < _FORMANT_SR / 2 - 50)]
        if keep.size >= 2:
            f1s.append(keep[0])
            f2s.append(keep[1])
    if not f1s:
        return None, None
    return float(np.median(f1s)), float(np.median(f2s))
