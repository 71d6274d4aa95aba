"""Emotion per segment and per file: backends, calibration, uncertainty, taxonomy, timeline.

Backends (``EmotionOptions.model``):

- ``"default"``: the head trained by ``emotivoice train-emotion`` and shipped in the package; it
  reads layer 4 of its fine-tuned copy of the Whisper-base encoder run on the segment's own
  log-mel frames (the features transcription already computed; four layers over the
  segment's positions, not a second 30 s encoder pass). Heads trained with ``tap="final"``
  read the transcription's own encoder states instead;
- a path to another ``.npz`` head exported by the recipe;
- ``"hf:<hub id or folder>"``: any ``transformers`` audio-classification checkpoint (HuBERT,
  wav2vec2, WavLM emotion models), its labels mapped onto the base emotions.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from emotivoice.audio import SAMPLE_RATE
from emotivoice.emotion.head import EmotionHead, own_log_mel
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.emotion.taxonomy import Taxonomy, load_taxonomy
from emotivoice.errors import InvalidConfigError, ModelNotFoundError
from emotivoice.extras import require_extra
from emotivoice.results import EmotionScores, FileEmotion, TimelinePoint

if TYPE_CHECKING:
    from emotivoice.transcription import EncodedSegment

logger = logging.getLogger(__name__)

# label prefixes of common emotion checkpoints → base emotions (disgust, contempt, other: dropped)
_LABEL_PREFIXES = {
    "ang": "anger", "fea": "fear", "fear": "fear", "hap": "happiness", "joy": "happiness",
    "exc": "happiness", "neu": "neutral", "cal": "neutral", "sad": "sadness", "sur": "surprise",
}  # fmt: skip


@dataclass(frozen=True)
class EmotionOptions:
    """How emotions are recognised and interpreted.

    Attributes:
        model: ``"default"``, a path to a head ``.npz``, or ``"hf:<id or folder>"``.
        taxonomy: a user taxonomy YAML file (``None``: the packaged one).
        uncertain_below: a segment is ``uncertain`` when its top probability is below this.
        short_segment_s: segments shorter than this are scored but always flagged uncertain.
        label_map: for Hugging Face backends, checkpoint label → base emotion (overrides the
            built-in prefix rules; map a label to ``""`` to drop it).
        timeline_sigma_s: width of the Gaussian smoothing of the emotion timeline.
        device: ``cpu`` or ``cuda`` for Hugging Face backends.
    """

    model: str = "default"
    taxonomy: str | None = None
    uncertain_below: float = 0.4
    short_segment_s: float = 1.0
    label_map: Mapping[str, str] | None = None
    timeline_sigma_s: float = 5.0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0 <= self.uncertain_below <= 1:
            raise InvalidConfigError("uncertain_below must be between 0 and 1")
        if self.short_segment_s < 0 or self.timeline_sigma_s <= 0:
            raise InvalidConfigError("short_segment_s must be ≥ 0 and timeline_sigma_s > 0")


class EmotionBackend(Protocol):
    """Scores base-emotion probabilities for a segment."""

    name: str

    def probabilities(self, samples: np.ndarray, encoded: EncodedSegment | None) -> np.ndarray:
        """(6,) probabilities in :data:`BASE_EMOTIONS` order."""
        ...


class WhisperHeadBackend:
    """The trained head over the segment's Whisper encoder states (shared with transcription)."""

    def __init__(self, path: str | None = None) -> None:
        self.head = EmotionHead.load(path)
        self.name = "whisper-head" if path is None else f"whisper-head:{self.head.name}"

    def probabilities(self, samples: np.ndarray, encoded: EncodedSegment | None) -> np.ndarray:
        if self.head.prefix_layers:  # the head runs its own encoder layers on the segment
            mel = encoded.own_features[None] if encoded is not None else own_log_mel(samples)
            return self.head.probabilities(self.head.prefix_states(mel)[0])
        if encoded is None:
            raise InvalidConfigError("The Whisper emotion head needs the segment's encoder states")
        return self.head.probabilities(encoded.states)


_HUB_PROBE_TIMEOUT_S = 3.0


