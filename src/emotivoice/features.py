"""Acoustic and voice-quality features of a speech segment.

Everything is computed from the 16 kHz mono samples of one segment, in one pass per method:

========================  ===============================================================
feature                   method
========================  ===============================================================
F0 mean/std/min/max       pYIN (Mauch & Dixon 2014, 65–500 Hz, 64 ms frames, 20 ms hop, 0.1
                          semitone bins) over voiced frames; min/max are the 2nd/98th
                          percentiles so that one octave error does not set the range; range
                          in semitones.
voiced fraction           share of pYIN frames judged voiced.
energy                    frame RMS (32 ms, 10 ms hop); mean RMS, mean/std of RMS in dBFS
                          over frames within 50 dB of the loudest one (pauses excluded).
speaking rate             words and syllables per second of the time the words span
                          (Whisper word timestamps); syllables counted from vowel groups.
spectral centroid, ZCR    mean over frames (32 ms Hann STFT, 10 ms hop) of the magnitude
                          spectrum's centroid / the zero crossing rate.
MFCC                      means of 13 MFCC (40 Slaney mel bands, dB, orthonormal DCT-II).
jitter, shimmer (local)   Praat's definitions over glottal periods: periods found by peak
                          picking guided by the pYIN track; jitter = mean |T(i)-T(i-1)| /
                          mean T, shimmer = mean |A(i)-A(i-1)| / mean A, with Praat's period
                          limits (0.1–20 ms, factor 1.3 between neighbours).
HNR                       Boersma (1993) normalised autocorrelation at the period lag per
                          voiced frame, 10·log10(r / (1 − r)), mean over voiced frames.
F1, F2                    Burg LPC (order 10) on speech resampled to 11 kHz (soxr HQ),
                          pre-emphasised from 50 Hz, 50 ms Gaussian windows; lowest two
                          roots between 50 Hz and 5450 Hz; medians over voiced frames.
========================  ===============================================================

No librosa: pYIN, the STFT, mel filters, MFCC, zero crossings and Burg LPC are numpy ports of
librosa 0.11's code (``librosa.pyin``, ``stft``, ``filters.mel``, ``feature.mfcc``,
``feature.zero_crossing_rate``, ``lpc``; resampling calls ``soxr`` as librosa does), because
importing librosa (SciPy's signal and stats packages, numba) costs seconds of CPU on every cold
run. They give the same values as librosa: ``tests/test_features.py`` checks the pYIN track frame
by frame, the spectral measures, the LPC coefficients and whole ``extract_features`` results on
real speech, and that a fresh process computing features imports none of those modules. The one
difference: an MFCC mean can differ in its last rounded digit (0.001; 3 of 77 clips), because
librosa's DCT is SciPy's float32 one and ours a float64 product. pYIN's
Viterbi runs over the band of allowed pitch transitions instead of the dense 708 × 708 matrix
(same path), which also makes the features faster.

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
import functools
import itertools
import logging
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from emotivoice import dsp
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
_N_MELS = 40
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
    """pYIN F0 (Hz, NaN where unvoiced) and voicing flags, one per 20 ms frame."""
    return _pyin(y, sr)


# --- pYIN ------------------------------------------------------------------------------------
#
# Hand-written instead of ``librosa.pyin``: importing librosa (with SciPy's signal and stats
# packages and numba's JIT cache) costs seconds of CPU on every cold CLI run, and its dense
# Viterbi (a 708 x 708 max per frame) most of the rest. This is a step-by-step port of librosa
# 0.11's ``librosa.core.pitch.pyin`` (Mauch & Dixon 2014, as the official pYIN software does it),
# with the same parameters, dtypes and order of floating-point operations, so that it gives the
# same track (only the beta prior is computed differently, in closed form, within 2e-15 of
# SciPy's); the per-frame steps run on all frames at once, and the Viterbi is banded (see
# ``_pyin_viterbi``).

_PYIN_THRESHOLDS = 100
_PYIN_BETA = (2, 18)  # beta-distribution prior over the YIN thresholds
_PYIN_BOLTZMANN = 2.0  # prior over troughs: smaller periods weigh more
_PYIN_RESOLUTION = 0.1  # pitch bins of 0.1 semitone
_PYIN_MAX_TRANSITION_RATE = 35.92  # octaves per second
_PYIN_SWITCH_PROB = 0.01  # voiced <-> unvoiced
_PYIN_NO_TROUGH_PROB = 0.01
_TINY64 = float(np.finfo(np.float64).tiny)  # librosa.util.tiny: the log(0) guard


def _beta_cdf_integer(x: NDArray[np.float64], a: int, b: int) -> NDArray[np.float64]:
    """CDF of Beta(a, b) for integer a, b, in closed form (no ``scipy.stats``).

    For integers, I_x(a, b) = P(Binomial(a + b - 1, x) >= a) = 1 - sum_{j<a} C(n, j) x^j (1-x)^(n-j)
    with n = a + b - 1; for (2, 18): 1 - (1 - x)^19 - 19 x (1 - x)^18. Agrees with
    ``scipy.stats.beta.cdf`` to 2e-15.
    """
    n = a + b - 1
    lower = sum(math.comb(n, j) * x**j * (1 - x) ** (n - j) for j in range(a))
    return np.asarray(1 - lower, dtype=np.float64)


@functools.cache
def _pyin_model(
    sr: int,
) -> tuple[int, int, int, NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Constants of pYIN at ``sr``: periods, bins, threshold prior and the transition bands.

    Returns ``min_period, max_period, n_bins, beta_probs, band_same, band_switch``. The band
    arrays are ``(n_bins, width)``: ``band[j, m]`` is the log transition probability from pitch
    bin ``j - width // 2 + m`` to bin ``j`` (within the same voicing state, or switching), -inf
    where that source bin does not exist. They hold exactly the entries of librosa's dense
    ``log(kron(transition_loop(2, 1 - switch), transition_local(n, width, "triangle")) + tiny)``.
    """
    min_period = int(np.floor(sr / F0_MAX_HZ))
    max_period = min(int(np.ceil(sr / F0_MIN_HZ)), _F0_FRAME - 1)
    thresholds = np.linspace(0, 1, _PYIN_THRESHOLDS + 1)
    beta_probs = np.diff(_beta_cdf_integer(thresholds, *_PYIN_BETA))
    per_semitone = int(np.ceil(1.0 / _PYIN_RESOLUTION))
    n_bins = int(np.floor(12 * per_semitone * np.log2(F0_MAX_HZ / F0_MIN_HZ))) + 1
    max_semitones = round(_PYIN_MAX_TRANSITION_RATE * 12 * _F0_HOP / sr)
    width = max_semitones * per_semitone + 1
    # librosa.sequence.transition_local(window="triangle", wrap=False): SciPy's symmetric
    # triangular window centred on the diagonal, cut at the edges, rows normalised.
    half = width // 2
    steps = np.arange(1, (width + 1) // 2 + 1)
    if width % 2:  # scipy.signal.windows.triang(width, sym=True)
        ramp = 2 * steps / (width + 1.0)
        triangle = np.r_[ramp, ramp[-2::-1]]
    else:
        ramp = (2 * steps - 1.0) / width
        triangle = np.r_[ramp, ramp[::-1]]
    rows = np.arange(n_bins)
    source = rows[:, None] + np.arange(-half, width - half)[None, :]
    inside = (source >= 0) & (source < n_bins)
    # dense[k, k + d] = triangle[half + d]; each row summed over all n_bins columns (zeros
    # outside the band), as librosa normalises its dense matrix
    dense = np.zeros((n_bins, n_bins + width - 1))
    np.lib.stride_tricks.sliding_window_view(dense, width, axis=1, writeable=True)[rows, rows] = (
        triangle
    )
    row_sums = np.ascontiguousarray(dense[:, half : half + n_bins]).sum(axis=1)
    stay = 1 - _PYIN_SWITCH_PROB
    switch = (1.0 - stay) / (2 - 1)  # transition_loop(2, stay)'s off-diagonal, as librosa
    bands = []
    for factor in (stay, switch):
        band = np.full((n_bins, width), -np.inf)
        src = source[inside]
        target = np.broadcast_to(np.arange(n_bins)[:, None], source.shape)[inside]
        entry = triangle[target - src + half] / row_sums[src]
        band[inside] = np.log(factor * entry + _TINY64)
        bands.append(band)
    return min_period, max_period, n_bins, beta_probs, bands[0], bands[1]


def _pyin(y: NDArray[np.float32], sr: int) -> tuple[NDArray[np.float64], NDArray[np.bool_]]:
    """librosa.pyin(y, fmin=65, fmax=500, sr, frame_length=1024, hop_length=320, resolution=0.1)."""
    if sr / 2 < F0_MAX_HZ or sr / F0_MIN_HZ >= _F0_FRAME - 1:  # librosa's feasibility checks
        raise InvalidConfigError(f"pYIN's 65-500 Hz needs a rate of 1-66 kHz, got {sr} Hz")
    min_period, max_period, n_bins, beta_probs, same, switch = _pyin_model(sr)
    padded = np.pad(y, _F0_FRAME // 2)  # center=True, pad_mode="constant"
    framed = dsp.frames(padded, _F0_FRAME, _F0_HOP)
    yin = _cumulative_mean_normalized_difference(framed, min_period, max_period)
    shifts = _parabolic_shifts(yin)
    observation = _pyin_observations(yin, shifts, sr, min_period, n_bins, beta_probs)
    states = _pyin_viterbi(observation, same, switch)
    per_semitone = int(np.ceil(1.0 / _PYIN_RESOLUTION))
    freqs = F0_MIN_HZ * 2 ** (np.arange(n_bins) / (12 * per_semitone))
    f0 = freqs[states % n_bins]
    voiced = states < n_bins
    f0[~voiced] = np.nan
    return f0, voiced


def _cumulative_mean_normalized_difference(
    framed: NDArray[np.float32], min_period: int, max_period: int
) -> NDArray[np.float64]:
    """YIN's d'(tau) for tau in [min_period, max_period], ``(n_periods, n_frames)``.

    As ``librosa.core.pitch._cumulative_mean_normalized_difference``: the autocorrelation by
    FFT (float32, 2048 points), energy terms by cumulative sums, in the same dtypes.
    """
    y_frames = framed.T  # librosa's (frame_length, n_frames) layout
    n_fft = 2 * _F0_FRAME  # scipy.fft.next_fast_len(2 * 1024 - 1, real=True)
    spectrum = np.fft.rfft(framed, n=n_fft, axis=-1)
    power = np.square(spectrum.real) + np.square(spectrum.imag)
    acf = np.fft.irfft(power, n=n_fft, axis=-1)[:, : max_period + 1].T
    energy = np.cumsum(np.square(y_frames), axis=0)
    energy[0] = 0  # librosa zeroes the first cumulative energy before using it below
    diff = np.empty_like(energy)
    diff[0] = 0
    diff[1 : max_period + 1] = 2 * (acf[0:1] - acf[1 : max_period + 1]) - energy[:max_period]
    numerator = diff[min_period : max_period + 1]
    k_range = np.arange(1, max_period + 1)[:, None]
    cumulative_mean = np.cumsum(diff[1 : max_period + 1], axis=0) / k_range
    denominator = cumulative_mean[min_period - 1 : max_period]
    result: NDArray[np.float64] = numerator / (denominator + _TINY64)
    return result


def _parabolic_shifts(x: NDArray[np.float64]) -> NDArray[np.float64]:
    """Offset of the parabola through each point and its neighbours (0 past one bin, at edges)."""
    shifts = np.zeros_like(x)
    left, centre, right = x[:-2], x[1:-1], x[2:]
    a = right + left - 2 * centre
    b = (right - left) / 2
    inner = np.zeros_like(a)
    ok = np.abs(b) < np.abs(a)
    np.divide(-b, a, out=inner, where=ok)
    shifts[1:-1] = inner
    return shifts


def _pyin_observations(
    yin: NDArray[np.float64],
    shifts: NDArray[np.float64],
    sr: int,
    min_period: int,
    n_bins: int,
    beta_probs: NDArray[np.float64],
) -> NDArray[np.float64]:
    """Observation probabilities ``(2 * n_bins, n_frames)``: voiced pitch bins, then unvoiced.

    librosa's ``__pyin_helper``: each trough of d' below a threshold takes that threshold's
    prior probability, shared among such troughs by a Boltzmann prior on their rank; the global
    minimum also takes ``no_trough_prob`` of the thresholds no trough is under.
    """
    thresholds_up = np.linspace(0, 1, _PYIN_THRESHOLDS + 1)[1:]
    lam = _PYIN_BOLTZMANN
    # np.sum(beta_probs[:n]) for every n, summed exactly as librosa sums each
    prefix_sums = np.array([np.sum(beta_probs[:n]) for n in range(beta_probs.size + 1)])
    # All frames at once (librosa loops over frames; each step below is its per-frame step,
    # on the troughs of every frame stacked in frame order).
    # librosa.util.localmin along the periods, then bin 0 compared with its right neighbour
    is_trough = np.zeros(yin.shape, dtype=bool)
    is_trough[1:-1] = (yin[1:-1] < yin[:-2]) & (yin[1:-1] <= yin[2:])
    is_trough[-1] = yin[-1] < yin[-2]
    is_trough[0] = yin[0] < yin[1]
    frame_of, trough_index = np.nonzero(is_trough.T)  # grouped by frame, periods ascending
    yin_probs = np.zeros_like(yin)
    if frame_of.size:
        heights = yin[trough_index, frame_of]
        below = np.less.outer(heights, thresholds_up)
        starts = np.flatnonzero(np.r_[True, frame_of[1:] != frame_of[:-1]])
        group = np.cumsum(np.r_[False, frame_of[1:] != frame_of[:-1]])  # frame group per trough
        counts = np.cumsum(below, axis=0)
        before = np.r_[np.zeros((1, below.shape[1]), dtype=counts.dtype), counts[starts[1:] - 1]]
        positions = counts - before[group] - 1  # rank among the frame's troughs under each
        n_troughs = np.add.reduceat(below.astype(np.int64), starts, axis=0)[group]
        # scipy.stats.boltzmann.pmf(k, lam, N) = (1 - e^-lam) / (1 - e^(-lam N)) * e^(-lam k)
        prior = np.zeros(below.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            fact = (1 - np.exp(-lam)) / (1 - np.exp(-lam * n_troughs[below]))
            prior[below] = fact * np.exp(-lam * positions[below])
        probs = prior.dot(beta_probs)
        # each frame's global minimum (first of equal heights, as np.argmin) ...
        lowest = np.minimum.reduceat(heights, starts)
        is_low = heights == lowest[group]
        low_rows = np.flatnonzero(is_low)
        first_low = low_rows[np.r_[True, group[low_rows][1:] != group[low_rows][:-1]]]
        # ... also takes no_trough_prob of the thresholds it is not under
        n_not_below = np.count_nonzero(~below[first_low], axis=1)
        probs[first_low] += _PYIN_NO_TROUGH_PROB * prefix_sums[n_not_below]
        yin_probs[trough_index, frame_of] = probs
    period, frame_index = np.nonzero(yin_probs)
    candidates = min_period + period + shifts[period, frame_index]
    per_semitone = int(np.ceil(1.0 / _PYIN_RESOLUTION))
    bin_index = 12 * per_semitone * np.log2(sr / candidates / F0_MIN_HZ)
    # clipped to n_bins, not n_bins - 1, as librosa: such a candidate falls on the first
    # unvoiced row, which is then overwritten
    bins = np.clip(np.round(bin_index), 0, n_bins).astype(int)
    observation = np.zeros((2 * n_bins, yin.shape[1]))
    observation[bins, frame_index] = yin_probs[period, frame_index]
    voiced_prob = np.clip(np.sum(observation[:n_bins, :], axis=0, keepdims=True), 0, 1)
    observation[n_bins:, :] = (1 - voiced_prob) / n_bins
    return observation


def _pyin_viterbi(
    observation: NDArray[np.float64],
    same: NDArray[np.float64],
    switch: NDArray[np.float64],
) -> NDArray[np.int64]:
    """Most likely state path, the same as ``librosa.sequence.viterbi`` on the dense matrix.

    The 2n x 2n transition matrix is [[(1-s)T, sT], [sT, (1-s)T]] with T banded, so each target
    state has at most 2 x width predecessors: the per-frame max-plus runs over a sliding window
    of the previous values instead of all 2n of them (4 x n x width sums instead of 4 n^2).
    The four blocks (voiced/unvoiced source x target) are maximised apart and then compared,
    the voiced source winning ties, so that ties go to the lowest state index as ``np.argmax``
    over the dense row does (merging the two sources before the band max would break ties
    differently), and each sum is the same float sum as librosa's. Entries outside the band are
    ``log(0 + tiny)`` (about -708), not -inf, in librosa's matrix: targets whose best in-band
    predecessor does not beat the best state plus that value (not seen on the speech tested;
    forced by ``test_banded_viterbi_equals_dense_viterbi``) are redone over all predecessors.
    """
    n2, n_steps = observation.shape
    n_bins = n2 // 2
    width = same.shape[1]
    half = width // 2
    log_prob = np.log(observation + _TINY64).T
    log_off = float(np.log(0.0 + _TINY64))
    # candidate blocks: (voiced->voiced, unvoiced->voiced, voiced->unvoiced, unvoiced->unvoiced)
    blocks = ((0, same), (1, switch), (0, switch), (1, same))
    value = log_prob[0] + np.log(np.full(n2, 1.0 / n2) + _TINY64)
    pointers = np.empty((n_steps, n2), dtype=np.int64)
    padded = np.full((2, n_bins + width - 1), -np.inf)
    windows = np.lib.stride_tricks.sliding_window_view(padded, width, axis=1)
    cand = np.empty((4, n_bins, width))
    flat = cand.reshape(-1)
    rows = np.arange(n_bins)
    row_base = (np.arange(4)[:, None] * n_bins + rows[None, :]) * width
    source_base = (rows[None, :] - half + n_bins * np.array([0, 1, 0, 1])[:, None]).reshape(-1)
    pair_base = np.array([0, 2])[:, None] * n_bins + rows[None, :]  # (voiced, unvoiced) targets
    switch_top, same_diag = float(switch.max()), same[:, half]
    best_m = np.zeros((4, n_bins), dtype=np.int64)
    for t in range(1, n_steps):
        padded[:, half : half + n_bins] = value.reshape(2, n_bins)
        # Voiced -> unvoiced (block 2) cannot win for any unvoiced target when even the best
        # voiced value over the best switching entry is below what every target gets by staying
        # in its own unvoiced bin (block 3's diagonal): then block 2 is left out (about a third
        # of the frames of speech with pauses). Exact: block 3 wins those targets strictly.
        skip_switch_off = float(value[:n_bins].max()) + switch_top < float(
            (value[n_bins:] + same_diag).min()
        )
        for b, (source, band) in enumerate(blocks):
            if not (b == 2 and skip_switch_off):
                np.add(windows[source], band, out=cand[b])
        if skip_switch_off:
            best_m[:2] = cand[:2].argmax(axis=2)
            best_m[3] = cand[3].argmax(axis=1)
            best = flat[row_base + best_m]
            best[2] = -np.inf
        else:
            best_m[:] = cand.argmax(axis=2)
            best = flat[row_base + best_m]
        best, flat_m = best.reshape(-1), best_m.reshape(-1)
        # a target takes the unvoiced-source block only if strictly better: on a tie the
        # voiced source (the lower state index) wins, as in the dense argmax
        pick = pair_base + n_bins * (best[pair_base + n_bins] > best[pair_base])
        step_best = best[pick].reshape(-1)
        step_source = (source_base + flat_m)[pick].reshape(-1)
        floor = value.max() + log_off
        if np.any(step_best <= floor):
            step_best, step_source = _dense_fallback(
                value, step_best, step_source, floor, same, switch, log_off
            )
        pointers[t] = step_source
        value = log_prob[t] + step_best
    states = np.empty(n_steps, dtype=np.int64)
    states[-1] = int(np.argmax(value))
    for t in range(n_steps - 2, -1, -1):
        states[t] = pointers[t + 1, states[t + 1]]
    return states


def _dense_fallback(
    value: NDArray[np.float64],
    step_best: NDArray[np.float64],
    step_source: NDArray[np.int64],
    floor: float,
    same: NDArray[np.float64],
    switch: NDArray[np.float64],
    log_off: float,
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """Redo over all predecessors the targets whose in-band best does not beat the floor."""
    n2 = value.size
    n_bins = n2 // 2
    half = same.shape[1] // 2
    step_best, step_source = step_best.copy(), step_source.copy()
    for j in np.flatnonzero(step_best <= floor):
        target_bin, target_voiced = j % n_bins, j < n_bins
        row = value + log_off
        for k in range(n2):
            offset = k % n_bins - target_bin + half
            if 0 <= offset < same.shape[1]:
                band = same if (k < n_bins) == target_voiced else switch
                row[k] = value[k] + band[target_bin, offset]
        step_source[j] = int(np.argmax(row))
        step_best[j] = row[step_source[j]]
    return step_best, step_source


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
    spectrum = np.abs(_stft(y))
    power = spectrum**2
    rms = np.sqrt(power.sum(axis=0) * 2 / (np.hanning(_FRAME) ** 2).sum() / _FRAME)
    db = 20 * np.log10(np.maximum(rms, 1e-10))
    loud = db[db >= db.max() - _ENERGY_FLOOR_DB]
    freqs = np.fft.rfftfreq(n=_FRAME, d=1.0 / sr)
    weight = spectrum.sum(axis=0)
    centroid = (freqs[:, None] * spectrum).sum(axis=0)[weight > 0] / weight[weight > 0]
    # librosa's einsum("...ft,mf->...mt", optimize=True) as one float32 matrix product: equal
    # to the bit on the speech tested, at a thousandth of the einsum's cost in numpy 2.4
    mel = _mel_basis(sr) @ power
    mfcc = _mfcc(_power_to_db(mel))
    zcr = _zero_crossing_rate(y)
    return (
        float(rms.mean()),
        float(loud.mean()),
        float(loud.std()),
        float(centroid.mean()) if centroid.size else 0.0,
        float(zcr.mean()),
        tuple(round(float(v), 3) for v in mfcc.mean(axis=1)),
    )


# --- spectral pieces, after librosa 0.11 ------------------------------------------------------
#
# Hand-written for the import cost (see pYIN above); each is the numpy equivalent of the
# librosa call named in its docstring, with librosa's dtypes and memory layout so that sums come
# out the same.


def _stft(y: NDArray[np.float32]) -> NDArray[np.complex64]:
    """``librosa.stft(y, n_fft=512, hop_length=160, window="hann")``, ``(freq, frame)`` complex64.

    Centred frames with zero padding (librosa >= 0.10's default ``pad_mode="constant"``), the
    periodic Hann window in float64, the FFT in float64 stored as complex64; laid out like
    librosa's (Fortran order: one frame's bins contiguous).
    """
    padded = np.pad(y, _FRAME // 2)
    framed = dsp.frames(padded, _FRAME, _HOP)
    spectrum = np.fft.rfft(framed * _hann(_FRAME), axis=-1).astype(np.complex64)
    return spectrum.T


@functools.cache
def _hann(length: int) -> NDArray[np.float64]:
    return dsp.periodic_hann(length)


@functools.cache
def _mel_basis(sr: int) -> NDArray[np.float32]:
    """``librosa.filters.mel(sr=sr, n_fft=512, n_mels=40, fmax=sr / 2)`` (Slaney)."""
    return dsp.slaney_mel_filters(sr, _FRAME, _N_MELS, fmax=sr / 2)


def _power_to_db(power: NDArray[np.float32]) -> NDArray[Any]:
    """``librosa.power_to_db(power)``: ref 1, amin 1e-10, floor 80 dB under the maximum."""
    log_spec: NDArray[Any] = 10.0 * np.log10(np.maximum(1e-10, power))
    log_spec -= 10.0 * np.log10(np.maximum(1e-10, 1.0))
    return np.maximum(log_spec, log_spec.max() - 80.0)


@functools.cache
def _dct_matrix(n_out: int, n_in: int) -> NDArray[np.float64]:
    """Rows of the orthonormal DCT-II (``scipy.fft.dct(type=2, norm="ortho")``), first ``n_out``."""
    k = np.arange(n_out)[:, None]
    n = np.arange(n_in)[None, :]
    matrix = np.sqrt(2.0 / n_in) * np.cos(np.pi * k * (2 * n + 1) / (2 * n_in))
    matrix[0] /= np.sqrt(2.0)
    return matrix


def _mfcc(log_mel: NDArray[Any]) -> NDArray[np.float32]:
    """``librosa.feature.mfcc(S=log_mel, n_mfcc=13)``: orthonormal DCT-II over the mel axis.

    librosa runs SciPy's float32 FFT-based DCT; this product in float64, rounded to float32,
    differs from it by float32 rounding only (about 1e-7 relative).
    """
    matrix = _dct_matrix(N_MFCC, log_mel.shape[0])
    return np.ascontiguousarray(matrix @ log_mel.astype(np.float64), dtype=np.float32)


def _zero_crossing_rate(y: NDArray[np.float32]) -> NDArray[np.float64]:
    """``librosa.feature.zero_crossing_rate(y, frame_length=512, hop_length=160)`` per frame.

    Centred frames padded by repeating the edge samples; within a frame, a crossing at sample
    i >= 1 where the sign bits of samples i - 1 and i differ, after setting |x| <= 1e-10 to +0;
    divided by the frame length.
    """
    padded = np.pad(y, _FRAME // 2, mode="edge")
    signs = np.signbit(np.where(np.abs(padded) <= np.float32(1e-10), 0, padded))
    framed = dsp.frames(signs, _FRAME, _HOP)
    crossings = np.count_nonzero(framed[:, 1:] != framed[:, :-1], axis=1)
    rate: NDArray[np.float64] = crossings / _FRAME
    return rate


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
    # the view sliding_window_view gives, without its per-call checks (called once per period)
    step = region.strides[0]
    windows = np.lib.stride_tricks.as_strided(
        region, (region.size - template.size + 1, template.size), (step, step), writeable=False
    )
    norms = np.sqrt((windows**2).sum(axis=1) * (template**2).sum()) + 1e-12
    correlation = windows @ template / norms
    best = int(np.argmax(correlation[1:-1])) + 1
    a, b, c = correlation[best - 1], correlation[best], correlation[best + 1]
    denominator = a - 2 * b + c
    offset = min(max(float(0.5 * (a - c) / denominator), -0.5), 0.5) if denominator else 0.0
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
    if not voiced.any():
        return None, None
    resampled = _resample(y, sr, _FORMANT_SR)
    alpha = np.exp(-2 * np.pi * 50 / _FORMANT_SR)
    emphasised = np.append(resampled[0], resampled[1:] - alpha * resampled[:-1])
    width = int(0.05 * _FORMANT_SR)  # Praat's 25 ms "window length" is half a Gaussian window
    position = np.linspace(0, 1, width)
    window = (np.exp(-12 * (position - 0.5) ** 2) - np.exp(-12)) / (1 - np.exp(-12))
    scale = _FORMANT_SR / sr
    windowed = [frame * window for frame in _voiced_frames(emphasised, f0, voiced, width, scale)]
    windowed = [frame for frame in windowed if np.any(frame)]
    if not windowed:
        return None, None
    roots = _polynomial_roots(_lpc(np.array(windowed, dtype=np.float64), order=10))
    with np.errstate(invalid="ignore"):
        frequencies = np.angle(roots) * _FORMANT_SR / (2 * np.pi)
        keep = (roots.imag > 0) & (frequencies > 50) & (frequencies < _FORMANT_SR / 2 - 50)
    # per frame, the two lowest kept root frequencies (frames with fewer are skipped)
    lowest = np.sort(np.where(keep, frequencies, np.inf), axis=1)[:, :2]
    lowest = lowest[np.isfinite(lowest).all(axis=1)]
    if not lowest.size:
        return None, None
    return float(np.median(lowest[:, 0])), float(np.median(lowest[:, 1]))


def _polynomial_roots(coefficients: NDArray[np.float64]) -> NDArray[np.complex128]:
    """``np.roots`` of each row (leading coefficient 1), NaN-padded to a common count.

    The eigenvalues of the stacked companion matrices in one call, as ``np.roots`` computes
    them one at a time; a row with trailing zero coefficients (roots at 0, which ``np.roots``
    strips first) goes through ``np.roots`` itself.
    """
    n = coefficients.shape[1] - 1
    companion = np.zeros((coefficients.shape[0], n, n))
    companion[:, np.arange(1, n), np.arange(n - 1)] = 1
    companion[:, 0, :] = -coefficients[:, 1:] / coefficients[:, :1]
    roots = np.linalg.eigvals(companion).astype(np.complex128)
    for i in np.flatnonzero(coefficients[:, -1] == 0):
        own = np.roots(coefficients[i])
        roots[i] = np.nan
        roots[i, : own.size] = own
    return roots


def _resample(y: NDArray[np.float32], sr: int, target: int) -> NDArray[np.float32]:
    """``librosa.resample(y, orig_sr=sr, target_sr=target, res_type="soxr_hq")``.

    SoX's high-quality resampler (``soxr``, what librosa calls), trimmed or zero-padded to
    ``ceil(len * target / sr)`` samples as librosa does.
    """
    import soxr

    if sr == target:
        return y
    size = int(np.ceil(y.size * float(target) / sr))
    out = np.asarray(soxr.resample(y, sr, target, quality="HQ"), dtype=np.float32)
    return out[:size] if out.size >= size else np.pad(out, (0, size - out.size))


def _lpc(y: NDArray[np.float64], order: int) -> NDArray[np.float64]:
    """Linear-prediction coefficients ``[1, a1, ..., a_order]`` by Burg's method, per row.

    A port of ``librosa.lpc`` (its ``__lpc``, after Marple 1980): Levinson-Durbin recursion
    over the model order with forward and backward prediction errors. numba's loops become numpy
    operations over all frames at once (``y`` is ``(..., n)``); sums agree to rounding (about
    1e-15 relative).
    """
    ar = np.zeros((*y.shape[:-1], order + 1), dtype=y.dtype)
    ar[..., 0] = 1
    ar_prev = ar.copy()
    epsilon = float(np.finfo(y.dtype).tiny)
    fwd = y[..., 1:]
    bwd = y[..., :-1]
    den = np.sum(fwd**2 + bwd**2, axis=-1)
    for i in range(order):
        reflect = (-2 * np.sum(bwd * fwd, axis=-1) / (den + epsilon))[..., None]
        ar_prev, ar = ar, ar_prev
        ar[..., 1 : i + 2] = ar_prev[..., 1 : i + 2] + reflect * ar_prev[..., i::-1]
        fwd, bwd = fwd + reflect * bwd, bwd + reflect * fwd
        den = (1.0 - reflect[..., 0] ** 2) * den - bwd[..., -1] ** 2 - fwd[..., 0] ** 2
        fwd = fwd[..., 1:]
        bwd = bwd[..., :-1]
    return ar
