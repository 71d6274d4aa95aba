"""Psychoacoustic masking (MPEG-1 psychoacoustic model 1), as Qin et al. 2019 use it.

The global masking threshold of the clean utterance says, per STFT frame and frequency bin, how
much power a perturbation may have there and stay inaudible. :func:`masking_threshold` computes it
once per utterance (numpy, not differentiable: it depends on the clean audio only);
:func:`perturbation_psd` is the differentiable power spectral density of the perturbation on the
same scale, so that stage 2 of the attack can penalise ``relu(psd - threshold)``.

Written by hand because no maintained library exposes model 1's threshold; the formulas follow
ISO/IEC 11172-3 annex D and Qin et al.'s reference code (``generate_masking_threshold.py``), with
two deliberate differences: maskers below the threshold in quiet are always removed (the standard;
the reference code removes them only when another masker is within 0.5 Bark), and the PSD of the
perturbation uses the same ``sqrt(8/3)`` Hann window gain as the threshold (the reference code
uses ``8/3`` on one side only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from scipy.signal import argrelextrema

from emotivoice.audio import SAMPLE_RATE

if TYPE_CHECKING:
    import torch

__all__ = [
    "MASK_HOP",
    "MASK_WINDOW",
    "MaskingThreshold",
    "absolute_threshold_db",
    "bark",
    "masking_threshold",
    "perturbation_psd",
]

MASK_WINDOW = 2048  # STFT window of the psychoacoustic model (128 ms at 16 kHz)
MASK_HOP = 512
PSD_PEAK_DB = 96.0  # the loudest bin of the clean audio is taken as 96 dB SPL
_HANN_GAIN = np.sqrt(8.0 / 3.0)  # restores the power a Hann window removes
_POWER_FLOOR = 1e-20
_MASKER_SPACING_BARK = 0.5  # of two maskers closer than this, only the stronger masks
_LOWER_SLOPE_DB_PER_BARK = 27.0


def bark(frequency_hz: np.ndarray) -> np.ndarray:
    """Critical-band rate (Bark) of frequencies in Hz (Zwicker & Terhardt)."""
    f = np.asarray(frequency_hz, dtype=np.float64)
    return 13.0 * np.arctan(0.00076 * f) + 3.5 * np.arctan((f / 7500.0) ** 2)


def absolute_threshold_db(frequency_hz: np.ndarray) -> np.ndarray:
    """Threshold in quiet (dB SPL) of frequencies in Hz (Terhardt's approximation)."""
    khz = np.asarray(frequency_hz, dtype=np.float64) * 0.001
    with np.errstate(divide="ignore"):
        return 3.64 * khz**-0.8 - 6.5 * np.exp(-0.6 * (khz - 3.3) ** 2) + 0.001 * khz**4 - 12.0


@dataclass(frozen=True)
class MaskingThreshold:
    """The global masking threshold of one utterance.

    Attributes:
        threshold: linear power per frame and bin, ``(n_frames, MASK_WINDOW // 2 + 1)``, on the
            scale where the utterance's loudest bin is ``10 ** 9.6`` (96 dB).
        psd_max: the unnormalised peak power of the utterance, which maps a perturbation's
            power onto the same scale (:func:`perturbation_psd`).
    """

    threshold: np.ndarray
    psd_max: float

    @property
    def threshold_db(self) -> np.ndarray:
        return 10.0 * np.log10(self.threshold)


def _stft_power(samples: np.ndarray) -> np.ndarray:
    """|STFT|² per frame (frames, bins), Hann window, no centring (as the reference code)."""
    if samples.size < MASK_WINDOW:
        samples = np.pad(samples, (0, MASK_WINDOW - samples.size))
    n_frames = 1 + (samples.size - MASK_WINDOW) // MASK_HOP
    starts = np.arange(n_frames)[:, None] * MASK_HOP + np.arange(MASK_WINDOW)[None, :]
    window = np.hanning(MASK_WINDOW + 1)[:-1]  # periodic Hann, as librosa and torch use
    spectrum = np.fft.rfft(samples[starts] * window, axis=-1)
    return np.abs(_HANN_GAIN * spectrum / MASK_WINDOW) ** 2


def _frame_threshold(
    psd_db: np.ndarray, barks: np.ndarray, quiet_db: np.ndarray, quiet_power: np.ndarray
) -> np.ndarray:
    """Global masking threshold (linear power) of one frame from its PSD in dB."""
    maskers = argrelextrema(psd_db, np.greater)[0]
    maskers = maskers[(maskers > 0) & (maskers < psd_db.size - 1)]
    # tonal maskers: the peak's power plus its two neighbours (all maskers treated as tonal,
    # the conservative choice of the reference code)
    power = 10.0 * np.log10(
        10 ** (0.1 * psd_db[maskers - 1])
        + 10 ** (0.1 * psd_db[maskers])
        + 10 ** (0.1 * psd_db[maskers + 1])
    )
    audible = power >= quiet_db[maskers]
    maskers, power = maskers[audible], power[audible]
    kept_index: list[int] = []
    kept_power: list[float] = []
    for index, level in zip(maskers, power, strict=True):
        if kept_index and barks[index] - barks[kept_index[-1]] < _MASKER_SPACING_BARK:
            if level > kept_power[-1]:
                kept_index[-1], kept_power[-1] = int(index), float(level)
            continue
        kept_index.append(int(index))
        kept_power.append(float(level))
    total = quiet_power.copy()
    if not kept_index:
        return total
    z_masker = barks[kept_index][:, None]
    level_db = np.asarray(kept_power)[:, None]
    dz = barks[None, :] - z_masker
    upper_slope = -_LOWER_SLOPE_DB_PER_BARK + 0.37 * np.maximum(level_db - 40.0, 0.0)
    spread = np.where(dz > 0, upper_slope * dz, _LOWER_SLOPE_DB_PER_BARK * dz)
    offset = -6.025 - 0.275 * z_masker  # tonal masking index
    individual_db = level_db + offset + spread
    return total + np.sum(10 ** (individual_db / 10.0), axis=0)


def masking_threshold(samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> MaskingThreshold:
    """The global masking threshold of a clean utterance (float samples in [-1, 1])."""
    samples = np.asarray(samples, dtype=np.float64)
    power = _stft_power(samples)
    psd_max = float(power.max())
    psd_db = 10.0 * np.log10(power + _POWER_FLOOR)
    psd_db = PSD_PEAK_DB - psd_db.max() + psd_db
    freqs = np.fft.rfftfreq(MASK_WINDOW, 1.0 / sample_rate)
    barks = bark(freqs)
    quiet_db = np.full(freqs.shape, -np.inf)
    audible_from = int(np.argmax(barks > 1))  # the formula diverges at 0 Hz; below 1 Bark no limit
    quiet_db[audible_from:] = absolute_threshold_db(freqs[audible_from:])
    quiet_power = 10 ** (quiet_db / 10.0)
    threshold = np.stack(
        [_frame_threshold(frame, barks, quiet_db, quiet_power) for frame in psd_db]
    )
    return MaskingThreshold(threshold=threshold.astype(np.float32), psd_max=max(psd_max, 1e-30))


def perturbation_psd(delta: torch.Tensor, psd_max: torch.Tensor) -> torch.Tensor:
    """Differentiable PSD of perturbations ``(batch, samples)`` on their threshold's scale.

    Returns ``(batch, n_frames, MASK_WINDOW // 2 + 1)``; ``psd_max`` is ``(batch,)``.
    """
    import torch

    if delta.shape[-1] < MASK_WINDOW:
        delta = torch.nn.functional.pad(delta, (0, MASK_WINDOW - delta.shape[-1]))
    window = torch.hann_window(MASK_WINDOW, device=delta.device, dtype=delta.dtype)
    spectrum = torch.stft(
        delta, MASK_WINDOW, MASK_HOP, window=window, center=False, return_complex=True
    )
    power = (float(_HANN_GAIN) / MASK_WINDOW * spectrum.abs()) ** 2
    scale = 10 ** (PSD_PEAK_DB / 10.0) / psd_max.reshape(-1, 1, 1)
    return (power * scale).transpose(1, 2)