def _offline_help(source: str) -> str:
    return (
        f"To use it offline, download it where there is a network (`huggingface-cli download "
        f"{source}`, or `transformers`' from_pretrained), then point HF_HOME at that cache or "
        "pass the model's folder as hf:/path/to/folder."
    )


def _check_hub_reachable(source: str) -> None:
    """Raise :class:`ModelNotFoundError` at once when the Hub is off limits: HF_HUB_OFFLINE or
    TRANSFORMERS_OFFLINE is set, or its host does not answer within a few seconds."""
    import os
    import socket
    from urllib.parse import urlsplit

    flags = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    if any(os.environ.get(f, "").strip().lower() in ("1", "true", "yes", "on") for f in flags):
        raise ModelNotFoundError(
            f"The Hugging Face model {source!r} is not in the local cache and the Hub is off "
            f"(HF_HUB_OFFLINE). {_offline_help(source)}"
        )
    endpoint = urlsplit(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    host = endpoint.hostname or "huggingface.co"
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((host, port), timeout=_HUB_PROBE_TIMEOUT_S).close()
    except OSError as error:
        raise ModelNotFoundError(
            f"The Hugging Face model {source!r} is not in the local cache and the Hub "
            f"({host}) cannot be reached: {error}. {_offline_help(source)}"
        ) from None


class HuggingFaceBackend:
    """A ``transformers`` audio-classification model with its labels mapped to base emotions."""

    def __init__(
        self, source: str, label_map: Mapping[str, str] | None = None, device: str = "cpu"
    ) -> None:
        require_extra("torch", "Hugging Face emotion models")
        from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

        # A folder, or the local cache, loads without a network; only then ask the Hub, and
        # fail fast when it cannot be reached (the Hub client otherwise retries for ~45 s).
        local = Path(source).is_dir()
        try:
            self.extractor = AutoFeatureExtractor.from_pretrained(source, local_files_only=True)
            model = AutoModelForAudioClassification.from_pretrained(source, local_files_only=True)
        except OSError as error:
            if local:
                raise ModelNotFoundError(
                    f"Could not load the audio-classification model {source!r}: {error}"
                ) from None
            _check_hub_reachable(source)
            try:
                self.extractor = AutoFeatureExtractor.from_pretrained(source)
                model = AutoModelForAudioClassification.from_pretrained(source)
            except OSError as online_error:
                raise ModelNotFoundError(
                    f"Could not load the audio-classification model {source!r}: {online_error}"
                ) from None
        self.model = model.to(device).eval()
        self.device = device
        self.name = f"hf:{source}"
        labels = self.model.config.id2label
        self.columns = np.full(len(labels), -1)
        for index, label in labels.items():
            base = _map_label(str(label), label_map)
            self.columns[int(index)] = BASE_EMOTIONS.index(base) if base else -1
        if (self.columns < 0).all():
            raise InvalidConfigError(
                f"None of {source}'s labels {list(labels.values())} maps to a base emotion; "
                "pass label_map"
            )

    def probabilities(self, samples: np.ndarray, encoded: EncodedSegment | None) -> np.ndarray:
        import torch

        minimum = SAMPLE_RATE // 2  # convolutional front ends need some context
        if len(samples) < minimum:
            samples = np.pad(samples, (0, minimum - len(samples)))
        inputs = self.extractor(samples, sampling_rate=SAMPLE_RATE, return_tensors="pt")
        with torch.no_grad():
            logits = self.model(**{k: v.to(self.device) for k, v in inputs.items()}).logits[0]
        p = torch.softmax(logits.float(), -1).cpu().numpy()
        out = np.zeros(len(BASE_EMOTIONS))
        for column, base in enumerate(self.columns):
            if base >= 0:
                out[base] += p[column]
        total = out.sum()
        return out / total if total > 0 else np.full(len(BASE_EMOTIONS), 1 / len(BASE_EMOTIONS))


def _map_label(label: str, label_map: Mapping[str, str] | None) -> str | None:
    if label_map is not None and label in label_map:
        target = label_map[label]
        if target and target not in BASE_EMOTIONS:
            raise InvalidConfigError(f"label_map sends {label!r} to unknown emotion {target!r}")
        return target or None
    key = label.strip().lower()
    for prefix, base in _LABEL_PREFIXES.items():
        if key.startswith(prefix):
            return base
    return None


_LOCK = threading.Lock()
_BACKENDS: dict[tuple[str, str, tuple[tuple[str, str], ...]], EmotionBackend] = {}


def load_backend(options: EmotionOptions) -> EmotionBackend:
    """The backend named by ``options.model``, loaded once per process."""
    key = (options.model, options.device, tuple(sorted((options.label_map or {}).items())))
    with _LOCK:
        if key not in _BACKENDS:
            model = options.model
            backend: EmotionBackend
            if model == "default":
                backend = WhisperHeadBackend()
            elif model.startswith("hf:"):
                backend = HuggingFaceBackend(model[3:], options.label_map, options.device)
            elif model.endswith(".npz"):
                backend = WhisperHeadBackend(model)
            else:
                raise InvalidConfigError(
                    f"Unknown emotion model {model!r}: use 'default', a head .npz file or "
                    "'hf:<hub id or folder>'"
                )
            _BACKENDS[key] = backend
        return _BACKENDS[key]


class EmotionAnalyzer:
    """Scores segments and summarises a file, with one backend and one taxonomy."""

    def __init__(self, options: EmotionOptions | None = None) -> None:
        self.options = options or EmotionOptions()
        self.taxonomy: Taxonomy = load_taxonomy(self.options.taxonomy)
        self.backend = load_backend(self.options)

    def score(self, samples: np.ndarray, encoded: EncodedSegment | None) -> EmotionScores:
        """The emotion of one segment's audio (and its encoder states)."""
        p = self.backend.probabilities(samples, encoded)
        return self.scores_from_probabilities(p, len(samples) / SAMPLE_RATE)

    def scores_from_probabilities(self, p: np.ndarray, duration: float) -> EmotionScores:
        """Apply the uncertainty rules and the taxonomy to probabilities (6,)."""
        probabilities = {e: round(float(v), 4) for e, v in zip(BASE_EMOTIONS, p, strict=True)}
        dominant = BASE_EMOTIONS[int(np.argmax(p))]
        short = duration < self.options.short_segment_s
        primary, secondary, blends = self.taxonomy.interpret(probabilities)
        return EmotionScores(
            probabilities=probabilities,
            dominant=dominant,
            confidence=probabilities[dominant],
            uncertain=short or float(np.max(p)) < self.options.uncertain_below,
            short=short,
            primary=primary,
            secondary=secondary,
            complex=blends,
        )

    def summarise(
        self, spans: Sequence[tuple[float, float]], scores: Sequence[EmotionScores]
    ) -> FileEmotion | None:
        """Duration-weighted distribution and Gaussian-smoothed timeline of a file's segments."""
        if not scores:
            return None
        matrix = np.array([[s.probabilities[e] for e in BASE_EMOTIONS] for s in scores])
        durations = np.array([max(end - start, 1e-3) for start, end in spans])
        distribution = durations @ matrix / durations.sum()
        centres = np.array([(start + end) / 2 for start, end in spans])
        sigma = self.options.timeline_sigma_s
        kernel = np.exp(-0.5 * ((centres[:, None] - centres[None, :]) / sigma) ** 2) * durations
        smoothed = kernel @ matrix / kernel.sum(axis=1, keepdims=True)
        timeline = tuple(
            TimelinePoint(
                start=round(start, 3),
                end=round(end, 3),
                probabilities=_rounded(row),
                dominant=BASE_EMOTIONS[int(np.argmax(row))],
            )
            for (start, end), row in zip(spans, smoothed, strict=True)
        )
        return FileEmotion(
            backend=self.backend.name,
            distribution=_rounded(distribution),
            dominant=BASE_EMOTIONS[int(np.argmax(distribution))],
            timeline=timeline,
        )


def _rounded(row: Any) -> dict[str, float]:
    return {e: round(float(v), 4) for e, v in zip(BASE_EMOTIONS, row, strict=True)}
