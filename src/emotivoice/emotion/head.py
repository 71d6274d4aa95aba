"""Numpy runtime of the trained emotion head (no PyTorch needed at inference).

The arrays come from :func:`emotivoice.training.recipe.export_head`; the forward pass mirrors
the training module: optional layer norm → attentive or uniform statistics pooling (weighted
mean and standard deviation over positions) → optional standardisation → optional hidden layer
→ logits, divided by the calibrated temperature.
"""

from __future__ import annotations

import json
import threading
from functools import cache
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.errors import InvalidConfigError, ModelIntegrityError, ModelNotFoundError

if TYPE_CHECKING:
    from emotivoice.models.encoder_prefix import EncoderPrefix, PrefixOutput
    from emotivoice.transcription import EncodedSegment

DEFAULT_HEAD = "whisper-base-emotion.npz"


def _gelu(x: np.ndarray) -> np.ndarray:
    from math import sqrt

    from scipy.special import erf

    return np.asarray(0.5 * x * (1 + erf(x / sqrt(2))))


class EmotionHead:
    """A trained pooling head over Whisper encoder states."""

    def __init__(self, arrays: dict[str, np.ndarray], name: str = "custom") -> None:
        try:
            self.metadata: dict[str, Any] = json.loads(str(arrays["metadata"]))
            self.config: dict[str, Any] = self.metadata["config"]
            self.temperature = float(arrays["temperature"])
            self.weights = {
                k: np.asarray(v, dtype=np.float32) for k, v in arrays.items() if "." in k
            }
            self.weights["out.weight"]
        except (KeyError, ValueError) as error:
            raise ModelIntegrityError(f"Emotion head {name} is incomplete: {error}") from None
        if tuple(self.metadata.get("labels", ())) != BASE_EMOTIONS:
            raise ModelIntegrityError(f"Emotion head {name} does not predict {BASE_EMOTIONS}")
        adapted = any(k.startswith("prefix.") and k.endswith(".a") for k in self.weights)
        if adapted and "adapter_alpha" not in self.config:
            raise ModelIntegrityError(
                f"Emotion head {name} has LoRA adapters but no adapter_alpha in its config"
            )
        self.name = name
        self._prefix: EncoderPrefix | None = None
        self._prefix_lock = threading.Lock()

    @classmethod
    def load(cls, path: str | Path | None = None) -> EmotionHead:
        """The packaged default head, or a head exported by the training recipe."""
        if path is None:
            with resources.as_file(
                resources.files("emotivoice.emotion").joinpath("weights", DEFAULT_HEAD)
            ) as file:
                return _default_head(str(file))
        file = Path(path)
        if not file.is_file():
            raise ModelNotFoundError(f"Emotion head {file} does not exist")
        with np.load(file) as arrays:
            return cls(dict(arrays), file.name)

    @property
    def prefix_layers(self) -> tuple[int, ...]:
        """Encoder layers the head reads from a pass over the segment's own frames.

        Empty for a head on the pipeline's final encoder states (``tap: final``, the former
        default); ``(4,)`` for the shipped head (``tap: prefix4``).
        """
        return prefix_layers(str(self.config.get("tap", "final")))

    def prefix_states(self, mel: np.ndarray, threads: int | None = 1) -> np.ndarray:
        """The head's input ``(batch, positions, features)`` from log-mel frames of segments'
        own audio, ``(batch, n_mels, frames)`` (see :func:`own_log_mel`)."""
        out = self.prefix_output(mel, threads)
        return np.concatenate([out.layers[n] for n in self.prefix_layers], axis=-1)

    @property
    def adapter_deltas(self) -> dict[str, np.ndarray]:
        """Changes the head's fine-tuning made to its encoder prefix (CTranslate2 variable name →
        weight update or tuned norm); empty for a head on the frozen encoder."""
        from emotivoice.models.encoder_prefix import adapter_deltas

        return adapter_deltas(self.weights, float(self.config.get("adapter_alpha", 0.0)))

    def encoder_prefix(self) -> EncoderPrefix:
        """The head's encoder prefix (its fine-tuned weights, when it has any), loaded once."""
        from emotivoice.models.encoder_prefix import adapted_encoder_prefix

        with self._prefix_lock:
            if self._prefix is None:
                self._prefix = adapted_encoder_prefix(
                    str(self.metadata.get("whisper_model", "base")),
                    max(self.prefix_layers),
                    {k: v for k, v in self.weights.items() if k.startswith("prefix.layers.")},
                    float(self.config.get("adapter_alpha", 0.0)),
                )
            return self._prefix

    def prefix_output(self, mel: np.ndarray, threads: int | None = 1) -> PrefixOutput:
        """Every layer's output and attention of the head's encoder prefix on ``mel``.

        ``threads``: BLAS threads (see :class:`~emotivoice.models.encoder_prefix.EncoderPrefix`).
        """
        return self.encoder_prefix()(mel, threads=threads)

    def logits(self, states: np.ndarray) -> np.ndarray:
        """Uncalibrated logits (6,) for states (positions, d_model)."""
        w, cfg = self.weights, self.config
        h = np.asarray(states, dtype=np.float32)
        expected = w["out.weight"].shape[1] // 2 if not cfg.get("hidden_dim") else None
        expected = expected or w["hidden.weight"].shape[1] // 2
        if h.ndim != 2 or h.shape[1] != expected:
            if self.prefix_layers:
                raise InvalidConfigError(
                    f"The emotion head {self.name} reads {expected} values per position, "
                    f"got {h.shape[-1]}"
                )
            model = self.metadata.get("whisper_model", "base")
            raise InvalidConfigError(
                f"The emotion head {self.name} reads Whisper {model} encoder states "
                f"({expected} values per position), got {h.shape[-1]}: transcribe with "
                f"--model {model}, use a head trained for your model, an hf: backend, "
                "or turn emotion off (--no-emotion)"
            )
        if cfg.get("layer_norm"):
            mu, var = h.mean(-1, keepdims=True), h.var(-1, keepdims=True)
            h = (h - mu) / np.sqrt(var + 1e-5) * w["norm.weight"] + w["norm.bias"]
        if cfg.get("pooling") == "attentive":
            scores = np.tanh(h @ w["attention.weight"].T + w["attention.bias"])
            e = (scores @ w["score.weight"].T + w["score.bias"])[:, 0]
            weights = np.exp(e - e.max())
        else:
            weights = np.ones(len(h), dtype=np.float32)
        weights = (weights / weights.sum())[:, None]
        mean = (weights * h).sum(0)
        std = np.sqrt(np.maximum((weights * h * h).sum(0) - mean**2, 1e-6))
        z = np.concatenate([mean, std])
        if cfg.get("batch_norm"):
            z = (z - w["standardise.running_mean"]) / np.sqrt(w["standardise.running_var"] + 1e-5)
        if cfg.get("hidden_dim"):
            z = _gelu(z @ w["hidden.weight"].T + w["hidden.bias"])
        return np.asarray(z @ w["out.weight"].T + w["out.bias"], dtype=np.float64)

    def probabilities(self, states: np.ndarray) -> np.ndarray:
        """Calibrated probabilities (6,) in the order of :data:`BASE_EMOTIONS`."""
        z = self.logits(states) / self.temperature
        z = np.exp(z - z.max())
        return np.asarray(z / z.sum())


