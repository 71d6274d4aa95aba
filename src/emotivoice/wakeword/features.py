"""The wake-word front end: log-mel frames at absolute sample positions, in numpy.

Frame ``i`` covers samples ``[i * FRAME_HOP, i * FRAME_HOP + FRAME_LENGTH)`` of the stream, with
no centring or padding, so the frames of a whole recording and those a streaming detector
computes chunk by chunk are the same numbers: training, evaluation and live detection share
this one function.
"""

from __future__ import annotations

import numpy as np
import scipy.fft

from emotivoice.audio import SAMPLE_RATE
from emotivoice.dsp import periodic_hann, slaney_mel_filters

__all__ = [
    "FRAME_HOP",
    "FRAME_LENGTH",
    "HOP_FRAMES",
    "HOP_SAMPLES",
    "N_MELS",
    "WINDOW_FRAMES",
    "WINDOW_SAMPLES",
    "log_mel",
    "n_frames",
    "silence_frame",
]

FRAME_LENGTH = 400  # 25 ms analysis window at 16 kHz
FRAME_HOP = 160  # 10 ms between frames
N_FFT = 512
N_MELS = 40
WINDOW_FRAMES = 150  # the model sees 1.5 s of frames
HOP_FRAMES = 8  # and scores every 8 frames: 80 ms
HOP_SAMPLES = HOP_FRAMES * FRAME_HOP
WINDOW_SAMPLES = FRAME_LENGTH + (WINDOW_FRAMES - 1) * FRAME_HOP  # 24240 samples
_LOG_FLOOR = 1e-6
# A fixed affine scale so that the network sees values of order one; per-utterance
# normalisation would need the future of a stream.
_LOG_OFFSET = 6.0
_LOG_SCALE = 0.25

_WINDOW = periodic_hann(FRAME_LENGTH).astype(np.float32)
_FILTERS_T = np.ascontiguousarray(
    slaney_mel_filters(SAMPLE_RATE, N_FFT, N_MELS, fmin=60.0, fmax=7600.0).T
)


def n_frames(n_samples: int) -> int:
    """How many whole frames ``n_samples`` samples hold."""
    return 0 if n_samples < FRAME_LENGTH else 1 + (n_samples - FRAME_LENGTH) // FRAME_HOP


def log_mel(samples: np.ndarray) -> np.ndarray:
    """``(n_frames, N_MELS)`` float32 scaled log-mel energies of 16 kHz mono ``samples``."""
    count = n_frames(len(samples))
    if count == 0:
        return np.zeros((0, N_MELS), np.float32)
    x = np.ascontiguousarray(samples, dtype=np.float32)
    framed = np.lib.stride_tricks.sliding_window_view(x, FRAME_LENGTH)[::FRAME_HOP][:count]
    # SciPy's FFT keeps float32 (numpy's works in float64: several times slower here)
    spectrum = scipy.fft.rfft(framed * _WINDOW, n=N_FFT, axis=1)
    power = spectrum.real**2 + spectrum.imag**2
    # einsum, not BLAS: this product is small, and BLAS threads in every stream of a busy
    # server cost more in synchronisation (tens of ms under load) than the arithmetic
    mel = np.einsum("ij,jk->ik", power, _FILTERS_T)
    return ((np.log(mel + _LOG_FLOOR) + _LOG_OFFSET) * _LOG_SCALE).astype(np.float32)


def silence_frame() -> np.ndarray:
    """The frame of digital silence, used to fill a stream's first window."""
    return log_mel(np.zeros(FRAME_LENGTH, np.float32))[0]
