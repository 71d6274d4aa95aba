"""Small signal-processing pieces shared by the feature extractor and the Whisper front end.

Written in numpy rather than imported from librosa: ``import librosa`` pulls SciPy's signal and
stats packages and numba (seconds of CPU on every cold CLI run) for a few lines of arithmetic.
Each function reproduces librosa 0.10/0.11 operation for operation (same dtypes, same order of
floating-point operations), so that results are bit-identical to the library they replace;
``tests/test_features.py`` checks that against librosa.
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

_Scalar = TypeVar("_Scalar", bound=np.generic)

_MEL_F_SP = 200.0 / 3  # Slaney mel scale: linear below 1 kHz ...
_MEL_MIN_LOG_HZ = 1000.0
_MEL_MIN_LOG_MEL = _MEL_MIN_LOG_HZ / _MEL_F_SP
_MEL_LOGSTEP = float(np.log(6.4) / 27.0)  # ... logarithmic above


def hz_to_mel(frequency: float) -> float:
    """One frequency on the Slaney mel scale (``librosa.hz_to_mel(f, htk=False)``)."""
    if frequency >= _MEL_MIN_LOG_HZ:
        return float(_MEL_MIN_LOG_MEL + np.log(frequency / _MEL_MIN_LOG_HZ) / _MEL_LOGSTEP)
    return frequency / _MEL_F_SP


def mel_to_hz(mels: NDArray[np.float64]) -> NDArray[np.float64]:
    """Slaney mels back to Hz (``librosa.mel_to_hz(mels, htk=False)``)."""
    freqs = _MEL_F_SP * mels
    log_t = mels >= _MEL_MIN_LOG_MEL
    freqs[log_t] = _MEL_MIN_LOG_HZ * np.exp(_MEL_LOGSTEP * (mels[log_t] - _MEL_MIN_LOG_MEL))
    return freqs


def slaney_mel_filters(
    sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None
) -> NDArray[np.float32]:
    """The ``(n_mels, 1 + n_fft // 2)`` Slaney-normalised mel filter bank, float32.

    Equal to ``librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax)``
    (``htk=False``, ``norm="slaney"``): triangles between mel-spaced edges, each scaled to unit
    area in Hz so that every band carries about the same energy.
    """
    top = float(sr) / 2 if fmax is None else fmax
    weights = np.zeros((n_mels, 1 + n_fft // 2), dtype=np.float32)
    fftfreqs = np.fft.rfftfreq(n=n_fft, d=1.0 / sr)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin), hz_to_mel(top), n_mels + 2))
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fftfreqs)
    for i in range(n_mels):
        lower = -ramps[i] / fdiff[i]
        upper = ramps[i + 2] / fdiff[i + 1]
        weights[i] = np.maximum(0, np.minimum(lower, upper))
    weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, np.newaxis]
    return weights


def periodic_hann(length: int) -> NDArray[np.float64]:
    """The periodic ("fftbins") Hann window as SciPy builds it (``get_window("hann", n)``)."""
    fac = np.linspace(-np.pi, np.pi, length + 1)
    window = np.zeros(length + 1)
    window += 0.5 * np.cos(0 * fac)
    window += 0.5 * np.cos(1 * fac)
    return window[:-1]


def frames(x: NDArray[_Scalar], length: int, hop: int) -> NDArray[_Scalar]:
    """``(n_frames, length)`` view of ``x``, one frame every ``hop`` (``librosa.util.frame``)."""
    view: NDArray[_Scalar] = np.lib.stride_tricks.sliding_window_view(x, length)[::hop]
    return view
