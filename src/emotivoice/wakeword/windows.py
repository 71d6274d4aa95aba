"""Training and evaluation windows: 1.5 s of audio in which the phrase ends where a streaming
detector would first see it whole, or does not occur.

A positive window holds the whole phrase, ending in the window's last ``POSITIVE_END_S``; a
partial window holds only its start (the stream just before the phrase is complete), which is
a negative, so the detector learns to wait for the whole phrase.
"""

from __future__ import annotations

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.wakeword.features import WINDOW_SAMPLES

__all__ = ["crop_window", "partial_window", "place_window"]

POSITIVE_END_S = (0.02, 0.6)  # seconds before the window's end where a positive's end lands
PARTIAL_SHARE = (0.3, 0.65)  # share of a phrase a partial window keeps


def place_window(
    clip: np.ndarray, rng: np.random.Generator, end_s: tuple[float, float] = POSITIVE_END_S
) -> np.ndarray:
    """A window whose end region holds all of ``clip`` (its start cut if it is too long)."""
    window = np.zeros(WINDOW_SAMPLES, np.float32)
    gap = int(rng.uniform(*end_s) * SAMPLE_RATE)
    end = WINDOW_SAMPLES - gap
    piece = clip[-end:] if len(clip) > end else clip
    window[end - len(piece) : end] = piece
    return window


def partial_window(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A window ending with only the first part of ``clip`` (a negative)."""
    keep = max(1, int(len(clip) * rng.uniform(*PARTIAL_SHARE)))
    return place_window(clip[:keep], rng, (0.0, 0.1))


def crop_window(clip: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random ``WINDOW_SAMPLES`` crop of ``clip``, or ``clip`` at a random place when shorter."""
    if len(clip) >= WINDOW_SAMPLES:
        start = int(rng.integers(0, len(clip) - WINDOW_SAMPLES + 1))
        return clip[start : start + WINDOW_SAMPLES].astype(np.float32)
    window = np.zeros(WINDOW_SAMPLES, np.float32)
    start = int(rng.integers(0, WINDOW_SAMPLES - len(clip) + 1))
    window[start : start + len(clip)] = clip
    return window
