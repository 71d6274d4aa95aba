"""Data augmentation of the recipe: waveform copies (speed, room, noise, gain) and, on the
fine-tuned path, SpecAugment masking and a random equaliser of the log-mel."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from emotivoice.audio import SAMPLE_RATE


def augment(samples: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random augmentation: speed, reverberation, noise and gain (each with some chance)."""
    y = samples.astype(np.float32)
    if rng.random() < 0.6:  # speed perturbation (changes tempo and pitch, as Kaldi's)
        factor = rng.uniform(0.9, 1.1)
        positions = np.arange(0, len(y) - 1, factor)
        y = np.interp(positions, np.arange(len(y)), y).astype(np.float32)
    if rng.random() < 0.5:  # synthetic room: exponentially decaying noise impulse response
        rt60 = rng.uniform(0.15, 0.8)
        length = int(rt60 * SAMPLE_RATE)
        t = np.arange(length) / SAMPLE_RATE
        rir = rng.standard_normal(length) * np.exp(-6.9 * t / rt60)
        rir[0] = 1.0
        rir /= np.sqrt((rir**2).sum())
        from scipy.signal import fftconvolve

        wet = fftconvolve(y, rir)[: len(y)]
        y = (0.5 * y + 0.5 * wet * np.abs(y).max() / (np.abs(wet).max() + 1e-9)).astype(np.float32)
    if rng.random() < 0.6:  # white or pink noise at 5–30 dB SNR
        noise = rng.standard_normal(len(y))
        if rng.random() < 0.5:
            spectrum = np.fft.rfft(noise) / np.sqrt(np.arange(1, len(noise) // 2 + 2))
            noise = np.fft.irfft(spectrum, len(noise))
        snr = rng.uniform(5, 30)
        power = float(np.mean(y**2)) + 1e-10
        noise *= math.sqrt(power / (np.mean(noise**2) * 10 ** (snr / 10)))
        y = (y + noise).astype(np.float32)
    gain = 10 ** (rng.uniform(-10, 6) / 20)
    return np.clip(y * gain, -1, 1).astype(np.float32)


def spec_augment(x: Any, mask: Any, max_bins: int = 8, max_frames: int = 20) -> Any:
    """Set one band of up to ``max_bins`` mel bins and one span of up to ``max_frames`` frames of
    each log-mel ``(batch, frames, n_mels)`` to its mean (SpecAugment, Park et al. 2019)."""
    import torch

    batch, frames, bins = x.shape
    device = x.device
    fill = (x * mask[..., None]).sum((1, 2), keepdim=True) / (mask.sum(1) * bins).view(-1, 1, 1)
    low = torch.randint(0, bins - max_bins, (batch, 1, 1), device=device)
    band = torch.arange(bins, device=device).view(1, 1, -1) - low
    width = torch.randint(0, max_bins + 1, (batch, 1, 1), device=device)
    length = mask.sum(1).view(-1, 1, 1)
    start = (torch.rand(batch, 1, 1, device=device) * (length - max_frames).clamp_min(1)).long()
    span = torch.arange(frames, device=device).view(1, -1, 1) - start
    duration = torch.randint(0, max_frames + 1, (batch, 1, 1), device=device)
    hidden = ((band >= 0) & (band < width)) | ((span >= 0) & (span < duration))
    return torch.where(hidden & mask[..., None], fill, x)


def channel_eq(x: Any, mask: Any, max_db: float) -> Any:
    """Colour each log-mel ``(batch, frames, n_mels)`` with a random smooth equaliser: a tilt
    across the mel bins and one bell of random centre and width, each of up to ``max_db`` dB
    (Whisper's log-mel is log10 power / 4, so ``g`` dB adds ``g / 40``)."""
    import torch

    batch, _, bins = x.shape
    device = x.device

    def uniform(low: float, high: float) -> Any:
        return torch.empty(batch, 1, 1, device=device).uniform_(low, high)

    k = torch.linspace(-1, 1, bins, device=device).view(1, 1, -1)
    tilt = uniform(-max_db, max_db) * k
    width = uniform(0.1, 0.6)
    bell = uniform(-max_db, max_db) * torch.exp(-(((k - uniform(-1, 1)) / width) ** 2))
    return x + (tilt + bell) / 40 * mask[..., None]
