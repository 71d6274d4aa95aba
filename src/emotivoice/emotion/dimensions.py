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
from collections.abc import Callable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emotivoice.errors import ModelIntegrityError, ModelNotFoundError

if TYPE_CHECKING:
    from emotivoice.results import AcousticFeatures

__all__ = [
    "DEFAULT_DIMENSIONS",
    "DIMENSIONS",
    "PROSODY_TRANSFORMS",
    "DimensionHead",
    "pool_states",
    "prosody_vector",
]

DIMENSIONS = ("arousal", "valence", "intensity")
DEFAULT_DIMENSIONS = "whisper-base-dimensions.npz"
_STD_FLOOR = 1e-6  # variance floor of the pooled standard deviation (the emotion head's)


# how a prosody field enters the arousal model: pitch on a log scale (semitones re 100 Hz, as
# hearing and the range already are), spreads and perturbation measures as logarithms
PROSODY_TRANSFORMS: dict[str, Callable[[float], float]] = {
    "identity": lambda v: v,
    "log": lambda v: float(np.log(v)) if v > 0 else float("nan"),
    "log1p": lambda v: float(np.log1p(v)) if v > -1 else float("nan"),
    "semitones": lambda v: float(12 * np.log2(v / 100)) if v > 0 else float("nan"),
}


def prosody_vector(features: AcousticFeatures, fields: list[list[str]]) -> np.ndarray:
    """The values of ``fields`` (``[name, transform]`` pairs) of a segment's acoustic features;
    NaN where the segment does not define one (no voiced frame)."""
    row = features.to_row()
    values = []
    for name, transform in fields:
        value = row.get(name)
        values.append(
            float("nan") if value is None else PROSODY_TRANSFORMS[transform](float(value))
        )
    return np.asarray(values, dtype=np.float64)


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

    Optionally an arousal model on the segment's prosody and voice quality
    (:class:`~emotivoice.results.AcousticFeatures`, the fields and their transforms in
    ``metadata["prosody"]["fields"]``): ``prosody_mean``, ``prosody_scale`` and
    ``prosody_fill`` (the value standing in for an undefined field), ``prosody_weight`` and
    ``prosody_bias``, and ``fusion`` ``(3,)``: given the features, arousal's calibrated logit is
    ``fusion · (states logit, prosody logit, 1)`` (both raw, before calibration) instead of the
    states' own Platt scaling.
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
        self.prosody_fields: list[list[str]] = []
        if "prosody_weight" in arrays:
            self._read_prosody(arrays, name)

    def _read_prosody(self, arrays: dict[str, Any], name: str) -> None:
        try:
            self.prosody_fields = [list(f) for f in self.metadata["prosody"]["fields"]]
            self.prosody_mean = np.asarray(arrays["prosody_mean"], dtype=np.float64)
            self.prosody_scale = np.asarray(arrays["prosody_scale"], dtype=np.float64)
            self.prosody_fill = np.asarray(arrays["prosody_fill"], dtype=np.float64)
            self.prosody_weight = np.asarray(arrays["prosody_weight"], dtype=np.float64)
            self.prosody_bias = float(arrays["prosody_bias"])
            self.fusion = np.asarray(arrays["fusion"], dtype=np.float64)
        except (KeyError, TypeError, ValueError) as error:
            raise ModelIntegrityError(f"Dimension head {name}'s prosody model: {error}") from None
        k = len(self.prosody_fields)
        arrays_ok = all(
            a.shape == (k,)
            for a in (self.prosody_mean, self.prosody_scale, self.prosody_fill, self.prosody_weight)
        )
        known = all(len(f) == 2 and f[1] in PROSODY_TRANSFORMS for f in self.prosody_fields)
        if not (arrays_ok and known and self.fusion.shape == (3,)):
            raise ModelIntegrityError(f"Dimension head {name} has an inconsistent prosody model")

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

    @property
    def reads_prosody(self) -> bool:
        """Whether arousal also reads the segment's :class:`AcousticFeatures`."""
        return bool(self.prosody_fields)

    def logits(self, states: np.ndarray, features: AcousticFeatures | None = None) -> np.ndarray:
        """Calibrated logits ``(3,)`` in :data:`DIMENSIONS` order for states
        ``(positions, features)``; with the acoustic features of the segment that holds them
        (and a head with a prosody model), arousal reads both."""
        h = np.asarray(states)
        if h.ndim != 2 or h.shape[1] != self.features:
            raise ValueError(
                f"The dimension head {self.name} reads states (positions, {self.features}), "
                f"got {h.shape}"
            )
        z = (pool_states(h) - self.mean) / self.scale
        raw = self.weight @ z + self.bias
        calibrated = self.platt[:, 0] * raw + self.platt[:, 1]
        if features is not None and self.prosody_fields:
            x = prosody_vector(features, self.prosody_fields)
            x = np.where(np.isnan(x), self.prosody_fill, x)
            prosody = float((x - self.prosody_mean) / self.prosody_scale @ self.prosody_weight)
            arousal = DIMENSIONS.index("arousal")
            calibrated[arousal] = self.fusion @ [raw[arousal], prosody + self.prosody_bias, 1.0]
        return np.asarray(calibrated)

    def predict(
        self, states: np.ndarray, features: AcousticFeatures | None = None
    ) -> dict[str, float]:
        """``{"arousal": a, "valence": v, "intensity": i}``, each a probability in [0, 1]
        (``features``: see :meth:`logits`)."""
        p = 1.0 / (1.0 + np.exp(-np.clip(self.logits(states, features), -50, 50)))
        return {d: float(v) for d, v in zip(DIMENSIONS, p, strict=True)}


@cache
def _default_head(path: str) -> DimensionHead:
    if not Path(path).is_file():
        raise ModelNotFoundError(f"The packaged dimension head {path} is missing")
    with np.load(path) as arrays:
        return DimensionHead(dict(arrays), DEFAULT_DIMENSIONS)
