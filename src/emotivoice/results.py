"""Result model: frozen dataclasses from an analysis down to its words, and their JSON form.

The JSON form (``Analysis.to_dict()``) is versioned by :data:`SCHEMA_VERSION` and described by
the JSON Schema in ``emotivoice/schema/analysis.schema.json`` (:func:`analysis_json_schema`).
Later stages add optional keys (``emotion``, ``explanations``) without breaking readers.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from dataclasses import asdict, dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

from emotivoice.audio import AudioInfo
from emotivoice.emotion.recognizer import EmotionScores, FileEmotion
from emotivoice.errors import InvalidResultError
from emotivoice.features import AcousticFeatures

__all__ = [
    "SCHEMA_VERSION",
    "Analysis",
    "LanguageShare",
    "ModelSettings",
    "Segment",
    "Word",
    "analysis_json_schema",
    "load_analysis",
]

SCHEMA_VERSION = "1.0"


@dataclass(frozen=True)
class Word:
    """A word with absolute start/end times (s) and Whisper's probability for it."""

    start: float
    end: float
    text: str
    probability: float


@dataclass(frozen=True)
class Segment:
    """One stretch of speech found by voice activity detection.

    Attributes:
        id: position in the file, from 0.
        start: start time in seconds.
        end: end time in seconds.
        text: the transcript of the segment.
        language: ISO code of the segment's language.
        language_probability: Whisper's probability for that language (1.0 when forced).
        avg_logprob: mean token log-probability of the transcript.
        no_speech_prob: Whisper's probability that the segment holds no speech.
        words: the words with their times.
        features: acoustic and voice-quality features of the segment's audio.
        emotion: base-emotion probabilities, granular and complex emotions, uncertainty.
    """

    id: int
    start: float
    end: float
    text: str
    language: str
    language_probability: float
    avg_logprob: float
    no_speech_prob: float
    words: tuple[Word, ...]
    features: AcousticFeatures | None
    emotion: EmotionScores | None = None

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return self.end - self.start


@dataclass(frozen=True)
class LanguageShare:
    """How much of the file's speech is in one language."""

    language: str
    speech_seconds: float
    share: float


@dataclass(frozen=True)
class ModelSettings:
    """Which model and settings produced an analysis."""

    whisper_model: str
    device: str
    compute_type: str
    beam_size: int
    language_forced: bool
    emotion_model: str | None = None


@dataclass(frozen=True)
class Analysis:
    """The analysis of one recording.

    Attributes:
        schema_version: version of the JSON form.
        emotivoice_version: version of the software that produced it.
        created_at: ISO 8601 time (UTC) the analysis finished.
        source: the input's original format, sample rate, channels and duration.
        duration: length of the decoded recording in seconds.
        language: the language spoken longest, ``None`` without speech.
        languages: speech time per language, longest first.
        segments: the speech segments in time order; empty for silence.
        model: model and settings used.
        processing_time_s: wall time of the analysis.
        emotion: duration-weighted emotion distribution and smoothed timeline of the file.
    """

    schema_version: str
    emotivoice_version: str
    created_at: str
    source: AudioInfo
    duration: float
    language: str | None
    languages: tuple[LanguageShare, ...]
    segments: tuple[Segment, ...]
    model: ModelSettings
    processing_time_s: float
    emotion: FileEmotion | None = None

    @property
    def text(self) -> str:
        """The whole transcript, segments joined by spaces."""
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def speech_duration(self) -> float:
        """Seconds of speech found by voice activity detection."""
        return sum(s.duration for s in self.segments)

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready form, valid against :func:`analysis_json_schema`."""
        data = asdict(self)
        data["text"] = self.text
        return data

    def to_json(self, indent: int | None = 2) -> str:
        """The JSON text of :meth:`to_dict`."""
        return json.dumps(self.to_dict(), indent=indent, ensure_ascii=False)

    @classmethod
    def from_dict(cls, data: Any) -> Analysis:
        """The analysis of a :meth:`to_dict` mapping (keys it does not know, such as ``text``
        or ``explanations``, are ignored; optional ones may be missing).

        Raises:
            InvalidResultError: ``data`` is not such a mapping, or has missing or mistyped fields.
        """
        return _build(cls, data, "analysis")


def load_analysis(path: str | Path) -> Analysis:
    """An analysis saved as JSON (``analysis.json``, ``emotivoice analyze --format json``).

    Raises:
        InvalidResultError: the file is missing, not JSON or not an EmotiVoice analysis.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise InvalidResultError(f"Cannot read an analysis from {path}: {error}") from None
    return Analysis.from_dict(data)


def _build(tp: Any, value: Any, where: str) -> Any:
    """``value`` (JSON data) as type ``tp``: result dataclasses, tuples, optionals, dicts and
    scalars; anything else is an :class:`InvalidResultError` naming the field."""

    def wrong(expected: str) -> InvalidResultError:
        return InvalidResultError(
            f"Not an EmotiVoice analysis: {where} should be {expected}, not {value!r:.60}"
        )

    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (inner,) = [a for a in args if a is not type(None)]
        return _build(inner, value, where)
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise wrong("an object")
        hints = typing.get_type_hints(tp)
        kwargs = {}
        for f in dataclasses.fields(tp):
            if f.name in value:
                kwargs[f.name] = _build(hints[f.name], value[f.name], f"{where}.{f.name}")
            elif f.default is dataclasses.MISSING:
                raise InvalidResultError(f"Not an EmotiVoice analysis: {where}.{f.name} is missing")
        return tp(**kwargs)
    if origin is tuple:
        if not isinstance(value, list):
            raise wrong("a list")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_build(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise wrong(f"a list of {len(args)}")
        return tuple(
            _build(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if origin is dict:
        if not isinstance(value, dict):
            raise wrong("an object")
        return {str(k): _build(args[1], v, f"{where}.{k}") for k, v in value.items()}
    if tp is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if tp in (str, int, bool) and type(value) is tp:
        return value
    raise wrong(getattr(tp, "__name__", str(tp)))


@cache
def analysis_json_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of :meth:`Analysis.to_dict`."""
    text = resources.files("emotivoice").joinpath("schema/analysis.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema
