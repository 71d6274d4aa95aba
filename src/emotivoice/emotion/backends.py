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
from emotivoice.emotion.batched import PrefixRunner, check_torch_device
from emotivoice.emotion.dimensions import DIMENSIONS, DimensionHead
from emotivoice.emotion.head import EmotionHead, own_log_mel
from emotivoice.emotion.labels import BASE_EMOTIONS
from emotivoice.emotion.taxonomy import Taxonomy, load_taxonomy
from emotivoice.emotion.units import UnitSpan, cut_units, window_bounds
from emotivoice.errors import InvalidConfigError, ModelNotFoundError
from emotivoice.extras import require_extra
from emotivoice.results import (
    EmotionScores,
    EmotionUnit,
    FileEmotion,
    Segment,
    TimelinePoint,
    Word,
)

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
        unit_min_s, unit_max_s: length limits of a sentence-level unit (see
            :func:`~emotivoice.emotion.units.cut_units`).
        unit_pause_s: a pause between words at least this long ends a unit.
        window_s, window_hop_s: length and step of the sliding windows of the emotion
            timeline (the windows pool the segment's encoder states: no extra encoder pass);
            the step is a quarter of the length unless given (see :attr:`hop_s`).
        device: ``cpu`` or ``cuda``: where Hugging Face backends run, and the default head's
            encoder prefix when segments are scored in batches (``score_segments``: the batch
            path; ``cuda`` needs PyTorch and a GPU).
    """

    model: str = "default"
    taxonomy: str | None = None
    uncertain_below: float = 0.4
    short_segment_s: float = 1.0
    label_map: Mapping[str, str] | None = None
    unit_min_s: float = 1.0
    unit_max_s: float = 8.0
    unit_pause_s: float = 0.5
    window_s: float = 2.0
    window_hop_s: float | None = None
    device: str = "cpu"

    def __post_init__(self) -> None:
        if not 0 <= self.uncertain_below <= 1:
            raise InvalidConfigError("uncertain_below must be between 0 and 1")
        if self.short_segment_s < 0:
            raise InvalidConfigError("short_segment_s must be ≥ 0")
        if not 0 < self.unit_min_s <= self.unit_max_s:
            raise InvalidConfigError(
                f"unit_min_s ({self.unit_min_s}) must be above 0 and at most unit_max_s "
                f"({self.unit_max_s})"
            )
        if self.unit_pause_s <= 0:
            raise InvalidConfigError("unit_pause_s must be above 0")
        if not 0 < self.hop_s <= self.window_s <= 30:
            raise InvalidConfigError(
                f"window_hop_s ({self.hop_s}) must be above 0 and at most window_s "
                f"({self.window_s}), itself at most 30 s"
            )

    @property
    def hop_s(self) -> float:
        """The step of the timeline's windows: ``window_hop_s``, or a quarter of ``window_s``."""
        return self.window_hop_s if self.window_hop_s is not None else self.window_s / 4


class EmotionBackend(Protocol):
    """Scores base-emotion probabilities for a segment."""

    name: str
    #: True when it reads the transcription encoder's final states, which then must come from
    #: the window it was trained on (Whisper's 30 s): the analyzer keeps full windows for it
    reads_encoder_states: bool

    def probabilities(self, samples: np.ndarray, encoded: EncodedSegment | None) -> np.ndarray:
        """(6,) probabilities in :data:`BASE_EMOTIONS` order."""
        ...


class WhisperHeadBackend:
    """The trained head over the segment's Whisper encoder states (shared with transcription)."""

    #: encoder positions per second of audio (20 ms each)
    POSITIONS_PER_S = 50

    def __init__(self, path: str | None = None) -> None:
        self.head = EmotionHead.load(path)
        self.name = "whisper-head" if path is None else f"whisper-head:{self.head.name}"
        #: the head reads the transcription encoder's final states (it has no encoder layers of
        #: its own), so they must come from the window it was trained on: Whisper's 30 s
        self.reads_encoder_states = not self.head.prefix_layers
        # the packaged dimension head was trained on the default head's states: only it has one
        self.dimension_head: DimensionHead | None = DimensionHead.load() if path is None else None

    def states(
        self,
        samples: np.ndarray,
        encoded: EncodedSegment | None,
        span: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """The head's input ``(positions, features)`` for the segment, or for the stretch
        ``span`` (seconds from the segment's start) of it: a head with its own encoder layers
        runs them on that stretch's own log-mel frames."""
        if self.head.prefix_layers:
            return self.head.prefix_states(self.mel(samples, encoded, span)[None])[0]
        if encoded is None:
            raise InvalidConfigError("The Whisper emotion head needs the segment's encoder states")
        if span is None:
            return encoded.states
        a = round(span[0] * self.POSITIONS_PER_S)
        b = max(a + 1, round(span[1] * self.POSITIONS_PER_S))
        return encoded.states[min(a, len(encoded.states) - 1) : b]

    def mel(
        self,
        samples: np.ndarray,
        encoded: EncodedSegment | None,
        span: tuple[float, float] | None = None,
    ) -> np.ndarray:
        """The log-mel frames ``(n_mels, frames)`` a prefix head reads for the segment, or for
        the stretch ``span`` of it (whole encoder positions)."""
        mel = encoded.own_features if encoded is not None else own_log_mel(samples)[0]
        if span is not None:  # two log-mel frames per encoder position
            a = 2 * round(span[0] * self.POSITIONS_PER_S)
            b = max(a + 2, 2 * round(span[1] * self.POSITIONS_PER_S))
            mel = mel[:, min(a, mel.shape[1] - 2) : min(b, mel.shape[1])]
        return mel

    def probabilities(self, samples: np.ndarray, encoded: EncodedSegment | None) -> np.ndarray:
        return self.head.probabilities(self.states(samples, encoded))

    def dimensions(self, states: np.ndarray) -> dict[str, float] | None:
        """Arousal, valence and intensity of the states (``None`` without a dimension head)."""
        return self.dimension_head.predict(states) if self.dimension_head is not None else None


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
        self.reads_encoder_states = False  # it runs its own model on the samples
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
    """Scores segments, their sentence-level units and sliding windows, and summarises a file,
    with one backend and one taxonomy."""

    def __init__(self, options: EmotionOptions | None = None) -> None:
        self.options = options or EmotionOptions()
        self.taxonomy: Taxonomy = load_taxonomy(self.options.taxonomy)
        self.backend = load_backend(self.options)
        self._runner: PrefixRunner | None = None
        if self._prefix_head() is not None and self.options.device != "cpu":
            check_torch_device(self.options.device)  # fail now, not at the first batch

    def _prefix_head(self) -> WhisperHeadBackend | None:
        """The backend when it is a head on its own encoder prefix (what batches run)."""
        backend = self.backend
        if isinstance(backend, WhisperHeadBackend) and backend.head.prefix_layers:
            return backend
        return None

    @property
    def runner(self) -> PrefixRunner:
        """The batched prefix of a prefix head on ``options.device`` (built on first use)."""
        backend = self._prefix_head()
        if backend is None:
            raise InvalidConfigError(f"The emotion backend {self.backend.name} has no prefix")
        if self._runner is None:
            self._runner = PrefixRunner(backend.head, self.options.device)
        return self._runner

    def score(self, samples: np.ndarray, encoded: EncodedSegment | None) -> EmotionScores:
        """The emotion of one segment's audio (and its encoder states)."""
        return self._score(samples, encoded)[0]

    def _score(
        self, samples: np.ndarray, encoded: EncodedSegment | None
    ) -> tuple[EmotionScores, np.ndarray | None]:
        """The segment's emotion and the head's states it came from (``None`` for a backend
        without states)."""
        duration = len(samples) / SAMPLE_RATE
        backend = self.backend
        if not isinstance(backend, WhisperHeadBackend):
            p = backend.probabilities(samples, encoded)
            return self.scores_from_probabilities(p, duration), None
        states = backend.states(samples, encoded)
        return self._scores_of_states(backend, states, duration), states

    def score_segment(
        self, samples: np.ndarray, encoded: EncodedSegment | None, start: float
    ) -> tuple[EmotionScores, tuple[TimelinePoint, ...]]:
        """The emotion of a whole segment starting at ``start`` (seconds) and its sliding
        windows (pooled from the same encoder states; a backend without states gives none)."""
        scores, states = self._score(samples, encoded)
        backend = self.backend
        if states is None or not isinstance(backend, WhisperHeadBackend):
            return scores, ()
        return scores, self._timeline(backend, states, len(samples) / SAMPLE_RATE, start)

    def score_segments(
        self, segments: Sequence[tuple[np.ndarray, EncodedSegment | None, float]]
    ) -> list[tuple[EmotionScores, tuple[TimelinePoint, ...]]]:
        """:meth:`score_segment` of many ``(samples, encoded, start)`` at once: a prefix head's
        encoder layers run in padded batches (:class:`PrefixRunner`, on ``options.device``);
        other backends score one segment after the other."""
        backend = self._prefix_head()
        if backend is None:
            return [self.score_segment(*segment) for segment in segments]
        states = self.runner.states([backend.mel(s, e) for s, e, _ in segments])
        out = []
        for (samples, _, start), rows in zip(segments, states, strict=True):
            duration = len(samples) / SAMPLE_RATE
            scores = self._scores_of_states(backend, rows, duration)
            out.append((scores, self._timeline(backend, rows, duration, start)))
        return out

    def _timeline(
        self, backend: WhisperHeadBackend, states: np.ndarray, duration: float, start: float
    ) -> tuple[TimelinePoint, ...]:
        """The sliding windows of a segment starting at ``start`` (s), pooled from its states."""
        per_s = backend.POSITIONS_PER_S
        window = max(1, round(self.options.window_s * per_s))
        hop = max(1, round(self.options.hop_s * per_s))
        timeline = []
        for a, b in window_bounds(len(states), window, hop):
            p = backend.head.probabilities(states[a:b])
            dimensions = backend.dimensions(states[a:b])
            timeline.append(
                TimelinePoint(
                    start=round(start + a / per_s, 3),
                    end=round(min(start + b / per_s, start + duration), 3),
                    probabilities=_rounded(p),
                    dominant=BASE_EMOTIONS[int(np.argmax(p))],
                    arousal=_rounded_value(dimensions, "arousal"),
                    valence=_rounded_value(dimensions, "valence"),
                )
            )
        return tuple(timeline)

    def score_units(
        self,
        samples: np.ndarray,
        encoded: EncodedSegment | None,
        words: Sequence[Word],
        start: float,
        whole: EmotionScores,
    ) -> tuple[EmotionUnit, ...]:
        """The segment's sentence-level units, each scored on its own audio; a segment that is
        one unit keeps its own scores (``whole``)."""
        spans = self._unit_spans(samples, words, start)
        if len(spans) == 1:
            return (EmotionUnit(spans[0].start, spans[0].end, spans[0].text, whole),)
        units = []
        backend = self.backend
        for span in spans:
            a, b = span.start - start, span.end - start
            if isinstance(backend, WhisperHeadBackend):
                states = backend.states(samples, encoded, (a, b))
                scores = self._scores_of_states(backend, states, b - a)
            else:
                piece = samples[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)]
                scores = self.scores_from_probabilities(backend.probabilities(piece, None), b - a)
            units.append(EmotionUnit(span.start, span.end, span.text, scores))
        return tuple(units)

    def score_units_of(
        self,
        segments: Sequence[
            tuple[np.ndarray, EncodedSegment | None, Sequence[Word], float, EmotionScores]
        ],
    ) -> list[tuple[EmotionUnit, ...]]:
        """:meth:`score_units` of many ``(samples, encoded, words, start, whole)`` at once: the
        units of every segment through one batched prefix (see :meth:`score_segments`)."""
        backend = self._prefix_head()
        if backend is None:
            return [self.score_units(*segment) for segment in segments]
        cut = [self._unit_spans(s, w, start) for s, _, w, start, _ in segments]
        mels = [
            backend.mel(samples, encoded, (span.start - start, span.end - start))
            for (samples, encoded, _, start, _), spans in zip(segments, cut, strict=True)
            if len(spans) > 1
            for span in spans
        ]
        states = iter(self.runner.states(mels))
        out: list[tuple[EmotionUnit, ...]] = []
        for (_, _, _, _, whole), spans in zip(segments, cut, strict=True):
            if len(spans) == 1:
                out.append((EmotionUnit(spans[0].start, spans[0].end, spans[0].text, whole),))
                continue
            out.append(
                tuple(
                    EmotionUnit(
                        span.start,
                        span.end,
                        span.text,
                        self._scores_of_states(backend, next(states), span.end - span.start),
                    )
                    for span in spans
                )
            )
        return out

    def _unit_spans(
        self, samples: np.ndarray, words: Sequence[Word], start: float
    ) -> list[UnitSpan]:
        o = self.options
        duration = len(samples) / SAMPLE_RATE
        return cut_units(words, start, start + duration, o.unit_min_s, o.unit_max_s, o.unit_pause_s)

    def _scores_of_states(
        self, backend: WhisperHeadBackend, states: np.ndarray, duration: float
    ) -> EmotionScores:
        p = backend.head.probabilities(states)
        return self.scores_from_probabilities(p, duration, backend.dimensions(states))

    def scores_from_probabilities(
        self, p: np.ndarray, duration: float, dimensions: Mapping[str, float] | None = None
    ) -> EmotionScores:
        """Apply the uncertainty rules and the taxonomy to probabilities (6,) and, when the
        backend has them, the dimensions."""
        probabilities = {e: round(float(v), 4) for e, v in zip(BASE_EMOTIONS, p, strict=True)}
        dominant = BASE_EMOTIONS[int(np.argmax(p))]
        short = duration < self.options.short_segment_s
        primary, secondary, blends = self.taxonomy.interpret(probabilities, dimensions)
        return EmotionScores(
            probabilities=probabilities,
            dominant=dominant,
            confidence=probabilities[dominant],
            uncertain=short or float(np.max(p)) < self.options.uncertain_below,
            short=short,
            primary=primary,
            secondary=secondary,
            complex=blends,
            arousal=_rounded_value(dimensions, "arousal"),
            valence=_rounded_value(dimensions, "valence"),
            intensity=_rounded_value(dimensions, "intensity"),
        )

    def summarise(self, segments: Sequence[Segment]) -> FileEmotion | None:
        """The emotion of a file (or of one speaker's segments): the distribution and the
        dimensions weighted by the duration of each unit, the windows as the timeline."""
        pieces = [
            (unit.duration, unit.emotion) for segment in segments for unit in segment.emotion_units
        ]
        if not pieces:
            return None
        durations = np.array([max(d, 1e-3) for d, _ in pieces])
        matrix = np.array([[e.probabilities[b] for b in BASE_EMOTIONS] for _, e in pieces])
        distribution = durations @ matrix / durations.sum()
        top = int(np.argmax(distribution))
        dimensions = {}
        for name in DIMENSIONS:
            values = [getattr(e, name) for _, e in pieces]
            if all(v is not None for v in values):
                dimensions[name] = round(float(durations @ np.array(values) / durations.sum()), 4)
        return FileEmotion(
            backend=self.backend.name,
            distribution=_rounded(distribution),
            dominant=BASE_EMOTIONS[top],
            timeline=tuple(p for segment in segments for p in _timeline_of(segment)),
            confidence=round(float(distribution[top]), 4),
            uncertain=float(distribution[top]) < self.options.uncertain_below,
            **dimensions,
        )


def _timeline_of(segment: Segment) -> tuple[TimelinePoint, ...]:
    """A segment's windows; without them (a backend with no states), a point per unit."""
    if segment.timeline:
        return segment.timeline
    return tuple(
        TimelinePoint(
            u.start,
            u.end,
            dict(u.emotion.probabilities),
            u.emotion.dominant,
            u.emotion.arousal,
            u.emotion.valence,
        )
        for u in segment.emotion_units
    )


def _rounded_value(values: Mapping[str, float] | None, name: str) -> float | None:
    return None if values is None else round(float(values[name]), 4)


def _rounded(row: Any) -> dict[str, float]:
    return {e: round(float(v), 4) for e, v in zip(BASE_EMOTIONS, row, strict=True)}
