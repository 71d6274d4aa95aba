"""Arousal, valence and intensity beside the six categories: small calibrated logistic models.

The :class:`DimensionHead` reads exactly what the default :class:`~emotivoice.emotion.head.
EmotionHead` reads for a stretch of audio (layer 4 of its fine-tuned encoder prefix on the
audio's own log-mel frames, ``EmotionHead.load().prefix_states(mel)[0]``), pools it the same way
(mean and standard deviation over positions, 512 × 2 = 1,024 values), standardises the pooled
statistics and applies one logistic model per dimension, then a Platt scaling fitted on
held-out speakers. No second encoder pass and no PyTorch: three dot products of 1,024 values.

Each output is a probability in [0, 1]:

- ``arousal``: P(high arousal) — anger, fear, happiness and surprise against neutral, calm and
  sadness, their quadrants on Russell's (1980) circumplex;
- ``valence``: P(positive valence) — happiness and calm against anger, fear and sadness
  (neutral and surprise, which sit on the valence axis's middle, count half each way);
- ``intensity``: P(strong expression) — RAVDESS's intensity label (``02`` strong against ``01``
  normal; neutral and calm speech count as not strong).

The weights come from :mod:`emotivoice.training.dimensions` (``python -m
emotivoice.training.dimensions``); their data, targets and held-out figures are in
``docs/emotion-model-card.md``.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from emotivoice.errors import ModelIntegrityError, ModelNotFoundError

__all__ = ["DEFAULT_DIMENSIONS", "DIMENSIONS", "DimensionHead", "pool_states"]

DIMENSIONS = ("arousal", "valence", "intensity")
DEFAULT_DIMENSIONS = "whisper-base-dimensions.npz"
_STD_FLOOR = 1e-6  # variance floor of the pooled standard deviation (the emotion head's)


def pool_states(states: np.ndarray) -> np.ndarray:
    """Mean and standard deviation over positions of states ``(positions, features)``, side
    by side ``(2 · features,)``: the emotion head's uniform statistics pooling."""
    h = np.asarray(states, dtype=np.float32)
    if h.ndim != 2 or len(h) == 0:
        raise ValueError(f"states must be (positions, features) with positions > 0, got {h.shape}")
    mean = h.mean(0)
    std = np.sqrt(np.maximum((h * h).mean(0) - mean**2, _STD_FLOOR))
    return np.concatenate([mean, std])


class DimensionHead:
    """Calibrated arousal, valence and intensity from the emotion head's encoder states.

    Arrays of the file: ``mean`` and ``scale`` (standardisation of the pooled statistics),
    ``weight`` ``(3, 2 · features)`` and ``bias`` ``(3,)`` (one logistic model per dimension),
    ``platt`` ``(3, 2)`` (slope and offset of each calibration) and ``metadata`` (JSON: the
    dimensions, the encoder states it reads, its targets and evaluations).
    """

    def __init__(self, arrays: dict[str, Any], name: str = "custom") -> None:
        try:
            self.metadata: dict[str, Any] = json.loads(str(arrays["metadata"]))
            self.mean = np.asarray(arrays["mean"], dtype=np.float32)
            self.scale = np.asarray(arrays["scale"], dtype=np.float32)
            self.weight = np.asarray(arrays["weight"], dtype=np.float64)
            self.bias = np.asarray(arrays["bias"], dtype=np.float64)
            self.platt = np.asarray(arrays["platt"], dtype=np.float64)
        except (KeyError, ValueError) as error:
            raise ModelIntegrityError(f"Dimension head {name} is incomplete: {error}") from None
        n = len(DIMENSIONS)
        if tuple(self.metadata.get("dimensions", ())) != DIMENSIONS:
            raise ModelIntegrityError(f"Dimension head {name} does not predict {DIMENSIONS}")
        width = self.mean.shape[0]
        shapes_ok = (
            self.scale.shape == (width,)
            and self.weight.shape == (n, width)
            and self.bias.shape == (n,)
            and self.platt.shape == (n, 2)
        )
        if not shapes_ok:
            raise ModelIntegrityError(f"Dimension head {name} has inconsistent array shapes")
        self.name = name

    @classmethod
    def load(cls, path: str | Path | None = None) -> DimensionHead:
        """The packaged head (loaded once per process), or a file written by the trainer."""
        if path is None:
            with resources.as_file(
                resources.files("emotivoice.emotion").joinpath("weights", DEFAULT_DIMENSIONS)
            ) as file:
                return _default_head(str(file))
        file = Path(path)
        if not file.is_file():
            raise ModelNotFoundError(f"Dimension head {file} does not exist")
        with np.load(file) as arrays:
            return cls(dict(arrays), file.name)

    @property
    def features(self) -> int:
        """Values per position of the states it reads (512 for Whisper base)."""
        return self.mean.shape[0] // 2

    def logits(self, states: np.ndarray) -> np.ndarray:
        """Calibrated logits ``(3,)`` in :data:`DIMENSIONS` order for states
        ``(positions, features)``."""
        h = np.asarray(states)
        if h.ndim != 2 or h.shape[1] != self.features:
            raise ValueError(
                f"The dimension head {self.name} reads states (positions, {self.features}), "
                f"got {h.shape}"
            )
        z = (pool_states(h) - self.mean) / self.scale
        raw = self.weight @ z + self.bias
        return np.asarray(self.platt[:, 0] * raw + self.platt[:, 1])

    def predict(self, states: np.ndarray) -> dict[str, float]:
        """``{"arousal": a, "valence": v, "intensity": i}``, each a probability in [0, 1]."""
        p = 1.0 / (1.0 + np.exp(-np.clip(self.logits(states), -50, 50)))
        return {d: float(v) for d, v in zip(DIMENSIONS, p, strict=True)}


@cache
def _default_head(path: str) -> DimensionHead:
    if not Path(path).is_file():
        raise ModelNotFoundError(f"The packaged dimension head {path} is missing")
    with np.load(path) as arrays:
        return DimensionHead(dict(arrays), DEFAULT_DIMENSIONS)