def prefix_layers(tap: str) -> tuple[int, ...]:
    """Layers of a recipe tap name: ``prefix3`` → (3,), ``prefix2+3`` → (2, 3), ``final`` → ()."""
    return tuple(int(n) for n in tap[6:].split("+")) if tap.startswith("prefix") else ()


def tap_states(encoded: EncodedSegment, tap: str, model: str = "base") -> np.ndarray:
    """States ``(positions, features)`` of a pipeline segment for a recipe tap (training input)."""
    from emotivoice.models.encoder_prefix import load_encoder_prefix

    layers = prefix_layers(tap)
    if not layers:
        return encoded.states
    out = load_encoder_prefix(model, max(layers))(encoded.own_features)
    return np.concatenate([out.layers[n][0] for n in layers], axis=-1)


def own_log_mel(samples: np.ndarray) -> np.ndarray:
    """Whisper log-mel ``(1, n_mels, frames)`` of a segment's own audio, as the pipeline
    computes it (faster-whisper's feature extractor), cut to whole encoder positions."""
    from emotivoice.transcription import EncodedSegment

    features = whisper_feature_extractor()(np.asarray(samples, dtype=np.float32))
    return EncodedSegment.own_frames(features, features.shape[-1] - 1)[None]


@cache
def whisper_feature_extractor() -> Any:
    from faster_whisper.feature_extractor import FeatureExtractor

    return FeatureExtractor()


@cache
def _default_head(path: str) -> EmotionHead:
    with np.load(path) as arrays:
        return EmotionHead(dict(arrays), DEFAULT_HEAD)
