"""Simulated room impulse responses for the robust (over-the-air) attack stage.

A statistical room model rather than an image-source simulation: a direct path, a handful of
early reflections in the first 50 ms and a diffuse exponentially decaying tail whose decay is set
by the reverberation time RT60 (Sabine's -60 dB). That is the expectation-over-transformation
distribution of Qin et al. §4 in spirit (they sample rooms from pyroomacoustics); it needs no
extra dependency and is reproducible from a seed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emotivoice.audio import SAMPLE_RATE

__all__ = ["RoomOptions", "simulate_rirs"]

_DECAY_DB = 60.0
_EARLY_REFLECTIONS = 6
_EARLY_WINDOW_S = 0.05


@dataclass(frozen=True)
class RoomOptions:
    """The distribution rooms are drawn from.

    Attributes:
        rt60_s: range of reverberation times (seconds) sampled uniformly.
        direct_to_reverberant_db: range of the direct path's energy over the rest's (dB).
        max_length_s: length at which impulse responses are cut.
    """

    rt60_s: tuple[float, float] = (0.1, 0.4)
    direct_to_reverberant_db: tuple[float, float] = (0.0, 10.0)
    max_length_s: float = 0.5


def simulate_rirs(
    count: int,
    rng: np.random.Generator,
    options: RoomOptions | None = None,
    sample_rate: int = SAMPLE_RATE,
) -> np.ndarray:
    """``count`` impulse responses ``(count, length)``, direct path at sample 0 with gain 1."""
    options = options or RoomOptions()
    length = int(options.max_length_s * sample_rate)
    t = np.arange(length) / sample_rate
    rirs = np.zeros((count, length), dtype=np.float32)
    for i in range(count):
        rt60 = rng.uniform(*options.rt60_s)
        envelope = 10 ** (-_DECAY_DB / 20.0 * t / rt60)
        tail = rng.standard_normal(length) * envelope
        early = rng.integers(1, int(_EARLY_WINDOW_S * sample_rate), _EARLY_REFLECTIONS)
        tail[early] += rng.uniform(-1.0, 1.0, _EARLY_REFLECTIONS) * envelope[early] * 10.0
        tail[0] = 0.0
        drr_db = rng.uniform(*options.direct_to_reverberant_db)
        tail *= np.sqrt(10 ** (-drr_db / 10.0) / max(np.sum(tail**2), 1e-12))
        tail[0] = 1.0
        rirs[i] = tail
    return rirs
