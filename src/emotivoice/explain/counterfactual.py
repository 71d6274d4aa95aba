"""Prosody counterfactuals: re-score a segment with one acoustic factor changed at a time.

Transforms (each a real signal change, measured in the tests): pitch ±2 semitones (phase-vocoder
pitch shift, tempo kept), energy ±6 dB (gain), tempo ±15 % (time stretch, pitch kept) and
spectral tilt ±6 dB per octave-ish (first-order pre-/de-emphasis, loudness matched). The change
in every emotion's probability shows what the prediction depends on; factors are ranked by the
largest change of the predicted class.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.explain.attribution import BatchScorer


def pitch_shift(samples: np.ndarray, semitones: float) -> np.ndarray:
    import librosa

    return np.asarray(
        librosa.effects.pitch_shift(samples, sr=SAMPLE_RATE, n_steps=semitones), dtype=np.float32
    )


def gain(samples: np.ndarray, decibels: float) -> np.ndarray:
    return np.clip(samples * 10 ** (decibels / 20), -1, 1).astype(np.float32)


def tempo(samples: np.ndarray, rate: float) -> np.ndarray:
    """``rate`` > 1 speaks faster (shorter audio), pitch unchanged."""
    import librosa

    return np.asarray(librosa.effects.time_stretch(samples, rate=rate), dtype=np.float32)


def spectral_tilt(samples: np.ndarray, amount: float) -> np.ndarray:
    """Positive: brighter (pre-emphasis); negative: darker (de-emphasis); RMS kept."""
    from scipy.signal import lfilter

    coefficient = min(abs(amount), 0.97)
    if amount >= 0:
        out = lfilter([1.0, -coefficient], [1.0], samples)
    else:
        out = lfilter([1.0 - coefficient], [1.0, -coefficient], samples)
    rms_in = np.sqrt(np.mean(samples**2)) or 1.0
    rms_out = np.sqrt(np.mean(out**2)) or 1.0
    return np.clip(out * rms_in / rms_out, -1, 1).astype(np.float32)


#: name → (factor, transform)
TRANSFORMS: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "pitch +2 st": ("pitch", lambda y: pitch_shift(y, 2.0)),
    "pitch -2 st": ("pitch", lambda y: pitch_shift(y, -2.0)),
    "energy +6 dB": ("energy", lambda y: gain(y, 6.0)),
    "energy -6 dB": ("energy", lambda y: gain(y, -6.0)),
    "tempo +15%": ("tempo", lambda y: tempo(y, 1.15)),
    "tempo -15%": ("tempo", lambda y: tempo(y, 1 / 1.15)),
    "tilt brighter": ("spectral tilt", lambda y: spectral_tilt(y, 0.9)),
    "tilt darker": ("spectral tilt", lambda y: spectral_tilt(y, -0.9)),
}


@dataclass(frozen=True)
class Counterfactual:
    """How every class probability moved under one transform."""

    name: str
    factor: str
    probabilities: tuple[float, ...]
    deltas: tuple[float, ...]


@dataclass(frozen=True)
class CounterfactualReport:
    """All transforms and the factors ranked by their effect on the predicted class."""

    target: int
    original: tuple[float, ...]
    counterfactuals: tuple[Counterfactual, ...]
    ranking: tuple[tuple[str, float], ...]
    evaluations: int


def counterfactuals(
    samples: np.ndarray,
    scorer: BatchScorer,
    original: np.ndarray | None = None,
    target: int | None = None,
) -> CounterfactualReport:
    """Score every transform of ``samples`` in one batch (plus the original if not given)."""
    variants = [transform(samples) for _, transform in TRANSFORMS.values()]
    batch = variants if original is not None else [samples, *variants]
    scores = np.asarray(scorer(batch), dtype=np.float64)
    evaluations = len(batch)
    if original is None:
        original, scores = scores[0], scores[1:]
    base = np.asarray(original, dtype=np.float64)
    target = int(np.argmax(base)) if target is None else target
    items = []
    effect: dict[str, float] = {}
    for (name, (factor, _)), p in zip(TRANSFORMS.items(), scores, strict=True):
        deltas = p - base
        items.append(
            Counterfactual(
                name=name,
                factor=factor,
                probabilities=tuple(round(float(v), 5) for v in p),
                deltas=tuple(round(float(v), 5) for v in deltas),
            )
        )
        effect[factor] = max(effect.get(factor, 0.0), abs(float(deltas[target])))
    ranking = tuple(sorted(((k, round(v, 5)) for k, v in effect.items()), key=lambda kv: -kv[1]))
    return CounterfactualReport(
        target=target,
        original=tuple(round(float(v), 5) for v in base),
        counterfactuals=tuple(items),
        ranking=ranking,
        evaluations=evaluations,
    )
